"""Bulk and surface modes of the binding recipe (issue 15) on cheap stand-in calculators.

The stand-in gives every host atom a fixed energy and an added Li a chosen energy (a function
of the slab's atomic planes), with zero forces: every number of the documents is known in
advance. No GPAW, no surrogate.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from interphase_dft.calc.presets import preset
from interphase_dft.schemas import BindingEnergyDoc, ReferenceEnergies

_REFS = ReferenceEnergies(li_atom=0.0, li_bcc_per_atom=-1.6, cohesive_energy=1.6)
_HOST = {"Li": -2.0, "Al": -3.0, "Cl": -3.5, "P": -4.0, "S": -4.5}  # eV per host atom


class _Stand_in(Calculator):
    """E = sum of per-element host energies (+ li_energy(planes) for a slab with one more Li
    than its host would have); zero forces and stress."""

    implemented_properties = ("energy", "forces", "stress")

    def __init__(self, li_energy, host_li: int | None) -> None:
        super().__init__()
        self.li_energy, self.host_li = li_energy, host_li

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from interphase_dft.builders.thickness import atomic_planes

        super().calculate(atoms, properties, system_changes)
        symbols = atoms.get_chemical_symbols()
        energy = sum(_HOST[s] for s in symbols)
        if "Li" in symbols and not atoms.pbc[2] and symbols.count("Li") > (self.host_li or 0):
            host = [i for i, s in enumerate(symbols) if s != "Li"]
            planes = len(atomic_planes(atoms.positions[host, 2]))
            energy += self.li_energy(planes) - _HOST["Li"]
        self.results = {"energy": energy, "forces": np.zeros((len(atoms), 3)),
                        "stress": np.zeros(6)}


def _factory(li_energy=lambda planes: -2.0, host_li: int | None = None):
    def make(atoms, attempt=0, label=""):
        return _Stand_in(li_energy, host_li)
    return make


def _surface(tmp_path, li_energy, **structure):
    from interphase_dft.recipes.binding import binding_energy

    settings = preset("test", {"structure": {"slab_max_layers": 8, "slab_max_atoms": 400,
                                             **structure}})
    return binding_energy("Al", settings, mode="surface", workdir=tmp_path,
                          calc_factory=_factory(li_energy), references=_REFS)


# --- slab thickness convergence -------------------------------------------------------------

def test_thickness_loop_stops_below_tolerance_and_skips_repeated_slabs():
    from ase import Atoms

    from interphase_dft.recipes.slab_convergence import converge_thickness

    def build(layers):  # layers 3 and 4 build the same slab (rounded up), as pymatgen does
        n = layers if layers != 4 else 3
        atoms = Atoms("Al" * n, positions=[(0, 0, 2.0 * k) for k in range(n)])
        atoms.info["n_layers"] = n
        return atoms

    e_b = {2: -1.0, 3: -1.2, 5: -1.26, 6: -1.28, 7: -1.285}
    calls = []

    def compute(layers, slab):
        calls.append(layers)
        return e_b[layers], f"site-{layers}", layers

    out = converge_thickness(build, compute, start=2, stop=7, tol=0.05)
    rec = out.record
    assert calls == [2, 3, 5, 6] and out.result == 6  # |-1.28 + 1.26| < 0.05: stop at 6
    assert rec["skipped"] == [4] and rec["converged"] and rec["stop_reason"] == "converged"
    assert rec["delta"][0] is None
    assert rec["delta"][1:] == pytest.approx([-0.2, -0.06, -0.02])
    assert rec["reported_layers"] == 6 and rec["n_atoms"] == [2, 3, 5, 6]
    unconverged = converge_thickness(build, compute, start=2, stop=5, tol=0.05)
    assert not unconverged.record["converged"]
    assert unconverged.record["stop_reason"] == "max_layers" and unconverged.result == 5
    capped = converge_thickness(build, compute, start=2, stop=7, tol=0.05, max_atoms=3)
    assert capped.record["stop_reason"] == "max_atoms" and capped.record["layers"] == [2, 3]
    first_only = converge_thickness(build, compute, start=5, stop=5, max_atoms=1)
    assert first_only.record["layers"] == [5]  # the first thickness is always computed


def test_surface_mode_converges_slab_thickness(tmp_path):
    """Al(111) grows by 3 atomic planes (one oriented cell) at a time; E_b(planes) converges."""
    def li_energy(planes):
        return -1.0 - 2.0 * 0.5**planes

    doc = _surface(tmp_path, li_energy)
    rec = doc.slab_convergence
    assert doc.surface["miller"] == [1, 1, 1]
    assert rec["converged"] and rec["stop_reason"] == "converged"
    planes = [round(t / 2.338) + 1 for t in rec["thickness"]]  # d(111) of Al = 2.338 A
    assert planes == [3, 6, 9]
    assert rec["binding_energy_bcc"] == pytest.approx([li_energy(p) + 1.6 for p in planes])
    assert abs(rec["delta"][-1]) < 0.05 <= min(abs(d) for d in rec["delta"][1:-1])
    assert rec["reported_layers"] == rec["layers"][-1]
    assert doc.binding_energy_bcc == pytest.approx(rec["binding_energy_bcc"][-1])
    assert len(doc.host_structure.symbols) == rec["n_atoms"][-1]
    assert set(rec["skipped"]) >= {3}  # same slab as 2 layers
    assert any(k.startswith(f"layers-{rec['layers'][0]}/") for k in doc.force_calls)
    assert doc.charge_state == "neutral" and "conduction band" in doc.charge_note
    back = BindingEnergyDoc.model_validate_json(doc.model_dump_json())
    assert back.slab_convergence == rec


def test_surface_mode_records_non_convergence_at_the_limits(tmp_path):
    def oscillating(planes):
        return -1.0 + 0.3 * (-1) ** planes

    doc = _surface(tmp_path / "layers", oscillating)
    rec = doc.slab_convergence
    assert not rec["converged"] and rec["stop_reason"] == "max_layers"
    assert rec["max_layers"] == 8 and rec["layers"][-1] <= 8
    assert all(abs(d) >= 0.05 for d in rec["delta"][1:])
    assert any("not converged with slab thickness" in w for w in doc.warnings)
    capped = _surface(tmp_path / "atoms", oscillating, slab_max_atoms=30).slab_convergence
    assert capped["stop_reason"] == "max_atoms" and len(capped["layers"]) == 1


# --- termination, coverage, dipole --------------------------------------------------------

def test_surface_document_records_termination_coverage_and_dipole(tmp_path):
    doc = _surface(tmp_path, lambda planes: -2.0)
    term = doc.termination
    assert len(term["candidates"]) == 2  # test preset: surface_energy_candidates = 2
    assert term["bulk_energy_per_atom"] == pytest.approx(-3.0)
    for row in term["candidates"]:  # every atom at its bulk energy: no surface energy
        assert row["surface_energy"] == pytest.approx(0.0, abs=1e-12)
        assert row["surface_energy_j_per_m2"] == pytest.approx(0.0, abs=1e-10)
    assert term["chosen"] == 0 and term["rule"] == doc.surface["rule"]
    cov = doc.coverage
    assert cov["li_per_cell"] == 1 and cov["area_per_li"] >= 60.0 == cov["min_area_per_li"]
    assert cov["area_per_li"] == pytest.approx(cov["surface_cells"] * doc.surface["area"])
    assert cov["li_image_distance"] >= 0.85 * np.sqrt(60.0) and "fewest" in cov["rule"]
    assert doc.host_structure.pbc == [True, True, False]
    assert doc.surface["polar_treatment"] == "non-polar termination"
    # the stand-in applies no dipole correction, so the document does not claim one; this
    # package's GPAW parameters for the same slab carry it
    assert doc.surface["dipole_correction"] is False
    from interphase_dft.calc.factory import gpaw_parameters

    params = gpaw_parameters(preset("test"), doc.host_structure.to_atoms(), moving=True,
                             is_metal=True)
    assert params["poissonsolver"] == {"dipolelayer": "xy"}
    assert doc.surface["n_layers"] == doc.slab_convergence["reported_layers"] >= 2


def test_termination_chosen_by_lowest_surface_energy(tmp_path, monkeypatch):
    """A stand-in that penalises the (111) slab: the second candidate wins."""
    from interphase_dft.recipes import surface_mode
    from interphase_dft.recipes.surface_mode import choose_termination

    def penalty(atoms, attempt=0, label=""):
        calc = _Stand_in(lambda planes: -2.0, None)
        base = calc.calculate

        def calculate(atoms=None, properties=("energy",), system_changes=all_changes):
            base(atoms, properties, system_changes)
            if not atoms.pbc[2] and len(atoms) % 3 == 0:  # Al(111) slabs: 3n atoms
                calc.results["energy"] += 1.0
        calc.calculate = calculate
        return calc

    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.phases import get_bulk

    settings = preset("test")
    run = RunLog()
    term, rec = choose_termination("Al", get_bulk("Al"), settings, workdir=tmp_path,
                                   is_metal=True, dispersion=False, run=run,
                                   calc_factory=penalty)
    gammas = [r["surface_energy"] for r in rec["candidates"]]
    assert rec["candidates"][0]["miller"] == [1, 1, 1] and gammas[0] > gammas[1]
    assert rec["chosen"] == 1 and list(term.miller) == rec["candidates"][1]["miller"]
    assert any("DFT surface energy picks candidate 1" in w for w in run.warnings)
    assert surface_mode.surface_energy(-10.0, 3, -3.0, 2.0) == pytest.approx(-0.25)


@pytest.mark.parametrize("name", ["Al", "LiAl", pytest.param("LPSC", marks=pytest.mark.slow),
                                  "Li2S", "Li3P", "LiCl", "P2S5"])
def test_equal_coverage_for_every_phase(name):
    """One Li per >= 60 A^2 on a termination of every phase (the bound is the same in the
    laptop and production presets), the Li >= 0.85 sqrt(60) A from its own images, and no
    supercell of fewer cells meets both: the area per Li is as close to the common bound as
    the phase's surface cell allows."""
    from interphase_dft.builders.slabs import (
        IMAGE_DISTANCE_FACTOR,
        area_of,
        default_millers,
        in_plane_supercell,
        make_slabs,
        repeat_to_area,
    )
    from interphase_dft.phases import get_bulk

    bulk = get_bulk(name)
    term = make_slabs(bulk, default_millers(bulk)[0], layers=2, phase=name)[0]
    assert preset("laptop").structure.slab_min_area == 60.0
    assert preset("production").structure.slab_min_area == 60.0
    slab = repeat_to_area(term.atoms, 60.0)
    area, cell_area = area_of(slab), area_of(term.atoms)
    n = round(area / cell_area)
    assert area >= 60.0 and len(slab) == n * len(term.atoms)
    d_min = IMAGE_DISTANCE_FACTOR * np.sqrt(60.0)
    cell2d = np.asarray(term.atoms.cell[:2, :2])
    assert in_plane_supercell(cell2d, n)[1] >= d_min - 1e-9
    for fewer in range(1, n):
        assert fewer * cell_area < 60.0 or in_plane_supercell(cell2d, fewer)[1] < d_min


