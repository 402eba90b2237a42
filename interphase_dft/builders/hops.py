"""Li hops across an A|B migration cell: the vacancy crossing and its endpoints.

Atoms in, Atoms out (no calculators). Lengths in Angstrom. Interstitial candidates are in
:mod:`interphase_dft.builders.interstitial`.

Rules
-----
- Interface layer of a side: its atoms within ``layer_depth`` of the side's interface plane
  (highest A atom, lowest B atom).
- Vacancy crossing: Li lattice sites i (A) and j (B) in the interface layers at most
  ``max_hop`` apart (shortest in-plane periodic image). initial = Li on i, j empty; final =
  the same Li on j, i empty. Every other atom, the atom order and the FixAtoms constraint are
  identical in the two endpoints; the hopping Li keeps its index (``info['li_index']``).
- Endpoint check: the shortest distance from the hopping Li to any other atom is bulk-like
  when within ``tol`` (10 %) of a bulk Li-host distance of the phase of its site
  (:func:`~interphase_dft.builders.contact.li_host_reference`: nearest non-Li and nearest Li
  neighbour of Li in that bulk).
- Pairs are reduced to symmetry-distinct ones by a fingerprint (hop distance and the
  neighbour shells of i and j within 4 A, rounded to 0.05 A) and chosen by :data:`PAIR_RULE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from interphase_dft.builders.contact import bulk_like, li_host_reference
from interphase_dft.builders.migration import MigrationCell
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import InputError
from interphase_dft.geometry import IN_PLANE, distances_from, nearest_image

MAX_HOP = 3.5  # Angstrom
LAYER_DEPTH = 2.0  # Angstrom
BULK_TOL = 0.10  # fraction
_SHELL = 4.0  # Angstrom: neighbour shell of the pair fingerprint
PAIR_RULE = ("symmetry-distinct pairs ranked by (both endpoints bulk-like first, shortest "
             "hop, smallest largest relative deviation of the endpoints' shortest Li-host "
             "distance from the nearest bulk reference, lowest indices)")


@dataclass
class Hop:
    """One Li hop: two endpoints with the same atoms, order and constraints.

    ``meta`` is JSON-safe and is also stored in ``initial.info`` and ``final.info``;
    its keys are listed in :func:`cell_meta` and the builders.
    """

    mechanism: str
    initial: Atoms
    final: Atoms
    li_index: int
    hop_distance: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VacancyPair:
    """One candidate vacancy crossing (indices of the full migration cell)."""

    i: int
    j: int
    hop_distance: float
    li_host_initial: float
    li_host_final: float
    nearest_initial: str
    nearest_final: str
    bulk_like: bool
    deviation: float
    multiplicity: int


def cell_meta(cell: MigrationCell) -> dict[str, Any]:
    """The cell's metadata every hop records (JSON-safe): phases, planes, terminations,
    strain, thickness, planes and formal dipole of each side, registry, vacuum, dipole
    correction and the bulk Li-host reference distances of both phases (Angstrom)."""
    keys = ("phase_a", "phase_b", "miller_a", "miller_b", "termination_a", "termination_b",
            "strain", "max_strain", "strained_side", "layers_a", "layers_b", "thickness_a_A",
            "thickness_b_A", "planes_a", "planes_b", "gap_A", "shift", "vacuum_A",
            "dipole_correction", "area_A2", "inplane_lengths_A", "fixed_fraction",
            "registry_rule", "min_thickness_A", "dipole_a_e_per_A", "dipole_b_e_per_A",
            "polar_sides")
    meta = {k: cell.info[k] for k in keys if k in cell.info}
    meta["bulk_li_host_A"] = {cell.phase_a: li_host_reference(cell.phase_a),
                              cell.phase_b: li_host_reference(cell.phase_b)}
    return meta


def interface_layer(atoms: Atoms, side: int, depth: float = LAYER_DEPTH,
                    element: str | None = "Li") -> np.ndarray:
    """Indices of ``element`` atoms (all when None) of ``side`` within ``depth`` A of that
    side's interface plane (highest A atom / lowest B atom); A is the bottom side."""
    s = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    plane = z[s == 0].max() if side == 0 else z[s == 1].min()
    mask = (s == side) & (np.abs(z - plane) <= depth + 1e-6)
    if element is not None:
        mask &= np.array(atoms.get_chemical_symbols()) == element
    return np.flatnonzero(mask)


