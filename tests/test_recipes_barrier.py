"""Barrier recipe: document assembly with EMT (fast), ML pre-stage logic, a real GPAW NEB."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc100
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from interphase_dft.calc.presets import preset
from interphase_dft.errors import InputError
from interphase_dft.recipes.barrier import HopOptions, hop_options, neb_barrier
from interphase_dft.schemas import BarrierDoc


def emt_factory(atoms, attempt=0, label=""):
    return EMT()


def al_adatom_hop():
    """Al adatom on Al(100) hopping between two equivalent hollow sites (2x2 cell)."""
    s = fcc100("Al", (2, 2, 2), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    s.set_constraint(FixAtoms(mask=[a.tag == 2 for a in s]))
    f = s.copy()
    f.positions[-1, 0] += s.cell[0, 0] / 2
    return s, f


def test_neb_barrier_document_is_symmetric_for_symmetric_hop(tmp_path):
    settings = preset("test", {"neb": {"fmax": 0.05}})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory,
                      phase_a="Al", phase_b="Al")
    assert doc.converged and doc.fmax_final <= 0.05
    assert doc.stage == "dft" and doc.ml_barrier is None
    assert doc.barrier_forward == pytest.approx(doc.barrier_reverse, abs=0.02)
    assert 0.1 < doc.barrier_forward < 1.0
    assert doc.energies[0] == 0.0 and len(doc.images) == settings.neb.n_images + 2
    assert doc.climbing_image == 2  # middle image climbs
    assert doc.path_coordinate[0] == 0.0 and doc.path_coordinate[-1] > 2.0
    assert len(doc.spline["x"]) == len(doc.spline["y"]) > len(doc.images)
    assert max(doc.spline["y"]) == pytest.approx(doc.barrier_forward, abs=0.05)
    assert doc.force_calls["dft_neb"] > 0 and doc.calculator["neb"]["climb"] == "from the start"
    assert doc.interface == "Al|Al"
    assert BarrierDoc.model_validate_json(doc.model_dump_json()).barrier_forward == \
        doc.barrier_forward


@pytest.mark.ml
@pytest.mark.parametrize("gap, accepted", [(5.0, True), (1e-6, False)])
def test_ml_prestage_accepts_or_falls_back(tmp_path, gap, accepted):
    pytest.importorskip("chgnet")
    settings = preset("test", {"neb": {"fmax": 0.05, "ml_prestage": True,
                                       "ml_max_barrier_gap": gap, "ml_fmax": 0.1}})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory)
    assert doc.ml_barrier is not None and doc.ml_barrier > 0
    assert doc.barrier_forward == pytest.approx(doc.barrier_reverse, abs=0.02)
    if accepted:
        assert doc.stage == "ml+dft" and doc.ml_fallback_reason is None
        assert doc.force_calls["dft_ml_path_check"] == settings.neb.n_images
    else:
        assert doc.stage == "dft" and "differs from the surrogate" in doc.ml_fallback_reason
        assert any("ML pre-stage rejected" in w for w in doc.warnings)


@pytest.mark.gpaw
@pytest.mark.slow
def test_gpaw_climbing_neb_symmetric_hop(tmp_path):
    """Li on a 1x1 Al(100) bilayer hops hollow -> next hollow (one lattice vector)."""
    settings = preset("test", {"dft": {"kpt_density": 0.5}})
    s = fcc100("Al", (1, 1, 2), vacuum=4.0)
    add_adsorbate(s, "Li", 1.9, "hollow")
    s.pbc = (True, True, False)
    s.set_constraint(FixAtoms(indices=[0, 1]))
    f = s.copy()
    f.positions[-1] += s.cell[0]
    doc = neb_barrier(s, f, settings, tmp_path, HopOptions(is_metal=True, mic=False))
    assert doc.converged and doc.fmax_final <= settings.neb.fmax
    assert doc.barrier_forward == pytest.approx(doc.barrier_reverse, abs=0.02)
    assert doc.barrier_forward > 0.05
    assert doc.calculator["symmetry"] == "time-reversal only"  # no point group when moving
    assert not any("same minimum" in w for w in doc.warnings)  # hop to a periodic image
    assert sum(doc.force_calls.values()) >= 3


@pytest.mark.ml
@pytest.mark.slow
def test_migration_barrier_end_to_end_with_surrogate_engine(tmp_path):
    """Migration cell -> registry scan -> vacancy hop -> IDPP -> CI-NEB, all with CHGNet
    (engine='ml'): the document is never a certified barrier (surrogate only)."""
    pytest.importorskip("chgnet")
    from interphase_dft.barrier_status import SURROGATE_ONLY
    from interphase_dft.recipes.barrier import migration_barrier

    settings = preset("test", {"engine": "ml", "relax": {"steps": 300}})
    doc = migration_barrier("LiAl", "LiCl", settings, workdir=tmp_path)
    assert doc.stage == "ml" and doc.interface == "LiAl|LiCl" and doc.mechanism == "vacancy"
    assert doc.saddle == SURROGATE_ONLY and doc.barrier_forward is None
    assert doc.interface_meta["registry"]["level"] == "surrogate"
    assert doc.work_of_adhesion is not None  # the scan ran at the reported (surrogate) level
    assert doc.thickness_a >= settings.structure.interface_min_thickness
    assert doc.hop_distance <= settings.structure.interface_max_hop + 0.5
    assert doc.reaction_energy == pytest.approx(doc.energies[-1])
    assert doc.images[0].structure.symbols == doc.images[-1].structure.symbols
    assert doc.budget == {}  # the surrogate engine is not metered


@pytest.mark.ml
def test_single_points_on_surrogate_path_and_endpoints(tmp_path):
    """Laptop level (PBE//CHGNet): surrogate endpoints and path, one 'DFT' (EMT) call each."""
    pytest.importorskip("chgnet")
    import numpy as np

    settings = preset("test", {"neb": {"fmax": 0.05, "ml_prestage": True, "ml_fmax": 0.1,
                                       "ml_max_barrier_gap": 5.0, "dft_refine": False},
                               "relax": {"ml_prerelax": True, "dft_relax": False}})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory)
    assert doc.stage == "dft//ml" and doc.ml_fallback_reason is None
    assert "dft_neb" not in doc.force_calls  # no DFT band optimisation at all
    assert doc.force_calls["endpoint_initial"] == doc.force_calls["endpoint_final"] == 1
    assert doc.force_calls["endpoint_initial_ml"] > 1
    assert doc.force_calls["dft_ml_path_check"] == settings.neb.n_images
    assert doc.calculator["geometry"].startswith("surrogate-relaxed endpoints")
    # the stored energies are the reference calculator's on the stored geometries
    for im in doc.images:
        atoms = im.structure.to_atoms()
        atoms.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(im.energy, abs=1e-6)
    # fmax_final = largest reference force on an intermediate image (distance to its saddle)
    assert doc.fmax_final == pytest.approx(max(im.fmax for im in doc.images[1:-1]), abs=1e-9)
    assert doc.climbing_image == int(np.argmax(doc.energies[1:-1])) + 1
    e = np.asarray(doc.energies)
    assert e.max() == pytest.approx(e.max() - e[-1], abs=0.05) and e.max() > 0.1
    # DFT single points on surrogate geometries are not a saddle at the DFT level: the
    # reference forces on the surrogate minima and path decide the status
    assert doc.saddle in ("not certified: unrelaxed endpoints", "not converged")
    assert doc.barrier_forward is None and doc.saddle_note