def test_a_non_diagonal_supercell_comes_closer_to_the_area():
    """Al(100), 8.2 A^2 per surface cell: the diagonal repeats gave 3x3 = 73.8 A^2; the
    rotated sqrt(8) x sqrt(8) cell (8 cells) gives 65.6 A^2 with the Li 8.1 A from its
    images, its fixed bottom layer repeated with it."""
    from interphase_dft.builders.slabs import area_of, make_slabs, repeat_to_area
    from interphase_dft.phases import get_bulk

    term = make_slabs(get_bulk("Al"), (1, 0, 0), layers=3, phase="Al", fixed_layers=1)[0]
    slab = repeat_to_area(term.atoms, 60.0)
    n = round(area_of(slab) / area_of(term.atoms))
    assert n == 8 and area_of(slab) == pytest.approx(65.6, abs=0.1)
    assert slab.cell.lengths()[:2] == pytest.approx([8.1, 8.1], abs=0.01)
    fixed = len(term.atoms.constraints[0].get_indices())
    assert len(slab.constraints) == 1 and len(slab.constraints[0].get_indices()) == n * fixed
    assert slab.get_all_distances(mic=True)[np.triu_indices(len(slab), 1)].min() > 2.5


# --- bulk mode ----------------------------------------------------------------------------

