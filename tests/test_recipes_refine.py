"""recipes.refine: a certified barrier's stationary points re-converged at another level.

The model: one Li walking along x over E = s (sin^2(pi (x - d) / L) + 0.1 x / L), whose
stationary points are known in closed form; the "new level" shifts the surface by d (and
scales it by s), so the stored minima and saddle are no longer stationary there.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from interphase_dft.barrier_status import NOT_A_MINIMUM, NOT_CONVERGED, SADDLE
from interphase_dft.cli import main
from interphase_dft.errors import InputError
from interphase_dft.recipes import refine as rf
from interphase_dft.schemas import BarrierDoc
from tests.test_recipes_sensitivity import LENGTH, wave_doc

TILT = 0.1


class Shifted(Calculator):
    """The Wave surface of test_recipes_sensitivity shifted by ``shift`` along x and scaled by
    ``scale``; y and z are flat except for a weak harmonic well (a minimum, not a valley)."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, scale: float, shift: float, calls: list[int]) -> None:
        super().__init__()
        self.scale, self.shift, self.calls = scale, shift, calls

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls.append(1)
        x, y, z = self.atoms.positions[0]
        k = np.pi / LENGTH
        u = x - self.shift
        e = self.scale * (np.sin(k * u) ** 2 + TILT * x / LENGTH)
        e += 0.5 * ((y - 1.0) ** 2 + (z - 1.0) ** 2)
        forces = np.zeros((len(self.atoms), 3))
        forces[0] = [-self.scale * (2 * k * np.sin(k * u) * np.cos(k * u) + TILT / LENGTH),
                     -(y - 1.0), -(z - 1.0)]
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def shifted_factory_of(calls: list[int]):
    """The new level: shift (ecut - 300) / 1000 A, scale ecut / 300."""

    def factory_of(settings):
        scale, shift = settings.dft.ecut / 300.0, (settings.dft.ecut - 300.0) / 1000.0

        def factory(atoms, attempt=0, label=""):
            return Shifted(scale, shift, calls)

        factory.description = {"engine": "shifted", "ecut": settings.dft.ecut}
        return factory

    return factory_of


def one_level(make, engine: str):
    """A ``factory_of`` whose every level computes with ``make()`` (a fixed new surface)."""

    def factory_of(settings):
        def factory(atoms, attempt=0, label=""):
            return make()

        factory.description = {"engine": engine, "ecut": settings.dft.ecut}
        return factory

    return factory_of


def surrogate(atoms, attempt=0, label=""):
    """The stored level's surface (the Hessian source)."""
    return Shifted(1.0, 0.0, [])


def tight(doc: BarrierDoc, fmax: float = 0.002, **neb) -> BarrierDoc:
    """``doc`` with its stored relax.fmax and neb.fmax at ``fmax`` (and other neb fields)."""
    stored = doc.settings
    settings = {**stored, "relax": {**stored["relax"], "fmax": fmax},
                "neb": {**stored["neb"], "fmax": fmax, **neb}}
    return doc.model_copy(update={"settings": settings})


def exact(scale: float, shift: float) -> dict[str, float]:
    """Stationary points of the shifted surface: x of both minima and of the saddle."""
    a = np.arcsin(TILT / np.pi) * LENGTH / (2 * np.pi)
    return {"initial": shift - a, "saddle": shift + LENGTH / 2 + a, "final": shift + LENGTH - a}


def energy(x: float, scale: float, shift: float) -> float:
    return scale * (np.sin(np.pi * (x - shift) / LENGTH) ** 2 + TILT * x / LENGTH)


