"""Settings sensitivity of a stored barrier (interphase_dft.recipes.sensitivity and the
``sensitivity`` command): stationary images, metrics, changed single points, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc100
from ase.calculators.calculator import Calculator, all_changes

from interphase_dft.calc.presets import preset
from interphase_dft.cli import main
from interphase_dft.errors import InputError
from interphase_dft.recipes import sensitivity as sens
from interphase_dft.schemas import BarrierDoc, NEBImageData, StructureData, doc_from_dict

REPO = Path(__file__).resolve().parents[1]
LI3P_LICL = REPO / "docs" / "results" / "Li3P-LiCl-vacancy-laptop.json"
LENGTH = 6.0  # Angstrom: period of the model surface along x


class Wave(Calculator):
    """E = scale * (sin^2(pi x / L) + 0.1 x / L) of atom 0's x: a hump with a reaction energy."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, scale: float, calls: list[int]) -> None:
        super().__init__()
        self.scale, self.calls = scale, calls

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls.append(1)
        x = self.atoms.positions[0, 0]
        k = np.pi / LENGTH
        e = self.scale * (np.sin(k * x) ** 2 + 0.1 * x / LENGTH)
        forces = np.zeros((len(self.atoms), 3))
        forces[0, 0] = -self.scale * (2 * k * np.sin(k * x) * np.cos(k * x) + 0.1 / LENGTH)
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def wave_factory_of(calls: list[int]):
    """``factory_of(settings)``: the Wave surface scaled by ecut / 300 eV."""

    def factory_of(settings):
        scale = settings.dft.ecut / 300.0

        def factory(atoms, attempt=0, label=""):
            return Wave(scale, calls)

        factory.description = {"engine": "wave", "ecut": settings.dft.ecut}
        return factory

    return factory_of


def wave_doc(n_images: int = 7, pbc_z: bool = False,
             segments: list[dict] | None = None) -> BarrierDoc:
    """A stored band of one Li walking along x over the Wave surface (ecut 300 eV)."""
    xs = np.linspace(0.0, LENGTH, n_images)
    images = []
    for x in xs:
        atoms = Atoms("Li", positions=[[x, 1.0, 1.0]], cell=[LENGTH * 2, 4.0, 8.0],
                      pbc=(True, True, pbc_z))
        e = np.sin(np.pi * x / LENGTH) ** 2 + 0.1 * x / LENGTH
        images.append(NEBImageData(energy=float(e), fmax=0.01,
                                   structure=StructureData.from_atoms(atoms)))
    energies = [im.energy - images[0].energy for im in images]
    settings = preset("test", {"dft": {"ecut": 300.0}})
    return BarrierDoc(
        interface="Li2S|LiCl", phase_a="Li2S", phase_b="LiCl", mechanism="vacancy",
        saddle="saddle", images=images, energies=energies,
        path_coordinate=xs.tolist(), spline={"x": [], "y": []},
        barrier_forward=max(energies), barrier_reverse=max(energies) - energies[-1],
        reaction_energy=energies[-1], converged=True, fmax_final=0.01, stage="dft",
        segments=segments or [], structure_hash="wave", settings=settings.model_dump(),
        settings_hash="wave")


def test_stationary_images_and_metrics_reproduce_the_stored_certified_barrier():
    """The Li3P|LiCl path through its interface trap: both climbing images and the trap are
    found, and the metrics from those five images equal the document's own numbers."""
    doc = doc_from_dict(json.loads(LI3P_LICL.read_text()))
    images, roles = sens.stationary_images(doc)
    assert images == [0, 1, 4, 6, 8]
    assert roles == {0: "initial", 1: "saddle", 4: "minimum", 6: "saddle", 8: "final"}
    m = sens.metrics({i: doc.images[i].energy for i in images}, roles)
    assert m["barrier_forward"] == pytest.approx(doc.barrier_forward, abs=1e-9)
    assert m["barrier_reverse"] == pytest.approx(doc.barrier_reverse, abs=1e-9)
    assert m["reaction_energy"] == pytest.approx(doc.reaction_energy, abs=1e-9)
    assert m["e_kra"] == pytest.approx(doc.e_kra, abs=1e-9)
    assert m["saddle_image"] == 6


def test_one_hop_has_initial_climbing_image_and_final():
    images, roles = sens.stationary_images(wave_doc())
    assert images == [0, 3, 6] and roles[3] == "saddle"