def test_vacancy_and_coexistence_formulas():
    from interphase_dft.recipes.bulk_mode import coexistence_potential, vacancy_formation_energy

    # E(host - Li) + E_ref - E(host)
    assert vacancy_formation_energy(-98.0, -100.5, -1.9) == pytest.approx(0.6)
    # LiAl conventional cell 8 Li + 8 Al: (E - 8 e_Al)/8 - e_Li
    e_lial = 8 * (-3.7 - 1.9 - 0.35)
    assert coexistence_potential(e_lial, 8, 8, -3.7, -1.9) == pytest.approx(-0.35)
    assert coexistence_potential(-10.0, 2, 1, -3.0, -1.5) == pytest.approx(-2.0)


def test_bulk_mode_document_with_vacancy(tmp_path):
    from interphase_dft.recipes.binding import binding_energy

    settings = preset("test")
    doc = binding_energy("LiCl", settings, mode="bulk", workdir=tmp_path,
                         calc_factory=_factory(), references=_REFS)
    assert doc.mode == "bulk" and doc.charge_state == "neutral"
    assert "Metal-contact alternative" in doc.charge_note
    sc = doc.supercell
    assert min(sc["widths"]) >= settings.structure.bulk_min_length
    assert sc["n_atoms"] == len(doc.host_structure.symbols)
    vac = doc.vacancy
    assert vac["lowest"] == "V_Li_1" and len(vac["sites"]) == 1
    # E_f = E(host - Li) + E_ref - E(host) = -e_Li + E_ref with the stand-in energies
    assert vac["formation_energy_bcc"] == pytest.approx(2.0 - 1.6)
    assert vac["formation_energy_atom"] == pytest.approx(2.0)
    assert vac["formation_energy_atom"] - vac["formation_energy_bcc"] == pytest.approx(
        _REFS.cohesive_energy)
    site = vac["sites"][0]
    assert site["final_structure"]["symbols"].count("Li") == sc["n_atoms"] // 2 - 1
    assert doc.binding_energy_bcc == pytest.approx(-2.0 + 1.6)
    assert doc.coexistence is None
    assert "vacancy-V_Li_1" in doc.force_calls
    assert BindingEnergyDoc.model_validate_json(doc.model_dump_json()).vacancy == vac