def test_minima_and_saddle_move_to_the_new_levels_stationary_points(tmp_path):
    """At ecut 360 (shift 0.06 A, scale 1.2) the refined path is the closed-form one: both
    minima and the saddle within 0.01 A, the barrier and reaction energy within 1 meV, the
    saddle's one negative mode along the hop; a rerun resumes without a new call."""
    doc = tight(wave_doc())
    calls: list[int] = []
    out = rf.refine_barrier(doc, {"dft": {"ecut": 360.0}}, shifted_factory_of(calls),
                            surrogate, tmp_path / "w")
    assert out.saddle == SADDLE and out.stage == rf.REFINED and out.converged
    xs = [im.structure.to_atoms().positions[0, 0] for im in out.images]
    want = exact(1.2, 0.06)
    assert xs == pytest.approx([want["initial"], want["saddle"], want["final"]], abs=0.01)
    e = {k: energy(x, 1.2, 0.06) for k, x in want.items()}
    assert out.barrier_forward == pytest.approx(e["saddle"] - e["initial"], abs=1e-3)
    assert out.reaction_energy == pytest.approx(e["final"] - e["initial"], abs=1e-3)
    assert out.e_kra == pytest.approx(e["saddle"] - (e["initial"] + e["final"]) / 2, abs=1e-3)
    rec = out.refinement
    assert rec["from_uid"] == doc.uid and rec["changes"] == {"dft.ecut": [300.0, 360.0]}
    roles = [p["role"] for p in rec["points"]]
    assert roles == ["minimum", "saddle", "minimum"]
    saddle = rec["points"][1]
    assert saddle["negative_modes"] == 1 and saddle["mode_overlap"] > 0.99
    assert all(p["converged"] for p in rec["points"]) and rec["reference_calls"] == len(calls)
    assert max(out.endpoint_fmax.values()) <= 0.002 and out.saddle_fmax <= 0.002
    assert out.interface_meta["refined_from"] == doc.uid and out.work_of_adhesion is None
    assert BarrierDoc.model_validate_json(out.model_dump_json()).refinement == rec
    before = len(calls)
    again = rf.refine_barrier(doc, {"dft": {"ecut": 360.0}}, shifted_factory_of(calls),
                              surrogate, tmp_path / "w")
    assert len(calls) == before and again.energies == out.energies


def test_a_joined_path_refines_every_minimum_and_saddle(tmp_path):
    """A path stored as two hops (images 0-4 and 4-8 over two periods) keeps its two hops,
    each with its refined saddle, and the joined minimum's force is an endpoint force."""
    import ase

    doc = wave_doc(n_images=9, segments=[{"images": [0, 4]}, {"images": [4, 8]}])
    # stretch the stored band over two periods: images at x = 0, L/4, ..., 2L
    images = []
    for k, im in enumerate(doc.images):
        atoms: ase.Atoms = im.structure.to_atoms()
        atoms.positions[0, 0] = k * LENGTH / 4
        atoms.set_cell([LENGTH * 4, 4.0, 8.0])
        atoms.calc = Shifted(1.0, 0.0, [])
        images.append(im.model_copy(update={
            "energy": float(atoms.get_potential_energy()),
            "structure": type(im.structure).from_atoms(atoms)}))
    doc = tight(doc.model_copy(update={"images": images}))
    out = rf.refine_barrier(doc, {"dft": {"ecut": 330.0}}, shifted_factory_of([]),
                            surrogate, tmp_path / "w")
    assert out.saddle == SADDLE and len(out.images) == 5
    assert [s["images"] for s in out.segments] == [[0, 2], [2, 4]]
    assert set(out.endpoint_fmax) == {"initial", "final", "minimum1"}
    xs = [im.structure.to_atoms().positions[0, 0] for im in out.images]
    want = exact(1.1, 0.03)
    assert xs[:3] == pytest.approx([want["initial"], want["saddle"], want["final"]], abs=0.01)
    assert xs[3] == pytest.approx(want["saddle"] + LENGTH, abs=0.01)


def test_a_saddle_search_that_fails_leaves_the_document_not_converged(tmp_path):
    """Two reference steps cannot converge the saddle: the document says so, with no
    barrier."""
    doc = tight(wave_doc(), steps=2)
    out = rf.refine_barrier(doc, {"dft": {"ecut": 420.0}}, shifted_factory_of([]), surrogate,
                            tmp_path / "w")
    assert out.saddle == NOT_CONVERGED and out.barrier_forward is None
    assert "did not converge" in out.saddle_note


def test_a_minimum_whose_li_leaves_its_site_is_no_minimum_of_the_hop(tmp_path):
    """At a level where the initial site is gone (shifted by 2.5 A, the Li slides 2.5 A), the
    relaxation is stopped and the document says the endpoint is not a minimum: no reaction
    energy, and no saddle search is run."""
    doc = squeezed(wave_doc(), 2.0)  # the stored hop is 2 A long: the Li may move 1 A

    out = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}},
                            one_level(lambda: Shifted(1.0, 2.5, []), "far"), surrogate,
                            tmp_path / "w")
    assert out.saddle == NOT_A_MINIMUM and "moved" in out.saddle_note
    assert "1.00 A" in out.saddle_note
    assert sum(out.saddle_note in w for w in out.warnings) == 1  # said once
    assert out.barrier_forward is None and out.reaction_energy is None and not out.converged
    roles = [p["role"] for p in out.refinement["points"]]
    assert roles == ["minimum"] and out.refinement["points"][0]["basin_limit_A"] == 1.0