def test_changed_level_scales_the_barrier_and_resumes(tmp_path):
    """ecut 300 -> 360 scales the model surface by 1.2: every relative energy and metric by
    1.2; image 0 with the stored settings reproduces its stored energy; a rerun computes
    nothing."""
    doc = wave_doc()
    calls: list[int] = []
    s = sens.settings_sensitivity(doc, {"dft": {"ecut": 360.0}}, wave_factory_of(calls),
                                  tmp_path)
    assert s.changes == {"dft.ecut": [300.0, 360.0]}
    assert s.images == [0, 3, 6]
    for key in ("barrier_forward", "barrier_reverse", "reaction_energy", "e_kra"):
        assert s.changed.metrics[key] == pytest.approx(1.2 * s.stored.metrics[key], rel=1e-9)
        assert s.change[key] == pytest.approx(0.2 * s.stored.metrics[key], rel=1e-9)
    assert s.stored.metrics["barrier_forward"] == pytest.approx(doc.barrier_forward)
    assert s.reproduce[0]["difference"] == pytest.approx(0.0, abs=1e-12)
    assert s.changed.fmax[3] == pytest.approx(1.2 * 0.1 / LENGTH)  # the tilt's force only
    assert not s.warnings
    n = len(calls)
    assert n == 4  # three stationary images and one reproduction
    again = sens.settings_sensitivity(doc, {"dft": {"ecut": 360.0}}, wave_factory_of(calls),
                                      tmp_path)
    assert len(calls) == n and again.to_dict() == s.to_dict()
    text = sens.format_sensitivity(s)
    assert "dft.ecut 300.0 -> 360.0" in text and "barrier_forward" in text


def test_force_on_a_moved_saddle_is_a_warning(tmp_path):
    """An image off the hump's top at the changed level carries a force: the check says the
    geometry is not stationary there."""
    doc = wave_doc(n_images=6)  # no image on the top: the highest interior one is off it
    s = sens.settings_sensitivity(doc, {"dft": {"ecut": 330.0}}, wave_factory_of([]), tmp_path,
                                  reproduce=())
    top = s.changed.metrics["saddle_image"]
    assert s.changed.fmax[top] > doc.settings["neb"]["fmax"]
    assert any(f"image {top} (saddle)" in w for w in s.warnings)


def test_segments_bound_their_own_climbing_images():
    doc = wave_doc(n_images=9, segments=[{"images": [0, 4]}, {"images": [4, 8]}])
    images, roles = sens.stationary_images(doc)
    assert roles[4] == "minimum" and sorted(roles) == images
    assert [i for i in images if roles[i] == "saddle"] == [3, 5]  # highest of 1-3 and 5-7


def test_vacuum_widens_the_cell_not_the_atoms():
    doc = wave_doc()
    atoms = doc.images[3].structure.to_atoms()
    wide = sens.widen(atoms, 5.0)
    assert wide.cell.lengths()[2] == pytest.approx(atoms.cell.lengths()[2] + 5.0)
    assert np.allclose(wide.positions, atoms.positions)
    with pytest.raises(InputError, match="periodic along z"):
        sens.widen(wave_doc(pbc_z=True).images[0].structure.to_atoms(), 5.0)


