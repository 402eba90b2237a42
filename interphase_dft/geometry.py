"""Minimum-image displacements and distances: the one rule every module uses.

A displacement between two positions of one cell is reduced to its shortest periodic image
along the cell's periodic directions (``atoms.pbc``), as the band interpolation treats it.
Builders of slab and interface cells measure distances in the plane only
(:data:`IN_PLANE`), so a film never sees its own image across the vacuum. Distances in
Angstrom.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

#: periodic along the two in-plane cell vectors only (slabs and interfaces)
IN_PLANE = (True, True, False)


def mic_vectors(atoms: Atoms, vectors: ArrayLike, mic: bool = True) -> np.ndarray:
    """``vectors`` (any shape ending in 3) as their shortest periodic images along
    ``atoms.pbc``; unchanged when ``mic`` is False or the cell has no periodic direction.
    The result has the input's shape."""
    from ase.geometry import find_mic

    v = np.asarray(vectors, float)
    if not mic or not np.any(atoms.pbc):
        return v.copy()
    out, _ = find_mic(v.reshape(-1, 3), atoms.cell, atoms.pbc)
    return out.reshape(v.shape)


def nearest_image(atoms: Atoms, origin: ArrayLike, point: ArrayLike) -> np.ndarray:
    """The periodic image of ``point`` nearest to ``origin`` (along ``atoms.pbc``), as a
    position: a hop from ``origin`` to it is the short one, also across the cell boundary,
    so a straight-line interpolation between the two follows the hop."""
    o = np.asarray(origin, float)
    return o + mic_vectors(atoms, np.asarray(point, float) - o)


def mic_distance(atoms: Atoms, p: ArrayLike, q: ArrayLike, mic: bool = True) -> float:
    """Distance from position ``p`` to position ``q`` (minimum image if ``mic``)."""
    return float(np.linalg.norm(mic_vectors(atoms, np.asarray(q, float) - np.asarray(p, float),
                                            mic)))


def displacements(a: Atoms, b: Atoms, mic: bool = True) -> np.ndarray:
    """Length of every atom's move from ``a`` to ``b`` (same atoms, same order), shape (N,)."""
    return np.linalg.norm(mic_vectors(a, b.positions - a.positions, mic), axis=1)


def distances_from(atoms: Atoms, point: ArrayLike, others: ArrayLike,
                   pbc: Sequence[bool] | None = None) -> np.ndarray:
    """Distances from ``point`` to each of ``others`` (positions, shape (N, 3)), minimum image
    along ``pbc`` (default ``atoms.pbc``; builders pass :data:`IN_PLANE`)."""
    from ase.geometry import get_distances

    _, d = get_distances(np.atleast_2d(np.asarray(point, float)), np.atleast_2d(others),
                         cell=atoms.cell, pbc=atoms.pbc if pbc is None else pbc)
    return d[0]
