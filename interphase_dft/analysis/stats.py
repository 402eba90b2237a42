"""Correlation of Li migration barriers with the descriptor |dE|.

Each barrier of an interface ``A|B`` is paired with |dE(A, B)| (eV). Interfaces are unordered,
so the magnitude is correlated; the signed dE(A, B) in the interface's own order is kept in
every :class:`BarrierPoint`. By default the forward barrier (``barrier_forward``, from the
A side) is used; ``barrier='max'`` uses max(forward, reverse), the rate-limiting direction.
ML-only barriers (``stage == 'ml'``) are never used as DFT numbers; only certified barriers
(``saddle == 'saddle'``) enter the fit (``include_unconverged`` is ignored, kept for
callers); a certified document without its barrier is left out, named; bands that pass
through another minimum (``band_continuous=False``) are always left out; a path the recipe
split at that minimum (``segments``) is used with its energetic span as the barrier.

Statistics: Pearson r and Spearman rho (``scipy.stats``), an ordinary least-squares line, and
a nonparametric bootstrap (``numpy.random.default_rng(seed)``, ``n_boot`` resamples of the
points with replacement) for 95 % percentile intervals of slope and intercept, a confidence
band of the line and a prediction band (line plus a resampled residual).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from interphase_dft.analysis.descriptor import (
    MODE_RULE,
    Selection,
    lookup_pair,
)
from interphase_dft.errors import CalculationError
from interphase_dft.schemas import BarrierDoc

MIN_POINTS_DEFINED = 3
MIN_POINTS_CONCLUSIVE = 5
SIGNIFICANCE = 0.05
DEFAULT_SEED = 20240531
DEFAULT_BOOT = 2000
BarrierChoice = Literal["forward", "max"]


class BarrierPoint(BaseModel):
    """One hop of an interface: its barrier (eV; None when not certified) and dE (eV)."""

    interface: str
    barrier: float | None
    barrier_choice: str
    delta_e: float = Field(description="signed dE(A, B) in the interface's order, eV")
    abs_delta_e: float
    delta_e_bcc: float
    references_agree: bool
    mode: str
    converged: bool
    stage: str
    mechanism: str = "unspecified"
    saddle: str = "saddle"
    used: bool = True
    note: str = ""


class CorrelationResult(BaseModel):
    """Correlation of y (barrier, eV) with x (|dE|, eV). None means undefined (see reasons)."""

    n: int
    x_label: str = "|dE| (eV)"
    y_label: str = "barrier (eV)"
    pearson_r: float | None = None
    pearson_p: float | None = None
    spearman_rho: float | None = None
    spearman_p: float | None = None
    slope: float | None = None
    intercept: float | None = None
    slope_ci: tuple[float, float] | None = None
    intercept_ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    n_boot: int = 0
    seed: int | None = None
    band: dict[str, list[float]] | None = Field(
        None, description="x grid with confidence (lo/hi) and prediction (pred_lo/pred_hi) bands"
    )
    undefined_reason: str | None = None
    warnings: list[str] = Field(default_factory=list)
    verdict: str = ""


def pair_barriers(
    barriers: Iterable[BarrierDoc],
    selection: Selection,
    *,
    barrier: BarrierChoice = "forward",
    mode: str | None = None,
    include_unconverged: bool = False,
) -> tuple[list[BarrierPoint], list[str]]:
    """Pair each barrier document with dE of its interface.

    Parameters
    ----------
    barriers
        One document per interface (see ``descriptor.select_barriers``).
    selection
        Chosen binding documents.
    barrier
        ``'forward'`` (``barrier_forward``) or ``'max'`` (max of forward and reverse).
    mode
        Force ``'surface'`` or ``'bulk'`` descriptors; ``None`` follows :data:`MODE_RULE`.
    include_unconverged
        Ignored: only certified barriers are fitted (kept for callers).

    Returns
    -------
    (points, unmatched)
        ``points`` with ``used`` telling whether each enters the fit; ``unmatched`` names the
        interfaces without binding energies for both phases.
    """
    points: list[BarrierPoint] = []
    unmatched: list[str] = []
    for doc in barriers:
        pair = lookup_pair(selection, doc.phase_a, doc.phase_b, mode)
        if pair is None:
            unmatched.append(
                f"{doc.interface}: no binding energies for both {doc.phase_a} and "
                f"{doc.phase_b} in one mode ({MODE_RULE})"
            )
            continue
        notes: list[str] = []
        used, value = doc.certified, None
        if doc.certified:
            try:
                value = doc.certified_barrier("forward" if barrier == "forward" else "max")
            except CalculationError as exc:  # a certified document missing a barrier
                used, notes = False, [f"incomplete document: {exc}"]
        else:
            notes.append(f"{doc.saddle}: not a barrier")
        if value is not None and not (np.isfinite(value) and np.isfinite(pair.delta_e_atom)):
            used, notes = False, [*notes, "barrier or dE is not a finite number"]
        if doc.stage == "ml":
            used, notes = False, [*notes, "ML-only barrier (not a DFT number)"]
        if not doc.band_continuous:
            used, notes = False, [*notes, "band passes through another minimum (not one hop)"]
        elif doc.segments:
            notes.append(f"{len(doc.segments)} hops through an intermediate minimum; barrier = "
                         "energetic span of the joined path")
        if not pair.agree:
            notes.append(f"dE differs between references by {pair.reference_gap:+.2e} eV")
        points.append(BarrierPoint(
            interface=doc.interface, barrier=value, barrier_choice=barrier,
            delta_e=pair.delta_e_atom, abs_delta_e=pair.abs_delta_e,
            delta_e_bcc=pair.delta_e_bcc, references_agree=pair.agree, mode=pair.mode,
            converged=doc.converged, stage=doc.stage, mechanism=doc.mechanism,
            saddle=doc.saddle, used=used, note="; ".join(notes),
        ))
    return _fastest_mechanism(points), unmatched


def _fastest_mechanism(points: list[BarrierPoint]) -> list[BarrierPoint]:
    """Of several used points of one interface keep the lowest barrier in the fit."""
    best: dict[frozenset[str], BarrierPoint] = {}
    for p in points:
        key = frozenset(p.interface.split("|"))
        low = best.get(key)
        if p.used and p.barrier is not None and (low is None or p.barrier < (low.barrier or 0)):
            best[key] = p
    out = []
    for p in points:
        keep = best.get(frozenset(p.interface.split("|")))
        if p.used and keep is not None and keep is not p:
            p = p.model_copy(update={"used": False, "note": "; ".join(filter(None, [
                p.note, f"a lower certified barrier of this interface ({keep.mechanism}) is "
                "used"]))})
        out.append(p)
    return out


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xm, ym = x.mean(), y.mean()
    slope = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
    return slope, float(ym - slope * xm)


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    res = stats.pearsonr(x, y)
    r = float(np.clip(res.statistic, -1.0, 1.0))
    return r, float(res.pvalue)


def _bootstrap(
    x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, level: float
) -> tuple[dict[str, list[float]], tuple[float, float], tuple[float, float], int]:
    rng = np.random.default_rng(seed)
    n = len(x)
    slope, intercept = _fit(x, y)
    resid = y - (slope * x + intercept)
    resid = resid * np.sqrt(n / max(n - 2, 1))  # leverage-free variance inflation
    span = x.max() - x.min()
    grid = np.linspace(x.min() - 0.05 * span, x.max() + 0.05 * span, 60)
    slopes, intercepts = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        xb = x[idx]
        if np.ptp(xb) == 0.0:
            continue
        s, c = _fit(xb, y[idx])
        slopes.append(s)
        intercepts.append(c)
    if not slopes:  # every resample had one distinct x (only possible for tiny n)
        slopes, intercepts = [slope], [intercept]
    s_arr, c_arr = np.asarray(slopes), np.asarray(intercepts)
    lines = s_arr[:, None] * grid[None, :] + c_arr[:, None]
    noisy = lines + rng.choice(resid, size=lines.shape)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    lo, hi = np.percentile(lines, q, axis=0)
    plo, phi = np.percentile(noisy, q, axis=0)
    plo, phi = np.minimum(plo, lo), np.maximum(phi, hi)  # prediction band contains the line band
    band = {
        "x": grid.tolist(), "fit": (slope * grid + intercept).tolist(),
        "lo": lo.tolist(), "hi": hi.tolist(), "pred_lo": plo.tolist(), "pred_hi": phi.tolist(),
    }
    s_ci = tuple(float(v) for v in np.percentile(s_arr, q))
    c_ci = tuple(float(v) for v in np.percentile(c_arr, q))
    return band, s_ci, c_ci, n_boot - len(slopes)  # type: ignore[return-value]


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
    x_label: str = "|dE| (eV)",
    y_label: str = "barrier (eV)",
) -> CorrelationResult:
    """Pearson, Spearman, a linear fit and bootstrap intervals of y against x.

    Never returns NaN: undefined quantities are ``None`` with ``undefined_reason`` set
    (n < 3, or zero variance in x or y). With n < 5 the result carries the warning
    "too few points to conclude anything".

    Parameters
    ----------
    x, y
        Descriptor |dE| and barrier, eV (same length).
    n_boot, seed
        Bootstrap resamples and the seed of ``numpy.random.default_rng``.
    level
        Two-sided level of the percentile intervals.
    """
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length ({xa.size} vs {ya.size}); pass paired values")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("x and y must be finite numbers; drop failed results (NaN) first")
    n = int(xa.size)
    res = CorrelationResult(n=n, x_label=x_label, y_label=y_label, ci_level=level)
    if n < MIN_POINTS_DEFINED:
        res.undefined_reason = (
            f"correlation undefined: only {n} point(s), at least {MIN_POINTS_DEFINED} needed"
        )
        res.warnings.append(res.undefined_reason)
        res.verdict = _verdict(res)
        return res
    if n < MIN_POINTS_CONCLUSIVE:
        res.warnings.append(
            f"only {n} points: too few points to conclude anything "
            f"(at least {MIN_POINTS_CONCLUSIVE} needed)"
        )
    if np.ptp(xa) == 0.0:
        res.undefined_reason = (
            "correlation undefined: |dE| is the same for every point (zero variance)"
        )
        res.verdict = _verdict(res)
        return res
    res.slope, res.intercept = _fit(xa, ya)
    if np.ptp(ya) == 0.0:
        res.undefined_reason = (
            "correlation undefined: the barrier is the same for every point (zero variance)"
        )
    else:
        from scipy import stats

        res.pearson_r, res.pearson_p = _pearson(xa, ya)
        sp = stats.spearmanr(xa, ya)
        res.spearman_rho, res.spearman_p = float(sp.statistic), float(sp.pvalue)
    band, s_ci, c_ci, dropped = _bootstrap(xa, ya, n_boot, seed, level)
    res.band, res.slope_ci, res.intercept_ci = band, s_ci, c_ci
    res.n_boot, res.seed = n_boot - dropped, seed
    if dropped:
        res.warnings.append(
            f"{dropped} of {n_boot} bootstrap resamples had a single distinct |dE| and were skipped"
        )
    res.verdict = _verdict(res)
    return res


def _verdict(res: CorrelationResult) -> str:
    caveat = ""
    if res.n < MIN_POINTS_CONCLUSIVE:
        caveat = f" With n = {res.n}, there are too few points to conclude anything."
    elif res.n < 10:
        caveat = f" With n = {res.n}, treat this as indicative only."
    if res.pearson_r is None:
        reason = res.undefined_reason or "correlation undefined"
        return f"No correlation can be assessed between {res.x_label} and {res.y_label}: " \
            f"{reason} (n = {res.n}).{caveat}"
    assert res.slope_ci is not None and res.pearson_p is not None
    lo, hi = res.slope_ci
    pct = round(100 * res.ci_level)
    stats_txt = (
        f"Pearson r = {res.pearson_r:.3f} (p = {res.pearson_p:.3g}), "
        f"Spearman rho = {res.spearman_rho:.3f} (p = {res.spearman_p:.3g}), "
        f"slope = {res.slope:.3f} eV/eV ({pct} % bootstrap CI [{lo:.3f}, {hi:.3f}]), n = {res.n}"
    )
    significant = res.pearson_p < SIGNIFICANCE and (lo > 0 or hi < 0)
    if significant:
        sign = "positive" if res.pearson_r > 0 else "negative"
        size = "strong" if abs(res.pearson_r) >= 0.7 else "moderate" if abs(res.pearson_r) >= 0.4 \
            else "weak"
        head = f"The data show a {size} {sign} correlation between {res.x_label} and {res.y_label}"
    else:
        head = (
            f"The data show no statistically supported correlation between {res.x_label} and "
            f"{res.y_label} (p >= {SIGNIFICANCE} or the slope interval includes zero)"
        )
    return f"{head}: {stats_txt}.{caveat}"


def correlate_points(
    points: Sequence[BarrierPoint], **kwargs: object
) -> CorrelationResult:
    """:func:`correlate` on the points with ``used=True`` (|dE| against barrier)."""
    used = [p for p in points if p.used]
    choice = used[0].barrier_choice if used else "forward"
    y_label = (
        "forward barrier (eV)" if choice == "forward" else "max(forward, reverse) barrier (eV)"
    )
    return correlate(
        [p.abs_delta_e for p in used], [p.barrier for p in used], y_label=y_label,
        **kwargs,  # type: ignore[arg-type]
    )
