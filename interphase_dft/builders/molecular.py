"""Molecular crystals: pack molecules in a cell and measure the packing (Angstrom).

Used for P2S5 (the P4S10 molecular crystal): :func:`inversion_pair` builds a P-1 cell with two
molecules related by inversion through the origin; :func:`pack_inversion_pair` finds the
molecule centre and orientation that keep the molecules farthest apart (the search whose
result :mod:`interphase_dft.phases` stores as constants); :func:`packing_report` gives the
numbers ``structures/README.md`` states (shortest intermolecular contacts, bond lengths,
molecules intact). Atoms in, numbers or Atoms out; no calculators, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from interphase_dft.builders.units import UNIT_BONDS, rigid_units

#: shortest intermolecular distance (Angstrom) the packing search pushes towards: below it
#: the repulsion exp(-(d - CONTACT) / SOFTNESS) grows steeply (S...S van der Waals contact
#: is 3.3-3.6 A, twice the Bondi radius of S = 3.6 A)
CONTACT = 3.4
SOFTNESS = 0.15


def inversion_pair(molecule: Atoms, cell: np.ndarray, centre: np.ndarray,
                   rotvec: np.ndarray) -> Atoms:
    """Two copies of ``molecule`` related by inversion through the origin of ``cell``.

    Parameters
    ----------
    molecule
        The molecule, centred at the origin (Cartesian Angstrom).
    cell
        3x3 cell matrix (rows are lattice vectors, Angstrom).
    centre
        Fractional coordinates of the first molecule's centre; the second sits at -centre.
    rotvec
        Rotation vector (radians, :class:`scipy.spatial.transform.Rotation`) applied to
        ``molecule`` before it is moved to ``centre``.

    Returns
    -------
    Atoms
        ``2 * len(molecule)`` atoms, periodic, positions not wrapped (space group P-1).
    """
    cell = np.asarray(cell, float)
    first = molecule.positions @ Rotation.from_rotvec(rotvec).as_matrix().T
    first = first + np.asarray(centre, float) @ cell
    symbols = molecule.get_chemical_symbols() * 2
    return Atoms(symbols, positions=np.vstack([first, -first]), cell=cell, pbc=True)


def _neighbour_shifts(cell: np.ndarray, reach: float) -> np.ndarray:
    """Integer lattice shifts whose translation can bring atoms within ``reach`` Angstrom."""
    recip = np.linalg.inv(cell).T  # rows: reciprocal vectors without 2 pi
    n = np.ceil(reach * np.linalg.norm(recip, axis=1)).astype(int) + 1
    grid = np.mgrid[-n[0]:n[0] + 1, -n[1]:n[1] + 1, -n[2]:n[2] + 1].reshape(3, -1).T
    return grid


def _pair_distances(molecule: np.ndarray, cell: np.ndarray, x: np.ndarray,
                    shifts: np.ndarray) -> np.ndarray:
    """Distances from the first molecule to every other molecule instance (Angstrom)."""
    first = molecule @ Rotation.from_rotvec(x[3:]).as_matrix().T + x[:3] @ cell
    trans = shifts @ cell
    others_same = first[None] + trans[np.any(shifts != 0, axis=1)][:, None]
    others_inv = -first[None] + trans[:, None]
    others = np.vstack([others_same.reshape(-1, 3), others_inv.reshape(-1, 3)])
    return np.sqrt(((first[:, None, :] - others[None]) ** 2).sum(-1))


def pack_inversion_pair(molecule: Atoms, cell: np.ndarray, *, n_trials: int = 300,
                        n_refine: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Centre and orientation of a molecule pair (P-1, inversion) with the widest contacts.

    Rule: minimise the repulsion sum over intermolecular pairs closer than 6 A of
    exp(-(d - :data:`CONTACT`) / :data:`SOFTNESS`) over the centre (fractional, in
    [0, 1/2)^3) and the rotation vector; ``n_trials`` random starts (``numpy`` generator with
    ``seed``), the ``n_refine`` best refined by Nelder-Mead; the lowest result is returned.
    The cell is kept (its parameters are the experimental ones).

    Returns
    -------
    (centre, rotvec)
        Fractional centre of the first molecule and its rotation vector (radians), as taken
        by :func:`inversion_pair`.
    """
    cell = np.asarray(cell, float)
    mol = molecule.positions - molecule.positions.mean(axis=0)
    shifts = _neighbour_shifts(cell, 2 * np.linalg.norm(mol, axis=1).max() + 6.0)

    def repulsion(x: np.ndarray) -> float:
        d = _pair_distances(mol, cell, x, shifts)
        d = d[d < 6.0]
        return float(np.exp(-(d - CONTACT) / SOFTNESS).sum())

    rng = np.random.default_rng(seed)
    starts = [np.concatenate([rng.random(3) * 0.5,
                              Rotation.random(random_state=int(rng.integers(2**31))).as_rotvec()])
              for _ in range(n_trials)]
    ranked = sorted(starts, key=repulsion)[:n_refine]
    results = [minimize(repulsion, x0, method="Nelder-Mead",
                        options={"maxiter": 3000, "xatol": 1e-6, "fatol": 1e-9})
               for x0 in ranked]
    best = min(results, key=lambda r: r.fun)
    return np.asarray(best.x[:3], float), np.asarray(best.x[3:], float)


