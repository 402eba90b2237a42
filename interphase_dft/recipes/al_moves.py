"""How far each point of the active-learning band moves in one round: the corrected
surrogate's quasi-Newton step, cut by a trust radius and damped by a fraction adapted from the
reference forces before and after it (:mod:`interphase_dft.recipes.active_learning`).

Positions in Angstrom, forces in eV/Angstrom.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from interphase_dft.constraints import bare_copy
from interphase_dft.recipes.neb_path import with_results


def adapted_steps(before: list[Atoms], after: list[Atoms], steps: list[float],
                  floor: float) -> list[float]:
    """The next round's step fraction of each point of the band (endpoints included).

    Between two rounds a point moved by ``d`` (a fraction ``b`` of the corrected surrogate's
    quasi-Newton step); its reference force along ``d`` went from ``g0`` to ``g1``. On a
    quadratic surface ``g1 / g0 = 1 - b r``, with ``r`` the ratio of the reference's to the
    surrogate's curvature along ``d``, so ``r = (1 - g1 / g0) / b`` and the step that would
    land on the minimum along ``d`` is ``1 / r``. The new fraction is ``1 / r`` clipped to
    [``floor``, 1]; a point that did not move, or whose force was not along its step, keeps
    its fraction.
    """
    out = []
    for x0, x1, b in zip(before, after, steps, strict=True):
        d = (x1.positions - x0.positions).ravel()
        norm = float(np.linalg.norm(d))
        g0 = float(np.dot(x0.get_forces(apply_constraint=True).ravel(), d)) / max(norm, 1e-12)
        g1 = float(np.dot(x1.get_forces(apply_constraint=True).ravel(), d)) / max(norm, 1e-12)
        if norm < 1e-6 or g0 <= 1e-9:
            out.append(b)
            continue
        r = (1.0 - g1 / g0) / b
        out.append(float(np.clip(1.0 / r, floor, 1.0)) if r > 0 else 1.0)
    return out


def trusted_fraction(start: Atoms, end: Atoms, step: float, max_move: float | None) -> float:
    """``step``, cut so that no atom moves more than ``max_move`` (Angstrom) from ``start``
    towards ``end`` (the trust radius of the corrected step; None = no cut)."""
    if max_move is None:
        return step
    longest = float(np.linalg.norm(end.positions - start.positions, axis=1).max(initial=0.0))
    return step if longest * step <= max_move else max_move / longest


def damped_step(start: Atoms, end: Atoms, step: float) -> Atoms:
    """``start`` moved by ``step`` times the displacement to ``end`` (``end`` itself, with its
    results, when ``step`` is 1): the damped step of the corrected surrogate."""
    if step >= 1.0:
        return with_results(start, end)
    out = bare_copy(start)
    out.positions = start.positions + step * (end.positions - start.positions)
    return out