def test_unconverged_endpoint_makes_the_barrier_unconverged(tmp_path):
    settings = preset("test", {"relax": {"steps": 1, "fmax": 0.001}, "neb": {"fmax": 0.05}})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory)
    assert not doc.converged
    assert any("endpoint relaxation not converged (initial, final)" in w for w in doc.warnings)


def test_hop_options_state_the_charge_of_each_mechanism():
    """Interstitial: a neutral added Li with a metal side (insertion smearing, the metal takes
    the electron), Li_i^+ (charge +1, closed-shell) between insulators; vacancy: neutral with
    a metal side (the metal supplies the charge), V_Li^- (charge -1) between insulators."""
    from interphase_dft.calc.factory import scf_parameters

    ion = hop_options("li2s", "LiCl", "interstitial")  # aliases resolve; both insulators
    assert (ion.is_metal, ion.li_inserted, ion.calc_extra) == (False, False, {"charge": 1})
    assert "Li_i^+" in ion.charge_note
    assert hop_options("P2S5", "P2S5", "bulk-interstitial").calc_extra == {"charge": 1}
    opts = hop_options("LiAl", "LiCl", "interstitial")
    assert (opts.is_metal, opts.li_inserted, opts.calc_extra) == (True, True, None)
    assert "metal takes" in opts.charge_note
    vac = hop_options("Li2S", "LiCl", "vacancy")
    assert not vac.li_inserted and vac.calc_extra == {"charge": -1} and "V_Li^-" in vac.charge_note
    metal = hop_options("LiAl", "LiCl", "vacancy")
    assert metal.is_metal and metal.calc_extra is None and "metal supplies" in metal.charge_note
    assert hop_options("LiAl", "P2S5", "interstitial").dispersion is True
    assert hop_options("Al", "Al", "bulk-interstitial").li_inserted
    assert hop_options("Li2S", "Li2S", "bulk-vacancy").calc_extra == {"charge": -1}
    with pytest.raises(InputError, match="unknown mechanism"):
        hop_options("LiAl", "LiCl", "knock-off")
    s = preset("laptop")
    width = scf_parameters(s, is_metal=opts.is_metal, li_inserted=opts.li_inserted)
    assert width["occupations"]["width"] == max(s.dft.smearing_width, s.dft.li_insertion_smearing)
    # Li_i^+ and a vacancy hop in an insulator keep the insulator width
    assert scf_parameters(s, is_metal=False, li_inserted=ion.li_inserted)[
        "occupations"]["width"] == 0.01


