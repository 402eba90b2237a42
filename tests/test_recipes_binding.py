"""Binding-energy recipe with real GPAW (test preset, tiny cells) and the Li references."""

from __future__ import annotations

import json

import pytest
from ase.build import bulk

from interphase_dft.calc.factory import GPAWFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.runners import static
from interphase_dft.errors import CalculationError
from interphase_dft.recipes import references as refmod
from interphase_dft.recipes.references import li_references
from interphase_dft.schemas import BindingEnergyDoc

pytestmark = pytest.mark.gpaw


@pytest.fixture(scope="module")
def settings():
    return preset("test")


@pytest.fixture(scope="module")
def refs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("refs")


def test_li_references_are_physical_and_cached(settings, refs_dir, monkeypatch):
    refs = li_references(settings, refs_dir)
    # PBE cohesive energy of Li is about 1.6 eV (experiment 1.63 eV); loose test settings
    assert 1.3 < refs.cohesive_energy < 2.0
    assert refs.li_atom - refs.li_bcc_per_atom == pytest.approx(refs.cohesive_energy, abs=1e-12)
    stored = json.loads(next(refs_dir.glob("li_references-*.json")).read_text())
    assert stored["dispersion"] == "none"

    def boom(*args, **kwargs):
        raise AssertionError("cached references must not be recomputed")

    monkeypatch.setattr(refmod, "factory_for", boom)
    assert li_references(settings, refs_dir) == refs
    # other settings -> another cache entry (and a computation)
    with pytest.raises(AssertionError, match="recomputed"):
        li_references(settings.with_overrides({"dft": {"ecut": 250}}), refs_dir)


@pytest.mark.slow
def test_bulk_binding_energy_document(settings, tmp_path):
    from interphase_dft.recipes.binding import binding_energy

    doc = binding_energy("Al", settings, mode="bulk", workdir=tmp_path)
    assert doc.phase == "Al" and doc.mode == "bulk"
    assert {s.site_kind for s in doc.sites} == {"octahedral", "tetrahedral"}
    r = doc.references
    for site in doc.sites:
        # E_b(atom) - E_b(bcc) == E(bcc)/atom - E(atom) for every site (same host energy)
        assert site.binding_energy_atom - site.binding_energy_bcc == pytest.approx(
            r.li_bcc_per_atom - r.li_atom, abs=1e-8)
        assert site.binding_energy_atom == pytest.approx(
            site.energy - doc.host_energy - r.li_atom, abs=1e-10)
        assert site.final_structure.symbols.count("Li") == 1
    lowest = min(doc.sites, key=lambda s: s.energy)
    assert doc.lowest_site == lowest.label
    assert doc.binding_energy_bcc == lowest.binding_energy_bcc
    assert doc.calculator["dispersion"] == "none"
    assert doc.calculator["smearing"]["width"] == settings.dft.smearing_width  # Al is a metal
    assert doc.input_hash == f"{doc.structure_hash}:{doc.settings_hash}"
    # issue 15: supercell record, no vacancy (no Li in Al), coexistence potential
    assert doc.supercell["n_atoms"] == len(doc.host_structure.symbols)
    assert min(doc.supercell["widths"]) >= settings.structure.bulk_min_length
    assert doc.vacancy is None and doc.charge_state == "neutral"
    co = doc.coexistence
    assert co["mu_li"] == pytest.approx(
        (co["e_lial_cell"] - co["n_al_lial"] * co["e_al_per_atom"]) / co["n_li_lial"]
        - r.li_bcc_per_atom, abs=1e-10)
    assert co["voltage"] == -co["mu_li"] and -1.5 < co["mu_li"] < 0.5  # loose test settings
    print(f"Al/LiAl coexistence (test preset): mu_Li = {co['mu_li']:.3f} eV")
    assert doc.settings["preset"] == "test" and doc.work_key == ""
    assert set(doc.force_calls) >= {"host"} | {f"site-{s.label}" for s in doc.sites}
    back = BindingEnergyDoc.model_validate_json(doc.model_dump_json())
    assert back.binding_energy_atom == doc.binding_energy_atom
    # the CLI on the same workdir reads every checkpoint and returns the same numbers
    from interphase_dft.cli import main

    out = tmp_path / "doc.json"
    assert main(["binding", "Al", "--mode", "bulk", "--preset", "test", "--workdir",
                 str(tmp_path), "--json", str(out), "-q"]) == 0
    again = BindingEnergyDoc.model_validate_json(out.read_text())
    assert [s.energy for s in again.sites] == [s.energy for s in doc.sites]


