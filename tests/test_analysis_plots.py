"""Figures are written as non-empty PNG and SVG files, also for degenerate inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from interphase_dft.analysis import plots
from interphase_dft.analysis.stats import BarrierPoint, correlate
from tests.test_analysis_factories import make_barrier_doc, make_binding_doc


def _check(paths: list[Path]) -> None:
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
    png = next(p for p in paths if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = next(p for p in paths if p.suffix == ".svg")
    assert "<svg" in svg.read_text()[:2000]


def _point(iface: str, x: float, y: float, used: bool = True) -> BarrierPoint:
    return BarrierPoint(interface=iface, barrier=y, barrier_choice="forward", delta_e=-x,
                        abs_delta_e=x, delta_e_bcc=-x, references_agree=True, mode="surface",
                        converged=used, stage="dft", used=used)


def test_binding_plot(tmp_path: Path) -> None:
    docs = [make_binding_doc("Al", [-1.2, -1.0]),
            make_binding_doc("LPSC", [-2.4, -2.0], converged=False),
            make_binding_doc("Li2S", [-2.9], mode="bulk")]
    _check(plots.plot_binding_energies(docs, tmp_path))
    assert plots.plot_binding_energies([], tmp_path / "empty") == []


def test_neb_plot_converged_and_not(tmp_path: Path) -> None:
    good = make_barrier_doc("LiAl", "LPSC", 0.35, stage="ml+dft")
    bad = make_barrier_doc("Al", "Li2S", 0.5, converged=False)
    paths = plots.plot_neb_profile(good, tmp_path)
    _check(paths)
    assert paths[0].name == "neb_LiAl__LPSC.png"
    assert "NOT CONVERGED" not in paths[1].read_text()
    assert "ML path + DFT" in paths[1].read_text()
    svg = plots.plot_neb_profile(bad, tmp_path)[1].read_text()
    assert "NOT CONVERGED" in svg


def test_neb_plot_of_a_path_joined_at_an_intermediate_minimum(tmp_path: Path) -> None:
    """The barrier arrow starts at the intermediate minimum (energetic span), not at image 0."""
    doc = make_barrier_doc("LiAl", "Li2S", 0.7, n_images=9)
    e = [0.0, 0.5, 0.7, 0.2, -0.5, 0.1, 0.4, 0.2, 0.3]
    doc = doc.model_copy(update={
        "energies": e, "barrier_forward": 0.9, "barrier_reverse": 1.2,
        "segments": [{"images": [0, 4]}, {"images": [4, 8]}]})
    paths = plots.plot_neb_profile(doc, tmp_path)
    _check(paths)
    assert "0.900 eV" in paths[1].read_text()


def test_correlation_plot_with_fit_and_with_warning(tmp_path: Path) -> None:
    pts = [_point(f"A{i}|B", x, 0.1 + 0.3 * x + 0.02 * (-1) ** i)
           for i, x in enumerate([0.2, 0.5, 0.7, 1.0, 1.4])]
    pts.append(_point("X|Y", 0.9, 0.8, used=False))
    res = correlate([p.abs_delta_e for p in pts if p.used], [p.barrier for p in pts if p.used],
                    n_boot=200)
    _check(plots.plot_correlation(pts, res, tmp_path / "fit"))
    few = pts[:2]
    res2 = correlate([p.abs_delta_e for p in few], [p.barrier for p in few])
    paths = plots.plot_correlation(few, res2, tmp_path / "few")
    _check(paths)
    assert "no fit" in paths[1].read_text()


def test_descriptor_bars_one_panel_per_mode(tmp_path: Path) -> None:
    reacted = make_binding_doc("LPSC", [-2.4, -2.0])
    reacted.sites[0].reactive = True  # the lowest site reacted: the bar is the next one
    docs = [make_binding_doc("Al", [-1.2]), reacted,
            make_binding_doc("Al", [-0.8], mode="bulk")]
    paths = plots.plot_descriptor_modes(docs, tmp_path)
    _check(paths)
    svg = paths[1].read_text()
    assert "bulk mode" in svg and "surface mode" in svg and "not" in svg  # LPSC bulk missing
    assert plots.plot_descriptor_modes([], tmp_path / "empty") == []


def test_neb_plot_marks_the_saddle_and_the_bulk_reference(tmp_path: Path) -> None:
    good = make_barrier_doc("LiAl", "LPSC", 0.35)
    bulk = make_barrier_doc("LiAl", "LiAl", 0.25, reaction=0.0, mechanism="bulk-vacancy")
    svg = plots.plot_neb_profile(good, tmp_path, "good", bulk)[1].read_text()
    assert "saddle (image 2)" in svg and "bulk LiAl barrier 0.250 eV" in svg
    assert "saddle (certified)" in svg
    bad = make_barrier_doc("LiAl", "Li2S", 0.5, converged=False)
    svg = plots.plot_neb_profile(bad, tmp_path, "bad")[1].read_text()
    assert "highest image 2 (not a saddle)" in svg and "bulk LiAl hop: not computed" in svg
    assert svg.count("NOT CONVERGED") == 1  # the status once, with the force
    svg = plots.plot_neb_profile(bulk, tmp_path, "bulk")[1].read_text()
    assert "bulk LiAl" not in svg  # a bulk hop has no bulk reference of its own


def test_fit_panel_shows_the_interval_and_band(tmp_path: Path) -> None:
    from interphase_dft.analysis.fits import fit

    pts = [(f"A{i}|B", x, 0.1 + 0.3 * x + 0.02 * (-1) ** i)
           for i, x in enumerate([0.2, 0.5, 0.7, 1.0, 1.4])]
    f = fit("surface", "|dE| (eV)", "forward barrier (eV)", pts, n_boot=100)
    svg = plots.plot_fits([f], tmp_path)[1].read_text()
    assert f"r = {f.pearson_r:.2f} [{f.r_ci[0]:.2f}, {f.r_ci[1]:.2f}]" in svg
    assert "95 % band (bootstrap)" in svg and "n = 5" in svg


def _two_phase_hop(record_sides: bool = True):
    """A 4-image hop in a tiny A|B cell: Al (A, bottom) under LiCl (B); atom 1 (a Li of A)
    moves up into B. ``record_sides``: the builders' info (n_atoms_a/b, li_index)."""
    from ase import Atoms

    from interphase_dft.schemas import NEBImageData, StructureData

    pos = [[0, 0, 0], [1.4, 1.4, 1.5], [0, 0, 4.0], [1.4, 1.4, 5.5]]
    doc = make_barrier_doc("Al", "LiCl", 0.3, n_images=4)
    images = []
    for k, e in enumerate(doc.energies):
        at = Atoms("AlLiLiCl", positions=pos, cell=[2.8, 3.2, 12.0], pbc=True)
        at.positions[1, 2] += 0.4 * k
        if record_sides:
            at.info.update(n_atoms_a=2, n_atoms_b=2, li_index=1)
        images.append(NEBImageData(energy=e, fmax=0.03, structure=StructureData.from_atoms(at)))
    return doc.model_copy(update={"images": images})