def test_al_bulk_document_has_the_coexistence_potential_and_no_vacancy(tmp_path):
    from interphase_dft.recipes.binding import binding_energy

    doc = binding_energy("Al", preset("test"), mode="bulk", workdir=tmp_path,
                         calc_factory=_factory(), references=_REFS)
    co = doc.coexistence
    # stand-in: E(LiAl)/f.u. - E(Al) - E(Li bcc) = (-2 - 3) - (-3) - (-1.6)
    assert co["mu_li"] == pytest.approx(-0.4) and co["voltage"] == pytest.approx(0.4)
    assert co["n_li_lial"] == co["n_al_lial"] == 8
    assert co["experiment_voltage"] == [0.3, 0.4]
    assert doc.vacancy is None
    assert {s.site_kind for s in doc.sites} == {"octahedral", "tetrahedral"}
    assert "metallic host" in doc.charge_note


def test_supercell_width_requirement_per_preset():
    from interphase_dft.recipes.bulk_mode import supercell_requirement

    assert preset("laptop").structure.bulk_min_length == 8.0
    assert preset("production").structure.bulk_min_length == 10.0
    assert supercell_requirement(preset("laptop"))[0] == 8.0
    assert "laptop" in supercell_requirement(preset("laptop"))[1]
    assert supercell_requirement(preset("production"))[0] == 10.0


# --- supercells ---------------------------------------------------------------------------

def test_hermite_forms_count_every_sublattice():
    from interphase_dft.recipes.supercells import hermite_forms

    # sublattices of index n in Z^3: 1, 7, 13, 35 for n = 1..4
    assert [sum(1 for _ in hermite_forms(n)) for n in (1, 2, 3, 4)] == [1, 7, 13, 35]


