"""Calculator factory: parameters chosen from settings (no SCF is run here)."""

from __future__ import annotations

import pytest
from ase.build import bulk, fcc111

from interphase_dft.calc.factory import (
    GPAWFactory,
    factory_for,
    gpaw_parameters,
    kpoint_mesh,
    make_calculator,
    scf_parameters,
    smearing_width,
)
from interphase_dft.calc.presets import preset
from interphase_dft.errors import InputError


def test_kpoints_follow_density_and_skip_vacuum_direction():
    slab = fcc111("Al", (1, 1, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    kx, ky, kz = kpoint_mesh(slab, 2.5, 200)
    assert kz == 1 and kx == ky and kx >= 5
    assert kpoint_mesh(slab, 2.5, gamma_only_atoms=3) == (1, 1, 1)
    li = bulk("Li", "bcc", a=3.44)
    coarse, fine = kpoint_mesh(li, 1.0, 200), kpoint_mesh(li, 4.0, 200)
    assert all(f > c for f, c in zip(fine, coarse, strict=True))
    # a supercell gets proportionally fewer k-points
    assert kpoint_mesh(li * (2, 2, 2), 4.0, 200)[0] <= (fine[0] + 1) // 2 + 1


def test_moving_atoms_switch_point_group_off_and_slabs_get_dipole_layer():
    s = preset("test")
    slab = fcc111("Al", (1, 1, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    p = gpaw_parameters(s, slab, moving=True, is_metal=True)
    assert p["symmetry"] == {"point_group": False, "time_reversal": True}
    assert p["poissonsolver"] == {"dipolelayer": "xy"}
    assert p["mode"] == {"name": "pw", "ecut": s.dft.ecut}
    assert p["occupations"] == {"name": "fermi-dirac", "width": s.dft.smearing_width}
    b = gpaw_parameters(s, bulk("Al"), moving=False, is_metal=False)
    assert "symmetry" not in b and "poissonsolver" not in b
    assert b["occupations"]["width"] == s.dft.insulator_smearing


def test_li_insertion_cells_get_the_insertion_smearing_host_and_host_plus_li_alike():
    s = preset("laptop")
    assert s.dft.insulator_smearing == 0.01 and s.dft.li_insertion_smearing == 0.1
    slab = fcc111("Al", (1, 1, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    ins = gpaw_parameters(s, slab, moving=True, is_metal=False, li_inserted=True)
    assert ins["occupations"]["width"] == 0.1
    assert gpaw_parameters(s, slab, moving=True, is_metal=False)["occupations"]["width"] == 0.01
    # a wider metal width is never narrowed; None switches the rule off
    wide = s.with_overrides({"dft": {"smearing_width": 0.2}})
    assert smearing_width(wide, is_metal=True, li_inserted=True) == 0.2
    off = s.with_overrides({"dft": {"li_insertion_smearing": None}})
    assert smearing_width(off, is_metal=False, li_inserted=True) == 0.01
    f = GPAWFactory(s, is_metal=False, li_inserted=True)
    assert f.description["li_inserted"] is True
    assert factory_for(s, is_metal=False, li_inserted=True).li_inserted


def test_insertion_spin_only_for_non_metals_and_seeds_one_moment():
    import numpy as np
    from ase.constraints import FixAtoms

    from interphase_dft.calc.factory import insertion_spin, seed_moment

    s = preset("laptop")
    assert insertion_spin(s, is_metal=False) and not insertion_spin(s, is_metal=True)
    assert not insertion_spin(s.with_overrides({"dft": {"li_insertion_spin": False}}),
                              is_metal=False)
    assert not insertion_spin(s.with_overrides({"engine": "ml"}), is_metal=False)
    atoms = bulk("LiCl", "rocksalt", a=5.14) * (2, 1, 1)
    atoms.set_constraint(FixAtoms(indices=[0]))
    seeded = seed_moment(atoms, 3)
    assert seeded.get_initial_magnetic_moments().tolist() == [0, 0, 0, 1.0]
    assert seeded.constraints and not atoms.has("initial_magmoms")  # input untouched
    assert np.allclose(seeded.positions, atoms.positions)
    p = gpaw_parameters(s, seeded, moving=True, is_metal=False, spin=True)
    assert p["spinpol"] is True


def test_scf_retry_is_safer():
    s = preset("laptop")
    p0 = scf_parameters(s, is_metal=True)
    p1 = scf_parameters(s, is_metal=True, attempt=1)
    assert p1["mixer"]["beta"] < p0["mixer"]["beta"]
    # same smearing: a retried energy is subtracted from energies of the first attempt
    assert p1["occupations"] == p0["occupations"]
    assert p1["maxiter"] > p0["maxiter"]
    assert p1["mixer"]["backend"] == p0["mixer"]["backend"] == "msr1"


def test_spin_polarised_runs_mix_with_pulay():
    """MSR1 diverged on a spin-polarised LPSC slab with one Li; spin runs use Pulay."""
    s = preset("laptop")
    assert scf_parameters(s, is_metal=False, spin=True)["mixer"]["backend"] == "pulay"
    p = gpaw_parameters(s, bulk("Al"), moving=False, is_metal=False, spin=True)
    assert p["spinpol"] and p["mixer"]["backend"] == "pulay"
    assert gpaw_parameters(s, bulk("Al"), moving=False, is_metal=True)["mixer"]["backend"] == (
        "msr1")
    plain = s.with_overrides({"dft": {"dispersion": "none"}})  # the bare GPAW calculator
    calc = make_calculator(plain, bulk("Al"), txt=None, moving=False, is_metal=False, spin=True)
    assert type(calc.parameters.mixer).__name__ == "Pulay"  # GPAW took the backend


def test_lcao_and_fd_modes():
    s = preset("test", {"dft": {"mode": "lcao", "basis": "szp(dzp)"}})
    p = gpaw_parameters(s, bulk("Al"), moving=False, is_metal=True)
    assert p["mode"] == {"name": "lcao"} and p["basis"] == "szp(dzp)" and p["h"] == s.dft.h


def test_make_calculator_gpaw_and_d3():
    from ase.calculators.mixing import SumCalculator

    calc = make_calculator(preset("test"), bulk("Al"), txt=None, moving=False, is_metal=True)
    assert type(calc).__name__ == "ASECalculator"
    laptop = preset("laptop")  # dispersion='d3'
    d3 = make_calculator(laptop, bulk("Al"), txt=None, moving=True, is_metal=False,
                         dispersion=True)
    assert isinstance(d3, SumCalculator)
    assert "DFTD3" in [type(c).__name__ for c in d3.mixer.calcs]
    f = GPAWFactory(laptop, is_metal=False, dispersion=True)
    assert f.description["dispersion"] == "d3"
    assert GPAWFactory(preset("test"), is_metal=False, dispersion=True).description[
        "dispersion"] == "none"


def test_dispersion_scope_all_puts_every_phase_on_one_hamiltonian():
    """ΔE compares phases: with scope 'all' (default) a metal that does not need D3 gets it
    too, as do the Li references; scope 'phase' restricts D3 to phases that need it."""
    from interphase_dft.calc.dispersion import dispersion_applied
    from interphase_dft.recipes.references import references_key

    laptop = preset("laptop")
    assert laptop.dft.dispersion_scope == "all"
    assert GPAWFactory(laptop, is_metal=True, dispersion=False).description["dispersion"] == "d3"
    assert references_key(laptop, False) == references_key(laptop, True)
    per_phase = laptop.with_overrides({"dft": {"dispersion_scope": "phase"}})
    assert dispersion_applied(per_phase, False) == "none"
    assert dispersion_applied(per_phase, True) == "d3"
    assert references_key(per_phase, False) != references_key(per_phase, True)
    with pytest.raises(ValueError, match="dispersion_scope"):
        laptop.with_overrides({"dft": {"dispersion_scope": "some"}})


def test_engine_ml_is_refused_by_gpaw_factory():
    s = preset("test").with_overrides({"engine": "ml"})
    with pytest.raises(InputError, match="ml_calculator"):
        make_calculator(s, bulk("Al"), txt=None, moving=True, is_metal=True)


def test_a_cell_at_gamma_only_is_flagged():
    """The laptop rule (Gamma only from 60 atoms) on an 8.1 x 8.1 A slab: the density mesh
    would be 2x2x1, so the result carries the untested k-point convergence, metal or not
    (the Li3P|LiCl insulator pair moved by 0.05 eV at 2x2x1)."""

    from interphase_dft.calc.factory import gamma_only_note

    s = preset("laptop")
    slab = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 5))  # 80 atoms, 8.1 A in-plane
    slab.pbc = (True, True, False)
    note = gamma_only_note(slab, s, is_metal=True)
    assert note and "80 atoms" in note and "2x2x1" in note and "gamma_only_atoms=81" in note
    assert note.startswith("metallic cell")
    assert gamma_only_note(slab, s, is_metal=False).startswith("insulating cell of 80 atoms")
    assert gamma_only_note(slab[:40], s, is_metal=True) is None  # below the threshold: a mesh
    dense = preset("laptop", {"dft": {"kpt_density": 0.5}})
    assert gamma_only_note(slab, dense, is_metal=True) is None  # the density asks for Gamma


def test_a_part_of_a_cell_can_take_the_whole_cells_mesh():
    """One side of a 64-atom interface alone has 32 atoms: below the laptop Gamma-only rule it
    would get the density mesh; tagged with the whole cell's count it keeps Gamma."""
    from interphase_dft.calc.factory import KPOINT_ATOMS, kpoint_mesh

    side = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))  # 32 atoms, 8.1 A
    side.pbc = (True, True, False)
    assert kpoint_mesh(side, 2.0, 60) == (2, 2, 1)
    side.info[KPOINT_ATOMS] = 64
    assert kpoint_mesh(side, 2.0, 60) == (1, 1, 1)
    assert gpaw_parameters(preset("laptop"), side, moving=False, is_metal=True)["kpts"][
        "size"] == (1, 1, 1)


def test_host_plus_and_minus_li_share_the_hosts_mesh():
    """A 59-atom host gets the density mesh at laptop; its host + Li (60 atoms) would cross
    the Gamma-only rule: the binding recipe's cells keep the host's mesh."""
    from interphase_dft.calc.factory import kpoint_mesh, same_mesh_as
    from interphase_dft.recipes.binding import with_li
    from interphase_dft.recipes.bulk_mode import _remove_li_at

    host = bulk("Li", "bcc", a=3.44, cubic=True).repeat((3, 3, 4))[:-13]  # 59 atoms
    assert len(host) == 59
    plus = with_li(host, host.positions[0] + 1.0)
    minus = _remove_li_at(plus, host.positions[0])
    mesh = kpoint_mesh(host, 2.0, 60)
    assert mesh != (1, 1, 1)
    assert [kpoint_mesh(c, 2.0, 60) for c in (plus, minus)] == [mesh] * 2
    assert kpoint_mesh(plus.copy(), 2.0, 60) == mesh  # the tag travels with copies
    del plus.info["kpoint_atoms"]
    assert kpoint_mesh(plus, 2.0, 60) == (1, 1, 1)  # what the rule alone gives
    assert same_mesh_as(host.copy(), same_mesh_as(plus, host)).info["kpoint_atoms"] == 59


def test_interface_hop_cells_take_the_density_mesh_at_every_size(monkeypatch):
    """structure.interface_density_mesh (laptop, production): every DFT cell of an interface
    hop gets the kpt_density mesh whatever its size (the 80-atom, 8.1 A slab: 2x2x1 instead
    of Gamma), recorded in the factory's description (so checkpoints of the two meshes never
    mix); bulk hops and settings without the rule keep the Gamma-only rule."""
    from interphase_dft.calc import factory as fac
    from interphase_dft.recipes.barrier import density_mesh_for, hop_options

    seen = []
    monkeypatch.setattr(fac, "make_calculator", lambda settings, atoms, **kw: seen.append(
        fac.kpoint_mesh(atoms, settings.dft.kpt_density, settings.dft.gamma_only_atoms)))
    slab = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 5))  # 80 atoms, 8.1 A in-plane
    slab.pbc = (True, True, False)
    laptop = preset("laptop")
    assert laptop.structure.interface_density_mesh
    assert preset("production").structure.interface_density_mesh
    assert not preset("test").structure.interface_density_mesh  # CI speed: Gamma rule
    across, bulk_hop = hop_options("LiAl", "Li2S"), hop_options("Li2S", "Li2S", "bulk-vacancy")
    assert across.interface and not bulk_hop.interface
    assert density_mesh_for(laptop, across) and not density_mesh_for(laptop, bulk_hop)
    off = preset("laptop", {"structure": {"interface_density_mesh": False}})
    assert not density_mesh_for(off, across)
    dense = fac.factory_for(laptop, is_metal=True, density_mesh=True)
    plain = fac.factory_for(laptop, is_metal=True)
    dense(slab)
    plain(slab)
    assert seen == [(2, 2, 1), (1, 1, 1)]
    assert fac.KPOINT_ATOMS not in slab.info  # the cell itself is not tagged
    assert "kpoints" in dense.description and "kpoints" not in plain.description
    assert dense.paired().density_mesh  # a spin-paired retry keeps the mesh
    assert fac.gamma_only_note(slab, laptop, is_metal=True)  # the plain rule would warn


