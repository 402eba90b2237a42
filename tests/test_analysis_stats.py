"""Correlation statistics on known inputs, degenerate cases and barrier pairing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from interphase_dft.analysis.descriptor import load_docs, select_barriers, select_binding
from interphase_dft.analysis.stats import correlate, correlate_points, pair_barriers
from tests.test_analysis_factories import campaign_docs, make_barrier_doc


def _finite_everywhere(obj: object) -> bool:
    text = json.dumps(obj)
    return "NaN" not in text and "Infinity" not in text


def test_perfect_linear_relation() -> None:
    x = [0.1, 0.4, 0.5, 0.9, 1.3, 2.0]
    res = correlate(x, [0.2 + 0.5 * v for v in x], n_boot=300)
    assert res.pearson_r is not None and abs(res.pearson_r - 1.0) < 1e-12
    assert res.spearman_rho == 1.0
    assert res.slope == pytest.approx(0.5, abs=1e-12)
    assert res.intercept == pytest.approx(0.2, abs=1e-12)
    assert res.slope_ci is not None
    assert res.slope_ci[0] == pytest.approx(0.5) and res.slope_ci[1] == pytest.approx(0.5)
    assert "positive correlation" in res.verdict and "n = 6" in res.verdict


def test_negative_and_no_correlation_verdicts() -> None:
    x = np.linspace(0, 1, 8)
    neg = correlate(x, 1.0 - x + 0.01 * np.sin(7 * x), n_boot=300)
    assert neg.pearson_r is not None and neg.pearson_r < -0.99
    assert "negative correlation" in neg.verdict
    flat = correlate(x, [0.3, 0.1, 0.3, 0.1, 0.3, 0.1, 0.1, 0.3], n_boot=300)
    assert "no statistically supported correlation" in flat.verdict


def test_constant_descriptor_is_undefined_not_nan() -> None:
    res = correlate([0.5] * 5, [0.1, 0.2, 0.3, 0.4, 0.6])
    assert res.pearson_r is None and res.spearman_rho is None and res.slope is None
    assert res.undefined_reason is not None and "zero variance" in res.undefined_reason
    assert "No correlation can be assessed" in res.verdict
    assert _finite_everywhere(res.model_dump())


def test_constant_barrier_is_undefined_not_nan() -> None:
    res = correlate([0.1, 0.2, 0.3, 0.5], [0.4] * 4, n_boot=200)
    assert res.pearson_r is None and res.slope == pytest.approx(0.0)
    assert "barrier is the same" in (res.undefined_reason or "")
    assert _finite_everywhere(res.model_dump())


def test_two_points_warn_and_stay_undefined() -> None:
    res = correlate([0.1, 0.5], [0.2, 0.4])
    assert res.pearson_r is None and res.n == 2
    assert any("undefined" in w for w in res.warnings)
    assert "too few points to conclude anything" in res.verdict


def test_four_points_are_computed_with_caveat() -> None:
    res = correlate([0.1, 0.3, 0.5, 0.9], [0.2, 0.25, 0.45, 0.6], n_boot=500)
    assert res.pearson_r is not None
    assert any("too few points to conclude anything" in w for w in res.warnings)
    assert "too few points" in res.verdict
    band = res.band
    assert band is not None
    lo, hi, plo, phi = (np.array(band[k]) for k in ("lo", "hi", "pred_lo", "pred_hi"))
    assert np.all(lo <= hi) and np.all(plo <= lo + 1e-12) and np.all(phi >= hi - 1e-12)


def test_bootstrap_is_reproducible() -> None:
    x, y = [0.1, 0.3, 0.5, 0.9, 1.1], [0.2, 0.22, 0.45, 0.6, 0.5]
    a, b = correlate(x, y, n_boot=400, seed=3), correlate(x, y, n_boot=400, seed=3)
    assert a.slope_ci == b.slope_ci and a.band == b.band


def test_pair_barriers_uses_abs_delta_e_and_skips_unconverged() -> None:
    loaded = load_docs(campaign_docs())
    sel = select_binding(loaded.binding)
    chosen, _ = select_barriers(loaded.barriers)
    points, unmatched = pair_barriers(chosen.values(), sel)
    assert unmatched == []
    by = {p.interface: p for p in points}
    # LiAl E_b = -1.6, LPSC E_b = -2.4 -> dE = +0.8; Al -1.2 vs Li2S -2.9 -> +1.7
    assert by["LiAl|LPSC"].delta_e == pytest.approx(0.8)
    assert by["Al|Li2S"].abs_delta_e == pytest.approx(1.7)
    assert not by["LiAl|Li2S"].used and "not converged" in by["LiAl|Li2S"].note
    res = correlate_points(points)
    assert res.n == 2 and res.pearson_r is None
    # only certified barriers are fitted, whatever include_unconverged says
    assert by["LiAl|Li2S"].barrier is None
    pts_max, _ = pair_barriers(chosen.values(), sel, barrier="max", include_unconverged=True)
    assert [p.used for p in pts_max] == [p.used for p in points]
    assert all(p.barrier >= by[p.interface].barrier - 1e-12 for p in pts_max if p.used)
    assert not math.isnan(pts_max[0].barrier)


def test_pair_barriers_reports_missing_phase() -> None:
    loaded = load_docs(campaign_docs())
    sel = select_binding([d for d in loaded.binding if d.phase != "LPSC"])
    chosen, _ = select_barriers(loaded.barriers)
    points, unmatched = pair_barriers(chosen.values(), sel)
    assert len(points) == 2 and len(unmatched) == 1 and "LPSC" in unmatched[0]


def test_band_through_another_minimum_is_flagged_and_left_out_of_the_fit() -> None:
    from interphase_dft.recipes.neb_path import intermediate_minimum

    # the profile measured on a 1-layer Al|Li2S band: image 3 far below both endpoints
    assert "image 3" in intermediate_minimum([0.0, -0.002, -0.377, -0.665, -0.261])
    assert intermediate_minimum([0.0, 0.2, 0.4, 0.2, 0.1]) is None  # one hop
    assert intermediate_minimum([0.0, -0.03, 0.1]) is None  # within the 0.05 eV tolerance
    docs = [d for d in campaign_docs() if d.get("interface") != "LiAl|LPSC"]
    broken = make_barrier_doc("LiAl", "LPSC", 0.35).model_copy(update={"band_continuous": False})
    loaded = load_docs([*docs, broken.model_dump()])
    sel = select_binding(loaded.binding)
    chosen, _ = select_barriers(loaded.barriers)
    by = {p.interface: p for p in pair_barriers(chosen.values(), sel)[0]}
    assert not by["LiAl|LPSC"].used and "another minimum" in by["LiAl|LPSC"].note
    joined = broken.model_copy(update={"band_continuous": True, "segments": [
        {"images": [0, 2]}, {"images": [2, 4]}]})
    loaded = load_docs([*docs, joined.model_dump()])
    chosen, _ = select_barriers(loaded.barriers)
    by = {p.interface: p for p in pair_barriers(chosen.values(), sel)[0]}
    assert by["LiAl|LPSC"].used and "energetic span" in by["LiAl|LPSC"].note


def test_a_certified_document_without_its_reverse_barrier_is_left_out_not_fatal() -> None:
    """The report pairs every certified document: one stored without ``barrier_reverse``
    is named and left out instead of raising out of the report."""
    docs = [d for d in campaign_docs() if d.get("interface") != "LiAl|LPSC"]
    bad = make_barrier_doc("LiAl", "LPSC", 0.35).model_copy(update={"barrier_reverse": None})
    assert bad.certified
    loaded = load_docs([*docs, bad.model_dump()])
    chosen, _ = select_barriers(loaded.barriers)
    by = {p.interface: p for p in pair_barriers(chosen.values(), select_binding(loaded.binding))[0]}
    assert not by["LiAl|LPSC"].used and "incomplete document" in by["LiAl|LPSC"].note