@pytest.mark.parametrize(("name", "n_atoms"), [
    ("Al", 32), ("LiAl", 64), ("Li2S", 48), ("Li3P", 64),
    pytest.param("LPSC", 50, marks=pytest.mark.slow),  # building the approximant takes ~10 s
])
def test_compact_supercells_at_8_angstrom(name, n_atoms):
    """Fewest atoms with every width >= 8 A (a brute-force search over small integer
    matrices finds the same counts); diagonal repeats need up to twice as many."""
    from interphase_dft.phases import get_bulk
    from interphase_dft.recipes.supercells import bulk_supercell, perpendicular_widths

    bulk = get_bulk(name)
    cell, rec = bulk_supercell(bulk, 8.0)
    assert rec["n_atoms"] == len(cell) == n_atoms
    assert min(perpendicular_widths(cell.cell[:])) >= 8.0 - 1e-6
    assert sorted(cell.get_chemical_symbols()) == sorted(
        bulk.get_chemical_symbols() * rec["n_cells"])
    diagonal, drec = bulk_supercell(bulk, 8.0, "diagonal")
    assert len(diagonal) >= len(cell) and min(drec["widths"]) >= 8.0


def test_sites_and_vacancies_placed_in_a_skewed_supercell():
    from ase.geometry import get_distances

    from interphase_dft.builders.sites import interstitial_sites, vacancy_sites
    from interphase_dft.phases import get_bulk
    from interphase_dft.recipes.supercells import bulk_supercell, place_sites, place_vacancies

    bulk = get_bulk("Li2S")
    cell, rec = bulk_supercell(bulk, 8.0)
    assert np.count_nonzero(np.array(rec["matrix"]) - np.diag(np.diag(rec["matrix"])))
    for site in place_sites(interstitial_sites(bulk), cell):
        frac = np.linalg.solve(cell.cell[:].T, site.position)
        assert np.all((frac >= -1e-9) & (frac < 1))
        _, d = get_distances([site.position], cell.positions, cell=cell.cell, pbc=True)
        assert d.min() > 1.5  # still a void
    (vac,) = place_vacancies(vacancy_sites(bulk, "Li"), cell)
    assert cell[vac.index].symbol == "Li"
    assert np.allclose(cell.positions[vac.index], vac.position)


def test_vacancy_screening_keeps_the_lowest_without_merging(tmp_path):
    """Li3P has two distinct Li: with binding.max_dft_vacancies = 1 the surrogate (here the
    stand-in with a site-dependent energy) ranks them and one gets DFT."""
    from interphase_dft.builders.sites import vacancy_sites
    from interphase_dft.phases import get_bulk
    from interphase_dft.recipes.bulk_mode import _remove_li_at
    from interphase_dft.recipes.screening import screen_sites

    bulk = get_bulk("Li3P")
    sites = vacancy_sites(bulk, "Li")
    assert len(sites) == 2
    z_of = {s.label: s.position[2] for s in sites}

    def ranked(atoms, attempt=0, label=""):
        calc = _Stand_in(lambda planes: 0.0, None)
        base = calc.calculate

        def calculate(atoms=None, properties=("energy",), system_changes=all_changes):
            base(atoms, properties, system_changes)
            li_z = sorted(atoms.positions[[a.symbol == "Li" for a in atoms], 2])
            calc.results["energy"] += 0.01 * sum(li_z)  # removing a high Li lowers E
        calc.calculate = calculate
        return calc

    settings = preset("test", {"binding": {"max_dft_vacancies": 1}})
    out = screen_sites(bulk, sites, settings, workdir=tmp_path, with_li=_remove_li_at,
                       ml_factory=ranked, cap_name="max_dft_vacancies", merge=False,
                       what="Li vacancies")
    highest = max(z_of, key=z_of.get)
    assert [s.label for s in out.selected] == [highest]
    assert out.record["merged"] == {} and out.record["max_dft_vacancies"] == 1
    assert any("1 of 2 Li vacancies got no DFT" in w for w in out.run.warnings)
    for label, atoms in out.relaxed.items():
        assert atoms.get_chemical_symbols().count("Li") == 5, label


def test_presets_state_the_new_defaults():
    laptop, production = preset("laptop").structure, preset("production").structure
    assert laptop.slab_layers == 3 and laptop.slab_max_layers == 5
    assert laptop.slab_convergence_tol == 0.05 and laptop.slab_layers_step == 1
    assert production.slab_max_layers == 10
    assert preset("laptop").binding.max_dft_vacancies == 1
    assert all(s.bulk_supercell == "compact" for s in (laptop, production))
    assert laptop.slab_max_atoms == 160 and laptop.slab_min_area == 60.0