def test_an_added_li_hopping_through_non_metals_gets_a_seeded_moment(tmp_path):
    """li_inserted + non-metal: every calculation sees 1 mu_B on the hopping atom only."""
    seen = []

    def spy(atoms, attempt=0, label=""):
        seen.append(atoms.get_initial_magnetic_moments().copy())
        return EMT()

    settings = preset("test", {"neb": {"steps": 3}, "relax": {"steps": 2}})
    initial, final = al_adatom_hop()
    initial.info["li_index"] = len(initial) - 1
    doc = neb_barrier(initial, final, settings, tmp_path / "spin",
                      HopOptions(is_metal=False, li_inserted=True), calc_factory=spy)
    assert doc.calculator["spin"].startswith("spin-polarised")
    assert seen and all(m[-1] == 1.0 and not m[:-1].any() for m in seen)
    assert not initial.has("initial_magmoms")  # the caller's endpoints are not modified
    seen.clear()
    doc = neb_barrier(initial, final, settings, tmp_path / "metal",
                      HopOptions(is_metal=True, li_inserted=True), calc_factory=spy)
    assert doc.calculator["spin"] == "spin-paired" and not any(m.any() for m in seen)
    seen.clear()  # between insulators the added Li is Li_i^+: charged, closed-shell, no moment
    doc = neb_barrier(initial, final, settings, tmp_path / "ion",
                      hop_options("Li3P", "LiCl", "interstitial"), calc_factory=spy)
    assert doc.calculator["spin"] == "spin-paired" and not any(m.any() for m in seen)
    assert doc.calculator["extra"] == {"charge": 1} and "Li_i^+" in doc.calculator["charge"]


class ThreeWells(Calculator):
    """Last atom in three Gaussian wells along x (harmonic in y, z); other atoms feel nothing.

    Wells at x = 0, 2, 4 Angstrom from the box centre (10, 10, 10) with depths 1.0, 1.3,
    0.9 eV: a hop from the first well to the last passes through a deeper intermediate minimum.
    """

    implemented_properties = ("energy", "forces")
    centres = np.array([0.0, 2.0, 4.0])
    depths = np.array([1.0, 1.3, 0.9])
    width = 0.5
    kappa = 2.0
    origin = 10.0

    def potential(self, x: np.ndarray) -> np.ndarray:
        g = np.exp(-((x[..., None] - self.centres) ** 2) / (2 * self.width**2))
        return -(self.depths * g).sum(-1)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x, y, z = self.atoms.positions[-1] - self.origin
        g = np.exp(-((x - self.centres) ** 2) / (2 * self.width**2))
        forces = np.zeros((len(self.atoms), 3))
        forces[-1] = [-(self.depths * g * (x - self.centres)).sum() / self.width**2,
                      -self.kappa * y, -self.kappa * z]
        self.results = {"energy": float(self.potential(np.array(x)) +
                                        0.5 * self.kappa * (y * y + z * z)),
                        "forces": forces}