@dataclass(frozen=True)
class PackingReport:
    """Geometry of a molecular crystal (Angstrom).

    Attributes
    ----------
    n_molecules : molecules in the cell (connected components under the bond rule)
    molecule_sizes : atoms per molecule, sorted
    shortest_contact : shortest distance between atoms of different molecules (any images)
    shortest_s_s : the same between S atoms only (None without S)
    bond_lengths : sorted bonded-pair lengths inside the molecules
    density : g/cm^3
    """

    n_molecules: int
    molecule_sizes: list[int]
    shortest_contact: float
    shortest_s_s: float | None
    bond_lengths: list[float]
    density: float


def packing_report(atoms: Atoms, bonds: dict[tuple[str, str], float] = UNIT_BONDS
                   ) -> PackingReport:
    """Molecules, shortest intermolecular contacts and bond lengths of ``atoms``.

    Molecules are the connected components of the bond rule ``bonds`` (pair -> longest bond,
    Angstrom; default P-S <= 2.4 A), made whole across the cell; every periodic image of every
    molecule other than the molecule itself counts as another molecule.
    """
    units = rigid_units(atoms, bonds)
    symbols = np.array(atoms.get_chemical_symbols())
    cell = np.asarray(atoms.cell[:], float)
    reach = max(np.ptp(pos, axis=0).max() for _, pos in units) + 6.0
    shifts = _neighbour_shifts(cell, reach)
    trans = shifts @ cell
    best, best_ss = np.inf, np.inf
    for a, (idx_a, pos_a) in enumerate(units):
        for b, (idx_b, pos_b) in enumerate(units):
            keep = np.any(shifts != 0, axis=1) if a == b else np.ones(len(shifts), bool)
            other = (pos_b[None] + trans[keep][:, None]).reshape(-1, 3)
            sym_other = np.tile(symbols[idx_b], int(keep.sum()))
            d = np.sqrt(((pos_a[:, None, :] - other[None]) ** 2).sum(-1))
            best = min(best, float(d.min()))
            ss = (symbols[idx_a][:, None] == "S") & (sym_other[None] == "S")
            if ss.any():
                best_ss = min(best_ss, float(d[ss].min()))
    lengths = []
    for idx, pos in units:
        d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                pair = (symbols[idx[i]], symbols[idx[j]])
                cut = max(bonds.get(pair, 0.0), bonds.get(pair[::-1], 0.0))
                if d[i, j] <= cut:
                    lengths.append(float(d[i, j]))
    mass = atoms.get_masses().sum() * 1.66053907e-24  # g
    return PackingReport(
        n_molecules=len(units), molecule_sizes=sorted(len(i) for i, _ in units),
        shortest_contact=best, shortest_s_s=None if not np.isfinite(best_ss) else best_ss,
        bond_lengths=sorted(lengths), density=float(mass / (atoms.get_volume() * 1e-24)),
    )