def test_missing_paw_setup_names_formula_and_setting(settings, tmp_path):
    factory = GPAWFactory(settings, is_metal=True, extra={"setups": {"Li": "nonexistent"}})
    with pytest.raises(CalculationError, match=r"Li: missing PAW setup \(gpaw xc=PBE.*setups"):
        static(bulk("Li", "bcc", a=3.44), factory, tmp_path)


@pytest.mark.ml
def test_surface_mode_end_to_end_with_surrogate_engine(tmp_path):
    """choose_surface -> slab relax -> every adsorption site, all with CHGNet (engine='ml')."""
    pytest.importorskip("chgnet")
    import numpy as np

    from interphase_dft.recipes.binding import binding_energy

    settings = preset("test", {"engine": "ml"})
    doc = binding_energy("Al", settings, mode="surface", workdir=tmp_path)
    assert doc.mode == "surface" and doc.surface["rule"]
    assert doc.surface["miller"] == [1, 1, 1]
    # issue 15: Al(111) has the lowest surface energy of the two candidates; one thickness
    # (3 layers build the same slab as 2) within the test preset's slab_max_layers = 3
    gammas = [c["surface_energy"] for c in doc.termination["candidates"]]
    assert len(gammas) == 2 and 0 < gammas[doc.termination["chosen"]] == min(gammas)
    conv = doc.slab_convergence
    assert conv["layers"] == [2] and conv["skipped"] == [3]
    assert not conv["converged"] and conv["stop_reason"] == "max_layers"
    assert doc.coverage["area_per_li"] >= 60.0
    assert {"top", "bridge"} <= {s.site_kind for s in doc.sites}
    assert doc.host_structure.pbc == [True, True, False]
    fixed = doc.host_structure.fixed
    assert fixed
    host = np.array(doc.host_structure.positions)
    for site in doc.sites:
        final = np.array(site.final_structure.positions)
        assert np.allclose(final[fixed], host[fixed])  # bottom layers stayed fixed
        assert site.binding_energy_atom - site.binding_energy_bcc == pytest.approx(
            doc.references.li_bcc_per_atom - doc.references.li_atom, abs=1e-8)
    assert doc.lowest_site == min(doc.sites, key=lambda s: s.energy).label


# --- ML site screening (binding.max_dft_sites): cheap LJ "DFT" stage, real CHGNet ranking ---

_A_AL = 4.05  # Angstrom, fcc Al


class _Site:
    def __init__(self, label, kind, frac, shift=(0.0, 0.0, 0.0)):
        import numpy as np

        self.label, self.kind = label, kind
        self.position = np.asarray(frac, float) * _A_AL + np.asarray(shift, float)


def _al_host_and_sites():
    """Cubic Al4 with octahedral (body centre, edge centre), tetrahedral and a near-oct site."""
    host = bulk("Al", "fcc", a=_A_AL, cubic=True)
    sites = [
        _Site("oct_1", "octahedral", (0.5, 0.5, 0.5)),
        _Site("tet_1", "tetrahedral", (0.25, 0.25, 0.25)),
        _Site("oct_2", "octahedral", (0.5, 0.5, 0.5), shift=(0.12, 0.05, 0.0)),  # ~ oct_1
        _Site("oct_3", "octahedral", (0.5, 0.0, 0.0)),
    ]
    return host, sites


def _lj(atoms, attempt=0, label=""):
    from ase.calculators.lj import LennardJones

    return LennardJones(sigma=2.3, epsilon=0.05, rc=5.0, smooth=True)


_REFS = {"li_atom": 0.0, "li_bcc_per_atom": -1.6, "cohesive_energy": 1.6}


def _run(tmp_path, cap, **kw):
    from interphase_dft.recipes.binding import host_binding
    from interphase_dft.schemas import ReferenceEnergies

    host, sites = _al_host_and_sites()
    settings = preset("test", {"binding": {"max_dft_sites": cap, **kw}})
    return host_binding(host, sites, settings, workdir=tmp_path, phase="Al", mode="bulk",
                        is_metal=True, calc_factory=_lj,
                        references=ReferenceEnergies(**_REFS))