def squeezed(doc: BarrierDoc, length: float) -> BarrierDoc:
    """``doc`` with its stored images moved so that the Li's hop is ``length`` A long."""
    images = []
    for k, im in enumerate(doc.images):
        atoms = im.structure.to_atoms()
        atoms.positions[0, 0] = k * length / (len(doc.images) - 1)
        images.append(im.model_copy(update={
            "structure": type(im.structure).from_atoms(atoms)}))
    return doc.model_copy(update={"images": images})


class DoubleWell(Calculator):
    """E = ((x - 1)^2 - 0.16)^2 + harmonic y, z: two wells 0.8 A apart at x = 0.6 and 1.4."""

    implemented_properties = ("energy", "free_energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x, y, z = self.atoms.positions[0]
        q = (x - 1.0) ** 2 - 0.16
        e = q**2 + 0.5 * ((y - 1.0) ** 2 + (z - 1.0) ** 2)
        forces = np.zeros((len(self.atoms), 3))
        forces[0] = [-4.0 * q * (x - 1.0), -(y - 1.0), -(z - 1.0)]
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def test_minima_that_close_in_on_each_other_have_merged(tmp_path):
    """A 2 A hop stored between x = 0 and 2: at the new level its ends relax into wells 0.8 A
    apart, each within its 1 A basin limit, but closer than half the stored 2 A: the refined
    minima are not this hop's, and no saddle is searched."""
    doc = tight(squeezed(wave_doc(), 2.0))

    out = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}}, one_level(DoubleWell, "wells"),
                            surrogate,
                            tmp_path / "w")
    assert out.saddle == NOT_A_MINIMUM and "merged" in out.saddle_note
    assert "0.80 A apart (stored 2.00 A)" in out.saddle_note
    assert [p["role"] for p in out.refinement["points"]] == ["minimum", "minimum"]


def test_over_budget_stops_with_what_was_reached_and_continues(tmp_path):
    """A ceiling of 2 reference calls stops the refinement in its first relaxation; the
    document says over budget, and a rerun with room continues from the checkpoints to the
    certified result."""
    doc = tight(wave_doc())
    low = doc.model_copy(update={"settings": {**doc.settings, "budget": {
        **doc.settings["budget"], "max_dft_calls": 2}}})
    out = rf.refine_barrier(low, {"dft": {"ecut": 360.0}}, shifted_factory_of([]), surrogate,
                            tmp_path / "w")
    assert out.saddle.startswith("not certified") and out.stage == rf.REFINED
    assert out.budget["dft_calls"] == 2 and "stage initial 0" in out.saddle_note
    calls: list[int] = []
    again = rf.refine_barrier(doc, {"dft": {"ecut": 360.0}}, shifted_factory_of(calls),
                              surrogate, tmp_path / "w")
    assert again.saddle == SADDLE
    assert again.refinement["reference_calls"] > len(calls)  # the stored calls were reused


def test_a_saddle_whose_mode_leaves_the_path_is_another_saddle(tmp_path, monkeypatch):
    """A converged first-order saddle whose negative mode is across the stored path (|cos|
    below MODE_OVERLAP) is not the hop's saddle: the document is not converged and says
    why."""
    real = rf.prfo_saddle

    def across(*args, **kwargs):
        res = real(*args, **kwargs)
        mode = np.zeros_like(res.mode)
        mode[0] = [0.0, 1.0, 0.0]
        return type(res)(**{**res.__dict__, "negative_mode": mode})

    monkeypatch.setattr(rf, "prfo_saddle", across)
    out = rf.refine_barrier(tight(wave_doc()), {"dft": {"ecut": 360.0}},
                            shifted_factory_of([]), surrogate, tmp_path / "w")
    assert out.saddle == NOT_CONVERGED and "another saddle" in out.saddle_note
    assert out.refinement["points"][1]["mode_overlap"] == pytest.approx(0.0, abs=1e-9)