def li_host_distance(atoms: Atoms, index: int) -> tuple[float, str]:
    """Shortest distance (Angstrom) from atom ``index`` to any other atom, and that atom's
    symbol."""
    d = distances_from(atoms, atoms.positions[index], atoms.positions, IN_PLANE)
    d[index] = np.inf
    k = int(np.argmin(d))
    return float(d[k]), atoms[k].symbol


def _fingerprint(atoms: Atoms, point: np.ndarray, skip: tuple[int, ...]) -> tuple:
    d = distances_from(atoms, point, atoms.positions, IN_PLANE)
    sym = atoms.get_chemical_symbols()
    return tuple(sorted((sym[k], round(float(d[k]) / 0.05)) for k in range(len(atoms))
                        if k not in skip and d[k] < _SHELL))


def vacancy_pairs(cell: MigrationCell, *, max_hop: float = MAX_HOP,
                  layer_depth: float = LAYER_DEPTH, tol: float = BULK_TOL) -> list[VacancyPair]:
    """Symmetry-distinct vacancy crossings of ``cell``, ranked by :data:`PAIR_RULE`.

    Raises
    ------
    InputError : a side without Li (use the interstitial mechanism), or no Li pair within
        ``max_hop`` (the crossing goes through a gap site: interstitial mechanism).
    """
    atoms = cell.atoms
    for s, name in ((0, cell.phase_a), (1, cell.phase_b)):
        if "Li" not in atoms[atoms.arrays["side"] == s].get_chemical_symbols():
            raise InputError(f"{name} has no Li lattice sites, so {cell.phase_a}|{cell.phase_b} "
                             "has no vacancy crossing: use the interstitial mechanism "
                             "(--mechanism interstitial)")
    ia, ib = interface_layer(atoms, 0, layer_depth), interface_layer(atoms, 1, layer_depth)
    refs = (li_host_reference(cell.phase_a), li_host_reference(cell.phase_b))
    groups: dict[tuple, list[VacancyPair]] = {}
    for i in ia:
        dist = distances_from(atoms, atoms.positions[i], atoms.positions[ib], IN_PLANE)
        for j, hop in zip(ib, dist, strict=True):
            if hop <= max_hop:
                pair = _pair(atoms, int(i), int(j), float(hop), refs, tol)
                key = (round(hop / 0.05), _fingerprint(atoms, atoms.positions[i], (i, j)),
                       _fingerprint(atoms, atoms.positions[j], (i, j)))
                groups.setdefault(key, []).append(pair)
    if not groups:
        closest = min((float(distances_from(atoms, atoms.positions[i], atoms.positions[ib],
                                              IN_PLANE).min())
                       for i in ia), default=float("nan"))
        raise InputError(
            f"no Li lattice sites of {cell.phase_a} and {cell.phase_b} within {max_hop} A "
            f"across the interface (closest pair {closest:.2f} A): the crossing goes through "
            "a gap site, which is the interstitial mechanism (--mechanism interstitial)")
    pairs = [VacancyPair(**{**vars(g[0]), "multiplicity": len(g)}) for g in groups.values()]
    pairs.sort(key=lambda p: (not p.bulk_like, round(p.hop_distance, 3), round(p.deviation, 4),
                              p.i, p.j))
    return pairs


def _pair(atoms: Atoms, i: int, j: int, hop: float, refs: tuple[dict, dict],
          tol: float) -> VacancyPair:
    """The endpoint distances of the crossing i -> j (both vacancies excluded)."""
    sym = atoms.get_chemical_symbols()
    out = []
    for site, ref in ((i, refs[0]), (j, refs[1])):
        d = distances_from(atoms, atoms.positions[site], atoms.positions, IN_PLANE)
        d[[i, j]] = np.inf
        k = int(np.argmin(d))
        dev = min(abs(d[k] - r) / r for r in ref.values() if r is not None)
        out.append((float(d[k]), sym[k], bulk_like(float(d[k]), ref, tol), float(dev)))
    (di, si, oki, devi), (dj, sj, okj, devj) = out
    return VacancyPair(i, j, hop, di, dj, si, sj, oki and okj, max(devi, devj), 1)


