"""Lattice-match plans at a required side thickness, and the atomic planes of a side.

Structures in, plans and cells out (no calculators). Lengths in Angstrom.

Rules
-----
- Thickness of a side = extent along z of its atoms (rigid units expanded); atomic planes =
  groups of atoms whose sorted heights chain with steps <= ``PLANE_TOL``.
- For every plan of a one-layer ZSL search, each side gets the fewest d_hkl layers (of its
  termination) that reach ``min_thickness`` and ``min_planes``; the plans are ranked by
  :data:`RANK_RULE`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.builders.interfaces import InterfaceCandidate, build_plan
from interphase_dft.builders.lattice_match import Plan, Side
from interphase_dft.builders.slab_properties import POLAR_TOL, dipole_density
from interphase_dft.builders.units import count_atoms, expand_units
from interphase_dft.errors import NoMatchError, StructureError

PLANE_TOL = 0.5  # Angstrom: atoms whose heights chain within this are one atomic plane
MAX_LAYERS = 16  # d_hkl units per side searched before giving up
BUILD_VACUUM = 10.0  # Angstrom, vacuum of the as-built cell (replaced by the caller)
RANK_RULE = ("cells ranked by (number of polar sides at the required thickness, atoms at "
             "that thickness, strain, Miller indices, termination); choice 0 = the smallest "
             "cell without a polar side (formal-charge dipole along z above "
             "slab_properties.POLAR_TOL per in-plane area)")


def atomic_planes(heights: np.ndarray, tol: float = PLANE_TOL) -> list[np.ndarray]:
    """Indices of ``heights`` grouped into atomic planes, bottom to top.

    Atoms belong to one plane when their sorted heights chain with steps <= ``tol`` A.
    """
    h = np.asarray(heights, float)
    if h.size == 0:
        return []
    order = np.argsort(h)
    breaks = np.flatnonzero(np.diff(h[order]) > tol) + 1
    return [np.sort(g) for g in np.split(order, breaks)]


def side_geometry(atoms: Atoms, side: int) -> tuple[float, int]:
    """(thickness in Angstrom, number of atomic planes) of side 0 (A) or 1 (B)."""
    z = atoms.positions[atoms.arrays["side"] == side, 2]
    return float(np.ptp(z)) if z.size else 0.0, len(atomic_planes(z))


def _slab_geometry(side: Side, hkl: tuple[int, int, int], shift: float, layers: int,
                   cache: dict) -> tuple[float, int, Any, float]:
    """(thickness A, planes, pymatgen slab, formal-charge dipole per area e/A) of a
    ``layers``-thick (hkl) slab of ``side``."""
    key = (side.name, hkl, round(shift, 6), layers)
    if key not in cache:
        thick = dataclasses.replace(side, layers=layers)
        slab = thick.slabs(hkl).get_slab(shift=shift)
        atoms = expand_units(slab.get_orthogonal_c_slab(), side.table)
        z = atoms.positions[:, 2]
        cache[key] = (float(np.ptp(z)), len(atomic_planes(z)), slab, dipole_density(atoms))
    return cache[key]


def _layers_for(side: Side, hkl: tuple[int, int, int], shift: float, min_thickness: float,
                min_planes: int, cache: dict, start: int = 1) -> int:
    """Fewest d_hkl layers (>= ``start``) reaching ``min_thickness`` and ``min_planes``."""
    for n in range(start, MAX_LAYERS + 1):
        t, p, _, _ = _slab_geometry(side, hkl, shift, n, cache)
        if t >= min_thickness - 1e-6 and p >= min_planes:
            return n
    raise NoMatchError(f"{side.name}{hkl} does not reach {min_thickness} A in {MAX_LAYERS} "
                       "layers; lower structure.interface_min_thickness")


def _scaled_atoms(side: Side, hkl: tuple[int, int, int], slab1: Any, layers: int,
                  cell_area: float, cache: dict) -> int:
    """Atoms of the ``layers``-thick slab over an in-plane supercell of ``cell_area``."""
    _, _, slab, _ = _slab_geometry(side, hkl, float(slab1.shift), layers, cache)
    area = float(np.linalg.norm(np.cross(*slab.lattice.matrix[:2])))
    return count_atoms(slab, side.table) * round(cell_area / area)


def rank_plans(plans: list[Plan], a: Side, b: Side, strained_side: str, min_thickness: float,
          min_planes: int) -> list[tuple[int, Plan, int, int]]:
    """[(atoms at the required thickness, plan, layers_a, layers_b)] sorted by RANK_RULE;
    symmetry-equivalent plans (same key values) appear once."""
    cache: dict = {}
    strained_b = strained_side == "b"
    out, seen = [], set()
    for plan in plans:
        sub_side, film_side = (a, b) if strained_b else (b, a)
        h_sub, h_film = (plan.miller_a, plan.miller_b) if strained_b else (plan.miller_b,
                                                                           plan.miller_a)
        n_sub = _layers_for(sub_side, h_sub, float(plan.substrate_slab.shift), min_thickness,
                            min_planes, cache)
        n_film = _layers_for(film_side, h_film, float(plan.film_slab.shift), min_thickness,
                             min_planes, cache)
        atoms = (_scaled_atoms(sub_side, h_sub, plan.substrate_slab, n_sub,
                               _area2(plan.match.substrate_sl_vectors), cache)
                 + _scaled_atoms(film_side, h_film, plan.film_slab, n_film,
                                 _area2(plan.match.film_sl_vectors), cache))
        la, lb = (n_sub, n_film) if strained_b else (n_film, n_sub)
        polar = sum(_slab_geometry(side, hkl, float(slab1.shift), n, cache)[3] > POLAR_TOL
                    for side, hkl, slab1, n in ((sub_side, h_sub, plan.substrate_slab, n_sub),
                                                (film_side, h_film, plan.film_slab, n_film)))
        key = (atoms, plan.strain, plan.miller_a, plan.miller_b, plan.term, round(plan.area, 2))
        if key in seen:
            continue
        seen.add(key)
        out.append((atoms, plan, la, lb, polar))
    out.sort(key=lambda r: (r[4], r[0], r[1].strain, str(r[1].miller_a), str(r[1].miller_b),
                            str(r[1].term)))
    return [r[:4] for r in out]


def _area2(vecs: Any) -> float:
    v = np.asarray(vecs, float)
    return float(np.linalg.norm(np.cross(v[0], v[1])))


def build_thick(plan: Plan, a: Side, b: Side, la: int, lb: int, strained_side: str,
                min_thickness: float, min_planes: int,
                max_atoms: int) -> tuple[InterfaceCandidate, int, int]:
    """Build ``plan`` with ``la``/``lb`` layers, adding layers to a side whose real atoms
    (rigid units expanded) fall short of the thickness; returns (candidate, la, lb)."""
    strained_b = strained_side == "b"
    for _ in range(4):
        sa, sb = dataclasses.replace(a, layers=la), dataclasses.replace(b, layers=lb)
        sub, film = (sa, sb) if strained_b else (sb, sa)
        h_sub, h_film = (plan.miller_a, plan.miller_b) if strained_b else (plan.miller_b,
                                                                           plan.miller_a)
        thick = dataclasses.replace(
            plan, substrate_slab=sub.slabs(h_sub).get_slab(shift=plan.substrate_slab.shift),
            film_slab=film.slabs(h_film).get_slab(shift=plan.film_slab.shift))
        cand = build_plan(thick, sa, sb, strained_side=strained_side, gap=2.0,
                          vacuum=BUILD_VACUUM)
        (ta, pa), (tb, pb) = side_geometry(cand.atoms, 0), side_geometry(cand.atoms, 1)
        short_a = ta < min_thickness - 1e-6 or pa < min_planes
        short_b = tb < min_thickness - 1e-6 or pb < min_planes
        if not (short_a or short_b):
            if len(cand.atoms) > max_atoms:
                raise NoMatchError(f"the {a.name}|{b.name} cell needs {len(cand.atoms)} atoms "
                                   f"for {min_thickness} A per side (max_atoms={max_atoms}): "
                                   "raise max_atoms (--max-atoms)")
            return cand, la, lb
        la, lb = la + int(short_a), lb + int(short_b)
    raise StructureError(f"{a.name}|{b.name}: sides stay thinner than {min_thickness} A")