def test_mode_overlap_is_the_cosine_over_free_atoms_and_travel_unwraps_periodic_hops():
    from ase import Atoms
    from ase.constraints import FixAtoms

    atoms = Atoms("Li2", positions=[[0, 0, 0], [5, 0, 0]], cell=[10, 10, 10], pbc=True)
    atoms.set_constraint(FixAtoms([1]))
    path = np.array([[2.0, 0, 0], [0, 3.0, 0]])  # a fixed atom's move does not count
    assert rf.mode_overlap(np.array([[1.0, 0, 0], [0, 1, 0]]), path, atoms) == pytest.approx(1)
    assert rf.mode_overlap(np.array([[1.0, 1.0, 0], [0, 0, 0]]), path, atoms) == pytest.approx(
        np.sqrt(0.5))
    assert rf.mode_overlap(np.zeros((2, 3)), path, atoms) == 0.0
    # a hop into the next cell: 10 A in four 2.5 A steps, not the 0 A of the endpoints alone
    steps = []
    for x in (0.0, 2.5, 5.0, 7.5, 10.0):
        a = atoms.copy()
        a.positions[0, 0] = x
        steps.append(a)
    assert rf.li_travel(steps, 0) == pytest.approx(10.0)
    assert rf.li_travel([steps[0], steps[2]], 0) == pytest.approx(5.0)


