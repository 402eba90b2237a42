"""Li sites: bulk interstitials, surface adsorption sites, vacancies; insertion helpers.

Atoms in, Atoms out. Positions are Cartesian, Angstrom.

Interstitials are Voronoi vertices of the periodic structure (the points locally farthest
from all atoms), merged within ``MERGE_TOL`` and reduced to symmetry-distinct orbits with
spglib. Surface sites come from the 2D Delaunay triangulation of the top atomic layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atom, Atoms

from interphase_dft.errors import InputError, StructureError

MERGE_TOL = 0.5  # Angstrom: void points closer than this are one site
MIN_INSERT_DIST = 0.7  # Angstrom


@dataclass(frozen=True)
class Site:
    """A candidate Li position.

    label : unique name, e.g. ``'oct_1'``, ``'hollow_fcc_1'``, ``'V_Li_2'``
    kind : 'tetrahedral', 'octahedral', '<n>-fold', 'top', 'bridge', 'hollow_fcc',
        'hollow_hcp', 'hollow', 'subsurface' or 'vacancy'
    position : Cartesian coordinates, Angstrom
    multiplicity : symmetry-equivalent copies in the cell
    index : atom index for vacancies, else None
    """

    label: str
    kind: str
    position: tuple[float, float, float]
    multiplicity: int
    index: int | None = None


def supercell_for(bulk: Atoms, min_length: float) -> Atoms:
    """Smallest diagonal repeat with every perpendicular width >= ``min_length`` Angstrom."""
    if min_length <= 0:
        raise InputError(f"min_length must be > 0 Angstrom, got {min_length}")
    cell = np.asarray(bulk.cell[:])
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
              for i in range(3)]
    reps = tuple(int(np.ceil(min_length / w - 1e-9)) for w in widths)
    out = bulk.repeat(reps)
    out.info = dict(bulk.info)
    out.info["supercell"] = list(reps)
    return out


def void_points(atoms: Atoms, min_dist: float = 1.5) -> np.ndarray:
    """Voronoi vertices inside the cell at least ``min_dist`` A from every atom (merged)."""
    from scipy.spatial import Voronoi, cKDTree

    cell = np.asarray(atoms.cell[:])
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    images = (atoms.positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    vor = Voronoi(images)
    frac = np.linalg.solve(cell.T, vor.vertices.T).T
    inside = np.all((frac >= -1e-6) & (frac < 1 - 1e-6), axis=1)
    verts = vor.vertices[inside]
    tree = cKDTree(images)
    dist, _ = tree.query(verts)
    verts, dist = verts[dist >= min_dist], dist[dist >= min_dist]
    # merge close vertices (periodic), keeping the one farthest from atoms
    order = np.argsort(-dist)
    kept: list[np.ndarray] = []
    for k in order:
        p = verts[k]
        if all(_mic_dist(p, q, cell) > MERGE_TOL for q in kept):
            kept.append(p)
    return np.array(kept).reshape(-1, 3)


def _mic_dist(p: np.ndarray, q: np.ndarray, cell: np.ndarray) -> float:
    f = np.linalg.solve(cell.T, p - q)
    f -= np.round(f)
    return float(np.linalg.norm(f @ cell))


def _orbits(atoms: Atoms, points: np.ndarray, *, plane_only: bool = False,
            symprec: float = 1e-3) -> list[tuple[int, int]]:
    """Group ``points`` into symmetry orbits -> list of (representative index, size)."""
    import spglib

    cell = np.asarray(atoms.cell[:])
    data = spglib.get_symmetry((cell, atoms.get_scaled_positions(), atoms.numbers),
                               symprec=symprec)
    rots, trans = data["rotations"], data["translations"]
    if plane_only:  # keep operations that map the top surface onto itself
        ok = [k for k, r in enumerate(rots)
              if r[2, 2] == 1 and r[2, 0] == 0 and r[2, 1] == 0 and abs(trans[k][2]) < 1e-4]
        rots, trans = rots[ok], trans[ok]
    frac = np.linalg.solve(cell.T, points.T).T % 1.0
    tol = 0.3 / np.linalg.norm(cell, axis=1)
    assigned = -np.ones(len(points), int)
    out = []
    for i in range(len(points)):
        if assigned[i] >= 0:
            continue
        img = (frac[i] @ rots.transpose(0, 2, 1)) + trans
        members = []
        for j in range(len(points)):
            diff = (img - frac[j] + 0.5) % 1.0 - 0.5
            if np.any(np.all(np.abs(diff) < tol, axis=1)):
                members.append(j)
        members = [j for j in members if assigned[j] < 0] or [i]
        assigned[members] = i
        out.append((i, len(members)))
    return out


def _coordination(atoms: Atoms, point: np.ndarray) -> tuple[int, float]:
    """Number of atoms (periodic images included) within 1.15 x the nearest distance."""
    cell = np.asarray(atoms.cell[:])
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    images = (atoms.positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    d = np.linalg.norm(images - point, axis=1)
    return int((d < 1.15 * d.min()).sum()), float(d.min())


def interstitial_sites(bulk: Atoms, *, min_dist: float = 1.5) -> list[Site]:
    """Symmetry-distinct interstitial Li sites of a bulk cell.

    Kinds: 'tetrahedral' (4 nearest atoms), 'octahedral' (6), else '<n>-fold'. Sorted by
    decreasing distance to the nearest atom. fcc Al gives one octahedral and one tetrahedral.
    """
    pts = void_points(bulk, min_dist)
    sites = []
    for rep, mult in _orbits(bulk, pts):
        cn, dmin = _coordination(bulk, pts[rep])
        kind = {4: "tetrahedral", 6: "octahedral"}.get(cn, f"{cn}-fold")
        sites.append((-round(dmin, 3), kind, pts[rep], mult))
    sites.sort(key=lambda s: (s[0], s[1]))
    counts: dict[str, int] = {}
    out = []
    for _, kind, pos, mult in sites:
        short = {"tetrahedral": "tet", "octahedral": "oct"}.get(kind, kind)
        counts[short] = counts.get(short, 0) + 1
        out.append(Site(f"{short}_{counts[short]}", kind, tuple(float(x) for x in pos), mult))
    return out


def vacancy_sites(bulk: Atoms, element: str = "Li") -> list[Site]:
    """Symmetry-distinct atoms of ``element`` (candidate vacancies)."""
    import spglib

    idx = [i for i, s in enumerate(bulk.get_chemical_symbols()) if s == element]
    if not idx:
        raise InputError(f"no {element} atoms in {bulk.get_chemical_formula()}")
    data = spglib.get_symmetry_dataset(
        (bulk.cell[:], bulk.get_scaled_positions(), bulk.numbers), symprec=1e-3)
    equiv = np.asarray(data.equivalent_atoms)
    out = []
    for k, rep in enumerate(sorted({int(equiv[i]) for i in idx}), start=1):
        mult = int(np.sum(equiv[idx] == rep))
        out.append(Site(f"V_{element}_{k}", "vacancy",
                        tuple(float(x) for x in bulk.positions[rep]), mult, index=rep))
    return out


def adsorption_sites(slab: Atoms, *, bond: float = 2.5, layer_tol: float = 0.6,
                     subsurface: bool = True, min_dist: float = 1.5) -> list[Site]:
    """Symmetry-distinct Li sites on the top surface of ``slab`` (surface normal = +z).

    Sites: 'top' above each top-layer atom, 'bridge' at short Delaunay edges, hollow at the
    circumcentre of non-obtuse Delaunay triangles ('hollow_hcp' if a second-layer atom lies
    below, 'hollow_fcc' if not, 'hollow' for 4-fold); each placed at the height where its
    nearest surface atom is ``bond`` Angstrom away. 'subsurface': below each 3- or 4-fold
    hollow, halfway between the first and second layers, if >= ``min_dist`` from all atoms.
    """
    from scipy.spatial import Delaunay

    if not slab.cell[2, 2] > 0 or abs(slab.cell[2, 0]) + abs(slab.cell[2, 1]) > 1e-6:
        raise InputError("slab must have its c axis along +z (build it with "
                         "interphase_dft.builders.slabs.make_slabs)")
    z = slab.positions[:, 2]
    ztop = z.max()
    top = np.flatnonzero(z > ztop - layer_tol)
    below = z <= ztop - layer_tol
    z2 = z[below].max() if below.any() else ztop - 2.0
    second = np.flatnonzero(below & (z > z2 - layer_tol))
    cell2 = np.asarray(slab.cell[:2, :2])
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])
    mesh = (slab.positions[top, None, :2] + (shifts @ cell2)[None]).reshape(-1, 2)
    nn = min(np.linalg.norm(mesh[1:] - mesh[0], axis=1).min(), 99.0) if len(mesh) > 1 else 3.0
    pts: list[tuple[str, np.ndarray, float]] = [("top", slab.positions[i, :2], 0.0) for i in top]
    tri = Delaunay(mesh)
    for simplex in tri.simplices:
        p = mesh[simplex]
        edges = [np.linalg.norm(p[(k + 1) % 3] - p[(k + 2) % 3]) for k in range(3)]
        for k in range(3):
            if edges[k] < 1.25 * nn:
                pts.append(("bridge", 0.5 * (p[(k + 1) % 3] + p[(k + 2) % 3]), edges[k] / 2))
        a, b, c = sorted(edges)
        if a * a + b * b < c * c * 0.98:  # obtuse
            continue
        cc = _circumcentre(p)
        radius = float(np.linalg.norm(cc - p[0]))
        four = abs(a * a + b * b - c * c) < 0.02 * c * c
        pts.append(("hollow" if four else "hollow3", cc, radius))
    candidates: list[tuple[str, np.ndarray]] = []
    for kind, xy, lateral in pts:
        h = np.sqrt(max(bond**2 - lateral**2, 0.64))
        if kind == "hollow3":
            lat2 = np.linalg.norm(_wrap2(slab.positions[second, :2] - xy, cell2), axis=1)
            kind = "hollow_hcp" if len(lat2) and lat2.min() < 0.5 else "hollow_fcc"
        candidates.append((kind, np.array([xy[0], xy[1], ztop + h])))
        if subsurface and kind in ("hollow", "hollow_fcc", "hollow_hcp"):
            candidates.append(("subsurface", np.array([xy[0], xy[1], 0.5 * (ztop + z2)])))
    return _reduce_surface(slab, candidates, min_dist)


def _circumcentre(p: np.ndarray) -> np.ndarray:
    a, b, c = p
    d = 2 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]))
    ux = ((a @ a) * (b[1] - c[1]) + (b @ b) * (c[1] - a[1]) + (c @ c) * (a[1] - b[1])) / d
    uy = ((a @ a) * (c[0] - b[0]) + (b @ b) * (a[0] - c[0]) + (c @ c) * (b[0] - a[0])) / d
    return np.array([ux, uy])


def _wrap2(vec: np.ndarray, cell2: np.ndarray) -> np.ndarray:
    f = np.linalg.solve(cell2.T, np.atleast_2d(vec).T).T
    f -= np.round(f)
    return f @ cell2


def _reduce_surface(slab: Atoms, candidates: list[tuple[str, np.ndarray]],
                    min_dist: float) -> list[Site]:
    from ase.geometry import get_distances

    cell = np.asarray(slab.cell[:])
    unique: list[tuple[str, np.ndarray]] = []
    for kind, pos in candidates:
        frac = np.linalg.solve(cell.T, pos)
        frac[:2] %= 1.0
        pos = frac @ cell
        if kind == "subsurface":
            _, d = get_distances([pos], slab.positions, cell=slab.cell, pbc=slab.pbc)
            if d.min() < min_dist:
                continue
        if all(k != kind or _mic_dist(pos, q, cell) > 0.3 for k, q in unique):
            unique.append((kind, pos))
    out: list[Site] = []
    counts: dict[str, int] = {}
    for kind in ("top", "bridge", "hollow_fcc", "hollow_hcp", "hollow", "subsurface"):
        group = [p for k, p in unique if k == kind]
        if not group:
            continue
        pts = np.array(group)
        for rep, mult in _orbits(slab, pts, plane_only=True, symprec=0.05):
            counts[kind] = counts.get(kind, 0) + 1
            out.append(Site(f"{kind}_{counts[kind]}", kind,
                            tuple(float(x) for x in pts[rep]), mult))
    return out


def insert_li(atoms: Atoms, site: Site | np.ndarray | tuple[float, float, float], *,
              min_dist: float = MIN_INSERT_DIST) -> Atoms:
    """Copy of ``atoms`` with one Li appended at ``site`` (constraints kept).

    Raises StructureError when the Li would sit closer than ``min_dist`` A to an atom.
    """
    from ase.geometry import get_distances

    pos = np.asarray(site.position if isinstance(site, Site) else site, float)
    _, d = get_distances([pos], atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if len(atoms) and d.min() < min_dist:
        raise StructureError(f"Li at {pos.round(3).tolist()} is {d.min():.2f} A from an atom "
                             f"(< {min_dist} A); choose another site")
    out = atoms.copy()
    out.append(Atom("Li", pos))
    out.info = dict(atoms.info)
    out.info["inserted_index"] = len(out) - 1
    if isinstance(site, Site):
        out.info["site_label"] = site.label
        out.info["site_kind"] = site.kind
    return out


def remove_atom(atoms: Atoms, index: int) -> Atoms:
    """Copy of ``atoms`` without atom ``index`` (FixAtoms indices are renumbered)."""
    if not -len(atoms) <= index < len(atoms):
        raise InputError(f"atom index {index} out of range for {len(atoms)} atoms")
    out = atoms.copy()
    index = index % len(atoms)
    out.info = dict(atoms.info)
    out.info["removed"] = {"index": index, "symbol": atoms[index].symbol,
                           "position": atoms.positions[index].round(6).tolist()}
    del out[index]
    return out
