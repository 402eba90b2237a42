"""Bulk reference distances and the geometric (hard-contact) registry of an interface.

Atoms in, numbers out (no calculators). Lengths in Angstrom.

Rules
-----
- Bulk Li-host distances of a phase: ``nearest_non_li`` = shortest Li-X distance (X not Li)
  and ``nearest_li`` = shortest Li-Li distance over all Li of the bulk cell.
- Contact distance r_XY of a species pair across an interface: the shortest X-Y distance in
  either bulk (the smaller when both have it), else the sum of ASE covalent radii.
- Contact gap of a registry: the smallest gap (lowest B atom - highest A atom) at which every
  A-B pair is at least r_XY apart.
- Contact registry: on a grid of in-plane shifts (step <= ``step`` A along each in-plane
  vector) the shift with the smallest contact gap; ties within 0.05 A go to the most A-B
  pairs within 1.15 r_XY, then to the smallest shift. This is the registry used when no
  energies are available; :func:`interphase_dft.recipes.registry.registry_scan` replaces it
  by the lowest-energy one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from ase import Atoms

CONTACT_RULE = ("in-plane shift with the smallest gap at which every A-B pair is >= r_XY "
                "(shortest bulk X-Y distance of either phase, else covalent radii sum); ties "
                "-> most A-B pairs within 1.15 r_XY, then smallest shift")
_REACH = 4.0  # Angstrom: atoms deeper than this below an interface plane are ignored


def pair_distances(bulk: Atoms, cutoff: float = 6.0) -> dict[tuple[str, str], float]:
    """Shortest distance of every species pair (both orders) in a periodic cell, Angstrom."""
    from ase.neighborlist import neighbor_list

    sym = np.array(bulk.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", bulk, cutoff)
    out: dict[tuple[str, str], float] = {}
    for x, y, dist in zip(sym[i], sym[j], d, strict=True):
        key = (str(x), str(y))
        out[key] = min(out.get(key, np.inf), float(dist))
    return out


@functools.cache
def li_host_reference(phase: str) -> dict[str, float | None]:
    """Bulk Li-host distances of ``phase`` (Angstrom): ``nearest_non_li`` and ``nearest_li``
    (None when the phase has no Li or only Li)."""
    from interphase_dft.phases import get_bulk

    pairs = pair_distances(get_bulk(phase))
    non_li = [d for (x, y), d in pairs.items() if x == "Li" and y != "Li"]
    li = pairs.get(("Li", "Li"))
    return {"nearest_non_li": round(min(non_li), 4) if non_li else None,
            "nearest_li": round(li, 4) if li is not None else None}


def bulk_like(distance: float, reference: dict[str, float | None], tol: float = 0.10) -> bool:
    """True when ``distance`` is within ``tol`` (fraction) of either reference distance."""
    return any(r is not None and abs(distance - r) <= tol * r for r in reference.values())


def contact_distances(bulk_a: Atoms, bulk_b: Atoms) -> dict[tuple[str, str], float]:
    """r_XY for every species pair X of A, Y of B (see module rules), Angstrom."""
    from ase.data import atomic_numbers, covalent_radii

    pa, pb = pair_distances(bulk_a), pair_distances(bulk_b)
    out: dict[tuple[str, str], float] = {}
    for x in set(bulk_a.get_chemical_symbols()):
        for y in set(bulk_b.get_chemical_symbols()):
            known = [p[(x, y)] for p in (pa, pb) if (x, y) in p]
            out[(x, y)] = (min(known) if known else
                           float(covalent_radii[atomic_numbers[x]]
                                 + covalent_radii[atomic_numbers[y]]))
    return out


def _facing(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices of A atoms within _REACH below A's top and B atoms within _REACH above B's
    bottom, and their depths (>= 0) from those planes."""
    side = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    top_a, bot_b = z[side == 0].max(), z[side == 1].min()
    ia = np.flatnonzero((side == 0) & (z > top_a - _REACH))
    ib = np.flatnonzero((side == 1) & (z < bot_b + _REACH))
    return ia, ib, top_a - z[ia], z[ib] - bot_b


def _lateral(atoms: Atoms, ia: np.ndarray, ib: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shortest in-plane distance (periodic images) of every (shift, A atom, B atom)."""
    cell2 = np.asarray(atoms.cell[:2, :2])
    img = np.array([(m, n) for m in (-1, 0, 1) for n in (-1, 0, 1)], float) @ cell2
    base = atoms.positions[ib, None, :2] - atoms.positions[None, ia, :2]  # (nb, na, 2)
    out = np.empty((len(shifts), len(ib), len(ia)))
    for start in range(0, len(shifts), 32):  # chunks bound the memory
        sv = shifts[start:start + 32] @ cell2
        vec = base[None, :, :, None, :] + sv[:, None, None, None, :] + img[None, None, None]
        out[start:start + 32] = np.sqrt((vec ** 2).sum(-1)).min(-1)
    return out  # (ns, nb, na)


def contact_gaps(atoms: Atoms, shifts: np.ndarray,
                 r_xy: dict[tuple[str, str], float]) -> tuple[np.ndarray, np.ndarray]:
    """Contact gap (Angstrom) and the number of A-B pairs within 1.15 r_XY at that gap, for
    every in-plane shift of B (rows of ``shifts``, fractions, relative to B's position)."""
    ia, ib, da, db = _facing(atoms)
    sym = np.array(atoms.get_chemical_symbols())
    r = np.array([[r_xy[(sym[a], sym[b])] for a in ia] for b in ib])  # (nb, na)
    rho = _lateral(atoms, ia, ib, np.atleast_2d(shifts))
    depth = da[None, :] + db[:, None]
    need = np.where(rho < r, np.sqrt(np.clip(r ** 2 - rho ** 2, 0, None)) - depth, -np.inf)
    gaps = np.maximum(need.reshape(len(rho), -1).max(1), 0.5)
    dist = np.sqrt(rho ** 2 + (gaps[:, None, None] + depth) ** 2)
    contacts = (dist <= 1.15 * r).reshape(len(rho), -1).sum(1)
    return gaps, contacts


def shift_grid(atoms: Atoms, step: float = 0.5) -> np.ndarray:
    """Fractional in-plane shifts, at most ``step`` A apart along each in-plane vector."""
    n1, n2 = (max(1, int(np.ceil(L / step))) for L in atoms.cell.lengths()[:2])
    return np.array([(i / n1, j / n2) for i in range(n1) for j in range(n2)])


def contact_registry(atoms: Atoms, bulk_a: Atoms, bulk_b: Atoms, *, step: float = 0.5,
                     shifts: Sequence[Sequence[float]] | None = None
                     ) -> tuple[tuple[float, float], float]:
    """(shift, gap) of the contact registry (module rules) of an A-bottom interface cell.

    ``shift`` is relative to B's current position; ``gap`` in Angstrom.
    """
    grid = np.asarray(shifts, float) if shifts is not None else shift_grid(atoms, step)
    gaps, contacts = contact_gaps(atoms, grid, contact_distances(bulk_a, bulk_b))
    best = gaps.min()
    order = sorted(np.flatnonzero(gaps <= best + 0.05),
                   key=lambda k: (-contacts[k], float(np.abs(grid[k]).sum()), k))
    k = order[0]
    return (float(grid[k][0]), float(grid[k][1])), round(float(gaps[k]), 4)