def test_the_cost_model_counts_the_interface_mesh():
    """The laptop LiAl|LiCl hop cell is priced with its density mesh (more k-points than the
    Gamma point the 60-atom rule would give it)."""
    from interphase_dft.campaign import WorkItem
    from interphase_dft.cost import estimate

    costs = {}
    for rule in (True, False):
        settings = preset("laptop", {"structure": {"interface_density_mesh": rule},
                                     "budget": {"max_dft_calls": None}})
        costs[rule] = estimate(WorkItem.create("barrier", settings, phase_a="LiAl",
                                               phase_b="LiCl", mechanism="vacancy"))
    assert costs[False].kpts == 1 and costs[True].kpts > 1
    assert costs[True].seconds > 2 * costs[False].seconds


def test_a_stored_document_is_recomputed_on_the_mesh_it_was_computed_with():
    """The certified Li3P|LiCl crossing predates structure.interface_density_mesh: its stored
    settings read as the Gamma-only rule, so the sensitivity check and refine rebuild its
    Gamma calculator; the same document at settings with the rule gets the density mesh."""
    import json
    from pathlib import Path

    from interphase_dft.recipes.sensitivity import document_factory, stored_settings
    from interphase_dft.schemas import doc_from_dict

    path = Path(__file__).resolve().parents[1] / "docs/results/Li3P-LiCl-vacancy-laptop.json"
    doc = doc_from_dict(json.loads(path.read_text()))
    stored = stored_settings(doc)
    assert not stored.structure.interface_density_mesh
    factory_of = document_factory(doc)
    assert not factory_of(stored).density_mesh
    ruled = stored.with_overrides({"structure": {"interface_density_mesh": True}})
    assert factory_of(ruled).density_mesh


