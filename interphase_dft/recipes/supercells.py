"""Bulk supercells for Li insertion: fewest atoms with every perpendicular width >= a length.

Atoms in, Atoms out (no calculators). Lengths in Angstrom.

Rules
-----
- ``'compact'``: among all supercell lattices of the conventional cell, enumerated as Hermite
  normal forms of index n = 1, 2, ..., the smallest n whose best basis has every perpendicular
  width >= ``min_length``; ties -> the largest smallest width, then enumeration order. The best
  basis of a lattice is the dual of its Minkowski-reduced reciprocal basis (it attains the
  successive minima of the reciprocal lattice, so its smallest width is the largest possible).
- ``'diagonal'``: :func:`interphase_dft.builders.sites.supercell_for` (repeats of the
  conventional cell).
- Li sites are found in the conventional cell (full symmetry) and placed in the supercell by a
  lattice translation (:func:`place_sites`).

These are builders; they belong next to ``supercell_for`` in ``builders/sites.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
from ase import Atoms

from interphase_dft.errors import InputError, StructureError

#: largest supercell index (conventional cells per supercell) searched
MAX_INDEX = 64
#: widths equal within this are a tie, Angstrom
WIDTH_TOL = 1e-6

SUPERCELL_RULE = (
    "every perpendicular width >= structure.bulk_min_length; 'compact': fewest conventional "
    "cells over all supercell lattices (Hermite normal forms), basis = dual of the "
    "Minkowski-reduced reciprocal basis, ties -> largest smallest width; 'diagonal': "
    "smallest diagonal repeat"
)


def perpendicular_widths(cell: Any) -> np.ndarray:
    """Distances between opposite faces of the cell, Angstrom (rows = cell vectors)."""
    c = np.asarray(cell, float)
    vol = abs(np.linalg.det(c))
    return np.array([vol / np.linalg.norm(np.cross(c[(i + 1) % 3], c[(i + 2) % 3]))
                     for i in range(3)])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def hermite_forms(n: int) -> Iterator[np.ndarray]:
    """Every lower-triangular Hermite normal form of determinant ``n`` (one per sublattice)."""
    for a in _divisors(n):
        for c in _divisors(n // a):
            f = n // (a * c)
            for b in range(a):  # below-diagonal entries reduced modulo their column's diagonal
                for d in range(a):
                    for e in range(c):
                        yield np.array([[a, 0, 0], [b, c, 0], [d, e, f]])


def _best_basis(vectors: np.ndarray) -> np.ndarray:
    """The basis of the lattice spanned by ``vectors`` with the largest smallest width."""
    from ase.geometry.minkowski_reduction import minkowski_reduce

    recip = np.linalg.inv(vectors).T
    reduced, _ = minkowski_reduce(recip)
    basis = np.linalg.inv(reduced).T
    if np.linalg.det(basis) < 0:
        basis = -basis
    return basis


def compact_matrix(cell: Any, min_length: float, max_index: int = MAX_INDEX) -> np.ndarray:
    """Integer matrix P (rows: supercell vectors in units of ``cell``) of the compact rule.

    Raises
    ------
    InputError
        ``min_length`` <= 0, or no supercell of index <= ``max_index`` reaches it.
    """
    if min_length <= 0:
        raise InputError(f"min_length must be > 0 Angstrom, got {min_length}")
    c = np.asarray(cell, float)
    inv = np.linalg.inv(c)
    # volume >= product of the widths (Hadamard on the reciprocal basis): smaller n cannot work
    first = max(1, int(np.floor(min_length**3 / abs(np.linalg.det(c)) - 1e-9)))
    for n in range(first, max_index + 1):
        best: tuple[float, np.ndarray] | None = None
        for h in hermite_forms(n):
            basis = _best_basis(h @ c)
            width = float(perpendicular_widths(basis).min())
            if width < min_length - WIDTH_TOL:
                continue
            if best is None or width > best[0] + WIDTH_TOL:
                best = (width, basis)
        if best is not None:
            p = np.rint(best[1] @ inv).astype(int)
            if abs(round(np.linalg.det(p))) != n:
                raise StructureError(f"supercell matrix {p.tolist()} lost its index {n}")
            return p
    raise InputError(f"no supercell of at most {max_index} cells has every width >= "
                     f"{min_length} A; lower structure.bulk_min_length")


def bulk_supercell(bulk: Atoms, min_length: float,
                   method: Literal["compact", "diagonal"] = "compact"
                   ) -> tuple[Atoms, dict[str, Any]]:
    """Supercell of ``bulk`` with every perpendicular width >= ``min_length`` Angstrom.

    Returns
    -------
    tuple
        The supercell (``info`` of ``bulk`` kept, ``info['supercell_matrix']`` added) and its
        record: ``matrix``, ``method``, ``n_cells``, ``n_atoms``, ``lengths`` and
        ``widths`` (Angstrom), ``min_length``, ``rule``.
    """
    from ase.build import make_supercell

    from interphase_dft.builders.sites import supercell_for

    if method == "diagonal":
        out = supercell_for(bulk, min_length)
        matrix = np.diag(out.info["supercell"]).astype(int)
    elif method == "compact":
        matrix = compact_matrix(bulk.cell[:], min_length)
        out = make_supercell(bulk, matrix)
        out.info = dict(bulk.info)
    else:
        raise InputError(f"bulk_supercell must be 'compact' or 'diagonal', got {method!r}")
    out.info["supercell_matrix"] = matrix.tolist()
    record = {
        "matrix": matrix.tolist(), "method": method,
        "n_cells": round(abs(np.linalg.det(matrix))), "n_atoms": len(out),
        "lengths": [round(float(x), 4) for x in out.cell.lengths()],
        "widths": [round(float(x), 4) for x in perpendicular_widths(out.cell[:])],
        "min_length": float(min_length), "rule": SUPERCELL_RULE,
    }
    return out, record


def _wrap(position: Sequence[float], cell: Any) -> np.ndarray:
    c = np.asarray(cell, float)
    frac = np.linalg.solve(c.T, np.asarray(position, float)) % 1.0
    frac[frac > 1.0 - 1e-8] = 0.0  # 1 - epsilon is the origin
    return frac @ c


def place_sites(sites: Sequence[Any], supercell: Atoms) -> list[Any]:
    """Sites of the conventional cell moved into ``supercell`` (same Cartesian point modulo
    the supercell lattice; the conventional cell's origin is the supercell's)."""
    return [dataclasses.replace(s, position=tuple(float(x) for x in
                                                  _wrap(s.position, supercell.cell[:])))
            for s in sites]


def place_vacancies(sites: Sequence[Any], supercell: Atoms, tol: float = 0.1) -> list[Any]:
    """Vacancy sites of the conventional cell with ``index`` renumbered to the supercell atom
    at the same position.

    Raises
    ------
    StructureError
        No atom of the supercell within ``tol`` Angstrom of a site.
    """
    from ase.geometry import get_distances

    out = []
    for s in sites:
        _, d = get_distances([s.position], supercell.positions, cell=supercell.cell, pbc=True)
        k = int(np.argmin(d[0]))
        if d[0, k] > tol:
            raise StructureError(f"vacancy {s.label}: no supercell atom within {tol} A")
        out.append(dataclasses.replace(s, index=k,
                                       position=tuple(float(x) for x in supercell.positions[k])))
    return out