class _Volume(Calculator):
    """E = B (V - V0)^2 / (2 V0), no forces: the stress (dE/dV on the diagonal) pulls the
    cell to the volume V0."""

    implemented_properties = ("energy", "forces", "stress")

    def __init__(self, v0: float, b: float = 0.5) -> None:
        super().__init__()
        self.v0, self.b = v0, b

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        v = atoms.get_volume()
        p = self.b * (v - self.v0) / self.v0
        self.results = {"energy": 0.5 * self.b * (v - self.v0) ** 2 / self.v0,
                        "forces": np.zeros((len(atoms), 3)),
                        "stress": np.array([p, p, p, 0.0, 0.0, 0.0])}


def test_bulk_mode_relaxes_the_cell_of_a_molecular_crystal_only(tmp_path):
    """P2S5 (P4S10 molecular crystal, built cell) is cell-relaxed before its supercell is cut,
    whatever relax.relax_cell_bulk says; an ionic crystal keeps its library cell unless the
    setting asks."""
    from interphase_dft import phases
    from interphase_dft.recipes.bulk_mode import bulk_host

    settings = preset("test")
    assert not settings.relax.relax_cell_bulk
    v_built = phases.get_bulk("P2S5").get_volume()
    target = 0.9 * v_built
    relaxed = bulk_host("P2S5", settings, tmp_path / "p2s5",
                         lambda atoms, attempt=0, label="": _Volume(target))
    assert relaxed.get_volume() == pytest.approx(target, rel=0.02)
    assert (tmp_path / "p2s5" / "bulk-cell").is_dir()
    licl = bulk_host("LiCl", settings, tmp_path / "licl",
                      lambda atoms, attempt=0, label="": _Volume(0.5))
    assert licl.get_volume() == pytest.approx(phases.get_bulk("LiCl").get_volume())
    assert not (tmp_path / "licl" / "bulk-cell").exists()


def test_a_reactive_or_unconverged_site_never_heads_a_document_that_has_another():
    """The review's case: the lowest E(host + Li) is a site that broke a host bond (its
    number is a reaction energy); the headline (and the slab convergence that follows it) is
    the lowest non-reactive converged site; with none, the lowest non-reactive site."""
    from interphase_dft.recipes.binding import headline_site
    from interphase_dft.schemas import SiteResult, StructureData

    structure = StructureData(symbols=["Li"], positions=[[0.0, 0.0, 0.0]],
                              cell=[[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0]],
                              pbc=[True, True, True])

    def site(label, energy, reactive=False, converged=True):
        return SiteResult(label=label, site_kind="hollow", position=[0.0, 0.0, 0.0],
                          energy=energy, binding_energy_atom=energy, binding_energy_bcc=energy,
                          converged=converged, final_structure=structure, reactive=reactive)

    broken, loose, clean = site("a", -3.0, reactive=True), site("b", -2.5, converged=False), \
        site("c", -2.0)
    assert headline_site([broken, loose, clean]).label == "c"
    assert headline_site([broken, loose]).label == "b"
    assert headline_site([broken]).label == "a"
    # the fits' descriptor site follows the same rule (one rule, schemas.site_order): the
    # headline unless it is reactive; with include_reactive the lowest converged of all
    from interphase_dft.analysis.records import descriptor_site

    def doc(sites):
        return SimpleNamespace(sites=sites)

    for sites in ([broken, loose, clean], [loose, clean], [broken, loose]):
        assert descriptor_site(doc(sites)).label == headline_site(sites).label
    assert descriptor_site(doc([broken])) is None
    assert descriptor_site(doc([broken, loose, clean]), include_reactive=True).label == "a"
    assert descriptor_site(doc([site("d", -4.0, reactive=True, converged=False), clean]),
                           include_reactive=True).label == "c"


