"""NEB endpoints and image interpolation that never reorder atoms or drop constraints.

Atoms in, Atoms out; no calculators are attached (the NEB runner in ``calc`` does that).
Lengths in Angstrom.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from interphase_dft.build.sites import insert_li, void_points
from interphase_dft.errors import InputError, StructureError


def _fixed_indices(atoms: Atoms) -> set[int]:
    out: set[int] = set()
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            out.update(int(i) for i in c.get_indices())
    return out


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
                         "with interphase_dft.build.interfaces.make_interfaces")
    side = interface.arrays["side"]
    if not (side == 0).any() or not (side == 1).any():
        raise InputError("interface must contain atoms of both sides (side 0 and 1)")
    sgn = _direction(interface)
    h = sgn * interface.positions[:, 2]
    h_a, h_b = float(h[side == 0].max()), float(h[side == 1].min())
    return sgn * h_a, sgn * h_b, sgn * 0.5 * (h_a + h_b)


def interface_endpoints(
    interface: Atoms,
    *,
    depth: float | None = None,
    min_dist: float = 1.6,
    fix_beyond: float | None = None,
) -> tuple[Atoms, Atoms]:
    """Li in A next to the interface (initial) and in B next to it (final).

    Both endpoints are ``interface`` plus one Li appended as the LAST atom (same index, same
    atom order); existing constraints are kept.

    Parameters
    ----------
    interface : output of ``make_interfaces`` (``arrays['side']``, B above A)
    depth : how far into each side (from its interface layer) sites are searched, Angstrom;
        default 3.0
    min_dist : minimum Li-atom distance of a candidate site, Angstrom
    fix_beyond : if given, atoms farther than this (along z) from the interface midplane are
        added to FixAtoms in both endpoints

    Rule: among Voronoi void points at least ``min_dist`` from every atom, the A site is the
    one with z in [top(A) - depth, midplane - 0.3] closest to the midplane (ties: farther from
    atoms), likewise the B site in [midplane + 0.3, bottom(B) + depth].
    """
    depth = 3.0 if depth is None else float(depth)
    if depth <= 0:
        raise InputError(f"depth must be > 0 Angstrom, got {depth}")
    sgn = _direction(interface)
    z_a, z_b, z_mid = (sgn * v for v in interface_plane(interface))  # heights along A -> B
    pts = void_points(interface, min_dist)
    if not len(pts):
        raise StructureError(f"no void >= {min_dist} A in the interface; lower min_dist")
    z = sgn * pts[:, 2]
    from scipy.spatial import cKDTree

    cell = np.asarray(interface.cell[:])
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    images = (interface.positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    clearance, _ = cKDTree(images).query(pts)

    def pick(mask: np.ndarray, side: str) -> np.ndarray:
        idx = np.flatnonzero(mask)
        if not len(idx):
            raise StructureError(
                f"no Li site within depth={depth} A on side {side} of the interface; "
                "increase depth or lower min_dist")
        best = min(idx, key=lambda k: (round(abs(z[k] - z_mid), 2), -clearance[k]))
        return pts[best]

    pos_a = pick((z >= z_a - depth) & (z <= z_mid - 0.3), "A")
    pos_b = pick((z <= z_b + depth) & (z >= z_mid + 0.3), "B")
    base = interface.copy()
    if fix_beyond is not None:
        far = np.flatnonzero(np.abs(sgn * base.positions[:, 2] - z_mid) > fix_beyond)
        fixed = sorted(_fixed_indices(base) | {int(i) for i in far})
        base.set_constraint(FixAtoms(indices=fixed))
    initial, final = insert_li(base, pos_a), insert_li(base, pos_b)
    for atoms, side in ((initial, 0), (final, 1)):
        atoms.arrays["side"][-1] = side
        atoms.info["li_index"] = len(atoms) - 1
        atoms.info["li_side"] = "A" if side == 0 else "B"
    return initial, final


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
    # move along the minimum-image vector so IDPP/linear paths stay short
    vec = target - bulk_supercell.positions[i]
    frac = np.linalg.solve(np.asarray(final.cell[:]).T, vec)
    frac -= np.round(frac)
    final.positions[hop] = initial.positions[hop] + frac @ final.cell[:]
    for atoms in (initial, final):
        atoms.info = dict(bulk_supercell.info)
        atoms.info.update({"hop_index": hop, "vacancy_of": j,
                           "hop_distance_A": round(float(np.linalg.norm(frac @ final.cell[:])), 6)})
    return initial, final


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
    fixed_i, fixed_f = _fixed_indices(initial), _fixed_indices(final)
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