@pytest.mark.parametrize("overrides, message", [
    ({"dft": {"ecut": 300.0}}, "nothing to refine"),
    ({"neb": {"fmax": 0.01}}, "reads only the dft settings"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, overrides, message):
    with pytest.raises(InputError, match=message):
        rf.refine_barrier(wave_doc(), overrides, shifted_factory_of([]), surrogate,
                          tmp_path / "w")
    with pytest.raises(InputError, match="not a certified barrier"):
        rf.refine_barrier(wave_doc(saddle="not converged"), {"dft": {"ecut": 360.0}},
                          shifted_factory_of([]), surrogate, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_cli_bad_input_exits_non_zero_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(wave_doc().model_dump(mode="json")))
    out, work = tmp_path / "out.json", tmp_path / "work"
    args = ["--workdir", str(work), "--json", str(out)]
    assert main(["refine", str(path), "--set", "dft.ecut=300", *args]) == 1
    assert "nothing to refine" in capsys.readouterr().err
    assert main(["refine", str(path), "--set", "relax.fmax=0.01", *args]) == 1
    assert "dft settings" in capsys.readouterr().err
    assert main(["refine", str(path), "--uid", "zzz", "--set", "dft.ecut=400", *args]) == 1
    assert "0 barrier documents match" in capsys.readouterr().err
    assert main(["refine", str(path), "--set", "dft.ecut=400", *args]) == 1
    assert "no recorded calculator" in capsys.readouterr().err
    assert not out.exists() and (not work.exists() or not any(work.iterdir()))


def test_cli_writes_the_refined_document_and_prints_both_levels(tmp_path, capsys,
                                                                 monkeypatch):
    """The command end to end with the model surface in place of GPAW and CHGNet: the JSON
    file holds a readable refined barrier document and the summary shows both levels."""
    from interphase_dft.commands import refine as command
    from interphase_dft.recipes import sensitivity

    monkeypatch.setattr(sensitivity, "document_factory",
                        lambda doc, txt=None: shifted_factory_of([]))
    monkeypatch.setattr(command, "_surrogate", lambda doc, settings: surrogate)
    path = tmp_path / "doc.json"
    doc = tight(wave_doc())
    path.write_text(json.dumps([doc.model_dump(mode="json")]))
    out = tmp_path / "refined.json"
    assert main(["refine", str(path), "--set", "dft.ecut=360", "--workdir",
                 str(tmp_path / "work"), "--json", str(out), "-q"]) == 0
    refined = BarrierDoc.model_validate_json(out.read_text())
    assert refined.saddle == SADDLE and refined.refinement["from_uid"] == doc.uid
    text = capsys.readouterr().out
    assert "Refined Li2S|LiCl (vacancy): dft.ecut 300.0 -> 360.0" in text
    assert f"barrier_forward  {doc.barrier_forward:.4f} -> {refined.barrier_forward:.4f}" in text
    assert text.count(" calls, moved ") == 3



@pytest.mark.gpaw
@pytest.mark.ml
@pytest.mark.slow
def test_gpaw_refine_of_a_li_hop_on_al100_through_the_command(tmp_path, capsys):
    """GPAW and CHGNet end to end: a Li hop from a hollow of a 1x1 Al(100) bilayer over the
    bridge into the next cell's hollow, stored as five unrelaxed images of a 200 eV level
    (a stand-in profile), refined at 260 eV. The hop into the next cell is followed as one
    (its 2.86 A travel, not the 0 A of its endpoints under the minimum image); the two
    refined hollows are one site (equal energies), the refined saddle is the bridge (the Li
    halfway, one negative mode along x), and a rerun computes nothing."""
    pytest.importorskip("chgnet")
    from ase.build import add_adsorbate, fcc100

    from interphase_dft.calc.presets import preset
    from interphase_dft.recipes.sensitivity import document_factory
    from interphase_dft.schemas import NEBImageData, StructureData

    s = fcc100("Al", (1, 1, 2), vacuum=4.0)
    add_adsorbate(s, "Li", 1.9, "hollow")
    s.pbc = (True, True, False)
    settings = preset("test", {"dft": {"kpt_density": 0.5}})
    doc = wave_doc(n_images=5, phases=("Al", "Al"), mechanism="bulk-interstitial")
    doc.settings = settings.model_dump()
    doc.calculator = {"engine": "gpaw", "is_metal": True, "li_inserted": True, "extra": {},
                      "spin": "spin-paired"}
    document_factory(doc)  # the calculator this version builds for the document
    images = []
    for k, e in enumerate((0.0, 0.2, 0.4, 0.2, 0.0)):  # a symmetric profile over the bridge
        a = s.copy()
        a.positions[-1] += s.cell[0] * k / 4
        images.append(NEBImageData(energy=e, fmax=0.0, structure=StructureData.from_atoms(a)))
    doc.images = images
    path = tmp_path / "doc.json"
    path.write_text(doc.model_dump_json())
    out = tmp_path / "refined.json"
    args = ["refine", str(path), "--set", "dft.ecut=260", "--workdir", str(tmp_path / "w"),
            "-q"]
    assert main([*args, "--json", str(out)]) == 0
    refined = BarrierDoc.model_validate_json(out.read_text())
    assert refined.saddle == SADDLE and refined.stage == rf.REFINED
    assert refined.hop_distance == pytest.approx(s.cell[0, 0], abs=0.05)
    first, top, _ = (im.structure.to_atoms().positions[-1] for im in refined.images)
    assert top[0] - first[0] == pytest.approx(s.cell[0, 0] / 2, abs=0.05)
    assert refined.images[2].energy == pytest.approx(refined.images[0].energy, abs=1e-3)
    rec = refined.refinement
    assert [p["role"] for p in rec["points"]] == ["minimum", "saddle", "minimum"]
    assert rec["points"][1]["negative_modes"] == 1 and rec["points"][1]["mode_overlap"] > 0.5
    assert all(p["basin_limit_A"] == pytest.approx(s.cell[0, 0] / 2, abs=0.01)
               for p in rec["points"] if p["role"] == "minimum")
    assert refined.barrier_forward > 0.1 and refined.calculator["engine"] == "gpaw"
    capsys.readouterr()
    assert main([*args, "--json", "-"]) == 0  # resumed from the checkpoints
    again = json.loads(capsys.readouterr().out)
    assert again["energies"] == refined.energies and again["refinement"] == rec


def test_fixed_atoms_stay_where_they_were_stored(tmp_path):
    """A second atom held by FixAtoms (the bulk-fixed outer layers of an interface cell) is
    not moved by the relaxations or the saddle search, and the hop is refined as without it."""
    from ase.constraints import FixAtoms

    doc = tight(wave_doc())
    images = []
    for im in doc.images:
        atoms = im.structure.to_atoms()
        atoms += type(atoms)("Cl", positions=[[1.0, 3.0, 6.0]])
        atoms.set_constraint(FixAtoms([1]))
        images.append(im.model_copy(update={"structure": type(im.structure).from_atoms(atoms)}))
    doc = doc.model_copy(update={"images": images})
    assert doc.images[0].structure.to_atoms().constraints  # the constraint is stored
    out = rf.refine_barrier(doc, {"dft": {"ecut": 360.0}}, shifted_factory_of([]), surrogate,
                            tmp_path / "w")
    assert out.saddle == SADDLE
    for im in out.images:
        assert im.structure.to_atoms().positions[1] == pytest.approx([1.0, 3.0, 6.0])
    want = exact(1.2, 0.06)
    xs = [im.structure.to_atoms().positions[0, 0] for im in out.images]
    assert xs == pytest.approx([want["initial"], want["saddle"], want["final"]], abs=0.01)


class Profile(Calculator):
    """One Li over E(u) (``energy_and_slope``), u = (x - offset) mod period (no wrap without a
    period), plus harmonic y, z; every evaluation counted in ``evaluations``."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, energy_and_slope, evaluations: list[int] | None = None,
                 offset: float = 0.0, period: float | None = None) -> None:
        super().__init__()
        self.energy_and_slope, self.evaluations = energy_and_slope, evaluations
        self.offset, self.period = offset, period

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.evaluations is not None:
            self.evaluations.append(1)
        x, y, z = self.atoms.positions[0]
        u = x - self.offset
        e, slope = self.energy_and_slope(u % self.period if self.period else u)
        e += 0.5 * ((y - 1.0) ** 2 + (z - 1.0) ** 2)
        forces = np.zeros((len(self.atoms), 3))
        forces[0] = [-slope, -(y - 1.0), -(z - 1.0)]
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def lopsided(doc: BarrierDoc, saddle_x: float, offset: float = 0.0,
             spectator: bool = False) -> BarrierDoc:
    """``doc`` (7 images, stored saddle image 3) with its images moved: image 3 at
    ``saddle_x``, the others evenly between it and the ends (0 and 6 A), all shifted by
    ``offset`` and wrapped into the cell; ``spectator`` adds a fixed Cl far from the Li."""
    from ase import Atoms
    from ase.constraints import FixAtoms

    xs = np.concatenate([np.linspace(0.0, saddle_x, 4), np.linspace(saddle_x, LENGTH, 4)[1:]])
    images = []
    for x, im in zip(xs, doc.images, strict=True):
        atoms = im.structure.to_atoms()
        atoms.positions[0, 0] = (x + offset) % atoms.cell[0, 0]
        if spectator:
            atoms += Atoms("Cl", positions=[[6.0, 3.0, 6.0]])
            atoms.set_constraint(FixAtoms([1]))
        images.append(im.model_copy(update={"structure": type(im.structure).from_atoms(atoms)}))
    return doc.model_copy(update={"images": images})


WELL_A, WELL_B = 0.9, 6.0


def two_wells(x: float) -> tuple[float, float]:
    """Minima near 0.9 and 6.0, 0.2 eV between them, tilted by 0.05 eV over the hop."""
    a, b, h, t = WELL_A, WELL_B, 0.2, 0.05
    w = (b - a) ** 4
    e = 16 * h * (x - a) ** 2 * (x - b) ** 2 / w - t * (x - a) / (b - a)
    return e, 32 * h * (x - a) * (x - b) * (2 * x - a - b) / w - t / (b - a)


def test_a_search_that_falls_into_a_minimum_starts_again_between_the_refined_minima(tmp_path):
    """The stored saddle lies 0.1 A from where the initial minimum is at the new level, at the
    bottom of its basin: that search stops at its first call, and the search from the
    highest of three points between the refined minima finds the new saddle (the closed-form
    root), certified; every reference call is counted, and a rerun makes none."""
    from scipy.optimize import brentq

    doc = tight(lopsided(wave_doc(), 1.0))
    calls: list[int] = []
    level = one_level(lambda: Profile(two_wells, calls), "wells")
    hessians = lambda atoms, attempt=0, label="": Profile(two_wells)  # noqa: E731
    out = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}}, level, hessians, tmp_path / "w")
    assert out.saddle == SADDLE, out.saddle_note
    roots = [brentq(lambda x: two_wells(x)[1], lo, hi) for lo, hi in ((0, 2), (2, 5), (5, 7))]
    xs = [im.structure.to_atoms().positions[0, 0] for im in out.images]
    assert xs == pytest.approx(roots, abs=0.01)
    assert out.barrier_forward == pytest.approx(two_wells(roots[1])[0] - two_wells(roots[0])[0],
                                                abs=1e-3)
    rec = out.refinement["points"][1]
    first = rec["reseed"]["first_search"]
    assert first["stopped"].startswith("fell into the refined minimum of stored image 0")
    assert first["calls"] == 1 and rec["search"] == "reseed3"
    assert rec["reseed"]["start_point"] == 2 and len(rec["reseed"]["points_eV"]) == 3
    assert rec["moved_A"] == pytest.approx(abs(roots[1] - 1.0), abs=0.01)  # from the stored
    assert out.refinement["reference_calls"] == len(calls)
    assert any("saddle3" in w and "fell into" in w for w in out.warnings)
    before = len(calls)
    again = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}}, level, hessians, tmp_path / "w")
    assert again.energies == out.energies and len(calls) == before


def test_a_fall_across_the_cell_edge_with_a_fixed_atom_is_searched_again_on_the_unwrapped_path(
        tmp_path):
    """The same hop shifted by 10 A in the 12 A cell (the Li wraps from 10 to 4): IDPP between
    the unwrapped minima, the fixed Cl never moves, the saddle found at its wrapped root."""
    from scipy.optimize import brentq

    doc = tight(lopsided(wave_doc(), 1.0, offset=10.0, spectator=True))
    level = one_level(lambda: Profile(two_wells, offset=10.0, period=12.0), "wrapped")
    hessians = lambda atoms, attempt=0, label="": Profile(two_wells, offset=10.0,  # noqa: E731
                                                          period=12.0)
    out = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}}, level, hessians, tmp_path / "w")
    assert out.saddle == SADDLE, out.saddle_note
    rec = out.refinement["points"][1]
    assert rec["reseed"]["interpolation"] == "idpp"
    saddle = out.images[1].structure.to_atoms()
    root = brentq(lambda x: two_wells(x)[1], 2, 5)
    assert saddle.positions[0, 0] % 12.0 == pytest.approx((root + 10.0) % 12.0, abs=0.01)
    assert all(np.allclose(im.structure.to_atoms().positions[1], [6.0, 3.0, 6.0])
               for im in out.images)


def bump(x: float) -> tuple[float, float]:
    """A shallow well near 0.94 on a slope down to a minimum at 6.05: the way out of the well
    is a bump 0.4 A wide that three points between the minima step over."""
    g = np.exp(-((x - WELL_A) ** 2) / 0.08)
    wall = max(0.0, x - WELL_B)
    return (-0.05 * x - 0.05 * g + 0.5 * wall**2,
            -0.05 + 1.25 * (x - WELL_A) * g + wall)


def test_a_hop_whose_path_points_all_lie_below_its_higher_minimum_has_no_saddle_found(
        tmp_path):
    doc = tight(lopsided(wave_doc(), 1.0))
    hessians = lambda atoms, attempt=0, label="": Profile(bump)  # noqa: E731
    out = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}},
                            one_level(lambda: Profile(bump), "bump"), hessians, tmp_path / "w")
    assert out.saddle == NOT_CONVERGED and out.barrier_forward is None
    assert ("no point of the path interpolated between the refined minima of stored images 0 "
            "and 6 lies above both") in out.saddle_note
    assert "highest image is an endpoint" not in out.saddle_note  # no band-rule verdict
    rec = out.refinement["points"][1]
    assert rec["reseed"]["first_search"]["stopped"].startswith("fell into")
    assert max(rec["reseed"]["points_eV"]) < 0
    assert rec["calls"] == 1 + 3  # the first search and the three points


def test_a_fall_is_seen_while_the_searchs_hessian_keeps_an_untested_negative_mode(tmp_path):
    """The surrogate's Hessian is concave at the stored saddle (a negative mode no reference
    step has tested): the search that starts at the bottom of the new level's minimum has
    still fallen into it, and the search between the refined minima certifies the saddle."""
    doc = tight(lopsided(wave_doc(), 1.0))
    level = one_level(lambda: Profile(two_wells), "wells")
    concave = lambda atoms, attempt=0, label="": Profile(  # noqa: E731
        lambda x: (-0.5 * (x - 1.0) ** 2, -(x - 1.0)))
    out = rf.refine_barrier(doc, {"dft": {"ecut": 310.0}}, level, concave, tmp_path / "w")
    first = out.refinement["points"][1]["reseed"]["first_search"]
    assert first["calls"] == 1 and first["negative_modes"] == 1
    assert "(1 negative eigenvalue(s)" in first["stopped"]
    assert out.saddle == SADDLE, out.saddle_note