@pytest.mark.parametrize(("overrides", "kwargs", "message"), [
    ({"neb": {"fmax": 0.1}}, {}, "dft settings only"),
    ({"dft": {"ecut": 300.0}}, {}, "nothing to check"),
    ({"dft": {"ecut": 360.0}}, {"reproduce": (7,)}, "not in the band"),
    ({"dft": {"ecut": 360.0}}, {"vacuum": -1.0}, "Angstrom to add"),
    ({"dft": {"no_such_field": 1}}, {}, "invalid settings override"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, overrides, kwargs, message):
    work = tmp_path / "w"
    with pytest.raises(InputError, match=message):
        sens.settings_sensitivity(wave_doc(), overrides, wave_factory_of([]), work, **kwargs)
    assert not work.exists() or not any(work.iterdir())


def test_document_factory_refuses_other_engines_and_calculators():
    doc = wave_doc()
    doc.calculator = {"engine": "ml"}
    with pytest.raises(InputError, match="GPAW documents only"):
        sens.document_factory(doc)
    doc.calculator = {"engine": "gpaw", "is_metal": False, "li_inserted": False, "extra": {}}
    with pytest.raises(InputError, match="recompute the barrier with this version"):
        sens.document_factory(doc)  # Li2S|LiCl vacancy: V_Li^- (charge -1), not neutral


def test_cli_bad_input_exits_non_zero_and_writes_nothing(tmp_path, capsys):
    docs = [wave_doc().model_dump(mode="json"), wave_doc().model_dump(mode="json")]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(docs))
    out = tmp_path / "check.json"
    assert main(["sensitivity", str(path), "--set", "dft.ecut=400", "--workdir",
                 str(tmp_path / "w"), "--json", str(out)]) == 1
    assert "pick one with --uid" in capsys.readouterr().err
    one = tmp_path / "one.json"
    one.write_text(json.dumps(docs[0]))
    assert main(["sensitivity", str(one), "--set", "neb.fmax=0.1", "--workdir",
                 str(tmp_path / "w"), "--json", str(out)]) == 1
    assert "dft settings only" in capsys.readouterr().err
    assert main(["sensitivity", str(one), "--set", "dft.ecut=400", "--reproduce", "a",
                 "--workdir", str(tmp_path / "w")]) == 1
    work = tmp_path / "w"
    assert not out.exists() and (not work.exists() or not any(work.iterdir()))


@pytest.mark.gpaw
@pytest.mark.slow
def test_gpaw_cutoff_check_of_a_li_hop_on_al100(tmp_path, capsys):
    """GPAW end to end: a three-image Li hop on a 1x1 Al(100) bilayer stored at 200 eV, checked
    at 260 eV through the command. The document's calculator reproduces the stored energy of
    image 0; the absolute energies move with the cutoff, the relative ones much less."""
    s = fcc100("Al", (1, 1, 2), vacuum=4.0)
    add_adsorbate(s, "Li", 1.9, "hollow")
    s.pbc = (True, True, False)
    bridge, shifted = s.copy(), s.copy()
    bridge.positions[-1] += s.cell[0] / 2
    shifted.positions[-1] += s.cell[0]
    settings = preset("test", {"dft": {"kpt_density": 0.5}})
    doc = wave_doc(n_images=3)
    doc.interface, doc.phase_a, doc.phase_b, doc.mechanism = "Al|Al", "Al", "Al", \
        "bulk-interstitial"
    doc.settings = settings.model_dump()
    doc.calculator = {"engine": "gpaw", "is_metal": True, "li_inserted": True, "extra": {},
                      "spin": "spin-paired"}
    factory = sens.document_factory(doc)(settings)
    images = []
    for atoms in (s, bridge, shifted):
        a = atoms.copy()
        a.calc = factory(a)
        images.append(NEBImageData(energy=a.get_potential_energy(), fmax=0.0,
                                   structure=StructureData.from_atoms(atoms)))
    doc.images = images
    path = tmp_path / "doc.json"
    path.write_text(doc.model_dump_json())
    out = tmp_path / "check.json"
    assert main(["sensitivity", str(path), "--set", "dft.ecut=260", "--vacuum", "1",
                 "--workdir", str(tmp_path / "w"), "--json", str(out), "-q"]) == 0
    check = json.loads(out.read_text())
    assert check["kind"] == "sensitivity" and check["changes"] == {"dft.ecut": [200.0, 260.0]}
    assert check["vacuum_added"] == 1.0 and check["images"] == [0, 1, 2]
    assert abs(check["reproduce"]["0"]["difference"]) < 1e-3
    stored, changed = check["stored"]["energies"], check["changed"]["energies"]
    assert abs(changed["0"] - stored["0"]) > 5e-3
    assert abs(check["change"]["barrier_forward"]) < 0.5 * abs(changed["0"] - stored["0"])
    assert "Settings sensitivity of Al|Al" in capsys.readouterr().out


def test_report_shows_the_check_next_to_its_barrier(tmp_path):
    """A check is read from the documents, a malformed one is listed as invalid, and the
    report's table carries its changes against the barrier it checked."""
    from interphase_dft.analysis.descriptor import load_docs
    from interphase_dft.analysis.level import sensitivity_rows
    from interphase_dft.analysis.report import write_report

    doc = wave_doc()
    check = sens.settings_sensitivity(doc, {"dft": {"ecut": 360.0}}, wave_factory_of([]),
                                      tmp_path / "w").to_dict()
    check = json.loads(json.dumps(check))  # as read back from its JSON file
    loaded = load_docs([doc.model_dump(mode="json"), check, {"kind": "sensitivity"}])
    assert loaded.checks == [check] and len(loaded.invalid) == 1
    assert "lacks uid" in loaded.invalid[0]
    (row,) = sensitivity_rows(loaded.checks, loaded.barriers)
    assert row["hop"] == "Li2S|LiCl (vacancy)" and row["check"] == "dft.ecut 300.0 -> 360.0"
    assert row["d_barrier_forward_eV"] == pytest.approx(0.2 * doc.barrier_forward)
    assert row["barrier_changed_eV"] == pytest.approx(1.2 * doc.barrier_forward)
    assert row["reproduced_within_eV"] == pytest.approx(0.0, abs=1e-12)
    assert row["document_in_report"] and row["geometry_stationary"]
    assert not sensitivity_rows(loaded.checks, [])[0]["document_in_report"]
    write_report([doc.model_dump(mode="json"), check], tmp_path / "report")
    text = (tmp_path / "report" / "index.md").read_text()
    section = text.split("## Settings sensitivity of the barriers")[1].split("\n## ")[0]
    assert "dft.ecut 300.0 -> 360.0" in section and "LiCl (vacancy)" in section
