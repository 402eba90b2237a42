from ase import Atoms
from ase.constraints import FixAtoms, FixedLine

from interphase_dft.constraints import fixed_indices


def test_fixed_indices_merges_fixatoms_and_ignores_other_constraints() -> None:
    atoms = Atoms("H5", positions=[[i, 0, 0] for i in range(5)])
    atoms.set_constraint([FixAtoms(indices=[3, 1]), FixAtoms(mask=[True, True, False, False,
                                                                   False]),
                          FixedLine(4, [0, 0, 1])])
    assert fixed_indices(atoms) == [0, 1, 3]
    atoms.set_constraint()
    assert fixed_indices(atoms) == []
