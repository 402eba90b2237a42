"""BFGS from a prior curvature whose scale is measured on the first reference step.

A surrogate's Hessian (:mod:`interphase_dft.calc.hessian`) has the shape of the reference
energy surface but not always its stiffness: universal potentials are soft, and on the
LiAl|Li2S vacancy endpoint (95 atoms, PBE-D3) the DFT curvature along every one of the first
eight BFGS steps was 2.2-4.3 times the fine-tuned CHGNet's, so each Newton step overshot
(predicted energy changes of -0.2 to -0.3 eV, measured -0.07 to +0.09 eV, fmax oscillating
between 0.28 and 0.60 eV/Angstrom; ``docs/history.md``, session 12). BFGS corrects the
curvature only along the directions it has stepped in, one per step, so the other ~280
directions stayed too soft.

The rule (initial scaling of a quasi-Newton prior, as for an identity prior in Nocedal and
Wright, *Numerical Optimization*, eq. 6.20, with the surrogate's matrix in place of the
identity): before the first BFGS update, the prior is multiplied by

    gamma = (s . y) / (s . H0 . s)

where ``s`` is the first step and ``y`` the change of the reference gradient along it: the
reference curvature along that step over the prior's. ``gamma`` is kept within
:data:`SCALE_BOUNDS` (a noisy first step cannot make the prior absurd) and is not applied when
either curvature is not positive. Later updates are plain BFGS. The scaling is applied once
per relaxation, also when it resumes after a kill between its first two steps (the restart
file then still holds the unscaled prior).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.optimize import BFGS

#: the smallest and largest factor applied to the prior
SCALE_BOUNDS = (0.1, 10.0)


class PriorBFGS(BFGS):
    """ASE's BFGS started from ``prior`` (a (3N, 3N) curvature, eV/Angstrom^2), rescaled once
    by the reference curvature along the first step (module docstring).

    ``scale`` is the factor applied (None until the first update, or when it was not
    applicable); other keyword arguments go to :class:`ase.optimize.BFGS`.
    """

    def __init__(self, atoms: Any, prior: np.ndarray, **kwargs: Any) -> None:
        self.prior = np.array(prior, dtype=float)
        self.scale: float | None = None
        super().__init__(atoms, **kwargs)  # reads the restart file when there is one
        if self.state is None:
            self.H0 = self.prior.copy()  # BFGS updates its Hessian in place
        self._pending = (self.state is None
                         or np.array_equal(self.state.hessian, self.prior))

    def update(self, pos: np.ndarray, forces: np.ndarray, pos0: np.ndarray | None,
               forces0: np.ndarray | None) -> None:
        s = None if pos0 is None else pos - pos0
        if self._pending and self.state is not None and s is not None and np.abs(s).max() > 1e-7:
            self._pending = False
            curvature_ref = float(s @ (forces0 - forces))  # s . y, y = change of gradient
            curvature_prior = float(s @ self.state.hessian @ s)
            if curvature_ref > 0 and curvature_prior > 0:
                self.scale = float(np.clip(curvature_ref / curvature_prior, *SCALE_BOUNDS))
                self.state.hessian *= self.scale
        super().update(pos, forces, pos0, forces0)
