"""Reused SCF starting points: one live calculator per label across the steps of a job.

The active-learning loop (:mod:`interphase_dft.recipes.active_learning`) computes reference
single points on the same band slots (``img0`` ... ``imgN``) round after round, on
geometries that moved by a few hundredths to tenths of an Angstrom. A fresh GPAW calculator
starts each SCF from atomic densities; a calculator that already converged the slot's previous
geometry moves its atoms and starts from its own density and wave functions. Measured on
the 67-atom LiAl|LiCl migration cell (PW 300 eV, Gamma, 2 MPI ranks): 87 SCF iterations from
scratch against 26-29 after a 0.03 Angstrom move of one atom (``docs/history.md``).

:class:`ReusingFactory` wraps a calculator factory ``factory(atoms, attempt, label)`` and
returns the calculator it built last for the same slot when the new atoms have the same
numbers, cell and periodicity (only the positions moved) and the call is a first attempt. An
SCF retry (``attempt > 0``, safer mixing) always gets a new calculator, which then replaces
the kept one. A call for exactly the geometry a kept calculator last computed (the Li
charge of a binding site after the site's single point, :mod:`interphase_dft.recipes.binding`)
gets that calculator whatever the label, so its result is returned without a new SCF; with
``move=False`` only such exact matches are reused (binding sites: the density of one Li site
is not carried to another). The slot of a label is its last ``-``-separated part, so the
reference single point ``img2`` of a round and the image ``neb-img2`` of the final reference
CI-NEB share a calculator. Energies and forces are those of the converged SCF either way: only the
starting point and therefore the number of iterations change.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.wrapped import WrappingFactory


def slot(label: str) -> str:
    """The calculator slot of ``label`` (its last ``-``-separated part)."""
    return label.rsplit("-", 1)[-1]


def _signature(atoms: Atoms) -> tuple[bytes, bytes, tuple[bool, ...]]:
    return (np.asarray(atoms.numbers).tobytes(), np.round(atoms.cell.array, 8).tobytes(),
            tuple(bool(p) for p in atoms.pbc))


def _holds(calc: Calculator, atoms: Atoms) -> bool:
    """``calc`` last computed exactly ``atoms`` (positions, cell, numbers, initial moments)."""
    held = getattr(calc, "atoms", None)
    if held is None or len(held) != len(atoms) or _signature(held) != _signature(atoms):
        return False
    return bool(np.array_equal(held.positions, atoms.positions) and np.array_equal(
        held.get_initial_magnetic_moments(), atoms.get_initial_magnetic_moments()))


class ReusingFactory(WrappingFactory):
    """``factory(atoms, attempt, label)`` keeping one live calculator per label (module
    docstring). ``description`` and every other attribute are the wrapped factory's, so
    checkpoint fingerprints and frame hashes do not change; ``paired()`` (where the wrapped
    factory has one) gives a reusing factory of the spin-paired variant. ``reused`` and
    ``built`` count the calls that returned a kept and a new calculator."""

    def __init__(self, inner: CalcFactory, *, move: bool = True) -> None:
        self.inner = inner
        self.move = move
        self._live: dict[str, tuple[tuple[bytes, bytes, tuple[bool, ...]], Calculator]] = {}
        self.reused = 0
        self.built = 0

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
        sig = _signature(atoms)
        if attempt == 0:
            same = next((c for _, c in self._live.values() if _holds(c, atoms)), None)
            kept = self._live.get(slot(label))
            if same is None and self.move and kept is not None and kept[0] == sig:
                same = kept[1]
            if same is not None:
                self.reused += 1
                return same
        calc = self.inner(atoms, attempt=attempt, label=label)
        self._live[slot(label)] = (sig, calc)
        self.built += 1
        return calc

    def release(self) -> None:
        """Drop the kept calculators (their memory) once the job is done."""
        self._live.clear()

    def rewrap(self, inner: CalcFactory) -> ReusingFactory:
        return ReusingFactory(inner, move=self.move)