def test_every_dft_factory_of_an_interface_hop_gets_the_density_mesh(monkeypatch, tmp_path):
    """migration_barrier's candidate relaxer and registry reference, and the reported level
    of its states, band and host relaxation (_reported_factory), all take the density mesh
    under the rule, and none of them for a bulk hop."""
    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.recipes import barrier

    seen: list[bool] = []
    real = barrier.factory_for
    monkeypatch.setattr(barrier, "factory_for", lambda settings, **kw: seen.append(
        kw.get("density_mesh", False)) or real(settings, **kw))

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    from interphase_dft.recipes import hop_setup

    monkeypatch.setattr(hop_setup, "interface_states", stop)
    laptop = preset("laptop")
    with pytest.raises(Stop):
        barrier.migration_barrier("LiAl", "LiCl", laptop, workdir=tmp_path / "hop")
    assert seen == [True, True]  # the candidate relaxer and the registry reference
    for a, b, mechanism, want in (("LiAl", "LiCl", "vacancy", True),
                                  ("LiCl", "LiCl", "bulk-vacancy", False)):
        seen.clear()
        for neutral in (False, True):  # the hop's cells, and the full host of a vacancy hop
            barrier._reported_factory(laptop, barrier.hop_options(a, b, mechanism),
                                      tmp_path / "band", None, RunLog(), None,
                                      neutral=neutral)
        assert seen == [want, want]