def test_surface_energies_and_every_thickness_keep_one_kpoint_mesh(tmp_path):
    """The review's case: with the Gamma-only rule (here from 30 atoms) a thick slab fell to
    Gamma while the thin one had a mesh, and candidates at Gamma were compared with a
    k-sampled bulk. Now the termination cells all take the density mesh and every thickness
    takes the thinnest slab's mesh, and the document records both."""
    from interphase_dft.calc.factory import kpoint_mesh

    seen: list[tuple[int, tuple[int, int, int]]] = []
    settings = preset("test", {"structure": {"slab_max_layers": 8, "slab_max_atoms": 400},
                               "dft": {"kpt_density": 2.0, "gamma_only_atoms": 30}})

    def make(atoms, attempt=0, label=""):
        seen.append((len(atoms), kpoint_mesh(atoms, 2.0, 30)))
        return _Stand_in(lambda planes: -2.0 - 0.3 / planes, None)

    from interphase_dft.recipes.binding import binding_energy

    doc = binding_energy("Al", settings, mode="surface", workdir=tmp_path, calc_factory=make,
                         references=_REFS)
    slab_meshes = {mesh for n, mesh in seen if n >= 30}
    assert len(slab_meshes) == 1 and (1, 1, 1) not in slab_meshes  # never Gamma-only
    assert max(n for n, _ in seen) > 30  # thick slabs that the rule would have put at Gamma
    rec = doc.slab_convergence
    assert tuple(rec["kpoints"]) in slab_meshes and "thinnest slab" in rec["kpoint_rule"]
    assert doc.termination["kpoints"]["bulk"][0] > 1
    assert all(row["kpoints"][2] == 1 and row["kpoints"][0] > 1
               for row in doc.termination["candidates"])


def test_surface_energy_ties_are_a_tolerance_not_a_rounding_bin():
    from interphase_dft.recipes.surface_mode import GAMMA_TIE, rank_by_surface_energy

    # 2e-5 apart across a bin edge used to split; 9e-5 apart within a bin used to tie
    assert rank_by_surface_energy([0.01 + 4.9e-5, 0.01 + 3e-5]) == [0, 1]
    assert rank_by_surface_energy([0.01, 0.01 - 0.5 * GAMMA_TIE, None]) == [0, 1, 2]
    assert rank_by_surface_energy([0.02, 0.01, None]) == [1, 0, 2]
    assert rank_by_surface_energy([None, None]) == [0, 1]
    assert rank_by_surface_energy([-0.02, -0.01]) == [0, 1]  # negative gammas (the review)


def test_a_checkpoint_is_not_reused_on_another_kpoint_mesh(tmp_path):
    """The same cell recomputed with a mesh tag that changes its mesh is another
    calculation; a tag that leaves the mesh as it was (host + Li tagged with the host's
    count on the same side of the Gamma-only rule) keeps the fingerprint, so finished runs
    are not redone."""
    from ase.build import bulk

    from interphase_dft.calc.factory import KPOINT_ATOMS
    from interphase_dft.calc.runners import _fingerprint

    extra = {"kind": "static", "dft": {"kpt_density": 2.0, "gamma_only_atoms": 3}}
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)  # 4 atoms: Gamma only by the rule
    plain = _fingerprint(atoms, extra)
    same = atoms.copy()
    same.info[KPOINT_ATOMS] = 5  # still >= 3: Gamma
    other = atoms.copy()
    other.info[KPOINT_ATOMS] = 0  # the density mesh
    assert _fingerprint(same, extra) == plain
    assert _fingerprint(other, extra) != plain
    assert _fingerprint(other, {"kind": "static"}) == _fingerprint(atoms, {"kind": "static"})


@pytest.mark.parametrize("mode", ["surface", "bulk"])
def test_sites_that_cannot_be_cut_fail_before_any_calculation(tmp_path, mode):
    """max_dft_sites below the site count without surrogate screening: the run stops with
    the fix before the references, the cell or the termination are computed (the review
    found three relaxations and their checkpoints written first in surface mode)."""
    from interphase_dft.errors import InputError
    from interphase_dft.recipes.binding import binding_energy

    calls = []

    def make(atoms, attempt=0, label=""):
        calls.append(label)
        return _Stand_in(lambda planes: -2.0, None)

    settings = preset("test", {"binding": {"max_dft_sites": 1, "screen_with_ml": False}})
    with pytest.raises(InputError, match=r"binding\.screen_with_ml=true"):
        binding_energy("Al", settings, mode=mode, workdir=tmp_path / "w", calc_factory=make)
    assert calls == [] and not (tmp_path / "w").exists()
