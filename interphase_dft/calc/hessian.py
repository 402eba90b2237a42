"""A surrogate's Hessian as the starting curvature of a reference-level (DFT) BFGS relaxation.

ASE's BFGS starts from ``alpha`` x identity (70 eV/Angstrom^2): on an ionic film whose atoms
all feel a small uniform force, its first steps are 0.01 Angstrom and a 70-atom interface cell
takes tens of DFT calls. Starting from the surrogate's curvature makes the first step a Newton
step on the surrogate's energy surface with the reference forces. The surrogate's stiffness
is not trusted: the relaxation rescales the matrix once by the reference curvature along its
first step (:class:`~interphase_dft.calc.prior_bfgs.PriorBFGS`), and BFGS then corrects the
curvature along every step it takes with the reference forces.

Rules
-----
- Central finite differences of the surrogate forces (``delta`` Angstrom, 6 calls per free
  atom), symmetrised.
- Fixed atoms (``FixAtoms``) are decoupled: their rows and columns are zero and their diagonal
  is ``floor``, so the free block is the constrained Hessian.
- The eigenvalues are replaced by ``max(|lambda|, floor)``: a negative mode (the surrogate is
  not at a minimum there) becomes a positive one of the same stiffness, and soft modes do not
  give unbounded steps (BFGS's ``maxstep`` also bounds every step).
- A **cell relaxation** (``cell=True``) moves the degrees of freedom of ASE's
  ``FrechetCellFilter``: the N atoms and three rows of the cell's log-deformation (times the
  filter's ``exp_cell_factor``). Its Hessian is the same finite difference taken on those
  N + 3 rows, (3N + 9, 3N + 9), so the prior also holds the stiffness of the cell and its
  coupling to the atoms. A molecular crystal needs that most: its intermolecular and cell
  modes are 10-100 times softer than the intramolecular ones, and BFGS from ``alpha`` x
  identity crawls along them (the P4S10 DFT-D3 cell, ``docs/history.md``, sessions 23-24).
- :func:`stored_hessian` keeps the matrix in the work directory (``hessian.npz``, keyed on
  the positions and the cell), so a resumed relaxation does not recompute it.
- :func:`start_hessian` is the one rule for when a reference relaxation uses it: the
  optimizer is BFGS, ``neb.surrogate_hessian`` is on and a surrogate exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms

from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import fixed_indices
from interphase_dft.parallel import on_rank0

#: file of :func:`stored_hessian` in its work directory
HESSIAN_FILE = "hessian.npz"
#: finite-difference displacement, Angstrom
DELTA = 0.01
#: smallest curvature kept, eV/Angstrom^2
FLOOR = 0.5


def dof_size(natoms: int, cell: bool) -> int:
    """Rows of the Hessian of ``natoms`` atoms (and of the 3 ``FrechetCellFilter`` cell rows
    when ``cell``)."""
    return 3 * (natoms + (3 if cell else 0))


def surrogate_hessian(atoms: Atoms, factory: CalcFactory, *, delta: float = DELTA,
                      floor: float = FLOOR, signed: bool = False,
                      cell: bool = False) -> np.ndarray:
    """The positive-definite (3N, 3N) Hessian of ``factory`` at ``atoms`` (module rules),
    eV/Angstrom^2, in ASE's order (atom-major: x, y, z of atom 0, then atom 1, ...).

    ``signed``: keep the eigenvalues below ``-floor`` (the negative curvature a saddle search
    needs) and raise the others to at least ``floor``: a slightly negative eigenvalue is
    finite-difference noise or a soft mode, not a direction to climb.

    ``cell``: the (3N + 9, 3N + 9) Hessian of the degrees of freedom of
    ``FrechetCellFilter(atoms)`` (module rules; the factory's calculator needs a stress)."""
    from ase.filters import FrechetCellFilter

    if delta <= 0 or floor <= 0:
        raise ValueError(f"delta and floor must be positive, got {delta}, {floor}")
    work = atoms.copy()
    work.set_constraint()
    work.calc = factory(work, attempt=0, label="hessian")
    target = FrechetCellFilter(work) if cell else work
    base = np.array(target.get_positions())
    n = base.size
    fixed = set(fixed_indices(atoms))
    hess = np.zeros((n, n))
    for a in range(len(base)):
        if a in fixed:
            continue
        for x in range(3):
            cols = []
            for sign in (1.0, -1.0):
                pos = base.copy()
                pos[a, x] += sign * delta
                target.set_positions(pos)
                cols.append(np.asarray(target.get_forces()).ravel())
            hess[:, 3 * a + x] = -(cols[0] - cols[1]) / (2.0 * delta)
    target.set_positions(base)
    hess = 0.5 * (hess + hess.T)
    for a in fixed:
        rows = slice(3 * a, 3 * a + 3)
        hess[rows, :] = 0.0
        hess[:, rows] = 0.0
    lam, vec = np.linalg.eigh(hess)
    lam = np.where(signed & (lam < -floor), lam, np.maximum(np.abs(lam), floor))
    out = (vec * lam) @ vec.T
    for a in fixed:  # exactly decoupled (the eigen-floor mixed in nothing but roundoff)
        rows = slice(3 * a, 3 * a + 3)
        out[rows, :] = 0.0
        out[:, rows] = 0.0
        out[rows, rows] = np.eye(3) * floor
    return 0.5 * (out + out.T)


def stored_hessian(atoms: Atoms, factory: CalcFactory, workdir: Path | str, *,
                   floor: float = FLOOR, signed: bool = False,
                   cell: bool = False) -> np.ndarray:
    """:func:`surrogate_hessian` of ``factory`` at ``atoms`` (``floor``, ``signed``, ``cell``
    as there), read from ``workdir`` when it was computed there for the same positions and
    cell and of the same shape (:data:`HESSIAN_FILE`; the cache is keyed on the geometry
    only, so one work directory serves one surrogate and one kind of matrix). Rank 0
    computes and every MPI rank gets its matrix; the file is replaced atomically, and an
    unreadable one is recomputed."""
    path = Path(workdir) / HESSIAN_FILE
    size = dof_size(len(atoms), cell)

    def compute() -> np.ndarray:
        try:
            with np.load(path) as data:
                if (np.array_equal(data["positions"], atoms.positions)
                        and data["hessian"].shape == (size, size)
                        and ("cell" not in data
                             or np.array_equal(data["cell"], atoms.cell[:]))):
                    return np.array(data["hessian"])
        except (OSError, ValueError, KeyError, EOFError):
            pass  # absent or unreadable (a run killed while writing it): recompute
        hess = surrogate_hessian(atoms, factory, floor=floor, signed=signed, cell=cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, hessian=hess, positions=atoms.positions, cell=atoms.cell[:])
        os.replace(tmp, path)
        return hess

    return on_rank0(compute)


def start_hessian(atoms: Atoms, surrogate: CalcFactory | None, workdir: Path | str,
                  settings: CalcSettings, cell: bool = False) -> np.ndarray | None:
    """The starting curvature of the reference relaxation of ``atoms`` (and of its cell when
    ``cell``) in ``workdir``: :func:`stored_hessian` of ``surrogate`` when
    ``settings.relax.optimizer`` is BFGS, ``settings.neb.surrogate_hessian`` is on and
    ``surrogate`` is not None, else None (the optimizer's default)."""
    if (surrogate is None or settings.relax.optimizer != "BFGS"
            or not settings.neb.surrogate_hessian):
        return None
    return stored_hessian(atoms, surrogate, workdir, cell=cell)
