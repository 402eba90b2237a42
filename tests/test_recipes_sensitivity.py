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
RESULTS = REPO / "docs" / "results"
LENGTH = 6.0  # Angstrom: period of the model surface along x


class Wave(Calculator):
    """E = scale * (sin^2(pi x / L) + 0.1 x / L) of atom 0's x: a hump with a reaction energy.
    Each call appends the cell's z length it saw to ``calls``."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, scale: float, calls: list[float]) -> None:
        super().__init__()
        self.scale, self.calls = scale, calls

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls.append(float(self.atoms.cell[2][2]))
        x = self.atoms.positions[0, 0]
        k = np.pi / LENGTH
        e = self.scale * (np.sin(k * x) ** 2 + 0.1 * x / LENGTH)
        forces = np.zeros((len(self.atoms), 3))
        forces[0, 0] = -self.scale * (2 * k * np.sin(k * x) * np.cos(k * x) + 0.1 / LENGTH)
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def wave_factory_of(calls: list[float]):
    """``factory_of(settings)``: the Wave surface scaled by ecut / 300 eV."""

    def factory_of(settings):
        scale = settings.dft.ecut / 300.0

        def factory(atoms, attempt=0, label=""):
            return Wave(scale, calls)

        factory.description = {"engine": "wave", "ecut": settings.dft.ecut}
        return factory

    return factory_of


def wave_doc(n_images: int = 7, pbc_z: bool = False, segments: list[dict] | None = None,
             saddle: str = "saddle", phases: tuple[str, str] = ("Li2S", "LiCl"),
             mechanism: str = "vacancy") -> BarrierDoc:
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
        interface="|".join(phases), phase_a=phases[0], phase_b=phases[1], mechanism=mechanism,
        saddle=saddle, images=images, energies=energies,
        path_coordinate=xs.tolist(), spline={"x": [], "y": []},
        barrier_forward=max(energies), barrier_reverse=max(energies) - energies[-1],
        reaction_energy=energies[-1], converged=True, fmax_final=0.01, stage="dft",
        segments=segments or [], structure_hash="wave", settings=settings.model_dump(),
        settings_hash="wave")


def test_stationary_images_and_metrics_reproduce_the_stored_certified_barrier():
    """The Li3P|LiCl path through its interface trap: both climbing images and the trap are
    found, and the metrics from those five images equal the document's own numbers."""
    doc = doc_from_dict(json.loads((RESULTS / "Li3P-LiCl-vacancy-laptop.json").read_text()))
    st = sens.stationary_images(doc)
    assert st.indices == [0, 1, 4, 6, 8] and st.hops == [(0, 1, 4), (4, 6, 8)]
    assert st.roles == {0: "initial", 1: "saddle", 4: "minimum", 6: "saddle", 8: "final"}
    m = sens.metrics({i: doc.images[i].energy for i in st.indices}, st)
    assert m["barrier_forward"] == pytest.approx(doc.barrier_forward, abs=1e-9)
    assert m["barrier_reverse"] == pytest.approx(doc.barrier_reverse, abs=1e-9)
    assert m["reaction_energy"] == pytest.approx(doc.reaction_energy, abs=1e-9)
    assert m["e_kra"] == pytest.approx(doc.e_kra, abs=1e-9)
    assert m["saddle_image"] == 6 and m["lost_saddles"] == []
    atoms = doc.images[0].structure.to_atoms()  # 63 atoms: Gamma only at the laptop level
    more = sens.changed_settings(sens.stored_settings(doc), {"dft": {"gamma_only_atoms": 1000}})
    assert sens.mesh(atoms, sens.stored_settings(doc)) == (1, 1, 1)
    assert sens.mesh(atoms, more[0]) == (2, 2, 1)