def test_binding_presets_and_overrides():
    assert preset("test").binding.max_dft_sites is None
    assert preset("laptop").binding.max_dft_sites == 2
    laptop = preset("laptop")
    assert not laptop.relax.dft_relax and laptop.relax.ml_prerelax
    assert not laptop.neb.dft_refine and laptop.neb.ml_prestage
    assert preset("production").relax.dft_relax and preset("production").neb.dft_refine
    assert preset("production").binding.max_dft_sites is None
    assert preset("laptop").binding.screen_with_ml is True
    s = preset("production", {"binding": {"max_dft_sites": 5}})
    assert s.binding.max_dft_sites == 5 and s.dft.ecut == preset("production").dft.ecut
    dumped = s.model_dump()["binding"]
    assert dumped["max_dft_sites"] == 5 and dumped["screen_with_ml"] is True
    assert dumped["max_dft_vacancies"] is None
    from interphase_dft.errors import InputError

    with pytest.raises(InputError, match="max_dft_sites"):
        preset("laptop", {"binding": {"max_dft_sites": 0}})
    with pytest.raises(InputError, match="max_sites"):
        preset("laptop", {"binding": {"max_sites": 2}})
    # single points need the surrogate geometry / path they are taken on
    with pytest.raises(InputError, match="ml_prerelax=true"):
        preset("laptop", {"relax": {"ml_prerelax": False}})
    with pytest.raises(InputError, match="ml_prestage=true"):
        preset("laptop", {"neb": {"ml_prestage": False}})


@pytest.mark.ml
def test_ml_screening_runs_dft_only_for_the_surrogate_lowest_site(tmp_path, monkeypatch):
    pytest.importorskip("chgnet")
    import numpy as np

    doc = _run(tmp_path, 1, screen_window=None)  # the cap alone (the window: below)
    scr = doc.screening
    labels = ["oct_1", "tet_1", "oct_2", "oct_3"]
    assert scr["method"] == "chgnet" and scr["n_sites"] == 4 and scr["n_dft"] == 1
    assert list(scr["ml_energies"]) == labels
    assert all(np.isfinite(e) for e in scr["ml_energies"].values())
    assert scr["merged"] == {"oct_2": "oct_1"}  # relaxes (surrogate) onto oct_1, first kept
    e = scr["ml_energies"]
    kept = [lab for lab in labels if lab not in scr["merged"]]
    best = min(kept, key=lambda lab: (round(e[lab], 4), lab))
    assert scr["selected"] == [best] and scr["ranking"][0] == best
    assert e["tet_1"] > e[best]  # Li prefers the octahedral void of Al
    # exactly one DFT (here LJ) result; its energy is the cheap calculator's, not the surrogate's
    assert [s.label for s in doc.sites] == [best] and doc.lowest_site == best
    site = doc.sites[0]
    final = site.final_structure.to_atoms()
    final.calc = _lj(final)
    assert site.energy == pytest.approx(final.get_potential_energy(), abs=1e-8)
    assert abs(site.energy - e[best]) > 1.0
    assert {f"ml-site-{lab}" for lab in labels} <= set(doc.force_calls)
    assert not any(k.startswith("site-") and k != f"site-{best}" for k in doc.force_calls)
    assert any("3 of 4 Li sites got no DFT" in w for w in doc.warnings)
    assert BindingEnergyDoc.model_validate_json(doc.model_dump_json()).screening == scr
    # a rerun on the same workdir resumes every surrogate relaxation from its checkpoint
    from interphase_dft.calc import ml as mlmod

    def no_model(*args, **kwargs):
        raise AssertionError("the surrogate must not be reloaded on resume")

    monkeypatch.setattr(mlmod, "load_model", no_model)
    again = _run(tmp_path, 1, screen_window=None)
    assert again.screening["ml_energies"] == e and again.screening["selected"] == [best]
    # with the window, every kept site within 0.1 eV of the surrogate's lowest gets DFT
    windowed = _run(tmp_path, 1, screen_window=0.1)
    ties = [lab for lab in scr["ranking"] if round(e[lab], 4) - round(e[best], 4) <= 0.1]
    assert windowed.screening["window_sites"] == ties
    assert windowed.screening["selected"] == ties and windowed.screening["untested_ties"] == 0
    assert sorted(s.label for s in windowed.sites) == sorted(ties)


def test_no_cap_or_large_cap_computes_every_site_without_surrogate(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "chgnet", None)  # any surrogate use would fail
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    for cap, sub in ((None, "none"), (4, "four")):
        doc = _run(tmp_path / sub, cap)
        assert doc.screening is None
        assert [s.label for s in doc.sites] == ["oct_1", "tet_1", "oct_2", "oct_3"]
        assert not (tmp_path / sub / "ml_screen").exists()
        assert not any("screening" in w for w in doc.warnings)


