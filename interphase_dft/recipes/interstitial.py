"""Interstitial hops across an interface between relaxed minima.

Energies in eV, lengths in Angstrom, forces in eV/Angstrom.

Rules
-----
- Every candidate (at most ``max_per_region`` per region, largest clearance first) gets one
  Li and is relaxed by ``relax(atoms) -> (atoms, energy)`` at the barrier's level (the
  surrogate first).
- The region of a minimum is read from the relaxed cell: 'A' when the Li is at most
  ``EDGE`` above the highest A atom, 'B' when at most ``EDGE`` below the lowest B atom,
  else 'interface'. Minima within ``SAME_SITE`` of each other are one minimum (the lower).
- Path: the lowest minimum of A -> the lowest of the interface -> the lowest of B (two hops)
  when an interface minimum exists, else A -> B (one hop). All endpoints have the same atoms
  in the same order (host + Li last) and the host's FixAtoms constraint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.builders.hops import Hop, _hop, li_host_distance
from interphase_dft.builders.interstitial import (
    EDGE,
    REGIONS,
    InterstitialCandidates,
    VoidSite,
    site_summary,
    with_li,
)
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import StructureError
from interphase_dft.geometry import IN_PLANE, distances_from

SAME_SITE = 0.3  # Angstrom
PATH_RULE = ("lowest relaxed minimum of A -> lowest of the interface (when one exists) -> "
             "lowest of B")

Relax = Callable[[Atoms], tuple[Atoms, float]]


@dataclass
class Minimum:
    """A relaxed interstitial: the candidate it started from, its region after relaxation,
    the relaxed cell, energy (eV), Li displacement (A) and largest force (eV/A, when the
    relaxed Atoms carry forces)."""

    site: VoidSite
    region: str
    atoms: Atoms
    energy: float
    li_displacement: float
    fmax: float | None


@dataclass
class InterstitialPath:
    """The chosen minima (region -> :class:`Minimum`), the hops between them and every
    relaxed minimum (deduplicated, by energy)."""

    minima: dict[str, Minimum]
    hops: list[Hop]
    all_minima: list[Minimum]
    meta: dict[str, Any] = field(default_factory=dict)


def region_of(atoms: Atoms, li: int) -> str:
    """'A', 'interface' or 'B' for the Li ``li`` of a relaxed A-bottom cell (module rules)."""
    side = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    if z[li] <= z[side == 0].max() + EDGE:
        return "A"
    if z[li] >= z[side == 1].min() - EDGE:
        return "B"
    return "interface"


def _fmax(atoms: Atoms) -> float | None:
    """Largest force (eV/A, free atoms) already computed on ``atoms``, else None."""
    calc = atoms.calc
    forces = None if calc is None else getattr(calc, "results", {}).get("forces")
    if forces is None:
        return None
    free = np.ones(len(atoms), bool)
    free[fixed_indices(atoms)] = False
    return float(np.linalg.norm(np.asarray(forces)[free], axis=1).max())


def relax_candidates(cands: InterstitialCandidates, relax: Relax, *,
                     max_per_region: int | None = 6) -> list[Minimum]:
    """Relax the candidates (module rules); distinct minima sorted by energy."""
    host_fixed = fixed_indices(cands.host)
    out: list[Minimum] = []
    for region in REGIONS:
        for site in cands.region(region)[:max_per_region]:
            start = with_li(cands.host, site)
            li = len(start) - 1
            relaxed, energy = relax(start.copy())
            if (relaxed.get_chemical_symbols() != start.get_chemical_symbols()
                    or fixed_indices(relaxed) not in (host_fixed, [])):
                raise StructureError("relax() changed the atoms, their order or the FixAtoms "
                                     "constraint; it must only move the free atoms")
            atoms = start.copy()  # the host's constraint and info, relaxed positions
            atoms.positions = relaxed.positions
            moved = float(distances_from(atoms, start.positions[li], atoms.positions[[li]],
                                         IN_PLANE)[0])
            out.append(Minimum(site, region_of(atoms, li), atoms, float(energy), moved,
                               _fmax(relaxed)))
    out.sort(key=lambda m: m.energy)
    distinct: list[Minimum] = []
    for m in out:
        li = len(m.atoms) - 1
        if all(distances_from(m.atoms, m.atoms.positions[li], d.atoms.positions[[li]],
                              IN_PLANE)[0] > SAME_SITE
               for d in distinct):
            distinct.append(m)
    return distinct


def interstitial_path(cands: InterstitialCandidates, relax: Relax, *,
                      max_per_region: int | None = 6) -> InterstitialPath:
    """Relax the candidates and join the lowest minima of A, the interface and B.

    Parameters
    ----------
    cands : from :func:`~interphase_dft.builders.interstitial.interstitial_candidates`
    relax : ``relax(atoms) -> (relaxed atoms, energy in eV)`` at the barrier's level; it
        must keep the atom order and the FixAtoms constraint
    max_per_region : candidates relaxed per region (largest clearance first); None = all

    Raises
    ------
    StructureError : no minimum in A or in B (every candidate there relaxed away).
    """
    minima = relax_candidates(cands, relax, max_per_region=max_per_region)
    lowest = {r: next((m for m in minima if m.region == r), None) for r in REGIONS}
    for r in ("A", "B"):
        if lowest[r] is None:
            raise StructureError(f"no relaxed interstitial minimum in {r}: every candidate "
                                 "relaxed into another region; add candidates "
                                 "(max_per_region) or check the relaxer")
    chain = [lowest["A"]] + ([lowest["interface"]] if lowest["interface"] else []) + [lowest["B"]]
    hops = [_relaxed_hop(cands, chain[k], chain[k + 1], k, len(chain) - 1)
            for k in range(len(chain) - 1)]
    meta = {"path_rule": PATH_RULE, "n_relaxed": len(minima),
            "regions": [m.region for m in chain],
            "minima": [_min_summary(m) for m in minima]}
    return InterstitialPath({m.region: m for m in chain}, hops, minima, meta)


def _min_summary(m: Minimum) -> dict[str, Any]:
    li = len(m.atoms) - 1
    d, s = li_host_distance(m.atoms, li)
    return {"start": site_summary(m.site), "region": m.region, "energy_eV": m.energy,
            "li_displacement_A": round(m.li_displacement, 4), "fmax_eV_A": m.fmax,
            "li_host_A": round(d, 4), "nearest": s,
            "position": [round(float(x), 4) for x in m.atoms.positions[li]]}


def _relaxed_hop(cands: InterstitialCandidates, a: Minimum, b: Minimum, k: int,
                 n: int) -> Hop:
    """Hop ``k`` of ``n`` between two relaxed minima."""
    initial, final = a.atoms.copy(), b.atoms.copy()
    li = len(initial) - 1
    hop = float(distances_from(initial, initial.positions[li], final.positions[[li]],
                               IN_PLANE)[0])
    meta = dict(cands.meta)
    meta.update(
        mechanism="interstitial", li_index=li, hop_distance_A=round(hop, 4), hop=k + 1,
        n_hops=n, region_initial=a.region, region_final=b.region,
        energy_initial_eV=a.energy, energy_final_eV=b.energy,
        fmax_initial_eV_A=a.fmax, fmax_final_eV_A=b.fmax,
        li_host_initial_A=round(li_host_distance(initial, li)[0], 4),
        li_host_final_A=round(li_host_distance(final, li)[0], 4),
        site_initial=site_summary(a.site), site_final=site_summary(b.site),
        relaxed=True, path_rule=PATH_RULE, fixed=fixed_indices(initial),
        n_fixed=len(fixed_indices(initial)))
    return _hop("interstitial", initial, final, li, hop, meta)