def test_the_k_mesh_rule_of_interface_cells_is_a_change_and_gamma_only_atoms_then_is_not():
    """On the Li3P|LiCl document (stored without the density-mesh rule) switching the rule on
    gives its 63-atom cell the 2x2x1 mesh; once the rule is on at both settings,
    dft.gamma_only_atoms does not change its cells, and on a bulk hop the rule is no change."""
    doc = doc_from_dict(json.loads((RESULTS / "Li3P-LiCl-vacancy-laptop.json").read_text()))
    stored, atoms = sens.stored_settings(doc), doc.images[0].structure.to_atoms()
    rule = {"structure": {"interface_density_mesh": True}}
    on, changes = sens.changed_settings(stored, rule)
    assert changes == {sens.MESH_RULE: [False, True]}
    assert sens.mesh(atoms, on) == (2, 2, 1) and sens.mesh(atoms, on, interface=False) == (1, 1, 1)
    _, changes = sens.changed_settings(on, {"dft": {"gamma_only_atoms": 1000}})
    assert changes == {}
    _, changes = sens.changed_settings(stored, rule, interface=False)
    assert changes == {}
    with pytest.raises(InputError, match="interface_density_mesh"):
        sens.changed_settings(stored, {"structure": {"slab_layers": 4}})


@pytest.mark.parametrize("name", ["LiAl-Li2S-vacancy-laptop.json",
                                  "LiAl-LiCl-vacancy-laptop.json"])
def test_uncertified_documents_are_refused(name):
    """A reaction energy and a relaxation that left its site have no saddle to check."""
    doc = doc_from_dict(json.loads((RESULTS / name).read_text()))
    with pytest.raises(InputError, match="not a certified barrier"):
        sens.stationary_images(doc)


@pytest.mark.parametrize("segments", [
    [{"images": [0, 3]}, {"images": [5, 8]}],   # a gap
    [{"images": [0, 5]}, {"images": [3, 8]}],   # an overlap
    [{"images": [2, 8]}],                       # does not start at the initial image
    [{"images": [0, 4]}, {"images": [4, 12]}],  # beyond the band
])
def test_segments_that_do_not_tile_the_band_are_refused(segments):
    with pytest.raises(InputError, match="do not tile"):
        sens.stationary_images(wave_doc(n_images=9, segments=segments))


def test_a_hop_without_an_interior_top_is_refused():
    """Split at the hump's top (image 4), the second hop only falls: not a certified path."""
    doc = wave_doc(n_images=9, segments=[{"images": [0, 4]}, {"images": [4, 8]}])
    with pytest.raises(InputError, match="no interior image above both of its ends"):
        sens.stationary_images(doc)


def test_one_hop_has_initial_climbing_image_and_final():
    st = sens.stationary_images(wave_doc())
    assert st.indices == [0, 3, 6] and st.roles[3] == "saddle" and st.hops == [(0, 3, 6)]


def test_checked_setting_scales_the_barrier_and_resumes(tmp_path):
    """ecut 300 -> 360 scales the model surface by 1.2: every relative energy and metric by
    1.2; the initial image and the saddle with the stored settings reproduce their stored
    energies; a rerun computes nothing."""
    doc = wave_doc()
    calls: list[float] = []
    s = sens.settings_sensitivity(doc, {"dft": {"ecut": 360.0}}, wave_factory_of(calls),
                                  tmp_path)
    assert s.changes == {"dft.ecut": [300.0, 360.0]} and s.check == "dft.ecut 300.0 -> 360.0"
    assert sens.check_text({"dft.gamma_only_atoms": [60, 1000]}, 0.0, ((1, 1, 1), (2, 2, 1))) \
        == "dft.gamma_only_atoms 60 -> 1000, k-points 1x1x1 -> 2x2x1"
    assert s.stationary.indices == [0, 3, 6]
    for key in ("barrier_forward", "barrier_reverse", "reaction_energy", "e_kra"):
        assert s.checked.metrics[key] == pytest.approx(1.2 * s.stored.metrics[key], rel=1e-9)
        assert s.delta[key] == pytest.approx(0.2 * s.stored.metrics[key], rel=1e-9)
    assert s.stored.metrics["barrier_forward"] == pytest.approx(doc.barrier_forward)
    assert sorted(s.reproduced) == [0, 3]
    for r in s.reproduced.values():
        assert r["difference"] == pytest.approx(0.0, abs=1e-12)
        assert r["relative_difference"] == pytest.approx(0.0, abs=1e-12)
    assert s.checked.fmax[3] == pytest.approx(1.2 * 0.1 / LENGTH)  # the tilt's force only
    assert not s.warnings and not s.moved
    assert len(calls) == 5  # three stationary images and two reproductions
    again = sens.settings_sensitivity(doc, {"dft": {"ecut": 360.0}}, wave_factory_of(calls),
                                      tmp_path)
    assert len(calls) == 5 and again.to_dict() == s.to_dict()
    text = sens.format_sensitivity(s)
    assert "dft.ecut 300.0 -> 360.0" in text and "barrier_forward" in text