def three_wells_factory(atoms, attempt=0, label=""):
    return ThreeWells()


def three_wells_hop():
    """A 'Li' from the first well to the last; two fixed spectators give IDPP its distances."""
    s = Atoms("HeHeLi", positions=[(7.0, 14.0, 10.0), (17.0, 14.0, 10.0), (10.0, 10.0, 10.0)],
              cell=[24, 24, 24])
    s.set_constraint(FixAtoms(indices=[0, 1]))
    f = s.copy()
    f.positions[-1, 0] += 4.0
    return s, f


@pytest.mark.parametrize("split", [True, False])
def test_band_through_an_intermediate_minimum_is_split_into_two_hops(tmp_path, split):
    """The barriers of the joined path are its energetic spans, checked against the exact
    saddles of the potential; without the split the band is flagged as not one hop."""
    settings = preset("test", {"neb": {"fmax": 0.02}})
    initial, final = three_wells_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, HopOptions(split_minimum=split),
                      calc_factory=three_wells_factory, phase_a="A", phase_b="B")
    if not split:
        assert not doc.band_continuous and doc.segments == []
        assert any("another minimum" in w for w in doc.warnings)
        return
    wells = ThreeWells()
    x = np.linspace(0.0, 4.0, 4001)
    v = wells.potential(x)
    e_a, e_m, e_b = (float(v[np.argmin(np.abs(x - c))]) for c in (0.0, 2.0, 4.0))
    s1, s2 = float(v[x < 2].max()), float(v[x > 2].max())
    assert doc.band_continuous and doc.converged and len(doc.segments) == 2
    n = settings.neb.n_images + 2
    assert len(doc.images) == 2 * n - 1
    assert [sg["images"] for sg in doc.segments] == [[0, n - 1], [n - 1, 2 * n - 2]]
    assert doc.energies[n - 1] == pytest.approx(e_m - e_a, abs=0.01)  # the relaxed minimum
    assert doc.segments[0]["barrier_forward"] == pytest.approx(s1 - e_a, abs=0.02)
    assert doc.segments[1]["barrier_forward"] == pytest.approx(s2 - e_m, abs=0.02)
    # energetic span: the second saddle above the intermediate minimum, not above the start
    assert doc.barrier_forward == pytest.approx(s2 - e_m, abs=0.02)
    assert doc.barrier_forward > max(doc.energies)
    assert doc.barrier_reverse == pytest.approx(s1 - e_m, abs=0.02)
    assert doc.reaction_energy == pytest.approx(e_b - e_a, abs=0.01)
    assert any("energetic span" in w for w in doc.warnings)
    assert doc.force_calls["intermediate"] >= 1 and doc.force_calls["seg2_dft_neb"] > 0
    assert BarrierDoc.model_validate_json(doc.model_dump_json()).segments == doc.segments


def _captured_path(monkeypatch):
    """Stub path_barrier: migration_barrier's minima and options without any band."""
    from interphase_dft.recipes import barrier

    seen = {}

    def fake_path_barrier(states, settings, workdir, options=None, **kw):
        seen.update(states=states, options=options, **kw)
        return "stub"

    monkeypatch.setattr(barrier, "path_barrier", fake_path_barrier)
    return barrier, seen


def _fixed(atoms):
    return sorted(int(i) for c in atoms.constraints if isinstance(c, FixAtoms)
                  for i in c.get_indices())