def test_hop_cell_picture_colours_the_phases(tmp_path: Path) -> None:
    from interphase_dft.analysis import pictures

    doc = _two_phase_hop()
    assert pictures.atom_sides(doc.images[0].structure).tolist() == [0, 0, 1, 1]
    assert pictures.moving_li(doc) == 1 and pictures.highest_image(doc) == 2
    paths = pictures.plot_hop_cell(doc, tmp_path, "cell")
    _check(paths)
    svg = paths[1].read_text()
    for label in ("Al: Al", "Al: Li", "LiCl: Li", "LiCl: Cl", "moving Li", "highest image 2"):
        assert label in svg
    text = pictures.caption(doc)
    assert "Blue: Al atoms, orange: LiCl atoms" in text and "atom 1" in text


def test_hop_cell_picture_without_sides_colours_by_element(tmp_path: Path) -> None:
    from interphase_dft.analysis import pictures

    doc = _two_phase_hop(record_sides=False)
    assert pictures.atom_sides(doc.images[0].structure) is None
    assert pictures.moving_li(doc) == 1  # the Li that moves most
    _check(pictures.plot_hop_cell(doc, tmp_path, "cell"))
    assert "so atoms are coloured by element" in pictures.caption(doc)
    with pytest.raises(ValueError, match="needs the initial and final"):
        pictures.plot_hop_cell(doc.model_copy(update={"images": doc.images[:1]}), tmp_path, "x")