def test_two_documents_share_a_directory_without_collisions(tmp_path):
    """Another document with the same change in the same directory gets its own files."""
    first, second = wave_doc(), wave_doc(n_images=5)
    calls: list[float] = []
    a = sens.settings_sensitivity(first, {"dft": {"ecut": 360.0}}, wave_factory_of(calls),
                                  tmp_path)
    b = sens.settings_sensitivity(second, {"dft": {"ecut": 360.0}}, wave_factory_of(calls),
                                  tmp_path)
    assert len(calls) == 10 and a.uid != b.uid
    assert b.checked.metrics["barrier_forward"] == pytest.approx(
        1.2 * b.stored.metrics["barrier_forward"])


def test_vacuum_widens_the_cell_around_the_atoms(tmp_path):
    """The checked images see a cell 4 A longer with the atoms 2 A higher (the same relative
    geometry); the reproductions see the stored cell."""
    doc = wave_doc()
    atoms = doc.images[3].structure.to_atoms()
    wide = sens.widen(atoms, 4.0)
    assert wide.cell[2][2] == pytest.approx(atoms.cell[2][2] + 4.0)
    assert np.allclose(wide.positions - atoms.positions, [0.0, 0.0, 2.0])
    tilted = Atoms("Li", positions=[[0, 0, 1]], cell=[[4, 0, 0], [0, 4, 0], [1.5, 0, 8]])
    assert sens.widen(tilted, 4.0).cell[2][2] == pytest.approx(12.0)
    calls: list[float] = []
    s = sens.settings_sensitivity(doc, {}, wave_factory_of(calls), tmp_path, vacuum=4.0)
    assert calls == [12.0, 12.0, 12.0, 8.0, 8.0] and s.check == "vacuum +4 A"
    assert s.delta["barrier_forward"] == pytest.approx(0.0, abs=1e-12)  # Wave ignores z


def test_force_on_a_moved_saddle_is_a_warning(tmp_path):
    """An image off the hump's top at the checked setting carries a force above neb.fmax:
    the check says the geometry is not stationary there."""
    doc = wave_doc(n_images=6)  # no image on the top: the highest interior one is off it
    s = sens.settings_sensitivity(doc, {"dft": {"ecut": 330.0}}, wave_factory_of([]), tmp_path,
                                  reproduce=())
    top = s.checked.metrics["saddle_image"]
    assert s.checked.fmax[top] > doc.settings["neb"]["fmax"] and s.moved == [top]
    assert any(f"image {top} (saddle)" in w for w in s.warnings)
    assert any("only a new band" in w for w in s.warnings)


def test_each_hop_is_recomputed_in_its_charge_state():
    """An added Li between two insulators is Li_i^+ (charge +1, closed-shell): the check's
    cells get that charge and no moment; a document stored with the earlier neutral,
    spin-polarised Li is refused with the fix; a vacancy hop stays V_Li^-."""
    doc = wave_doc(mechanism="interstitial")
    doc.calculator = {"engine": "gpaw", "is_metal": False, "li_inserted": False,
                      "extra": {"charge": 1}}
    factory_of = sens.document_factory(doc)
    factory = factory_of(preset("test"))
    assert not factory.spin and factory.extra == {"charge": 1}
    doc.calculator = {"engine": "gpaw", "is_metal": False, "li_inserted": True, "extra": {}}
    with pytest.raises(InputError, match="recompute the barrier with this version"):
        sens.document_factory(doc)
    vacancy = wave_doc()
    vacancy.calculator = {"engine": "gpaw", "is_metal": False, "li_inserted": False,
                          "extra": {"charge": -1}}
    factory_of = sens.document_factory(vacancy)
    assert not factory_of(preset("test")).spin