def test_screening_without_surrogate_or_disabled_fails_before_any_work(tmp_path, monkeypatch):
    import sys

    from interphase_dft.errors import InputError
    from interphase_dft.recipes import binding as bmod

    def boom(*args, **kwargs):
        raise AssertionError("no calculation may start")

    monkeypatch.setattr(bmod, "relax", boom)
    monkeypatch.setitem(sys.modules, "chgnet", None)
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    with pytest.raises(CalculationError, match=r"ml extra.*max_dft_sites=null"):
        _run(tmp_path, 2)
    with pytest.raises(InputError, match="screen_with_ml=false"):
        _run(tmp_path, 2, screen_with_ml=False)


@pytest.mark.ml
def test_ml_prerelax_is_a_stored_setting_that_prerelaxes(tmp_path):
    from interphase_dft.recipes.binding import host_binding
    from interphase_dft.schemas import ReferenceEnergies

    assert preset("laptop").relax.ml_prerelax is True
    assert preset("test").relax.ml_prerelax is False
    host, sites = _al_host_and_sites()
    settings = preset("test", {"relax": {"ml_prerelax": True}})
    doc = host_binding(host, sites[:1], settings, workdir=tmp_path, phase="Al", mode="bulk",
                       is_metal=True, calc_factory=_lj, references=ReferenceEnergies(**_REFS))
    assert doc.settings["relax"]["ml_prerelax"] is True
    assert doc.calculator["ml_prerelax"] is True
    assert doc.force_calls["host_ml"] > 0  # the surrogate ran before the DFT-stage relax
    assert all(s.converged for s in doc.sites)


