"""The per-mode fit table: does the descriptor dE track the hop's energetics?

For every descriptor mode (every ``BindingEnergyDoc.mode`` present: ``surface``, ``bulk``,
``interface``, ...) three fits, one point per interface A|B (A != B):

=========================  ==========================================  ====================
x                          y                                           hops used
=========================  ==========================================  ====================
dE(hop) = E_b(B) - E_b(A)  ``reaction_energy`` = E(final) - E(initial)  relaxed endpoints
|dE|                       ``barrier_forward``                         ``saddle == 'saddle'``
|dE|                       ``e_kra`` = E_saddle - (E_i + E_f) / 2      ``saddle == 'saddle'``
=========================  ==========================================  ====================

dE(hop) is signed along the hop (Li starts in A, ends in B), so a descriptor that measured the
same state as the hop would give reaction_energy = dE(hop): slope 1, r = 1. E_b is the binding
energy (atom reference, eV) of the lowest site of the phase that is not flagged ``reactive``
(a reactive site's number is a reaction energy; ``include_reactive=True`` uses every site).

Rules (stated in :data:`FIT_RULE`): hops with ``stage == 'ml'`` are never used; a barrier
document without a ``saddle`` field counts as not certified; a reaction energy is used only
from a hop whose endpoints are minima at its level (:data:`REACTION_STATUSES`: not from a run
a budget stopped or whose endpoints are unrelaxed or not minima); several hops of one
interface are not independent points, so each interface gives one point: for barrier and
E_KRA the certified hop with the lowest forward barrier (the fastest mechanism), for the
reaction energy that hop, else the newest such hop with a reaction energy. A non-finite x or
y leaves its interface out (named). Statistics per fit: Pearson and Spearman with their
p-values (Spearman's exact permutation p up to :data:`EXACT_SPEARMAN_N` points, where the t
approximation scipy uses fails: it gives p = 0 for a perfect rank order of 3 or 4 points,
whose exact p is 0.33 and 0.083), bootstrap percentile intervals from
:data:`MIN_BOOTSTRAP_N` points on (below that most resamples repeat a point or give |r| = 1,
so no interval is given; the number of resamples used is stored), the smallest |r|
detectable at 80 % power for the n at hand (:mod:`interphase_dft.analysis.power`), and the
pairs needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from interphase_dft.analysis import power as pw
from interphase_dft.analysis.descriptor import load_docs, select_binding
from interphase_dft.barrier_status import NO_SADDLE, NOT_CONVERGED, NOT_ONE_HOP, SADDLE
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc

FIT_RULE = (
    "one point per interface A|B (A != B); surrogate-only hops (stage 'ml') never used; "
    "barrier and E_KRA only from certified hops (saddle == 'saddle'; documents without the "
    "field are not certified), the certified hop with the lowest forward barrier; reaction "
    "energy from that hop, else the newest DFT hop whose endpoints are minima at its level "
    "(status saddle, no saddle: reaction energy, not converged or not one hop); dE(hop) = "
    "E_b(final phase) - E_b(initial phase) from the lowest non-reactive site (atom reference)"
)
#: statuses whose endpoints are minima at the hop's level: their reaction energy is one
REACTION_STATUSES = (SADDLE, NO_SADDLE, NOT_CONVERGED, NOT_ONE_HOP)
#: up to this many points Spearman's p is the exact permutation p (n! orderings)
EXACT_SPEARMAN_N = 8
#: fewest points for a bootstrap interval
MIN_BOOTSTRAP_N = 5
#: (x label, y label, y attribute, needs a certified saddle)
FIT_KINDS: tuple[tuple[str, str, str, bool], ...] = (
    ("dE(hop) (eV)", "reaction energy (eV)", "reaction_energy", False),
    ("|dE| (eV)", "forward barrier (eV)", "barrier_forward", True),
    ("|dE| (eV)", "E_KRA (eV)", "e_kra", True),
)
DEFAULT_BOOT = 2000
DEFAULT_SEED = 20240531


class FitResult(BaseModel):
    """One fit of y against x in one descriptor mode (energies eV). None = undefined."""

    mode: str
    x: str
    y: str
    n: int
    interfaces: list[str] = Field(default_factory=list, description="the points, in order")
    x_values: list[float] = Field(default_factory=list)
    y_values: list[float] = Field(default_factory=list)
    pearson_r: float | None = None
    pearson_p: float | None = None
    r_ci: tuple[float, float] | None = None
    spearman_rho: float | None = None
    spearman_p: float | None = None
    rho_ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    n_boot: int = Field(0, description="bootstrap resamples used (those with a defined r)")
    ci_note: str | None = Field(None, description="why no bootstrap interval is given")
    seed: int = DEFAULT_SEED
    alpha: float = pw.ALPHA
    power: float = pw.POWER
    critical_r: float | None = Field(None, description="smallest |r| significant at alpha")
    detectable_r: float | None = Field(None, description="smallest |r| detected at power")
    target_r: float = pw.TARGET_R
    pairs_needed_target: int | None = Field(None, description="points to detect target_r")
    pairs_needed_observed: int | None = Field(None, description="points to detect |r|")
    undefined_reason: str | None = None
    left_out: list[str] = Field(default_factory=list, description="interfaces not used, why")


def site_binding_energy(doc: BindingEnergyDoc, *, include_reactive: bool = False
                        ) -> float | None:
    """E_b (atom reference, eV) of the descriptor site of ``doc``
    (:func:`interphase_dft.analysis.records.descriptor_site`: the lowest non-reactive site,
    a converged one first, as the document's headline); None when every site is reactive
    (and ``include_reactive`` is False)."""
    from interphase_dft.analysis.records import descriptor_site

    site = descriptor_site(doc, include_reactive=include_reactive)
    return None if site is None else float(site.binding_energy_atom)


def _certified(doc: BarrierDoc) -> bool:
    return getattr(doc, "saddle", None) == "saddle"


def _hop_per_interface(docs: Iterable[BarrierDoc], attr: str, certified: bool
                       ) -> dict[frozenset[str], BarrierDoc]:
    """One hop per unordered interface for quantity ``attr`` (see the module rules)."""
    groups: dict[frozenset[str], list[BarrierDoc]] = {}
    for doc in docs:
        if doc.phase_a == doc.phase_b or doc.stage == "ml":
            continue
        groups.setdefault(frozenset((doc.phase_a, doc.phase_b)), []).append(doc)
    out: dict[frozenset[str], BarrierDoc] = {}
    for key, group in groups.items():
        saddles = [d for d in group if _certified(d) and d.barrier_forward is not None]
        best = min(saddles, key=lambda d: (d.barrier_forward, d.created)) if saddles else None
        if best is not None and getattr(best, attr, None) is not None:
            out[key] = best
            continue
        if certified:
            continue
        valued = [d for d in group if getattr(d, attr, None) is not None
                  and getattr(d, "saddle", None) in REACTION_STATUSES]
        if valued:
            out[key] = max(valued, key=lambda d: (d.created, d.uid))
    return out


def fit_points(binding: Mapping[tuple[str, str], BindingEnergyDoc], barriers: Sequence[BarrierDoc],
               mode: str, attr: str, certified: bool, *, signed: bool,
               include_reactive: bool = False) -> tuple[list[tuple[str, float, float]], list[str]]:
    """(interface, x, y) points of one fit and the interfaces left out with the reason."""
    points: list[tuple[str, float, float]] = []
    left_out: list[str] = []
    groups: dict[frozenset[str], list[BarrierDoc]] = {}
    for doc in barriers:
        if doc.phase_a != doc.phase_b:
            groups.setdefault(frozenset((doc.phase_a, doc.phase_b)), []).append(doc)
    chosen = _hop_per_interface(barriers, attr, certified)
    for key in sorted(groups, key=sorted):
        name = groups[key][0].interface
        doc = chosen.get(key)
        if doc is None:
            why = "no certified saddle" if certified else "no DFT hop with a value between minima"
            left_out.append(f"{name}: {why}")
            continue
        da, db = binding.get((doc.phase_a, mode)), binding.get((doc.phase_b, mode))
        if da is None or db is None:
            left_out.append(f"{doc.interface}: no {mode}-mode binding energy for both phases")
            continue
        ea = site_binding_energy(da, include_reactive=include_reactive)
        eb = site_binding_energy(db, include_reactive=include_reactive)
        if ea is None or eb is None:
            left_out.append(f"{doc.interface}: every {mode} site of "
                            f"{doc.phase_a if ea is None else doc.phase_b} is reactive")
            continue
        x, y = (eb - ea if signed else abs(eb - ea)), float(getattr(doc, attr))
        if not (np.isfinite(x) and np.isfinite(y)):
            left_out.append(f"{doc.interface}: a non-finite value (dE {x}, {attr} {y})")
            continue
        points.append((doc.interface, float(x), y))
    return points, left_out


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of every row pair of a and b (NaN where a row has zero variance)."""
    am = a - a.mean(axis=1, keepdims=True)
    bm = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((am**2).sum(axis=1) * (bm**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (am * bm).sum(axis=1) / den, np.nan)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, *, n_boot: int, seed: int, level: float
                 ) -> tuple[tuple[float, float] | None, tuple[float, float] | None, int]:
    """Percentile intervals of Pearson r and Spearman rho over resampled points, and the
    number of resamples used.

    Resamples in which x or y has no variance are skipped; None when none is left.
    """
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    xb, yb = x[idx], y[idx]
    r = _pearson_rows(xb, yb)
    rho = _pearson_rows(rankdata(xb, axis=1), rankdata(yb, axis=1))
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def ci(v: np.ndarray) -> tuple[float, float] | None:
        v = np.clip(v[np.isfinite(v)], -1.0, 1.0)
        return None if v.size == 0 else tuple(float(t) for t in np.percentile(v, q))  # type: ignore[return-value]

    return ci(r), ci(rho), int(np.isfinite(r).sum())


def spearman_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p of Spearman's rho: exact over all n! pairings up to
    :data:`EXACT_SPEARMAN_N` points (the Pearson r of the ranks, batched), else scipy's t
    approximation."""
    from scipy import stats

    if len(x) > EXACT_SPEARMAN_N:
        return float(stats.spearmanr(x, y).pvalue)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    ym = ry - ry.mean()

    def statistic(xs: np.ndarray, axis: int = -1) -> np.ndarray:
        xm = xs - xs.mean(axis=axis, keepdims=True)
        return (xm * ym).sum(axis=axis) / np.sqrt((xm**2).sum(axis=axis) * (ym**2).sum())

    res = stats.permutation_test((rx,), statistic, permutation_type="pairings",
                                 n_resamples=np.inf, alternative="two-sided", vectorized=True)
    return float(min(1.0, res.pvalue))


def fit(mode: str, x_label: str, y_label: str, points: Sequence[tuple[str, float, float]], *,
        n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED, level: float = 0.95,
        left_out: Sequence[str] = ()) -> FitResult:
    """Pearson, Spearman, bootstrap intervals and power numbers of one fit."""
    from scipy import stats

    x = np.array([p[1] for p in points], float)
    y = np.array([p[2] for p in points], float)
    n = len(points)
    res = FitResult(mode=mode, x=x_label, y=y_label, n=n, interfaces=[p[0] for p in points],
                    x_values=x.tolist(), y_values=y.tolist(), ci_level=level, seed=seed,
                    critical_r=pw.critical_r(n), detectable_r=pw.detectable_r(n),
                    pairs_needed_target=pw.pairs_needed(pw.TARGET_R), left_out=list(left_out))
    if n < 3:
        res.undefined_reason = f"only {n} point(s); a correlation needs at least 3"
        return res
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        res.undefined_reason = "a non-finite value among the points"
        return res
    for name, v in (("x", x), ("y", y)):
        if np.ptp(v) <= 1e-9 * max(1.0, float(np.abs(v).max())):
            res.undefined_reason = f"{name} is the same for every point"
            return res
    pr, sr = stats.pearsonr(x, y), stats.spearmanr(x, y)
    res.pearson_r = float(np.clip(pr.statistic, -1.0, 1.0))
    res.pearson_p = float(pr.pvalue)
    res.spearman_rho = float(sr.statistic)
    res.spearman_p = spearman_p(x, y)
    if n >= MIN_BOOTSTRAP_N:
        res.r_ci, res.rho_ci, res.n_boot = bootstrap_ci(x, y, n_boot=n_boot, seed=seed,
                                                        level=level)
    else:
        res.ci_note = (f"no bootstrap interval below {MIN_BOOTSTRAP_N} points (most resamples "
                       "repeat a point or give |r| = 1)")
    res.pairs_needed_observed = pw.pairs_needed(res.pearson_r)
    return res


def fit_table(docs: Iterable[Mapping[str, Any] | BaseModel], *, preset: str | None = None,
              include_reactive: bool = False, n_boot: int = DEFAULT_BOOT,
              seed: int = DEFAULT_SEED) -> list[FitResult]:
    """Every fit of every descriptor mode from stored documents (dicts or schema objects).

    Parameters
    ----------
    docs
        Binding and barrier documents, as ``ResultStore.find()`` returns them.
    preset
        Use only documents of this preset (``None``: all, newest per phase and mode).
    include_reactive
        Use sites flagged ``reactive`` as binding energies (default: left out).
    n_boot, seed
        Bootstrap resamples and the ``numpy`` generator seed.

    Returns
    -------
    list[FitResult]
        Modes in alphabetical order, within a mode the order of :data:`FIT_KINDS`.
    """
    loaded = load_docs(docs)
    binding = select_binding(loaded.binding, preset).chosen
    barriers = [d for d in loaded.barriers
                if preset is None or d.settings.get("preset") == preset]
    results = []
    for mode in sorted({m for _, m in binding}):
        for x_label, y_label, attr, certified in FIT_KINDS:
            points, left = fit_points(binding, barriers, mode, attr, certified,
                                      signed=attr == "reaction_energy",
                                      include_reactive=include_reactive)
            results.append(fit(mode, x_label, y_label, points, n_boot=n_boot, seed=seed,
                               left_out=left))
    return results


def fit_rows(fits: Iterable[FitResult]) -> list[dict[str, Any]]:
    """The fit table as report rows (one per fit; intervals as 'lo to hi' strings)."""

    def ci(v: tuple[float, float] | None) -> str:
        return "-" if v is None else f"{v[0]:.2f} to {v[1]:.2f}"

    return [
        {
            "mode": f.mode, "x": f.x, "y": f.y, "n": f.n, "r": f.pearson_r,
            "r_CI": ci(f.r_ci), "rho": f.spearman_rho, "rho_CI": ci(f.rho_ci), "p": f.pearson_p,
            "rho_p": f.spearman_p,
            "detectable_r": f.detectable_r, "pairs_needed_r0.7": f.pairs_needed_target,
            "pairs_needed_observed_r": f.pairs_needed_observed,
        }
        for f in fits
    ]