@pytest.mark.parametrize(("overrides", "kwargs", "message"), [
    ({"neb": {"fmax": 0.1}}, {}, "reads only the dft settings"),
    ({"dft": {"atom_box": 10.0}}, {}, "not dft.atom_box"),
    ({"dft": {"ecut": 300.0}}, {}, "nothing to check"),
    ({"dft": {"ecut": 360.0}}, {"reproduce": (7,)}, "not in the band"),
    ({"dft": {"ecut": 360.0}}, {"vacuum": -1.0}, "Angstrom to add"),
    ({"dft": {"no_such_field": 1}}, {}, "invalid settings override"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, overrides, kwargs, message):
    work = tmp_path / "w"
    with pytest.raises(InputError, match=message):
        sens.settings_sensitivity(wave_doc(), overrides, wave_factory_of([]), work, **kwargs)
    assert not work.exists()


def test_vacuum_on_a_bulk_cell_and_unreadable_settings_are_refused(tmp_path):
    with pytest.raises(InputError, match="periodic along z"):
        sens.settings_sensitivity(wave_doc(pbc_z=True), {}, wave_factory_of([]), tmp_path / "w",
                                  vacuum=5.0)
    doc = wave_doc()
    doc.settings = {**doc.settings, "dft": {**doc.settings["dft"], "gone": 1}}
    with pytest.raises(InputError, match="not readable by this version"):
        sens.settings_sensitivity(doc, {"dft": {"ecut": 360.0}}, wave_factory_of([]),
                                  tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_document_factory_refuses_other_engines_and_calculators():
    doc = wave_doc()
    with pytest.raises(InputError, match="no recorded calculator"):
        sens.document_factory(doc)
    doc.calculator = {"engine": "ml"}
    with pytest.raises(InputError, match="GPAW only"):
        sens.document_factory(doc)
    doc.calculator = {"engine": "gpaw", "is_metal": False, "li_inserted": False, "extra": {}}
    with pytest.raises(InputError, match="recompute the barrier with this version"):
        sens.document_factory(doc)  # Li2S|LiCl vacancy: V_Li^- (charge -1), not neutral


def test_cli_bad_input_exits_non_zero_and_writes_nothing(tmp_path, capsys):
    docs = [wave_doc().model_dump(mode="json"), wave_doc().model_dump(mode="json")]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(docs))
    out, work = tmp_path / "check.json", tmp_path / "w"
    args = ["--workdir", str(work), "--json", str(out)]
    assert main(["sensitivity", str(path), "--set", "dft.ecut=400", *args]) == 1
    assert "pick one with --uid" in capsys.readouterr().err
    uid = docs[1]["uid"]
    assert main(["sensitivity", str(path), "--uid", uid[:6], "--set", "neb.fmax=0.1",
                 *args]) == 1
    assert "reads only the dft settings" in capsys.readouterr().err
    assert main(["sensitivity", str(path), "--uid", uid, "--set", "dft.ecut=400",
                 "--reproduce", "a", *args]) == 1
    assert "give image indices" in capsys.readouterr().err
    assert main(["sensitivity", str(path), "--uid", uid, "--set", "dft.ecut=400", *args]) == 1
    assert "no recorded calculator" in capsys.readouterr().err
    assert not out.exists() and (not work.exists() or not any(work.iterdir()))


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
    broken = {**check, "stored": {}}
    loaded = load_docs([doc.model_dump(mode="json"), check, broken])
    assert loaded.checks == [check] and len(loaded.invalid) == 1
    assert "lacks stored.metrics" in loaded.invalid[0]
    (row,) = sensitivity_rows(loaded.checks, loaded.barriers)
    assert row["hop"] == "Li2S|LiCl (vacancy)" and row["check"] == "dft.ecut 300.0 -> 360.0"
    assert row["d_barrier_forward_eV"] == pytest.approx(0.2 * doc.barrier_forward)
    assert row["barrier_checked_eV"] == pytest.approx(1.2 * doc.barrier_forward)
    assert row["saddle_force_eV_A"] == pytest.approx(1.2 * 0.1 / LENGTH)
    assert row["reproduced_within_eV"] == pytest.approx(0.0, abs=1e-12)
    assert row["document_in_report"] and row["geometry_stationary"]
    assert not sensitivity_rows(loaded.checks, [])[0]["document_in_report"]
    write_report([doc.model_dump(mode="json"), check], tmp_path / "report")
    text = (tmp_path / "report" / "index.md").read_text()
    section = text.split("## Settings sensitivity of the barriers")[1].split("\n## ")[0]
    assert "dft.ecut 300.0 -> 360.0" in section and "LiCl (vacancy)" in section


@pytest.mark.gpaw
@pytest.mark.slow
def test_gpaw_cutoff_check_of_a_li_hop_on_al100(tmp_path, capsys):
    """GPAW end to end: a three-image Li hop on a 1x1 Al(100) bilayer stored at 200 eV, checked
    at 260 eV with 1 A more vacuum through the command. The document's calculator reproduces
    the stored energies; the absolute energies move with the cutoff, the barrier much less; a
    rerun resumes from the checkpoints and prints the JSON."""
    s = fcc100("Al", (1, 1, 2), vacuum=4.0)
    add_adsorbate(s, "Li", 1.9, "hollow")
    s.pbc = (True, True, False)
    bridge, shifted = s.copy(), s.copy()
    bridge.positions[-1] += s.cell[0] / 2
    shifted.positions[-1] += s.cell[0]
    settings = preset("test", {"dft": {"kpt_density": 0.5}})
    doc = wave_doc(n_images=3, phases=("Al", "Al"), mechanism="bulk-interstitial")
    doc.settings = settings.model_dump()
    doc.calculator = {"engine": "gpaw", "is_metal": True, "li_inserted": True, "extra": {},
                      "spin": "spin-paired"}
    factory_of = sens.document_factory(doc)
    images = []
    for atoms in (s, bridge, shifted):
        a = atoms.copy()
        a.calc = factory_of(settings)(a)
        images.append(NEBImageData(energy=a.get_potential_energy(), fmax=0.0,
                                   structure=StructureData.from_atoms(atoms)))
    doc.images = images
    assert images[1].energy > images[0].energy + 0.1  # the bridge is the saddle
    path = tmp_path / "doc.json"
    path.write_text(doc.model_dump_json())
    out = tmp_path / "new" / "check.json"  # its directory is made
    args = ["sensitivity", str(path), "--set", "dft.ecut=260", "--vacuum", "1",
            "--workdir", str(tmp_path / "w"), "-q"]
    assert main([*args, "--json", str(out)]) == 0
    check = json.loads(out.read_text())
    assert check["kind"] == "sensitivity" and check["changes"] == {"dft.ecut": [200.0, 260.0]}
    assert check["vacuum_added"] == 1.0 and check["stationary"]["indices"] == [0, 1, 2]
    assert sorted(check["reproduced"]) == ["0", "1"]
    assert all(abs(r["difference"]) < 1e-3 for r in check["reproduced"].values())
    stored, checked = check["stored"]["energy"], check["checked"]["energy"]
    assert abs(checked["0"] - stored["0"]) > 5e-3
    assert abs(check["delta"]["barrier_forward"]) < 0.5 * abs(checked["0"] - stored["0"])
    assert "Settings sensitivity of Al|Al" in capsys.readouterr().out
    assert main([*args, "--json", "-"]) == 0  # resumed: nothing recomputed
    assert json.loads(capsys.readouterr().out) == check
