"""Spin-polarised SCFs of a Li insertion whose moment collapses: detect, stop, redo spin-paired.

A Li inserted into a non-metal is computed spin-polarised with 1 mu_B seeded on the Li
(``dft.li_insertion_spin``): if its electron localises, the moment stays near 1 mu_B. If it
delocalises (into the host's conduction band or a surface state, broadened by the insertion
smearing), the total moment collapses towards zero and the state is the spin-paired one. Such
spin-polarised SCFs can stall without converging, while the spin-paired SCF of the same
geometry converges to the same energy.

:class:`CollapseWatch` is a GPAW ``scf_step`` hook. It raises :class:`SpinCollapsed` once the
SCF has run ``2 * window`` iterations and the total moment stayed below ``moment`` over the last
``window`` iterations. :class:`interphase_dft.calc.guard.GuardedCalculator` then recomputes the
geometry spin-paired and records why. A spin-polarised run that converges before that point
keeps its result whatever its moment. Settings: ``dft.spin_collapse_moment`` (0 switches the
watch off) and ``dft.spin_collapse_window``.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class SpinCollapsed(Exception):
    """A spin-polarised SCF whose total moment stayed below the threshold."""

    def __init__(self, moment: float, niter: int, threshold: float, window: int) -> None:
        super().__init__(
            f"total magnetic moment {moment:.3f} mu_B after {niter} SCF iterations stayed "
            f"below {threshold} mu_B for the last {window} iterations: the inserted Li's "
            "electron is delocalised and the state is spin-paired")
        self.moment = moment
        self.niter = niter


class CollapseWatch:
    """GPAW ``scf_step`` hook: raise :class:`SpinCollapsed` when the moment collapsed.

    One instance per calculator (it keeps the moments of that SCF).
    """

    def __init__(self, moment: float, window: int) -> None:
        if window < 1:
            raise ValueError(f"spin collapse window must be >= 1 iteration, got {window}")
        self.moment = moment
        self.window = window
        self.history: deque[float] = deque(maxlen=window)

    def observe(self, niter: int, total_moment: float) -> None:
        """Record iteration ``niter``'s total moment; raise when the collapse rule holds."""
        if niter == 1:
            self.history.clear()  # a new SCF on the same calculator (next geometry)
        self.history.append(abs(total_moment))
        if (niter >= 2 * self.window and len(self.history) == self.window
                and max(self.history) < self.moment):
            raise SpinCollapsed(abs(total_moment), niter, self.moment, self.window)

    def __call__(self, ctx: Any) -> None:
        if ctx.density.ncomponents != 2:  # spin-paired or non-collinear: nothing to watch
            return
        total, _ = ctx.density.calculate_magnetic_moments()
        self.observe(int(ctx.niter), float(total[2]))


def gpaw_part(calc: Any) -> Any:
    """The GPAW calculator inside ``calc`` (itself, or the first part of a D3 sum), or None."""
    parts = getattr(getattr(calc, "mixer", None), "calcs", None) or [calc]
    for part in parts:
        if hasattr(part, "hooks"):
            return part
    return None


def attach_collapse_watch(calc: Any, moment: float, window: int) -> bool:
    """Attach a :class:`CollapseWatch` to the GPAW part of ``calc``; False when impossible
    (``moment`` <= 0 or no GPAW calculator with hooks)."""
    gpaw = gpaw_part(calc)
    if moment <= 0 or gpaw is None:
        return False
    gpaw.hooks["scf_step"] = CollapseWatch(moment, window)
    return True


def total_moment(calc: Any) -> float | None:
    """Total magnetic moment (mu_B) of the converged GPAW part of ``calc``; None when spin-paired
    or not available."""
    gpaw = gpaw_part(calc)
    if gpaw is None:
        return None
    try:
        if gpaw.dft.density.ncomponents != 2:
            return None
        return float(gpaw.get_magnetic_moment())
    except Exception:  # not a spin calculation or no converged state
        return None
