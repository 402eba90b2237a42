"""Interface cells for Li migration: one A|B interface, thick sides, vacuum, fixed outer thirds.

Atoms in, Atoms out (no calculators). Lengths in Angstrom, areas in Angstrom^2, strains
dimensionless (0.05 = 5 %).

Rules
-----
- Geometry: A at the bottom, B above it, ``vacuum`` (>= 10 A) between the top of B and the
  periodic image of the bottom of A, the slab centred in the cell along z. One A|B interface
  per cell; the DFT recipe switches the dipole correction on (``info['dipole_correction']``).
- Thickness of a side = extent along z of its atoms; atomic planes as in
  :mod:`~interphase_dft.builders.thickness`. Each side has at least ``min_thickness`` and
  ``min_planes`` planes; layers (d_hkl units) are added per side until both hold.
- Lattice match: every plane pair and termination pair of the ZSL search
  (:mod:`~interphase_dft.builders.lattice_match`) within ``max_strain``, ranked by
  (polar sides, atoms at the required thickness, strain, Miller indices, termination);
  ``choice`` picks from that ranking (0 = the smallest cell without a polar side). A side is
  polar when its formal-charge dipole along z per in-plane area exceeds
  :data:`~interphase_dft.builders.slab_properties.POLAR_TOL` (a polar film carries a field
  across the cell and reconstructs; e.g. rock-salt LiCl(111)); the dipoles are stored
  (``dipole_a_e_per_A``, ``dipole_b_e_per_A``, ``polar_sides``).
- Fixed atoms: the outer ``fixed_fraction`` of each side's thickness (the part farthest from
  the interface) at bulk positions (FixAtoms); rigid units (PS4, P4S10) are fixed whole when
  their centroid lies in that part.
- Registry: side B is shifted rigidly in plane by ``shift`` (fractions of the in-plane cell
  vectors) and placed ``gap`` above A (lowest B atom - highest A atom). The energy scan is
  :func:`interphase_dft.recipes.registry.registry_scan`; without energies
  :func:`interphase_dft.builders.contact.contact_registry` gives a geometric one (used when
  ``shift`` is None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from interphase_dft.builders.interfaces import _as_bulk
from interphase_dft.builders.lattice_match import Side, no_match_error, search
from interphase_dft.builders.slab_properties import POLAR_TOL, dipole_density
from interphase_dft.builders.thickness import (
    RANK_RULE,
    build_thick,
    rank_plans,
    side_geometry,
)
from interphase_dft.builders.units import rigid_units
from interphase_dft.errors import InputError, NoMatchError

MIN_VACUUM = 10.0  # Angstrom


@dataclass
class MigrationCell:
    """One A|B interface cell for migration; ``atoms.info`` mirrors ``info``.

    ``atoms.arrays['side']`` is 0 for A and 1 for B; A is at the bottom. ``fixed`` are the
    FixAtoms indices (outer ``fixed_fraction`` of each side). Lengths in Angstrom.
    """

    atoms: Atoms
    phase_a: str
    phase_b: str
    miller_a: tuple[int, int, int]
    miller_b: tuple[int, int, int]
    termination_a: str
    termination_b: str
    strain: float
    max_strain: float
    strained_side: str
    layers_a: int
    layers_b: int
    thickness_a: float
    thickness_b: float
    planes_a: int
    planes_b: int
    gap: float
    shift: tuple[float, float]
    vacuum: float
    area: float
    fixed: tuple[int, ...]
    fixed_fraction: float
    info: dict[str, Any] = field(default_factory=dict)


def migration_cell(
    phase_a: str | Atoms,
    phase_b: str | Atoms,
    *,
    min_thickness: float = 6.0,
    min_planes: int = 3,
    vacuum: float = MIN_VACUUM,
    fixed_fraction: float = 1.0 / 3.0,
    max_strain: float = 0.05,
    max_atoms: int = 200,
    strained_side: str = "b",
    miller_a: Sequence[int] | None = None,
    miller_b: Sequence[int] | None = None,
    gap: float | None = None,
    shift: Sequence[float] | None = None,
    choice: int = 0,
    limits: Any = None,
) -> MigrationCell:
    """The A|B migration cell with both sides at least ``min_thickness`` thick.

    Parameters
    ----------
    phase_a, phase_b : phase names or conventional bulk Atoms
    min_thickness : smallest extent along z of each side, Angstrom
    min_planes : fewest atomic planes per side (>= 3)
    vacuum : vacuum between the top of B and the image of the bottom of A, Angstrom (>= 10)
    fixed_fraction : outer fraction of each side's thickness held fixed (0 <= f < 1)
    max_strain, strained_side : lattice-match limit and the side strained to fit
    max_atoms : largest cell accepted
    miller_a, miller_b : planes; ``None`` searches the low-index planes of each phase
    gap : lowest B atom - highest A atom, Angstrom; None = the contact gap of ``shift``
        (:func:`~interphase_dft.builders.contact.contact_gaps`)
    shift : rigid in-plane shift of B, fractions of the two in-plane cell vectors (from the
        as-built cell); None = the contact registry
        (:func:`~interphase_dft.builders.contact.contact_registry`)
    choice : index into the ranking of :data:`RANK_RULE`
    limits : ``CalcSettings``/``BudgetSettings`` holding the build ceilings (default: the
        defaults), see :func:`~interphase_dft.builders.lattice_match.search`

    Raises
    ------
    InputError : arguments out of range.
    NoMatchError : no lattice match within ``max_strain``, or none that reaches the thickness
        within ``max_atoms`` (the message names the atom count needed).
    """
    _check_args(min_thickness, min_planes, vacuum, fixed_fraction, gap, choice)
    bulk_a, bulk_b = _as_bulk(phase_a), _as_bulk(phase_b)
    a = Side.of(*bulk_a, miller_a, 1)
    b = Side.of(*bulk_b, miller_b, 1)
    found = search(a, b, strained_side == "b", max_strain=max_strain, max_atoms=max_atoms,
                   max_area=None, limits=limits)
    if not found.plans:
        raise no_match_error(found, a, b, max_strain=max_strain, max_atoms=max_atoms,
                             max_area=None)
    ranked = rank_plans(found.plans, a, b, strained_side, min_thickness, min_planes)
    fitting = [r for r in ranked if r[0] <= max_atoms]
    if not fitting:
        raise NoMatchError(
            f"no {a.name}|{b.name} cell within max_atoms={max_atoms} reaches "
            f"{min_thickness} A and {min_planes} atomic planes per side; the smallest needs "
            f"{min(r[0] for r in ranked)} atoms: raise max_atoms (--max-atoms, "
            "structure.interface_migration_max_atoms) or lower "
            "structure.interface_min_thickness")
    if choice >= len(fitting):
        raise InputError(f"choice={choice} but only {len(fitting)} {a.name}|{b.name} cells fit; "
                         f"use 0..{len(fitting) - 1}")
    _, plan, la, lb = fitting[choice]
    cand, la, lb = build_thick(plan, a, b, la, lb, strained_side, min_thickness, min_planes,
                                max_atoms)
    atoms = _orient(cand.atoms, strained_side)
    meta = dict(cand.info)
    dipoles = [dipole_density(atoms[atoms.arrays["side"] == k]) for k in (0, 1)]
    meta.update(max_strain=float(max_strain), rank_rule=RANK_RULE, choice=choice,
                n_ranked=len(fitting), layers_a=la, layers_b=lb,
                dipole_a_e_per_A=round(dipoles[0], 6), dipole_b_e_per_A=round(dipoles[1], 6),
                polar_sides=[n for n, d in zip("ab", dipoles, strict=True) if d > POLAR_TOL])
    atoms.info = meta
    shift, gap, rule = _registry(atoms, bulk_a[0], bulk_b[0], shift, gap)
    return finish_cell(atoms, gap=gap, shift=shift, vacuum=vacuum,
                       fixed_fraction=fixed_fraction, min_thickness=min_thickness,
                       registry_rule=rule)


def _registry(atoms: Atoms, bulk_a: Atoms, bulk_b: Atoms, shift: Sequence[float] | None,
              gap: float | None) -> tuple[tuple[float, float], float, str]:
    """(shift, gap, rule): given values, else the geometric contact registry."""
    from interphase_dft.builders.contact import (
        CONTACT_RULE,
        contact_distances,
        contact_gaps,
        contact_registry,
    )

    if shift is None:
        s, g = contact_registry(atoms, bulk_a, bulk_b)
        return s, (g if gap is None else float(gap)), f"contact: {CONTACT_RULE}"
    s = (float(shift[0]), float(shift[1]))
    if gap is not None:
        return s, float(gap), "given shift and gap"
    g = contact_gaps(atoms, np.array([s]), contact_distances(bulk_a, bulk_b))[0][0]
    return s, round(float(g), 4), "given shift, contact gap"


def set_registry(cell: MigrationCell, shift: Sequence[float], gap: float,
                 rule: str = "given shift and gap") -> MigrationCell:
    """``cell`` with B at ``shift`` (fractions, from the as-built cell) and ``gap`` (A);
    same atoms, order and fixed indices."""
    return finish_cell(cell.atoms, gap=gap, shift=shift, vacuum=cell.vacuum,
                       fixed_fraction=cell.fixed_fraction,
                       min_thickness=cell.info.get("min_thickness_A"), registry_rule=rule)


def migration_cell_for(phase_a: str | Atoms, phase_b: str | Atoms, settings: Any,
                       **overrides: Any) -> MigrationCell:
    """:func:`migration_cell` with the limits of ``settings.structure`` (or a
    ``StructureSettings``); keyword ``overrides`` win (e.g. ``max_atoms``, ``shift``)."""
    st = getattr(settings, "structure", settings)
    kw: dict[str, Any] = dict(
        min_thickness=st.interface_min_thickness, min_planes=st.interface_min_planes,
        vacuum=st.interface_migration_vacuum, fixed_fraction=st.interface_fixed_fraction,
        max_strain=st.interface_max_strain, max_atoms=st.interface_migration_max_atoms,
        strained_side=st.interface_strained_side,
        limits=settings if hasattr(settings, "budget") else None)
    kw.update(overrides)
    return migration_cell(phase_a, phase_b, **kw)


def _check_args(min_thickness: float, min_planes: int, vacuum: float, fixed_fraction: float,
                gap: float | None, choice: int) -> None:
    """Raise :class:`InputError` naming the argument out of range."""
    if min_thickness <= 0:
        raise InputError(f"min_thickness={min_thickness} A must be > 0 (e.g. 6)")
    if min_planes < 3:
        raise InputError(f"min_planes={min_planes} must be >= 3 (bulk-like sides)")
    if vacuum < MIN_VACUUM:
        raise InputError(f"vacuum={vacuum} A must be >= {MIN_VACUUM} A (one interface per cell "
                         "with a dipole correction)")
    if not 0 <= fixed_fraction < 1:
        raise InputError(f"fixed_fraction={fixed_fraction} must be in [0, 1) (e.g. 1/3)")
    if (gap is not None and gap <= 0) or choice < 0:
        raise InputError(f"need gap > 0 A and choice >= 0, got gap={gap}, choice={choice}")


def _orient(atoms: Atoms, strained_side: str) -> Atoms:
    """``atoms`` with A at the bottom: a cell built with A on top (``strained_side='a'``) is
    turned 180 degrees about x (a proper rotation; in-plane vectors swapped to stay
    right-handed)."""
    side = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    if z[side == 0].mean() < z[side == 1].mean():
        return atoms
    rot = np.diag([1.0, -1.0, -1.0])
    cell = np.asarray(atoms.cell[:]) @ rot
    new_cell = np.array([cell[1], cell[0], [0.0, 0.0, float(np.linalg.norm(cell[2]))]])
    out = atoms.copy()
    out.positions = atoms.positions @ rot
    out.positions[:, 2] -= out.positions[:, 2].min()
    out.set_cell(new_cell, scale_atoms=False)
    out.wrap()
    order = np.lexsort((out.positions[:, 2], out.arrays["side"]))
    out = out[order]
    out.info = dict(atoms.info)
    return out


def finish_cell(atoms: Atoms, *, gap: float, shift: Sequence[float], vacuum: float,
                fixed_fraction: float, min_thickness: float | None = None,
                registry_rule: str = "given shift and gap") -> MigrationCell:
    """Place B at ``shift`` and ``gap``, centre with ``vacuum``, fix the outer parts.

    ``atoms`` is an A-bottom interface cell with ``arrays['side']`` and the interface
    metadata of :func:`~interphase_dft.builders.interfaces.build_plan` in ``info``;
    ``shift`` counts from the as-built cell (``info['shift']`` is where B is now).
    """
    from interphase_dft.builders.interfaces import check_overlaps

    if len(shift) != 2:
        raise InputError(f"shift must be two fractions (s1, s2), got {shift!r}")
    now = atoms.info.get("shift", (0.0, 0.0))
    out = place_side_b(atoms, shift=(shift[0] - now[0], shift[1] - now[1]), gap=gap,
                       vacuum=vacuum)
    out.set_constraint()
    fixed = outer_fixed(out, fixed_fraction)
    out.set_constraint(FixAtoms(indices=fixed))
    check_overlaps(out)
    (ta, pa), (tb, pb) = side_geometry(out, 0), side_geometry(out, 1)
    info = dict(out.info)
    area = float(np.linalg.norm(np.cross(out.cell[0], out.cell[1])))
    info.update(
        thickness_a_A=round(ta, 4), thickness_b_A=round(tb, 4), planes_a=pa, planes_b=pb,
        gap_A=float(gap), shift=[float(s) for s in shift], vacuum_A=float(vacuum),
        periodic=False, dipole_correction=True, dipole_axis="z", area_A2=round(area, 4),
        registry_rule=registry_rule,
        fixed_fraction=float(fixed_fraction), fixed=[int(i) for i in fixed],
        n_fixed=len(fixed), n_atoms=len(out), interfaces_per_cell=1,
        inplane_lengths_A=[round(float(x), 4) for x in out.cell.lengths()[:2]])
    if min_thickness is not None:
        info["min_thickness_A"] = float(min_thickness)
    out.info = info
    return MigrationCell(
        atoms=out, phase_a=info["phase_a"], phase_b=info["phase_b"],
        miller_a=tuple(info["miller_a"]), miller_b=tuple(info["miller_b"]),
        termination_a=info["termination_a"], termination_b=info["termination_b"],
        strain=float(info["strain"]), max_strain=float(info.get("max_strain", np.nan)),
        strained_side=info["strained_side"], layers_a=int(info["layers_a"]),
        layers_b=int(info["layers_b"]), thickness_a=ta, thickness_b=tb, planes_a=pa,
        planes_b=pb, gap=float(gap), shift=(float(shift[0]), float(shift[1])),
        vacuum=float(vacuum), area=area, fixed=tuple(int(i) for i in fixed),
        fixed_fraction=float(fixed_fraction), info=info)


def place_side_b(atoms: Atoms, *, shift: Sequence[float], gap: float, vacuum: float) -> Atoms:
    """Copy of ``atoms`` with side B moved rigidly: in-plane by ``shift`` (fractions of the
    in-plane cell vectors, taken from the current B position) and along z so that its lowest
    atom is ``gap`` A above the highest A atom; the slab is centred with ``vacuum`` A."""
    if len(shift) != 2:
        raise InputError(f"shift must be two fractions (s1, s2), got {shift!r}")
    out = atoms.copy()
    out.info = dict(atoms.info)
    side = out.arrays["side"]
    is_b = side == 1
    pos = out.positions
    pos[is_b] += float(shift[0]) * out.cell[0] + float(shift[1]) * out.cell[1]
    pos[is_b, 2] += gap - (pos[is_b, 2].min() - pos[~is_b, 2].max())
    out.positions = pos
    cell = np.asarray(out.cell[:]).copy()
    cell[2] = [0.0, 0.0, float(np.ptp(pos[:, 2]) + vacuum)]
    out.set_cell(cell, scale_atoms=False)
    out.positions[:, 2] += vacuum / 2 - out.positions[:, 2].min()
    frac = out.get_scaled_positions(wrap=False)
    frac[:, :2] %= 1.0
    out.set_scaled_positions(frac)
    return out


def outer_fixed(atoms: Atoms, fixed_fraction: float) -> list[int]:
    """Indices in the outer ``fixed_fraction`` of each side (farthest from the interface):
    A atoms below ``z_min(A) + f t_A`` and B atoms above ``z_max(B) - f t_B`` (0.1 A
    tolerance). A rigid unit is fixed whole when its centroid is in that part."""
    if fixed_fraction <= 0:
        return []
    side = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    fixed: set[int] = set()
    for s in (0, 1):
        idx = np.flatnonzero(side == s)
        zs = z[idx]
        t = float(np.ptp(zs))
        sub = atoms[idx]
        for members, pos in rigid_units(sub):
            c = float(pos[:, 2].mean())
            inside = (c < zs.min() + fixed_fraction * t + 0.1 if s == 0
                      else c > zs.max() - fixed_fraction * t - 0.1)
            if inside:
                fixed.update(int(idx[m]) for m in members)
    return sorted(fixed)
