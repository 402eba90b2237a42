"""Which atoms a structure holds fixed: the one reading of ASE's ``FixAtoms`` constraints
used by the builders, the calculators and the frame store, and the two operations that
respect it everywhere (the largest force on the free atoms, copies that keep them fixed)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms


def fixed_indices(atoms: Atoms) -> list[int]:
    """Sorted indices held by the ``FixAtoms`` constraints of ``atoms`` (other constraint
    types are ignored; an index named by two constraints appears once)."""
    return sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms)
                   for i in c.get_indices()})


def max_force(atoms: Atoms) -> float:
    """Largest force on ``atoms`` with its constraints applied (fixed atoms feel none), from
    its calculator, eV/Angstrom; 0 for no atoms."""
    forces = atoms.get_forces(apply_constraint=True)
    return float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0


def copy_constraints(atoms: Atoms, like: Atoms) -> Atoms:
    """Give ``atoms`` its own copies of the constraints of ``like`` (same atom order) and
    return it."""
    atoms.set_constraint([c.copy() for c in like.constraints])
    return atoms


def bare_copy(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` with its own copies of the constraints and no calculator."""
    out = atoms.copy()
    out.calc = None
    return copy_constraints(out, atoms)
