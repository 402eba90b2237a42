"""Lattice-match search for interfaces (pymatgen ZSL + CoherentInterfaceBuilder).

Structures in, plans out: which plane pair, termination pair and ZSL supercell match, with
their size and strain; :mod:`interphase_dft.builders.interfaces` builds the Atoms. Areas in
Angstrom^2, strains dimensionless (0.05 = 5 %).

Strain measure: the largest absolute principal stretch minus one of the in-plane deformation
that maps the strained side's supercell onto the other side's (rotation removed), i.e.
``max |lambda_i - 1|`` with ``lambda_i^2`` the eigenvalues of ``G_strained^-1 G_fixed``
(G = Gram matrix of the two in-plane supercell vectors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.builders.slabs import default_millers, validate_miller
from interphase_dft.builders.units import (
    count_atoms,
    placeholder_names,
    pseudo_structure,
    rigid_units,
)
from interphase_dft.errors import InputError, NoMatchError


def principal_strain(strained_vecs: np.ndarray, fixed_vecs: np.ndarray) -> float:
    """max |lambda - 1| of the in-plane map strained -> fixed (see module docstring)."""
    f = np.asarray(strained_vecs, float)[:2, :3]
    s = np.asarray(fixed_vecs, float)[:2, :3]
    ev = np.linalg.eigvals(np.linalg.solve(f @ f.T, s @ s.T)).real
    return float(np.max(np.abs(np.sqrt(ev) - 1.0)))


def _area(vecs: np.ndarray) -> float:
    """Area spanned by the first two vectors, Angstrom^2."""
    v = np.asarray(vecs, float)
    return float(np.linalg.norm(np.cross(v[0], v[1])))


#: SlabGenerator options of every slab cut for an interface
SLAB_KW: dict[str, Any] = dict(min_vacuum_size=3, in_unit_planes=True, center_slab=True,
                               primitive=True, reorient_lattice=False)


@dataclass
class Side:
    """One phase of the interface: its bulk with rigid units (P4S10, PS4) as pseudo-atoms,
    so that no slab cuts through them, and the planes and thickness to try."""

    name: str
    structure: Any  # pymatgen Structure with pseudo-atoms
    table: list  # rigid units of the pseudo-atoms (:func:`units.pseudo_structure`)
    names: dict[str, str]  # pseudo-atom placeholder -> formula
    millers: list[tuple[int, int, int]]
    layers: int  # slab thickness in d_hkl units
    _stats: dict[tuple[int, int, int], tuple[float, float]] = field(
        default_factory=dict, repr=False)

    @classmethod
    def of(cls, bulk: Atoms, name: str, miller: Sequence[int] | None, layers: int) -> Side:
        """The side of phase ``name`` (conventional ``bulk`` cell); ``miller=None`` tries the
        planes of :func:`~interphase_dft.builders.slabs.default_millers`."""
        millers = [validate_miller(miller)] if miller is not None else default_millers(bulk)
        structure, table = pseudo_structure(bulk, rigid_units(bulk))
        return cls(name, structure, table, placeholder_names(table, structure), millers,
                   layers)

    def slabs(self, hkl: tuple[int, int, int]) -> Any:
        """The pymatgen ``SlabGenerator`` of ``layers``-thick (hkl) slabs."""
        from pymatgen.core.surface import SlabGenerator

        return SlabGenerator(self.structure, hkl, min_slab_size=self.layers, **SLAB_KW)

    def sigma(self, hkl: tuple[int, int, int]) -> float:
        """Atoms per Angstrom^2 of the ``layers``-thick (hkl) slab (first termination)."""
        return self._slab_stats(hkl)[0]

    def area(self, hkl: tuple[int, int, int]) -> float:
        """In-plane area of the (hkl) slab cell, Angstrom^2 (the ZSL unit cell)."""
        return self._slab_stats(hkl)[1]

    def _slab_stats(self, hkl: tuple[int, int, int]) -> tuple[float, float]:
        if hkl not in self._stats:
            slab = self.slabs(hkl).get_slab()
            area = _area(slab.lattice.matrix)
            self._stats[hkl] = (count_atoms(slab, self.table) / area, area)
        return self._stats[hkl]


@dataclass
class Plan:
    """One ZSL match of one termination pair that fits the limits, not yet built."""

    n_atoms: int
    strain: float  # principal strain, rounded to 1e-6
    miller_a: tuple[int, int, int]
    miller_b: tuple[int, int, int]
    term: tuple[str, str]  # (film, substrate) termination labels of pymatgen
    match: Any  # pymatgen ZSLMatch
    substrate_slab: Any
    film_slab: Any
    area: float  # substrate supercell area, Angstrom^2


@dataclass
class Search:
    """What the lattice-match search found: plans within the limits, the best strain seen
    (with its cell size) and the plane pairs without any ZSL match."""

    plans: list[Plan] = field(default_factory=list)
    best_strain: float = np.inf
    best_strain_atoms: int = 0
    probes: list[tuple[Any, ...]] = field(default_factory=list)
    max_search: float = np.inf  # ceiling of the search size (budget.build_max_search)


def search(a: Side, b: Side, strained_b: bool, *, max_strain: float, max_atoms: int,
           max_area: float | None, limits: Any = None) -> Search:
    """Every plane pair x termination pair x ZSL match within ``max_strain`` and ``max_atoms``.

    The strained side is pymatgen's film, the other its substrate. The searched area is
    capped at 1.1 x ``max_atoms`` / (sigma_a + sigma_b), atoms per area of the two slabs
    (and at ``max_area``). ``limits`` (``CalcSettings``/``BudgetSettings``, default the
    defaults) holds the build ceilings: limits above them, or a search whose estimated size
    (:func:`zsl_comparisons`) is above ``build_max_search``, raise :class:`InputError` before
    the search starts.
    """
    from pymatgen.analysis.interfaces import CoherentInterfaceBuilder, ZSLGenerator

    from interphase_dft.validation import build_limits, ceilings

    build_limits(max_atoms=max_atoms, max_area=max_area, max_strain=max_strain,
                 settings=limits)
    found = Search(max_search=ceilings(limits).build_max_search)
    sub, film = (a, b) if strained_b else (b, a)
    pairs = []
    for ha in a.millers:
        for hb in b.millers:
            h_sub, h_film = (ha, hb) if strained_b else (hb, ha)
            area_cap = 1.1 * max_atoms / (a.sigma(ha) + b.sigma(hb))
            if max_area is not None:
                area_cap = min(area_cap, max_area)
            pairs.append((ha, hb, h_sub, h_film, area_cap))
    check_search_size(sum(zsl_comparisons(film.area(p[3]), sub.area(p[2]), p[4], max_strain)
                          for p in pairs), found.max_search, a, b, max_atoms, max_strain)
    for ha, hb, h_sub, h_film, area_cap in pairs:
        zsl = ZSLGenerator(max_area_ratio_tol=max_strain * 2, max_area=area_cap,
                           max_length_tol=max_strain, max_angle_tol=max_strain,
                           bidirectional=True)
        builder = CoherentInterfaceBuilder(sub.structure, film.structure,
                                           film_miller=h_film, substrate_miller=h_sub,
                                           zslgen=zsl, label_index=True)
        if not builder.zsl_matches:
            found.probes.append((film.structure, h_film, sub.structure, h_sub, area_cap))
            continue
        _add_plans(found, builder, sub, film, (h_sub, h_film), (ha, hb),
                   max_strain=max_strain, max_atoms=max_atoms)
    return found


#: seconds per ZSL supercell-pair comparison of a lattice-match search (one core of a 2-core
#: laptop, pymatgen 2026.10): the time stated when a search is refused
SECONDS_PER_COMPARISON = 5e-5
#: area multiples beyond this are not counted (the count is then a lower bound, far above any
#: ceiling)
_MAX_MULTIPLE = 1_000_000


def zsl_comparisons(film_area: float, substrate_area: float, max_area: float,
                    tol: float) -> int:
    """Supercell pairs that ``ZSLGenerator(max_area_ratio_tol=2 tol, max_area, ...)`` compares.

    It pairs the area multiples (i, j) of the film and substrate cells below ``max_area``
    whose area ratios agree within ``2 tol`` and compares every film supercell of index i
    with every substrate supercell of index j: sigma(i) x sigma(j) pairs, sigma(n) (the sum
    of the divisors of n) being the number of 2D supercells of index n. The search time is
    proportional to this count.
    """
    n_i = min(int(np.ceil(max_area / film_area)), _MAX_MULTIPLE)
    n_j = min(int(np.ceil(max_area / substrate_area)), _MAX_MULTIPLE)
    if n_i < 2 or n_j < 2:
        return 0
    sigma = np.zeros(max(n_i, n_j) + 1, dtype=np.int64)
    for d in range(1, len(sigma)):
        sigma[d::d] += d
    cumulative = np.cumsum(sigma)  # cumulative[n] = sigma(1) + ... + sigma(n)
    i = np.arange(1, n_i, dtype=float)
    r, rt = film_area / substrate_area, 2 * tol
    # |r - j/i| < rt or |1/r - i/j| < rt: the union of two intervals of j around r i
    lo = np.minimum((r - rt) * i, i / (1 / r + rt))
    hi = np.maximum((r + rt) * i, i / (1 / r - rt)) if 1 / r > rt else np.full_like(i, np.inf)
    j_lo = np.maximum(1, np.floor(lo) + 1)
    j_hi = np.minimum(n_j - 1, np.ceil(hi) - 1)
    ok = j_hi >= j_lo
    ii, j_lo, j_hi = i[ok].astype(np.int64), j_lo[ok].astype(np.int64), j_hi[ok].astype(np.int64)
    return int(np.sum(sigma[ii] * (cumulative[j_hi] - cumulative[j_lo - 1])))


def check_search_size(size: float, ceiling: float, a: Side, b: Side, max_atoms: int,
                      max_strain: float) -> None:
    """Raise :class:`InputError` when the estimated search ``size`` is above ``ceiling``."""
    if size <= ceiling:
        return
    hours = size * SECONDS_PER_COMPARISON / 3600
    raise InputError(
        f"the {a.name}|{b.name} lattice-match search (max_atoms={max_atoms}, "
        f"max_strain={max_strain}, {len(a.millers) * len(b.millers)} plane pair(s)) would "
        f"compare about {size:.2g} supercell pairs (about {hours:.2g} h), above the ceiling "
        f"{ceiling:.2g} (budget.build_max_search); lower max_atoms or max_strain, give the "
        "planes (miller_a, miller_b) or fewer layers, or raise the ceiling on purpose")


def _add_plans(found: Search, builder: Any, sub: Side, film: Side,
               h_sub_film: tuple[tuple[int, int, int], tuple[int, int, int]],
               h_ab: tuple[tuple[int, int, int], tuple[int, int, int]], *,
               max_strain: float, max_atoms: int) -> None:
    """Add the plans of one plane pair (every termination pair x ZSL match) to ``found``.

    Atom counts are those of the two slabs scaled by the supercell area ratios.
    """
    h_sub, h_film = h_sub_film
    f_gen, s_gen = film.slabs(h_film), sub.slabs(h_sub)
    for term in builder.terminations:
        f_shift, s_shift = builder._terminations[term]
        f_slab, s_slab = f_gen.get_slab(shift=f_shift), s_gen.get_slab(shift=s_shift)
        f_area, s_area = _area(f_slab.lattice.matrix), _area(s_slab.lattice.matrix)
        for match in builder.zsl_matches:
            strain = principal_strain(match.film_sl_vectors, match.substrate_sl_vectors)
            n_f = count_atoms(f_slab, film.table) * round(_area(match.film_sl_vectors) / f_area)
            n_s = count_atoms(s_slab, sub.table) * round(
                _area(match.substrate_sl_vectors) / s_area)
            if strain < found.best_strain:
                found.best_strain, found.best_strain_atoms = strain, n_f + n_s
            if strain > max_strain + 1e-9 or n_f + n_s > max_atoms:
                continue
            found.plans.append(Plan(n_f + n_s, round(strain, 6), h_ab[0], h_ab[1], term,
                                    match, s_slab, f_slab, _area(match.substrate_sl_vectors)))


def no_match_error(found: Search, a: Side, b: Side, *, max_strain: float, max_atoms: int,
                   max_area: float | None) -> NoMatchError:
    """The error for a search without plans; it names the limit to relax.

    Without any ZSL match the plane pairs are probed again with a looser tolerance
    (``min(0.3, 4 x max_strain)``) to report the best strain there is.
    """
    pair = f"{a.name}|{b.name}"
    if not np.isfinite(found.best_strain):
        loose = _probe_best_strain(found.probes, min(0.3, 4 * max_strain), found.max_search)
        best = (f"best strain found {loose:.4f} (within the same area)" if np.isfinite(loose)
                else "best strain found: none below 0.3 within the same area"
                if np.isinf(loose) else "a looser search is over budget.build_max_search")
        limit = "max_strain" if np.isfinite(loose) else "max_atoms/max_area"
        return NoMatchError(
            f"no lattice match for {pair} within max_strain={max_strain} and "
            f"max_atoms={max_atoms} (max_area={max_area}); {best}: relax {limit} or "
            "try other Miller indices")
    limit = "max_strain" if found.best_strain > max_strain else "max_atoms"
    return NoMatchError(
        f"no {pair} interface within max_strain={max_strain} and "
        f"max_atoms={max_atoms}; best strain found {found.best_strain:.4f} with "
        f"{found.best_strain_atoms} atoms: relax {limit} (or reduce layers_a/layers_b)")


def _probe_best_strain(probes: list, tol: float, max_search: float = np.inf) -> float:
    """Smallest principal strain of any ZSL match with loose tolerance ``tol`` (inf: none;
    nan: not probed, the probes would compare more than ``max_search`` supercell pairs)."""
    from pymatgen.analysis.interfaces import ZSLGenerator
    from pymatgen.core.surface import SlabGenerator

    vectors = []
    for film, h_film, sub, h_sub, area_cap in probes:
        f_vec = SlabGenerator(film, h_film, min_slab_size=1, **SLAB_KW).get_slab().lattice.matrix
        s_vec = SlabGenerator(sub, h_sub, min_slab_size=1, **SLAB_KW).get_slab().lattice.matrix
        vectors.append((f_vec, s_vec, area_cap))
    if sum(zsl_comparisons(_area(f), _area(s), cap, tol) for f, s, cap in vectors) > max_search:
        return np.nan
    best = np.inf
    for f_vec, s_vec, area_cap in vectors:
        zsl = ZSLGenerator(max_area_ratio_tol=2 * tol, max_area=area_cap, max_length_tol=tol,
                           max_angle_tol=tol, bidirectional=True)
        for match in zsl(f_vec[:2], s_vec[:2], lowest=False):
            best = min(best, principal_strain(match.film_sl_vectors, match.substrate_sl_vectors))
    return best
