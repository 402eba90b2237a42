"""A first-order reference correction of the surrogate (Δ-learning of the simplest kind).

At a geometry x0 where the reference (DFT) was computed, the surrogate's energy and forces
are shifted so that they equal the reference there:

    E(x) = E_ml(x) + dE - dF . (x - x0),    F(x) = F_ml(x) + dF,
    dE = E_ref(x0) - E_ml(x0),              dF = F_ref(x0) - F_ml(x0).

The energy and forces stay consistent (F = -dE/dx). A surrogate relaxation with this
correction is a quasi-Newton step on the reference surface that uses the surrogate's
curvature: a point whose reference force is zero is a fixed point, so a minimum (or a
climbing image) reached with the corrected surrogate and confirmed by a reference single
point is a reference minimum (or saddle). The active-learning loop
(:mod:`interphase_dft.recipes.active_learning`) anchors one correction at each endpoint and
each image of the band (``neb.al_force_correction``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.wrapped import WrappedCalculator


@dataclass(frozen=True)
class ForceCorrection:
    """The correction anchored at ``positions`` (Angstrom): ``denergy`` (eV) and ``dforce``
    (eV/Angstrom, shape (n_atoms, 3)), reference minus surrogate there."""

    positions: np.ndarray
    denergy: float
    dforce: np.ndarray

    def digest(self) -> str:
        """Short hash of the anchor and the correction (checkpoint fingerprints)."""
        h = hashlib.sha256(np.round(self.positions, 6).tobytes())
        h.update(np.round(self.dforce, 6).tobytes())
        h.update(f"{self.denergy:.6f}".encode())
        return h.hexdigest()[:12]


def correction_at(reference: Atoms, surrogate: CalcFactory) -> ForceCorrection:
    """The correction that makes ``surrogate`` equal the reference single point ``reference``
    (an Atoms with the reference energy and forces attached) at its geometry."""
    e_ref = float(reference.get_potential_energy())
    f_ref = np.array(reference.get_forces(apply_constraint=False))
    work = reference.copy()
    work.calc = surrogate(work, 0, "correction")
    e_ml = float(work.get_potential_energy())
    f_ml = np.array(work.get_forces(apply_constraint=False))
    return ForceCorrection(np.array(reference.positions), e_ref - e_ml, f_ref - f_ml)


class CorrectedCalculator(WrappedCalculator):
    """``inner`` plus a :class:`ForceCorrection` (module docstring)."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, inner: Calculator, correction: ForceCorrection) -> None:
        super().__init__(inner)
        self.correction = correction

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        c = self.correction
        if len(self.atoms) != len(c.positions):
            raise ValueError(f"correction anchored on {len(c.positions)} atoms applied to "
                             f"{len(self.atoms)}")
        results = self.evaluate(("energy", "forces"))
        shift = c.denergy - float(np.sum(c.dforce * (self.atoms.positions - c.positions)))
        self.results = {"energy": results["energy"] + shift,
                        "free_energy": results["free_energy"] + shift,
                        "forces": results["forces"] + c.dforce}


@dataclass(frozen=True)
class CorrectedFactory:
    """``factory(atoms, attempt, label)`` of the surrogate with corrections: the calculator of
    NEB image i (label ``...-img{i}``) gets ``images[i]``, any other label ``default``; no
    correction found means the plain surrogate."""

    inner: CalcFactory
    images: dict[int, ForceCorrection] = field(default_factory=dict)
    default: ForceCorrection | None = None

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
        calc = self.inner(atoms, attempt, label)
        corr = self.default
        tail = label.rsplit("-img", 1)
        if len(tail) == 2 and tail[1].isdigit():
            corr = self.images.get(int(tail[1]), corr)
        return calc if corr is None else CorrectedCalculator(calc, corr)

    @property
    def description(self) -> dict[str, Any]:
        out = dict(getattr(self.inner, "description", {}) or {})
        digests = [c.digest() for c in (self.default, *self.images.values()) if c is not None]
        if digests:
            out["reference_correction"] = hashlib.sha256(
                "".join(digests).encode()).hexdigest()[:12]
        return out

    def at_endpoint(self, correction: ForceCorrection | None) -> CorrectedFactory:
        """The same surrogate with ``correction`` for every calculator (an endpoint)."""
        return CorrectedFactory(self.inner, {}, correction)