def vacancy_hop(cell: MigrationCell, *, max_hop: float = MAX_HOP,
                layer_depth: float = LAYER_DEPTH, tol: float = BULK_TOL,
                pair: int = 0) -> Hop:
    """The vacancy crossing A -> B of ``cell`` (``pair`` indexes :func:`vacancy_pairs`).

    Returns
    -------
    Hop with ``meta`` keys: mechanism, li_index, hop_distance_A, site_initial/site_final
    (side, phase, index in the full cell, depth below the interface plane), li_host_initial_A,
    li_host_final_A (shortest Li-host distance), nearest_initial/final (its symbol),
    bulk_like_initial/final, bulk_tolerance, fixed (endpoint indices), n_fixed, pair_rule,
    n_distinct_pairs, pairs (summary of every distinct pair) and :func:`cell_meta`.
    """
    pairs = vacancy_pairs(cell, max_hop=max_hop, layer_depth=layer_depth, tol=tol)
    if not 0 <= pair < len(pairs):
        raise InputError(f"pair={pair} but {len(pairs)} distinct pairs exist; "
                         f"use 0..{len(pairs) - 1}")
    p = pairs[pair]
    atoms = cell.atoms
    keep = np.ones(len(atoms), bool)
    keep[p.j] = False
    initial = _subset(atoms, keep)
    li = p.i - int(p.i > p.j)
    final = initial.copy()
    # the periodic image of site j nearest to site i: the hop is the short one, also when
    # the pair straddles the in-plane cell boundary (a straight-line interpolation follows it)
    final.positions[li] = nearest_image(atoms, atoms.positions[p.i], atoms.positions[p.j])
    z = atoms.positions[:, 2]
    planes = (z[atoms.arrays["side"] == 0].max(), z[atoms.arrays["side"] == 1].min())
    meta = cell_meta(cell)
    meta.update(
        mechanism="vacancy", li_index=li, hop_distance_A=round(p.hop_distance, 4),
        site_initial={"side": "A", "phase": cell.phase_a, "cell_index": p.i,
                      "depth_A": round(float(planes[0] - z[p.i]), 4)},
        site_final={"side": "B", "phase": cell.phase_b, "cell_index": p.j,
                    "depth_A": round(float(z[p.j] - planes[1]), 4)},
        li_host_initial_A=round(p.li_host_initial, 4), li_host_final_A=round(p.li_host_final, 4),
        nearest_initial=p.nearest_initial, nearest_final=p.nearest_final,
        bulk_like_initial=bool(bulk_like(p.li_host_initial, li_host_reference(cell.phase_a), tol)),
        bulk_like_final=bool(bulk_like(p.li_host_final, li_host_reference(cell.phase_b), tol)),
        bulk_tolerance=tol, max_hop_A=max_hop, layer_depth_A=layer_depth, pair_rule=PAIR_RULE,
        pair=pair, n_distinct_pairs=len(pairs), pairs=[_pair_summary(q) for q in pairs],
        fixed=fixed_indices(initial), n_fixed=len(fixed_indices(initial)), relaxed=False)
    return _hop("vacancy", initial, final, li, p.hop_distance, meta)


def _pair_summary(p: VacancyPair) -> dict[str, Any]:
    return {"i": p.i, "j": p.j, "hop_distance_A": round(p.hop_distance, 4),
            "li_host_initial_A": round(p.li_host_initial, 4),
            "li_host_final_A": round(p.li_host_final, 4), "bulk_like": p.bulk_like,
            "multiplicity": p.multiplicity}


def _subset(atoms: Atoms, keep: np.ndarray) -> Atoms:
    """``atoms[keep]`` with FixAtoms renumbered and ``info``/``arrays['side']`` kept."""
    fixed = set(fixed_indices(atoms))
    new_index = np.cumsum(keep) - 1
    out = atoms[keep]
    out.set_constraint()
    out.set_constraint(FixAtoms(indices=[int(new_index[k]) for k in sorted(fixed) if keep[k]]))
    out.info = dict(atoms.info)
    return out


def _hop(mechanism: str, initial: Atoms, final: Atoms, li: int, distance: float,
         meta: dict[str, Any]) -> Hop:
    """The :class:`Hop`; ``meta`` and ``li_index`` go into both endpoints' ``info``."""
    fixed = fixed_indices(initial)
    meta = {**meta, "n_atoms": len(initial)}
    for k, at in enumerate((initial, final)):
        at.info = {key: v for key, v in at.info.items() if not isinstance(v, dict)}
        side = at.arrays["side"]
        at.info.update(mechanism=mechanism, li_index=li, endpoint=("initial", "final")[k],
                       n_atoms=len(at), n_atoms_a=int((side == 0).sum()),
                       n_atoms_b=int((side == 1).sum()), fixed=fixed, n_fixed=len(fixed))
    return Hop(mechanism, initial, final, li, float(distance), dict(meta))