def test_vacancy_migration_barrier_builds_a_thick_cell_with_a_dipole_correction(monkeypatch,
                                                                                 tmp_path):
    barrier, seen = _captured_path(monkeypatch)
    settings = preset("test")
    assert barrier.migration_barrier("lial", "LiCl", settings, workdir=tmp_path) == "stub"
    ini, fin = seen["states"]
    assert seen["mechanism"] == "vacancy" and (seen["phase_a"], seen["phase_b"]) == ("LiAl",
                                                                                     "LiCl")
    assert seen["options"] == barrier.hop_options("LiAl", "LiCl", "vacancy")
    assert "metal supplies" in seen["options"].charge_note and not seen["options"].li_inserted
    assert ini.pbc.tolist() == fin.pbc.tolist() == [True, True, False]  # dipole correction
    from interphase_dft.calc.factory import needs_dipole_correction

    assert needs_dipole_correction(ini)
    assert ini.get_chemical_symbols() == fin.get_chemical_symbols()
    li = ini.info["li_index"]
    moved = np.linalg.norm(fin.positions - ini.positions, axis=1)
    assert np.flatnonzero(moved > 1e-9).tolist() == [li] and _fixed(ini) == _fixed(fin)
    meta = seen["interface_meta"]
    assert meta["thickness_a_A"] >= settings.structure.interface_min_thickness
    assert meta["thickness_b_A"] >= settings.structure.interface_min_thickness
    assert meta["registry"]["level"] == "geometric"  # the test preset has no surrogate
    assert (tmp_path / "registry.json").is_file()
    again = barrier.migration_barrier("LiAl", "LiCl", settings, workdir=tmp_path)
    assert again == "stub" and np.allclose(seen["states"][0].positions, ini.positions)


def test_interstitial_migration_barrier_joins_relaxed_minima(monkeypatch, tmp_path):
    """Al has no Li lattice: interstitial minima relaxed with the given (cheap) calculator."""
    barrier, seen = _captured_path(monkeypatch)
    settings = preset("test", {"relax": {"steps": 5}})

    class Flat(Calculator):
        """No forces (every candidate is its own minimum); energy = the Li's clearance."""

        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            li = self.atoms.info.get("li_index", len(self.atoms) - 1)
            d = self.atoms.get_distances(li, range(len(self.atoms) - 1), mic=True)
            self.results = {"energy": -float(d.min()),
                            "forces": np.zeros((len(self.atoms), 3))}

    barrier.migration_barrier("Al", "LiCl", settings, workdir=tmp_path,
                              mechanism="interstitial",
                              calc_factory=lambda atoms, attempt=0, label="": Flat())
    states = seen["states"]
    assert 2 <= len(states) <= 3 and seen["mechanism"] == "interstitial"
    assert seen["options"].li_inserted
    meta = seen["interface_meta"]
    assert meta["path"]["regions"][0] == "A" and meta["path"]["regions"][-1] == "B"
    assert meta["candidate_level"] == "reported level"
    assert all(s.get_chemical_symbols() == states[0].get_chemical_symbols() for s in states)
    assert all(s.pbc.tolist() == [True, True, False] for s in states)
    with pytest.raises(InputError, match="no Li lattice sites"):
        barrier.migration_barrier("Al", "LiCl", settings, workdir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bulk_reference_hops():
    from interphase_dft.builders.sites import supercell_for
    from interphase_dft.phases import get_bulk
    from interphase_dft.recipes.hop_setup import bulk_states

    s = preset("laptop")
    li2s = bulk_states("Li2S", s)
    host = supercell_for(get_bulk("Li2S"), s.structure.bulk_min_length)
    assert li2s.mechanism == "bulk-vacancy" and len(li2s.states[0]) <= len(host) - 1
    assert li2s.states[0].get_chemical_formula() != host.get_chemical_formula()  # vacancy
    a = get_bulk("Li2S").cell.lengths()[0]
    assert li2s.meta["hop_distance_A"] == pytest.approx(a / 2, abs=0.01)  # nearest Li-Li
    al = bulk_states("Al", s)
    assert al.mechanism == "bulk-interstitial" and al.states[0][-1].symbol == "Li"
    a = get_bulk("Al").cell.lengths()[0]
    assert al.meta["hop_distance_A"] == pytest.approx(a / np.sqrt(2), abs=0.02)  # oct-oct