@pytest.mark.ml
def test_single_points_at_surrogate_geometries(tmp_path):
    """relax.dft_relax=false: surrogate relaxes host and sites, one reference call each.

    Lennard-Jones stands in for DFT (EMT has no Li); only bookkeeping is checked.
    """
    pytest.importorskip("chgnet")
    from ase.build import fcc111
    from ase.constraints import FixAtoms

    from interphase_dft.builders.sites import adsorption_sites
    from interphase_dft.recipes.binding import host_binding
    from interphase_dft.schemas import ReferenceEnergies

    slab = fcc111("Al", (2, 2, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    slab.set_constraint(FixAtoms(mask=[a.tag == 3 for a in slab]))
    sites = adsorption_sites(slab)[:2]
    settings = preset("test", {"relax": {"ml_prerelax": True, "dft_relax": False}})
    refs = ReferenceEnergies(li_atom=0.0, li_bcc_per_atom=-1.6, cohesive_energy=1.6)
    doc = host_binding(slab, sites, settings, workdir=tmp_path, phase="Al", mode="surface",
                       is_metal=True, calc_factory=_lj, references=refs)
    assert doc.force_calls["host"] == 1 and doc.force_calls["host_ml"] >= 1
    assert max(s.li_displacement for s in doc.sites) > 0.05  # the surrogate moved Li
    assert all(doc.force_calls[f"site-{s.label}"] == 1 for s in doc.sites)
    assert "DFT single point" in doc.calculator["geometry"]
    host = doc.host_structure.to_atoms()
    assert host.positions[:4] == pytest.approx(slab.positions[:4], abs=1e-8)  # fixed layer
    host.calc = _lj(host)
    assert doc.host_energy == pytest.approx(host.get_potential_energy(), abs=1e-8)
    for s in doc.sites:
        atoms = s.final_structure.to_atoms()
        atoms.calc = _lj(atoms)
        assert s.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        assert s.binding_energy_bcc == pytest.approx(s.energy - doc.host_energy + 1.6, abs=1e-8)


@pytest.mark.ml
def test_surrogate_relaxations_have_their_own_step_budget(tmp_path):
    """relax.ml_steps caps the surrogate relaxations, not the DFT ones (relax.steps)."""
    pytest.importorskip("chgnet")
    from ase.build import fcc111
    from ase.constraints import FixAtoms

    from interphase_dft.builders.sites import adsorption_sites
    from interphase_dft.recipes.binding import host_binding
    from interphase_dft.schemas import ReferenceEnergies

    assert preset("laptop").relax.ml_steps == 600 and preset("laptop").relax.steps == 150
    plain = preset("test").relax
    assert plain.ml_steps is None and plain.for_surrogate() == plain
    assert preset("test", {"relax": {"ml_steps": 7}}).relax.for_surrogate().steps == 7
    slab = fcc111("Al", (2, 2, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    slab.set_constraint(FixAtoms(mask=[a.tag == 3 for a in slab]))
    settings = preset("test", {"relax": {"ml_prerelax": True, "dft_relax": False,
                                         "ml_steps": 1, "fmax": 0.001}})
    refs = ReferenceEnergies(li_atom=0.0, li_bcc_per_atom=-1.6, cohesive_energy=1.6)
    doc = host_binding(slab, adsorption_sites(slab)[:1], settings, workdir=tmp_path,
                       phase="Al", mode="surface", is_metal=True, calc_factory=_lj,
                       references=refs)
    assert doc.force_calls["host_ml"] <= 2  # one step: the start and at most one more frame
    assert not any(s.converged for s in doc.sites)
    assert any("relax.ml_steps" in w for w in doc.warnings)


def test_screening_leaves_out_a_site_the_surrogate_cannot_relax(tmp_path):
    """A site whose surrogate run fails (atoms collapse) is skipped, not fatal."""
    import numpy as np
    from ase.calculators.calculator import Calculator, all_changes

    from interphase_dft.recipes.binding import with_li
    from interphase_dft.recipes.screening import screen_sites

    class Collapses(Calculator):
        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            raise CalculationError("ml AlLi: atoms collapsed (shortest distance 0.200 A)")

    host, sites = _al_host_and_sites()
    tet = sites[1].position

    def fake_surrogate(atoms, attempt=0, label=""):
        at_tet = np.linalg.norm(atoms.positions[-1] - tet) < 0.5
        return Collapses() if at_tet else _lj(atoms)

    settings = preset("test", {"binding": {"max_dft_sites": 1}})
    out = screen_sites(host, sites, settings, workdir=tmp_path, with_li=with_li,
                       ml_factory=fake_surrogate)
    assert list(out.record["failed"]) == ["tet_1"]
    assert "tet_1" not in out.record["ranking"] and len(out.selected) == 1
    assert any("site tet_1 failed" in w and "left out" in w for w in out.run.warnings)
    assert any("1 failed with the surrogate" in w for w in out.run.warnings)
    assert "ml-site-tet_1" in out.run.timings and "ml-site-tet_1" not in out.run.force_calls

    def always(atoms, attempt=0, label=""):
        return Collapses()

    with pytest.raises(CalculationError, match=r"every one of the Li sites.*max_dft_sites=null"):
        screen_sites(host, sites, settings, workdir=tmp_path / "all", with_li=with_li,
                     ml_factory=always)


@pytest.mark.slow
def test_li_in_an_insulator_is_spin_polarised_and_not_higher_than_spin_paired(settings,
                                                                              refs_dir,
                                                                              tmp_path):
    """Li interstitial in LiCl (odd electron, wide gap): the spin-polarised host + Li energy
    is variationally at or below the spin-paired one, and the document says which was used."""
    from interphase_dft.builders.sites import interstitial_sites
    from interphase_dft.recipes.binding import host_binding

    host = bulk("LiCl", "rocksalt", a=5.14)
    site = interstitial_sites(host)[0]
    refs = li_references(settings, refs_dir)
    docs = {}
    for spin in (True, False):
        s = settings.with_overrides({"dft": {"li_insertion_spin": spin}})
        docs[spin] = host_binding(host, [site], s, workdir=tmp_path / str(spin), phase="LiCl",
                                  mode="bulk", is_metal=False, relax_host=False,
                                  references=refs)
    assert docs[True].calculator["spin"].startswith("host + Li spin-polarised")
    assert docs[False].calculator["spin"] == "spin-paired"
    assert docs[True].host_energy == pytest.approx(docs[False].host_energy, abs=1e-6)
    assert docs[True].calculator["smearing"]["width"] == settings.dft.li_insertion_smearing
    e_pol, e_paired = docs[True].sites[0].energy, docs[False].sites[0].energy
    assert e_pol <= e_paired + 2e-3
    # the site records its spin treatment and, when spin-polarised, the moment it kept
    pol, paired = docs[True].sites[0], docs[False].sites[0]
    assert paired.spin == "paired" and paired.magnetic_moment is None
    assert pol.spin in ("polarised", "paired (moment collapsed)")
    assert (pol.magnetic_moment is not None) == (pol.spin == "polarised")
    print(f"LiCl + Li: {pol.spin}, moment {pol.magnetic_moment}")


def test_screening_stops_before_a_site_when_the_ledger_says_so(tmp_path):
    """The run's time limit (or an exhausted ceiling) stops the surrogate screening too:
    `stop` is asked before every site, and nothing after it runs."""
    import time

    from interphase_dft.calc.budget import BudgetExceeded, Ledger
    from interphase_dft.calc.settings import BudgetSettings
    from interphase_dft.recipes.binding import with_li
    from interphase_dft.recipes.screening import screen_sites

    host, sites = _al_host_and_sites()
    relaxed = []

    def counting(atoms, attempt=0, label=""):
        relaxed.append(1)
        return _lj(atoms)

    ledger = Ledger.open(tmp_path, BudgetSettings(), "binding")
    ledger.deadline = time.time() - 1
    settings = preset("test", {"binding": {"max_dft_sites": 1}})
    with pytest.raises(BudgetExceeded, match="time limit"):
        screen_sites(host, sites, settings, workdir=tmp_path, with_li=with_li,
                     ml_factory=counting, stop=ledger.check)
    assert relaxed == [] and not (tmp_path / "ml_screen").exists()


def _select_with(energies, **binding):
    """recipes.screening._select on made-up surrogate energies (no relaxations)."""
    from types import SimpleNamespace

    from interphase_dft.recipes.screening import Screening, _select

    cap_name = binding.pop("cap_name", "max_dft_sites")
    labels = list(energies)
    sites = [SimpleNamespace(label=lab, position=[0.0, 0.0, 0.0]) for lab in labels]
    settings = preset("laptop", {"binding": binding})
    out = Screening(selected=[], record={})
    chosen = _select(out, sites, labels, settings, SimpleNamespace(description={}),
                     cap_name=cap_name, cap=getattr(settings.binding, cap_name), merge=True,
                     what="Li sites", energies=energies,
                     converged=dict.fromkeys(labels, True), kept=labels, merged={}, failed={})
    return chosen, out


def test_sites_the_surrogate_cannot_rank_all_get_dft_up_to_the_window_cap():
    """P2S5's case: the surrogate put 10 sites within 26 meV and DFT of the ones it picked
    spanned 1.3 eV. Every site within binding.screen_window of the surrogate's lowest gets
    DFT (up to binding.max_window_sites); ties left without DFT make the lowest E_b an upper
    bound, said in the record, a warning and the report's binding table."""
    from types import SimpleNamespace

    from interphase_dft.analysis.tables import screening_text
    from interphase_dft.cost import dft_sites

    energies = {"e": -9.5, "a": -10.0, "c": -9.95, "b": -9.98, "d": -9.90}
    assert preset("laptop").binding.screen_window == pytest.approx(0.1)
    # no window by default: a document stored before the window reads as unwindowed
    assert preset("test").binding.screen_window is None
    chosen, out = _select_with(dict(energies))  # laptop: 2 sites, ties up to 4
    assert chosen == ["a", "b", "c", "d"] and out.record["window_sites"] == ["a", "b", "c", "d"]
    assert out.record["untested_ties"] == 0 and out.record["n_dft"] == 4
    assert [s.label for s in out.selected] == ["a", "c", "b", "d"]  # input order
    assert not any("upper bound" in w for w in out.run.warnings)
    chosen, out = _select_with(dict(energies), max_window_sites=3)
    assert chosen == ["a", "b", "c"] and out.record["untested_ties"] == 1
    assert any("4 Li sites within 0.1 eV" in w and "upper bound" in w
               for w in out.run.warnings)
    doc = SimpleNamespace(screening=out.record)
    assert screening_text(doc) == ("3 of 5; upper bound: 1 of 4 surrogate ties within 0.1 eV "
                                   "without DFT")
    chosen, out = _select_with(dict(energies), screen_window=None)
    assert chosen == ["a", "b"] and out.record["window_sites"] == []
    chosen, _ = _select_with(dict(energies), screen_window=0.01)  # no tie: the cap
    assert chosen == ["a", "b"]
    # vacancies are ranked by their cap only (a window is a Li-site rule)
    chosen, out = _select_with(dict(energies), cap_name="max_dft_vacancies")
    assert chosen == ["a"] and out.record["window_eV"] is None
    # the cost model counts the window's sites (every site a tie: an upper bound)
    laptop = preset("laptop")
    assert dft_sites(68, laptop) == 4 and dft_sites(3, laptop) == 3 and dft_sites(2, laptop) == 2
    assert dft_sites(68, preset("laptop", {"binding": {"screen_window": None}})) == 2
    assert dft_sites(68, preset("production")) == 68
