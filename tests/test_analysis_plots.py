"""Figures are written as non-empty PNG and SVG files, also for degenerate inputs."""

from __future__ import annotations

from pathlib import Path

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
