"""The report's conclusion, chosen from the fit numbers (no hand-written verdicts).

:func:`fit_sentence` turns one :class:`~interphase_dft.analysis.fits.FitResult` into one
sentence by these rules, in order (alpha = 0.05, power 0.8, target r = 0.7):

1. n <= 3, or no |r| is detectable: "no correlation can be tested", with the pairs needed to
   detect r = 0.7 and how many more that is;
2. r undefined (a variable is constant): "correlation undefined" with the reason;
3. Pearson p < alpha: "significant positive/negative correlation" with r, its bootstrap
   interval, rho and p (and a warning when the bootstrap interval of r includes 0), and the
   pairs needed to detect r = 0.7; below that many points the sentence says the result is
   indicative only (a few points that happen to line up pass p < 0.05 without the power to
   be trusted);
4. otherwise "no significant correlation at n = ...", the smallest |r| detectable at this n,
   the pairs needed for r = 0.7 and for the observed |r|.

:func:`conclusion` joins the sentences of the headline fit (|dE| against the forward barrier)
of every descriptor mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from interphase_dft.analysis.fits import FitResult
from interphase_dft.analysis.power import pairs_needed

HEADLINE_Y = "forward barrier (eV)"


def _name(label: str) -> str:
    return label.replace(" (eV)", "")


def _more(needed: int | None, n: int) -> str:
    if needed is None:
        return ""
    return f" ({needed - n} more)" if needed > n else " (reached)"


def fit_sentence(f: FitResult) -> str:
    """One sentence for one fit (see the module rules)."""
    head = f"{f.mode} mode, {_name(f.y)} against {_name(f.x)}"
    need = f.pairs_needed_target or pairs_needed(f.target_r, alpha=f.alpha, power=f.power)
    pct = round(100 * f.power)
    target = (f"\u2265 {need} pairs needed to detect r = {f.target_r:g} at {pct} % power"
              f"{_more(need, f.n)}")
    if f.detectable_r is None:
        return f"{head}: n = {f.n}: no correlation can be tested; {target}."
    if f.pearson_r is None or f.pearson_p is None:
        reason = f.undefined_reason or "r is undefined"
        return f"{head}: correlation undefined at n = {f.n} ({reason}); {target}."
    r, p = f.pearson_r, f.pearson_p
    rho = "" if f.spearman_rho is None else f", \u03c1 = {f.spearman_rho:.2f}"
    ci_pct = round(100 * f.ci_level)
    if p < f.alpha:
        sign = "positive" if r > 0 else "negative"
        ci = ""
        if f.r_ci is not None:
            lo, hi = f.r_ci
            ci = f" ({ci_pct} % bootstrap CI {lo:.2f} to {hi:.2f})"
            if lo <= 0.0 <= hi:
                ci += ", but the bootstrap interval includes 0"
        caution = "" if f.n >= need else ", indicative only"
        return (f"{head}: significant {sign} correlation, r = {r:.2f}{ci}{rho}, "
                f"p = {p:.2g}, n = {f.n}{caution}; {target}.")
    observed = ""
    if f.pairs_needed_observed is not None and abs(r) < 1.0:
        observed = (f"; {f.pairs_needed_observed} pairs would detect the observed "
                    f"|r| = {abs(r):.2f}")
    return (f"{head}: no significant correlation at n = {f.n} (r = {r:.2f}{rho}, "
            f"p = {p:.2g}); detectable |r| \u2265 {f.detectable_r:.2f} at {pct} % power; "
            f"{target}{observed}.")


def conclusion(fits: Sequence[FitResult], *, headline_y: str = HEADLINE_Y) -> str:
    """The conclusion paragraph: the headline fit's sentence for every descriptor mode.

    Parameters
    ----------
    fits
        :func:`interphase_dft.analysis.fits.fit_table` output.
    headline_y
        The y label of the headline fit (default: the forward barrier).

    Returns
    -------
    str
        One sentence per mode; a single "nothing to test" sentence without fits.
    """
    chosen = [f for f in fits if f.y == headline_y]
    if not chosen:
        need = pairs_needed(0.7)
        return ("No descriptor mode has binding energies and barriers yet: no correlation can "
                f"be tested; \u2265 {need} pairs needed to detect r = 0.7 at 80 % power.")
    return " ".join(fit_sentence(f) for f in chosen)
