"""Which atoms a structure holds fixed: the one reading of ASE's ``FixAtoms`` constraints
used by the builders, the calculators and the frame store."""

from __future__ import annotations

from ase import Atoms
from ase.constraints import FixAtoms


def fixed_indices(atoms: Atoms) -> list[int]:
    """Sorted indices held by the ``FixAtoms`` constraints of ``atoms`` (other constraint
    types are ignored; an index named by two constraints appears once)."""
    return sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms)
                   for i in c.get_indices()})
