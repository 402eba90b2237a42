import numpy as np
import pytest
from ase import Atoms
from ase.constraints import FixAtoms, FixedLine

from interphase_dft.constraints import bare_copy, copy_constraints, fixed_indices, max_force


def test_fixed_indices_merges_fixatoms_and_ignores_other_constraints() -> None:
    atoms = Atoms("H5", positions=[[i, 0, 0] for i in range(5)])
    atoms.set_constraint([FixAtoms(indices=[3, 1]), FixAtoms(mask=[True, True, False, False,
                                                                   False]),
                          FixedLine(4, [0, 0, 1])])
    assert fixed_indices(atoms) == [0, 1, 3]
    atoms.set_constraint()
    assert fixed_indices(atoms) == []


def test_max_force_ignores_fixed_atoms_and_bare_copy_keeps_them_fixed() -> None:
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms("H3", positions=[[i, 0, 0] for i in range(3)])
    atoms.set_constraint(FixAtoms(indices=[0]))
    forces = np.array([[9.0, 0, 0], [0, 3.0, 4.0], [1.0, 0, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=forces)
    assert max_force(atoms) == pytest.approx(5.0)  # atom 0 (9 eV/A) is fixed
    copy = bare_copy(atoms)
    assert copy.calc is None and fixed_indices(copy) == [0]
    copy.constraints[0].index[0] = 2  # its own constraint objects
    assert fixed_indices(atoms) == [0]


def test_copy_constraints_gives_its_own_copies() -> None:
    like = Atoms("H3", positions=[[i, 0, 0] for i in range(3)])
    like.set_constraint(FixAtoms(indices=[1, 2]))
    atoms = Atoms("H3", positions=[[0, i, 0] for i in range(3)])
    assert copy_constraints(atoms, like) is atoms and fixed_indices(atoms) == [1, 2]
    atoms.constraints[0].index[0] = 0
    assert fixed_indices(like) == [1, 2]
    assert list(atoms.positions[:, 1]) == [0, 1, 2]  # geometry untouched
