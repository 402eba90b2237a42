"""Interstitial Li candidates of an A|B migration cell and the unrelaxed guess hop.

Atoms in, Atoms out (no calculators). Lengths in Angstrom.

Rules
-----
- Candidates are Voronoi vertices of the cell (in-plane periodic images) at least
  ``min_clearance`` from every atom, merged within ``MERGE_TOL`` (the one farthest from the
  atoms is kept), in three regions along z: ``A`` = from the lowest atom of A's second
  atomic plane from the interface up to ``EDGE`` above A's highest atom, ``B`` likewise
  mirrored, ``interface`` = between the two.
- Symmetry-distinct candidates: same region and the same first neighbour shell (atoms up
  to clearance + ``SHELL_WIDTH``; species, distances rounded to 0.1 A); the first in
  clearance order is kept with its multiplicity. Each region is ranked by clearance
  (largest first).
- A candidate is not a site: the recipe relaxes every candidate at the barrier's level and
  hops between minima (:func:`interphase_dft.recipes.interstitial.interstitial_path`).
  Without relaxation, :func:`guess_hop` joins the largest-clearance candidate of A to that
  of B and records ``relaxed: false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atom, Atoms

from interphase_dft.builders.hops import Hop, _hop, cell_meta, li_host_distance
from interphase_dft.builders.migration import MigrationCell
from interphase_dft.builders.sites import MERGE_TOL
from interphase_dft.builders.thickness import atomic_planes
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import StructureError
from interphase_dft.geometry import IN_PLANE, distances_from

EDGE = 0.3  # Angstrom
MIN_CLEARANCE = 1.5  # Angstrom
SHELL_WIDTH = 0.6  # Angstrom: neighbours up to clearance + this form the first shell
REGIONS = ("A", "interface", "B")
GUESS_RULE = "largest-clearance candidate of A -> largest-clearance candidate of B (unrelaxed)"


@dataclass(frozen=True)
class VoidSite:
    """An interstitial candidate: ``region`` 'A', 'interface' or 'B'; ``position`` Cartesian
    (A); ``clearance`` distance to the nearest atom (A); ``height`` above the interface
    midplane (A, negative in A); ``multiplicity`` symmetry-equivalent copies in the cell."""

    label: str
    region: str
    position: tuple[float, float, float]
    clearance: float
    height: float
    multiplicity: int


@dataclass
class InterstitialCandidates:
    """The host cell, its candidates (A, interface, B; each by clearance) and metadata."""

    host: Atoms
    sites: list[VoidSite]
    meta: dict[str, Any] = field(default_factory=dict)

    def region(self, name: str) -> list[VoidSite]:
        """Candidates of one region, largest clearance first."""
        return [s for s in self.sites if s.region == name]


def region_bounds(atoms: Atoms, n_planes: int = 2) -> dict[str, tuple[float, float]]:
    """z ranges (Angstrom) of the regions A, interface and B of an A-bottom cell."""
    side = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    za, zb = z[side == 0], z[side == 1]
    pa, pb = atomic_planes(za), atomic_planes(zb)
    low_a = za[pa[-min(n_planes, len(pa))]].min()
    high_b = zb[pb[min(n_planes, len(pb)) - 1]].max()
    top_a, bot_b = za.max(), zb.min()
    return {"A": (float(low_a), float(top_a + EDGE)),
            "interface": (float(top_a + EDGE), float(bot_b - EDGE)),
            "B": (float(bot_b - EDGE), float(high_b))}


def _voids(atoms: Atoms, min_clearance: float) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi vertices in the cell (in-plane images) >= ``min_clearance`` from every atom."""
    from scipy.spatial import Voronoi, cKDTree

    cell = np.asarray(atoms.cell[:])
    shifts = np.array([(i, j, 0) for i in (-1, 0, 1) for j in (-1, 0, 1)])
    images = (atoms.positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    verts = Voronoi(images).vertices
    frac = np.linalg.solve(cell.T, verts.T).T
    verts = verts[np.all((frac[:, :2] >= -1e-6) & (frac[:, :2] < 1 - 1e-6), axis=1)]
    dist, _ = cKDTree(images).query(verts)
    keep = dist >= min_clearance
    return verts[keep], dist[keep]


def _merge(atoms: Atoms, pts: np.ndarray, clearance: np.ndarray) -> list[int]:
    """Indices kept after merging points closer than MERGE_TOL (largest clearance wins)."""
    from ase.geometry import get_distances

    kept: list[int] = []
    for k in np.argsort(-clearance, kind="stable"):
        if kept:
            _, d = get_distances(pts[k], pts[kept], cell=atoms.cell, pbc=[True, True, False])
            if d.min() <= MERGE_TOL:
                continue
        kept.append(int(k))
    return kept


def _shell(atoms: Atoms, point: np.ndarray, clearance: float) -> tuple:
    """First neighbour shell of ``point``: (species, distance / 0.1 A) up to clearance +
    SHELL_WIDTH."""
    from ase.geometry import get_distances

    _, d = get_distances(point, atoms.positions, cell=atoms.cell, pbc=[True, True, False])
    sym = atoms.get_chemical_symbols()
    return tuple(sorted((sym[k], round(float(x) / 0.1)) for k, x in enumerate(d[0])
                        if x < clearance + SHELL_WIDTH))


def interstitial_candidates(cell: MigrationCell, *, min_clearance: float = MIN_CLEARANCE,
                            n_planes: int = 2, max_per_region: int | None = None
                            ) -> InterstitialCandidates:
    """Symmetry-distinct interstitial candidates of the interfacial layers and the gap.

    Parameters
    ----------
    cell : the migration cell (its registry already chosen)
    min_clearance : smallest distance of a candidate to any atom, Angstrom
    n_planes : atomic planes of each side searched from the interface (2)
    max_per_region : keep at most this many per region (largest clearance); None = all

    Raises
    ------
    StructureError : A or B has no candidate (lower ``min_clearance``).
    """
    atoms = cell.atoms
    bounds = region_bounds(atoms, n_planes)
    pts, clr = _voids(atoms, min_clearance)
    mid = 0.5 * (bounds["interface"][0] + bounds["interface"][1])
    sites: list[VoidSite] = []
    for region in REGIONS:
        lo, hi = bounds[region]
        sel = np.flatnonzero((pts[:, 2] >= lo) & (pts[:, 2] < hi))
        groups: dict[tuple, list[int]] = {}
        for k in sel[_merge(atoms, pts[sel], clr[sel])]:
            groups.setdefault(_shell(atoms, pts[k], clr[k]), []).append(int(k))
        reps = sorted(groups.values(), key=lambda g: (-clr[g[0]], g[0]))
        for n, g in enumerate(reps[:max_per_region], start=1):
            k = g[0]
            sites.append(VoidSite(f"{region}_{n}", region, tuple(float(x) for x in pts[k]),
                                  round(float(clr[k]), 4), round(float(pts[k, 2] - mid), 4),
                                  len(g)))
    for region in ("A", "B"):
        if not any(s.region == region for s in sites):
            raise StructureError(f"no interstitial candidate in {region} of "
                                 f"{cell.phase_a}|{cell.phase_b} with clearance >= "
                                 f"{min_clearance} A; lower min_clearance")
    meta = cell_meta(cell)
    meta.update(min_clearance_A=min_clearance, n_planes=n_planes,
                region_bounds_A={k: [round(v[0], 4), round(v[1], 4)] for k, v in bounds.items()},
                n_candidates={r: sum(s.region == r for s in sites) for r in REGIONS})
    return InterstitialCandidates(host=atoms, sites=sites, meta=meta)


def with_li(host: Atoms, site: VoidSite | np.ndarray) -> Atoms:
    """Copy of ``host`` with one Li appended at ``site`` (constraints and info kept;
    ``info['li_index']`` is its index)."""
    pos = np.asarray(site.position if isinstance(site, VoidSite) else site, float)
    out = host.copy()
    out.append(Atom("Li", pos))
    out.arrays["side"][-1] = 2  # 2 = the inserted Li (it belongs to neither side)
    out.info = dict(host.info)
    out.info["li_index"] = len(out) - 1
    if isinstance(site, VoidSite):
        out.info.update(site_label=site.label, site_region=site.region)
    return out


def site_summary(site: VoidSite) -> dict[str, Any]:
    """JSON-safe record of a candidate."""
    return {"label": site.label, "region": site.region,
            "position": [round(x, 4) for x in site.position], "clearance_A": site.clearance,
            "height_A": site.height, "multiplicity": site.multiplicity}


def guess_hop(cands: InterstitialCandidates) -> Hop:
    """Unrelaxed guess endpoints by :data:`GUESS_RULE` (``meta['relaxed']`` is False)."""
    a, b = cands.region("A")[0], cands.region("B")[0]
    initial, final = with_li(cands.host, a), with_li(cands.host, b)
    li = len(initial) - 1
    d_i, s_i = li_host_distance(initial, li)
    d_f, s_f = li_host_distance(final, li)
    hop = float(distances_from(initial, a.position, [b.position], IN_PLANE)[0])
    meta = dict(cands.meta)
    meta.update(mechanism="interstitial", li_index=li, hop_distance_A=round(hop, 4),
                site_initial=site_summary(a), site_final=site_summary(b),
                li_host_initial_A=round(d_i, 4), li_host_final_A=round(d_f, 4),
                nearest_initial=s_i, nearest_final=s_f, relaxed=False, guess_rule=GUESS_RULE,
                candidates=[site_summary(s) for s in cands.sites])
    meta.update(fixed=fixed_indices(initial), n_fixed=len(fixed_indices(initial)))
    return _hop("interstitial", initial, final, li, hop, meta)
