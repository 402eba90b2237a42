"""NEB endpoints and image interpolation that never reorder atoms or drop constraints.

Atoms in, Atoms out; no calculators are attached (the NEB runner in ``calc`` does that).
Lengths in Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from interphase_dft.builders.sites import MERGE_TOL, insert_li
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import InputError, StructureError
from interphase_dft.geometry import mic_vectors, nearest_image

#: default minimum distance between the A and the B Li site of an interface hop, Angstrom
MIN_SEPARATION = 2.0
#: default minimum distance of each interface endpoint site from the midplane, Angstrom
MIDPLANE_MARGIN = 0.5
_SLAB_TOL = 0.1  # Angstrom: a site in (or 0.1 A off) the outermost atomic plane is inside the slab


def _direction(interface: Atoms) -> float:
    """+1 when B sits above A (the default of make_interfaces), -1 when below."""
    side = interface.arrays["side"]
    z = interface.positions[:, 2]
    return 1.0 if z[side == 1].mean() > z[side == 0].mean() else -1.0


def interface_plane(interface: Atoms) -> tuple[float, float, float]:
    """(A surface, B surface, midpoint) heights along z of the A|B interface, Angstrom.

    Uses ``atoms.arrays['side']`` (0 = A, 1 = B) as written by ``make_interfaces``. B sits
    above A unless the cell was built with ``strained_side='a'`` (then A is on top and the
    interface between A's bottom and B's top is used).
    """
    if "side" not in interface.arrays:
        raise InputError("interface Atoms need arrays['side'] (0 = A, 1 = B); build them "
                         "with interphase_dft.builders.interfaces.make_interfaces")
    side = interface.arrays["side"]
    if not (side == 0).any() or not (side == 1).any():
        raise InputError("interface must contain atoms of both sides (side 0 and 1)")
    sgn = _direction(interface)
    h = sgn * interface.positions[:, 2]
    h_a, h_b = float(h[side == 0].max()), float(h[side == 1].min())
    return sgn * h_a, sgn * h_b, sgn * 0.5 * (h_a + h_b)


def _voids(atoms: Atoms, min_dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Unmerged Voronoi vertices in the cell >= ``min_dist`` from every atom, and clearances.

    Same construction as :func:`interphase_dft.builders.sites.void_points`, but merging is left
    to the caller: merging before selecting a region can replace a vertex inside a thin slab
    by a slightly farther one just outside it.
    """
    from scipy.spatial import Voronoi, cKDTree

    cell = np.asarray(atoms.cell[:])
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    images = (atoms.positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    verts = Voronoi(images).vertices
    frac = np.linalg.solve(cell.T, verts.T).T
    verts = verts[np.all((frac >= -1e-6) & (frac < 1 - 1e-6), axis=1)]
    dist, _ = cKDTree(images).query(verts)
    keep = dist >= min_dist
    return verts[keep].reshape(-1, 3), dist[keep]


def _merge(pts: np.ndarray, clearance: np.ndarray, mask: np.ndarray,
           cell: np.ndarray) -> np.ndarray:
    """Indices of ``pts[mask]`` merged within ``MERGE_TOL`` (periodic), farthest from atoms kept."""
    kept: list[int] = []
    for k in np.flatnonzero(mask)[np.argsort(-clearance[mask], kind="stable")]:
        if kept:
            f = np.linalg.solve(cell.T, (pts[kept] - pts[k]).T).T
            f -= np.round(f)
            if np.linalg.norm(f @ cell, axis=1).min() <= MERGE_TOL:
                continue
        kept.append(int(k))
    return np.array(kept, int)


def _interface_name(interface: Atoms) -> str:
    a, b = interface.info.get("phase_a"), interface.info.get("phase_b")
    return f"{a}|{b}" if a and b else interface.get_chemical_formula()


def interface_endpoints(
    interface: Atoms,
    *,
    depth: float | None = None,
    min_dist: float = 1.6,
    min_separation: float = MIN_SEPARATION,
    margin: float = MIDPLANE_MARGIN,
    fix_beyond: float | None = None,
) -> tuple[Atoms, Atoms]:
    """Li in A next to the interface (initial) and in B next to it (final).

    Both endpoints are ``interface`` plus one Li appended as the LAST atom (same index, same
    atom order); existing constraints are kept.

    Parameters
    ----------
    interface : output of ``make_interfaces`` (``arrays['side']``; B above A unless built
        with ``strained_side='a'``)
    depth : how far into each side (from its interface layer) sites are searched, Angstrom;
        default 3.0
    min_dist : minimum Li-atom distance of a candidate site, Angstrom
    min_separation : minimum distance between the A site and the B site (minimum image),
        Angstrom; default 2.0. Closer sites would relax into one minimum.
    margin : minimum distance of each site from the interface midplane, Angstrom; default 0.5
    fix_beyond : if given, atoms farther than this (along z) from the interface midplane are
        added to FixAtoms in both endpoints

    Returns
    -------
    (initial, final) : Li in A, Li in B; ``info["li_hop_A"]`` is their distance, Angstrom.
        The B site is stored at its minimum image from the A site (it may lie just outside
        the cell in-plane), so raw positions already give the short hop.

    Raises
    ------
    StructureError
        when no pair of sites obeys the rule below (slabs too thin: raise the number of
        layers, ``structure.interface_layers``).

    Notes
    -----
    Rule. Heights h are measured along the A -> B normal; top(A) and bottom(B) are the A and
    B atoms facing each other across the interface, mid = (top(A) + bottom(B)) / 2.
    Candidates are Voronoi void points (:func:`~interphase_dft.builders.sites.void_points`) at
    least ``min_dist`` from every atom.

    * The A site lies inside A's slab: bottom(A) - 0.1 <= h <= top(A) + 0.1 (0.1 Angstrom
      numerical tolerance), h <= mid - ``margin`` and h >= top(A) - ``depth``.
    * The B site lies inside B's slab: bottom(B) - 0.1 <= h <= top(B) + 0.1,
      h >= mid + ``margin`` and h <= bottom(B) + ``depth``.
    * The pair is at least ``min_separation`` apart (minimum image; an in-plane offset is
      allowed) and the minimum-image vector from the A site to the B site has the height
      change h(B) - h(A), so the (mic) interpolated path crosses this interface's midplane,
      never the second interface of a periodic cell or the vacuum.
    * Among valid pairs: smallest summed depth below the interface layers,
      (top(A) - h(A)) + (h(B) - bottom(B)) rounded to 0.1 Angstrom; then the shortest hop
      (0.01 Angstrom); then the largest clearance to the nearest atom.
    """
    depth = 3.0 if depth is None else float(depth)
    if depth <= 0 or min_dist <= 0 or min_separation <= 0 or margin < 0:
        raise InputError(f"need depth > 0, min_dist > 0, min_separation > 0 and margin >= 0 "
                         f"(Angstrom), got {depth}, {min_dist}, {min_separation}, {margin}")
    cand = _candidates(interface, depth=depth, min_dist=min_dist, margin=margin)
    pos_a, pos_b, hop = _best_pair(interface, cand, min_separation)
    base = interface.copy()
    if fix_beyond is not None:
        far = np.flatnonzero(np.abs(cand.sgn * base.positions[:, 2] - cand.z_mid) > fix_beyond)
        fixed = sorted(set(fixed_indices(base)) | {int(i) for i in far})
        base.set_constraint(FixAtoms(indices=fixed))
    initial, final = insert_li(base, pos_a), insert_li(base, pos_b)
    for atoms, s in ((initial, 0), (final, 1)):
        atoms.arrays["side"][-1] = s
        atoms.info["li_index"] = len(atoms) - 1
        atoms.info["li_side"] = "A" if s == 0 else "B"
        atoms.info["li_hop_A"] = hop
    return initial, final


@dataclass
class _Candidates:
    """Li site candidates of an interface hop (see :func:`interface_endpoints`).

    ``pts``/``clearance``: void points and their distance to the nearest atom (Angstrom);
    ``h``: their heights along the A -> B normal; ``ia``/``ib``: merged candidate indices in
    A and B; ``z_a``, ``z_b``, ``z_mid``: top(A), bottom(B) and the midplane along the normal;
    ``sgn``: +1 when B sits above A.
    """

    pts: np.ndarray
    clearance: np.ndarray
    h: np.ndarray
    ia: np.ndarray
    ib: np.ndarray
    z_a: float
    z_b: float
    z_mid: float
    sgn: float


def _hint(interface: Atoms) -> str:
    return (f"increase the layers of each side (structure.interface_layers, i.e. layers_a/"
            f"layers_b of make_interfaces; now {interface.info.get('layers_a', '?')}/"
            f"{interface.info.get('layers_b', '?')})")


def _candidates(interface: Atoms, *, depth: float, min_dist: float,
                margin: float) -> _Candidates:
    """Void points inside each slab next to the interface (the rule of interface_endpoints)."""
    sgn = _direction(interface)
    z_a, z_b, z_mid = (sgn * v for v in interface_plane(interface))  # heights along A -> B
    side = interface.arrays["side"]
    h_atoms = sgn * interface.positions[:, 2]
    bot_a, top_b = float(h_atoms[side == 0].min()), float(h_atoms[side == 1].max())
    pts, clearance = _voids(interface, min_dist)
    h = sgn * pts[:, 2]
    in_a = ((h >= bot_a - _SLAB_TOL) & (h <= z_a + _SLAB_TOL) & (h <= z_mid - margin)
            & (h >= z_a - depth))
    in_b = ((h >= z_b - _SLAB_TOL) & (h <= top_b + _SLAB_TOL) & (h >= z_mid + margin)
            & (h <= z_b + depth))
    cell = np.asarray(interface.cell[:])
    ia, ib = _merge(pts, clearance, in_a, cell), _merge(pts, clearance, in_b, cell)
    if not len(ia) or not len(ib):
        missing = " and ".join(s for s, i in (("A", ia), ("B", ib)) if not len(i))
        raise StructureError(
            f"{_interface_name(interface)} interface: no Li void >= {min_dist} A from all "
            f"atoms inside the slab of side {missing} within depth={depth} A of the interface "
            f"and >= {margin} A from its midplane; {_hint(interface)}, or lower min_dist")
    return _Candidates(pts, clearance, h, ia, ib, z_a, z_b, z_mid, sgn)


def _best_pair(interface: Atoms, cand: _Candidates,
               min_separation: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(A site, B site at its minimum image from the A site, hop length), Angstrom."""
    pts, h, ia, ib = cand.pts, cand.h, cand.ia, cand.ib
    vec = pts[ib][None, :, :] - pts[ia][:, None, :]
    mic = mic_vectors(interface, vec)
    dist = np.linalg.norm(mic, axis=-1)
    same_side = np.abs(mic[..., 2] - vec[..., 2]) < 1e-6  # crosses this interface's midplane
    ok = same_side & (dist >= min_separation)
    if not ok.any():
        raise StructureError(
            f"{_interface_name(interface)} interface: no Li site in A and in B (inside their "
            f"slabs, next to the same interface) at least min_separation={min_separation} A "
            f"apart (closest pair "
            f"{float(dist[same_side].min()) if same_side.any() else float('nan'):.2f} A); "
            f"{_hint(interface)}")
    ka, kb = np.nonzero(ok)
    best = min(range(len(ka)), key=lambda n: (
        round(float((cand.z_a - h[ia[ka[n]]]) + (h[ib[kb[n]]] - cand.z_b)), 1),
        round(float(dist[ka[n], kb[n]]), 2),
        -min(cand.clearance[ia[ka[n]]], cand.clearance[ib[kb[n]]])))
    # B site placed at its minimum image seen from the A site (only an in-plane lattice
    # shift), so even raw-position (mic=False) interpolation takes the short hop
    pos_a = pts[ia[ka[best]]]
    pos_b = pos_a + mic[ka[best], kb[best]]
    return pos_a, pos_b, round(float(dist[ka[best], kb[best]]), 6)


def vacancy_hop_endpoints(bulk_supercell: Atoms, i: int, j: int) -> tuple[Atoms, Atoms]:
    """Li vacancy hop: Li ``i`` jumps into the vacancy left by removing Li ``j``.

    Both endpoints have atom ``j`` removed; in ``final`` the hopping Li (same index in both)
    sits at the old position of ``j``. Indices refer to ``bulk_supercell``.
    """
    n = len(bulk_supercell)
    if not (0 <= i < n and 0 <= j < n) or i == j:
        raise InputError(f"need two different atom indices in 0..{n - 1}, got {i}, {j}")
    sym = bulk_supercell.get_chemical_symbols()
    if sym[i] != "Li" or sym[j] != "Li":
        raise InputError(f"atoms {i} ({sym[i]}) and {j} ({sym[j]}) must both be Li")
    target = bulk_supercell.positions[j].copy()
    initial = bulk_supercell.copy()
    del initial[j]
    hop = i if i < j else i - 1
    final = initial.copy()
    # the image of site j nearest to Li i, so IDPP/linear paths take the short hop
    final.positions[hop] = nearest_image(bulk_supercell, bulk_supercell.positions[i], target)
    step = final.positions[hop] - initial.positions[hop]
    for atoms in (initial, final):
        atoms.info = dict(bulk_supercell.info)
        atoms.info.update({"hop_index": hop, "vacancy_of": j,
                           "hop_distance_A": round(float(np.linalg.norm(step)), 6)})
    return initial, final


def nearest_li_vacancy_hop(supercell: Atoms, vacancy: int | None = None) -> tuple[Atoms, Atoms]:
    """Vacancy hop of the Li nearest to Li ``vacancy`` (default: the first Li) into its site.

    See :func:`vacancy_hop_endpoints`; the nearest neighbour uses the minimum image.
    """
    li = [a.index for a in supercell if a.symbol == "Li"]
    if len(li) < 2:
        raise InputError(f"{supercell.get_chemical_formula()} needs at least two Li for a "
                         "vacancy hop; use a larger supercell")
    j = li[0] if vacancy is None else int(vacancy)
    if j not in li:
        raise InputError(f"atom {j} is not Li; pass the index of a Li atom as vacancy")
    others = [k for k in li if k != j]
    d = supercell.get_distances(j, others, mic=True)
    return vacancy_hop_endpoints(supercell, others[int(np.argmin(d))], j)


#: experimental antifluorite Li2S lattice constant used by the validation hop, Angstrom
LI2S_A_EXP = 5.69


def li2s_vacancy_hop() -> tuple[Atoms, Atoms, dict[str, object]]:
    """The validation hop: charged Li vacancy in a 2x2x2 primitive Li2S supercell (Li15S8).

    Antifluorite (S on the fcc site, Li on the tetrahedral sites) at the experimental
    a = 5.69 Angstrom; nearest-neighbour hop (a/2 = 2.845 Angstrom). Compute it with GPAW
    ``charge=-1`` (the V_Li^- of Moradabadi and Kaghazchi, APL 108, 213906 (2016), 0.27 eV;
    see docs/validation.md). Returns (initial, final, meta).
    """
    from ase.build import bulk

    cell = bulk("SLi2", "fluorite", a=LI2S_A_EXP) * (2, 2, 2)  # 24 atoms, 8.05 A images
    initial, final = nearest_li_vacancy_hop(cell)
    meta: dict[str, object] = {"system": "Li2S 2x2x2 primitive, V_Li^-1 hop",
                               "hop_distance_A": initial.info.get("hop_distance_A"),
                               "charge": -1, "a_A": LI2S_A_EXP}
    return initial, final, meta


def interpolate_images(
    initial: Atoms,
    final: Atoms,
    n_images: int,
    method: str = "idpp",
    *,
    mic: bool = True,
    steps: int = 100,
) -> list[Atoms]:
    """Full band [initial, n_images intermediate images, final].

    Atom order is never changed; every image carries the initial image's FixAtoms (fixed
    atoms stay at their initial positions: ``apply_constraint=True``). ``method`` is 'idpp'
    or 'linear'; ``mic=True`` interpolates along minimum-image displacements.
    """
    from ase.mep import NEB

    if n_images < 1:
        raise InputError(f"n_images must be >= 1, got {n_images}")
    if method not in ("idpp", "linear"):
        raise InputError(f"method must be 'idpp' or 'linear', got {method!r}")
    if initial.get_chemical_symbols() != final.get_chemical_symbols():
        raise InputError("initial and final must have the same atoms in the same order")
    if not np.allclose(initial.cell[:], final.cell[:], atol=1e-6):
        raise InputError("initial and final must share the same cell")
    fixed_i, fixed_f = set(fixed_indices(initial)), set(fixed_indices(final))
    if fixed_i != fixed_f:
        raise InputError("initial and final have different FixAtoms indices; use the same")
    if fixed_i:
        moved = [k for k in fixed_i
                 if np.linalg.norm(initial.positions[k] - final.positions[k]) > 1e-3]
        if moved:
            raise InputError(f"fixed atoms {moved[:5]} differ between endpoints; "
                             "fixed atoms must not move")
    images = [initial.copy()] + [initial.copy() for _ in range(n_images)] + [final.copy()]
    neb = NEB(images, method="improvedtangent")
    neb.interpolate(method="linear", mic=mic, apply_constraint=True)
    if method == "idpp":
        from ase.mep.neb import idpp_interpolate

        idpp_interpolate(neb, traj=None, log=None, mic=mic, steps=steps)
    for k, atoms in enumerate(images):
        atoms.calc = None
        atoms.info = dict(initial.info)
        atoms.info["image_index"] = k
        atoms.info["n_images"] = n_images
    return images
