"""Power numbers, the per-mode fit table and the conclusion sentence (issue 15 item 4)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from interphase_dft.analysis.conclusion import conclusion, fit_sentence
from interphase_dft.analysis.fits import FitResult, fit, fit_rows, fit_table
from interphase_dft.analysis.power import critical_r, detectable_r, pairs_needed
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc
from tests.test_analysis_factories import make_binding_doc


def test_detectable_r_known_values():
    """Fisher z, alpha 0.05 two-sided, 80 % power."""
    assert detectable_r(14) == pytest.approx(0.688, abs=1e-3)  # ~0.7 with 14 points
    assert detectable_r(10) == pytest.approx(0.785, abs=1e-3)  # exact (Monte Carlo) ~0.77
    assert detectable_r(4) == pytest.approx(0.993, abs=1e-3)
    assert detectable_r(3) is None and detectable_r(0) is None
    assert detectable_r(20) < detectable_r(14) < detectable_r(10)


def test_pairs_needed_known_values():
    assert pairs_needed(0.7) == 14
    assert pairs_needed(-0.7) == 14
    assert pairs_needed(0.5) == 30
    assert pairs_needed(0.3) == 85
    assert pairs_needed(0.0) is None and pairs_needed(float("nan")) is None
    assert pairs_needed(0.999) == 4
    # consistent with detectable_r: n = pairs_needed(r) detects r, n - 1 does not
    for r in (0.4, 0.6, 0.8):
        n = pairs_needed(r)
        assert detectable_r(n) <= r < detectable_r(n - 1)


def test_critical_r_matches_tables():
    for n, r in ((3, 0.997), (8, 0.707), (10, 0.632), (15, 0.514)):
        assert critical_r(n) == pytest.approx(r, abs=1e-3)
    assert critical_r(2) is None


def _points(x: list[float], y: list[float]) -> list[tuple[str, float, float]]:
    return [(f"A{i}|B{i}", a, b) for i, (a, b) in enumerate(zip(x, y, strict=True))]


def test_sentence_for_three_points_says_nothing_can_be_tested():
    f = fit("surface", "|dE| (eV)", "forward barrier (eV)", _points([0.1, 0.5, 0.9],
                                                                     [0.2, 0.3, 0.5]))
    assert f.pearson_r is not None and f.detectable_r is None
    assert fit_sentence(f) == (
        "surface mode, forward barrier against |dE|: n = 3: no correlation can be tested; "
        "\u2265 14 pairs needed to detect r = 0.7 at 80 % power (11 more).")


def test_sentence_for_a_significant_correlation():
    x = list(np.linspace(0.0, 1.0, 12))
    y = [0.2 + 0.5 * v + 0.02 * np.sin(7 * v) for v in x]
    f = fit("bulk", "|dE| (eV)", "forward barrier (eV)", _points(x, y), n_boot=500)
    text = fit_sentence(f)
    assert text.startswith("bulk mode, forward barrier against |dE|: significant positive "
                           "correlation, r = 1.00 (95 % bootstrap CI ")
    assert text.endswith("n = 12, indicative only; \u2265 14 pairs needed to detect r = 0.7 "
                         "at 80 % power (2 more).")
    assert "includes 0" not in text
    assert f.r_ci is not None and f.r_ci[0] > 0.9 and f.rho_ci is not None
    assert f.n_boot == 500 and f.r_ci[1] <= 1.0 and f.ci_note is None
    more = fit("bulk", "|dE| (eV)", "forward barrier (eV)", _points([*x, 1.1, 1.2], [*y,
        0.75, 0.8]), n_boot=200)
    assert fit_sentence(more).endswith("n = 14; \u2265 14 pairs needed to detect r = 0.7 at "
                                       "80 % power (reached).")


def test_four_points_in_line_are_indicative_with_exact_spearman_p_and_no_interval():
    """scipy's t approximation gives Spearman p = 0 for a perfect rank order of 3 or 4
    points; the exact permutation p is 2/3! = 0.33 and 2/4! = 0.083. Bootstrap intervals of
    4 points are not given (most resamples repeat points or give |r| = 1)."""
    f = fit("bulk", "|dE| (eV)", "forward barrier (eV)",
            _points([0.1, 0.2, 0.3, 0.4], [0.1, 0.21, 0.3, 0.42]), n_boot=300)
    assert f.spearman_rho == pytest.approx(1.0)
    assert f.spearman_p == pytest.approx(2 / 24)
    three = fit("bulk", "|dE| (eV)", "forward barrier (eV)",
                _points([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]))
    assert three.spearman_p == pytest.approx(1 / 3)
    assert f.r_ci is None and f.rho_ci is None and f.n_boot == 0 and "below 5 points" in f.ci_note
    text = fit_sentence(f)
    assert "significant positive correlation" in text and "n = 4, indicative only" in text
    assert text.endswith("(10 more).")
    row = fit_rows([f])[0]
    assert row["rho_p"] == pytest.approx(2 / 24) and row["r_CI"] == "-"


def test_spearman_p_above_the_exact_range_is_scipys():
    from scipy import stats

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=11), rng.normal(size=11)
    f = fit("bulk", "|dE| (eV)", "forward barrier (eV)", _points(list(x), list(y)), n_boot=50)
    assert f.spearman_p == pytest.approx(stats.spearmanr(x, y).pvalue)


def test_a_nan_value_leaves_its_interface_out_of_the_fit():
    nan = float("nan")
    f = fit("bulk", "|dE| (eV)", "forward barrier (eV)",
            _points([0.1, 0.2, 0.3, 0.4, 0.5], [0.1, nan, 0.3, 0.2, 0.5]))
    assert f.pearson_r is None and "non-finite" in f.undefined_reason
    docs = [_binding(p, [e]) for p, e in (("Al", -0.5), ("LiAl", -1.0), ("LiCl", 1.0),
                                           ("Li2S", -0.7), ("Li3P", -1.5))]
    docs += [_barrier("LiAl", "LiCl", 0.3, 0.1), _barrier("LiAl", "Li2S", nan, 0.2),
             _barrier("LiAl", "Li3P", 0.2, -0.1), _barrier("Li2S", "LiCl", 0.4, 0.2)]
    barrier_fit = next(f for f in fit_table(docs, n_boot=20) if f.y == "forward barrier (eV)")
    assert "LiAl|Li2S" not in barrier_fit.interfaces and barrier_fit.n == 3
    assert any(s.startswith("LiAl|Li2S: a non-finite value") for s in barrier_fit.left_out)


def test_a_near_constant_variable_is_constant():
    f = fit("bulk", "|dE| (eV)", "E_KRA (eV)",
            _points([0.1, 0.2, 0.3, 0.4, 0.5], [0.3, 0.3, 0.3, 0.3, 0.3 + 1e-15]))
    assert f.pearson_r is None and "y is the same" in f.undefined_reason


def test_sentence_for_no_significant_correlation():
    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    y = [0.3, 0.1, 0.35, 0.15, 0.3, 0.2, 0.25, 0.3]
    f = fit("surface", "|dE| (eV)", "forward barrier (eV)", _points(x, y), n_boot=300)
    assert f.pearson_p is not None and f.pearson_p > 0.05
    text = fit_sentence(f)
    assert "no significant correlation at n = 8" in text
    assert f"detectable |r| \u2265 {detectable_r(8):.2f} at 80 % power" in text
    assert "\u2265 14 pairs needed to detect r = 0.7 at 80 % power (6 more)" in text
    assert f"{pairs_needed(f.pearson_r)} pairs would detect the observed" in text


def test_sentence_for_a_constant_variable():
    f = fit("bulk", "|dE| (eV)", "E_KRA (eV)", _points([0.1, 0.2, 0.3, 0.4, 0.5],
                                                       [0.3] * 5))
    assert f.pearson_r is None and "y is the same" in (f.undefined_reason or "")
    assert "correlation undefined at n = 5 (y is the same for every point)" in fit_sentence(f)


def test_conclusion_without_fits():
    assert "no correlation can be tested; \u2265 14 pairs" in conclusion([])


def _barrier(a: str, b: str, forward: float | None, reaction: float, *, saddle: bool = True,
             stage: str = "dft", created: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    """A stored barrier dict with the certification fields when the schema has them."""
    data: dict[str, Any] = {
        "kind": "barrier", "interface": f"{a}|{b}", "phase_a": a, "phase_b": b, "images": [],
        "energies": [0.0, forward or 0.0, reaction], "path_coordinate": [0.0, 1.0, 2.0],
        "spline": {"x": [0.0, 1.0, 2.0], "y": [0.0, forward or 0.0, reaction]},
        "barrier_forward": forward, "barrier_reverse": None if forward is None
        else forward - reaction, "reaction_energy": reaction, "converged": True,
        "fmax_final": 0.03, "stage": stage, "structure_hash": f"h{a}{b}",
        "settings": {"preset": "test"}, "created": created,
    }
    fields = BarrierDoc.model_fields
    if "saddle" in fields:
        data["saddle"] = "saddle" if saddle else "no saddle: reaction energy"
    if "e_kra" in fields:
        data["e_kra"] = None if not saddle or forward is None else forward - reaction / 2
    return data


def _binding(phase: str, eb: list[float], mode: str = "bulk",
             reactive: list[bool] | None = None) -> dict[str, Any]:
    doc: BindingEnergyDoc = make_binding_doc(phase, eb, mode=mode)
    out = doc.model_dump()
    for site, flag in zip(out["sites"], reactive or [False] * len(eb), strict=True):
        site["reactive"] = flag
    return out


def _campaign() -> list[dict[str, Any]]:
    return [
        _binding("Al", [-1.0]), _binding("LiAl", [-1.5]), _binding("Li2S", [-2.5]),
        _binding("LPSC", [-3.0, -2.0], reactive=[True, False]),  # lowest site reacted
        _binding("Al", [-0.8], mode="surface"), _binding("LiAl", [-1.2], mode="surface"),
        _barrier("LiAl", "Li2S", 0.5, -0.9),
        _barrier("LiAl", "Li2S", 0.7, -0.9, created="2026-02-01T00:00:00+00:00"),
        _barrier("LiAl", "LPSC", 0.4, -0.4),
        _barrier("Al", "LiAl", None, -0.5, saddle=False),
        _barrier("Al", "Li2S", 0.3, -1.4, stage="ml"),
        _barrier("Li2S", "Li2S", 0.2, 0.0),  # a bulk hop: not an interface point
    ]


def _by(fits: list[FitResult], mode: str, y: str) -> FitResult:
    return next(f for f in fits if f.mode == mode and f.y == y)


def test_fit_table_pairs_one_hop_per_interface_and_skips_reactive_sites():
    if "saddle" not in BarrierDoc.model_fields:
        pytest.skip("BarrierDoc has no saddle certification in this schema version")
    fits = fit_table(_campaign(), n_boot=200)
    assert [(f.mode, f.y) for f in fits][:3] == [
        ("bulk", "reaction energy (eV)"), ("bulk", "forward barrier (eV)"),
        ("bulk", "E_KRA (eV)")]
    rxn = _by(fits, "bulk", "reaction energy (eV)")
    # dE(hop) = E_b(B) - E_b(A); LPSC's reactive -3.0 site is left out (-2.0 used)
    assert dict(zip(rxn.interfaces, rxn.x_values, strict=True)) == pytest.approx(
        {"Al|LiAl": -0.5, "LiAl|Li2S": -1.0, "LiAl|LPSC": -0.5})
    bar = _by(fits, "bulk", "forward barrier (eV)")
    # no-saddle, ml and bulk hops left out; the lowest certified barrier of LiAl|Li2S
    assert dict(zip(bar.interfaces, bar.y_values, strict=True)) == pytest.approx(
        {"LiAl|Li2S": 0.5, "LiAl|LPSC": 0.4})
    assert any("Al|LiAl: no certified saddle" in s for s in bar.left_out)
    kra = _by(fits, "bulk", "E_KRA (eV)")
    assert dict(zip(kra.interfaces, kra.y_values, strict=True)) == pytest.approx(
        {"LiAl|Li2S": 0.5 + 0.45, "LiAl|LPSC": 0.4 + 0.2})
    surf = _by(fits, "surface", "reaction energy (eV)")
    assert surf.interfaces == ["Al|LiAl"] and surf.n == 1
    assert any("no surface-mode binding energy" in s for s in surf.left_out)
    with_reactive = _by(fit_table(_campaign(), include_reactive=True, n_boot=50),
                        "bulk", "reaction energy (eV)")
    assert dict(zip(with_reactive.interfaces, with_reactive.x_values,
                    strict=True))["LiAl|LPSC"] == pytest.approx(-1.5)
    rows = fit_rows(fits)
    assert set(rows[0]) == {"mode", "x", "y", "n", "r", "r_CI", "rho", "rho_CI", "p", "rho_p",
                            "detectable_r", "pairs_needed_r0.7", "pairs_needed_observed_r"}
    assert "bulk mode, forward barrier against |dE|: n = 2" in conclusion(fits)
    assert conclusion(fits).count("mode, forward barrier") == 2  # bulk and surface


def test_documents_without_saddle_field_are_not_certified():
    """A stored document from before the certification rule has no ``saddle`` field: it is
    read as legacy, gives no barrier, and its reaction energy (endpoints of unknown state)
    does not enter the reaction-energy fit either."""
    from interphase_dft.analysis.descriptor import load_docs

    raw = _campaign()
    for d in raw:
        if d.get("kind") == "barrier":
            d.pop("saddle", None)
    assert {d.saddle for d in load_docs(raw).barriers} == {
        "not certified: computed before the saddle rule"}
    fits = fit_table(raw, n_boot=50)
    assert _by(fits, "bulk", "forward barrier (eV)").n == 0
    assert _by(fits, "bulk", "reaction energy (eV)").n == 0


@pytest.mark.parametrize("status", ["not certified: over budget",
                                    "not certified: unrelaxed endpoints",
                                    "no saddle: endpoint not a minimum"])
def test_reaction_energies_only_between_minima(status):
    """A run a budget stopped, or whose endpoints are unrelaxed or not minima, has no
    reaction energy to fit; a certified band or a band without a saddle has."""
    docs = [_binding(p, [e]) for p, e in (("Al", -0.5), ("LiAl", -1.0), ("LiCl", 1.0),
                                           ("Li2S", -0.7), ("Li3P", -1.5))]
    bad = _barrier("LiAl", "Li2S", None, -7.0, saddle=False)
    bad["saddle"] = status
    docs += [_barrier("LiAl", "LiCl", 0.3, 0.1), bad, _barrier("LiAl", "Li3P", None, -0.1,
                                                                saddle=False),
             _barrier("Li2S", "LiCl", 0.4, 0.2)]
    rxn = next(f for f in fit_table(docs, n_boot=20) if f.y == "reaction energy (eV)")
    assert sorted(rxn.interfaces) == ["Li2S|LiCl", "LiAl|Li3P", "LiAl|LiCl"]
    assert -7.0 not in rxn.y_values


