"""Slabs: every distinct termination of a Miller plane, and a stated rule to pick one surface.

Atoms in, Atoms out (no calculators). Lengths in Angstrom, dipoles in e*Angstrom.
Terminations come from pymatgen's ``SlabGenerator`` (all symmetry-distinct shifts; none are
filtered out, bond-breaking ones are flagged by ``broken_bonds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from interphase_dft.builders.slab_properties import (
    BulkReference,
    Surface,
    area_of,
    surface_properties,
)
from interphase_dft.builders.units import is_flip_symmetric
from interphase_dft.errors import InputError

SURFACE_RULE = (
    "candidates: (100), (110), (111) for cubic, (001), (100), (110) for hexagonal and "
    "tetragonal, (001), (010), (100) otherwise; keep non-polar, symmetric, stoichiometric "
    "terminations (relaxed in that order if none qualify); pick the lowest broken-bond density "
    "(bonds/A^2; X-Y bonded up to 1.15 x its shortest bulk distance, first shells), ties -> "
    "highest top-layer atom density, then Miller order, then smallest shift"
)


@dataclass
class SlabTermination:
    """One termination of a slab.

    Attributes
    ----------
    atoms : slab with vacuum along z (c perpendicular to the surface), FixAtoms on the bottom
        ``fixed_layers`` d_hkl units when requested; ``atoms.info`` holds the fields below.
    miller : (h, k, l) of the conventional bulk cell
    shift : pymatgen termination shift (fractional along the slab normal)
    termination : composition of the top atomic layer (atoms within 0.6 A of the top atom)
    is_symmetric : both surfaces equivalent (pymatgen ``Slab.is_symmetric``)
    is_polar : a net dipole along z with formal charges (metals are never polar)
    dipole : total dipole along z with formal charges, e*Angstrom (whole cell)
    dipole_density : dipole / surface area, e/Angstrom
    n_layers : number of d_hkl units in the slab (>= the requested layers)
    stoichiometric : slab composition is a multiple of the bulk formula
    broken_bonds : bulk bonds cut per Angstrom^2 (both surfaces together)
    area : surface area, Angstrom^2
    """

    atoms: Atoms
    miller: tuple[int, int, int]
    shift: float
    termination: str
    is_symmetric: bool
    is_polar: bool
    dipole: float
    dipole_density: float
    n_layers: int
    stoichiometric: bool
    broken_bonds: float
    area: float
    info: dict[str, Any] = field(default_factory=dict)


def validate_miller(miller: Sequence[Any]) -> tuple[int, int, int]:
    """``miller`` as three ints in lowest terms, at most
    :data:`~interphase_dft.validation.MAX_MILLER`, or :class:`InputError`
    (:func:`interphase_dft.validation.miller`: one check for the CLI, specs and builders)."""
    from interphase_dft.validation import miller as checked_miller

    return checked_miller(miller)


def make_slabs(
    bulk: Atoms,
    miller: Sequence[int],
    *,
    layers: int | None = None,
    thickness: float | None = None,
    vacuum: float = 7.5,
    fixed_layers: int = 0,
    phase: str | None = None,
    keep_units: bool | None = None,
) -> list[SlabTermination]:
    """Every distinct termination of the (hkl) slab of ``bulk``.

    Parameters
    ----------
    bulk : conventional bulk cell (Miller indices refer to it)
    miller : (h, k, l), integers, not all zero
    layers : minimum slab thickness in d_hkl units of the conventional cell (default 4 when
        ``thickness`` is not given); pymatgen rounds up to whole repeats of the oriented
        cell, the actual count is ``n_layers``
    thickness : minimum slab thickness, Angstrom (alternative to ``layers``)
    vacuum : vacuum on each side, Angstrom
    fixed_layers : bottom d_hkl units held by FixAtoms (0 = none)
    phase : canonical phase name stored in ``atoms.info['phase']``
    keep_units : keep P4S10 molecules / PS4 tetrahedra whole (cut between units, see
        :mod:`interphase_dft.builders.units`); default: True when the bulk has P-S bonds

    Returns
    -------
    list of :class:`SlabTermination`, sorted by shift. No termination is dropped.
    """
    from interphase_dft.builders.units import has_units

    hkl, layers = _check_slab_args(miller, layers, thickness, vacuum, fixed_layers)
    use_units = has_units(bulk) if keep_units is None else bool(keep_units)
    slabs, table = _pymatgen_slabs(bulk, hkl, layers, thickness, vacuum, use_units)
    ref = BulkReference.of(bulk, hkl)
    name = phase or str(bulk.info.get("phase", bulk.get_chemical_formula()))
    out: list[SlabTermination] = []
    for slab in sorted(slabs, key=lambda s: round(float(s.shift), 6)):
        atoms, symmetric = _slab_atoms(slab, table, vacuum)
        if fixed_layers:
            _fix_bottom(atoms, fixed_layers, ref.d_hkl)
        out.append(_termination(atoms, surface_properties(atoms, ref), phase=name, hkl=hkl,
                                shift=float(slab.shift), symmetric=symmetric, vacuum=vacuum,
                                use_units=use_units))
    return out


def _check_slab_args(
    miller: Sequence[Any], layers: int | None, thickness: float | None, vacuum: float,
    fixed_layers: int,
) -> tuple[tuple[int, int, int], int | None]:
    """Validated Miller index and layer count (4 when neither layers nor thickness is given).

    Raises :class:`InputError` naming the bad argument.
    """
    hkl = validate_miller(miller)
    if layers is not None and thickness is not None:
        raise InputError("give either layers or thickness, not both")
    if layers is None and thickness is None:
        layers = 4
    if layers is not None and layers < 1:
        raise InputError(f"layers must be >= 1, got {layers}")
    if thickness is not None and thickness <= 0:
        raise InputError(f"thickness must be > 0 Angstrom, got {thickness}")
    if vacuum < 0:
        raise InputError(f"vacuum must be >= 0 Angstrom, got {vacuum}")
    if fixed_layers < 0 or (layers is not None and fixed_layers >= layers):
        raise InputError(f"fixed_layers={fixed_layers} must be >= 0 and below layers={layers}")
    return hkl, layers


def _pymatgen_slabs(
    bulk: Atoms, hkl: tuple[int, int, int], layers: int | None, thickness: float | None,
    vacuum: float, use_units: bool,
) -> tuple[list[Any], Any]:
    """All symmetry-distinct pymatgen slabs of (hkl) and the rigid-unit table (or None).

    With ``use_units`` the slabs are cut from a structure whose rigid units are pseudo-atoms
    (lattice kept as given, not reduced to primitive), so no unit is cut.
    """
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor

    from interphase_dft.builders.units import pseudo_structure, rigid_units

    table = None
    if use_units:
        structure, table = pseudo_structure(bulk, rigid_units(bulk))
    else:
        structure = AseAtomsAdaptor.get_structure(bulk)
    gen = SlabGenerator(
        structure, hkl,
        min_slab_size=float(layers if layers is not None else thickness),
        min_vacuum_size=2.0 * vacuum if vacuum > 0 else 10.0,
        in_unit_planes=layers is not None, center_slab=True, primitive=not use_units,
        lll_reduce=True, reorient_lattice=not use_units,
        max_normal_search=max(abs(x) for x in hkl),
    )
    slabs = gen.get_slabs(symmetrize=False, filter_out_sym_slabs=True)
    if not slabs:
        raise InputError(f"no slab could be generated for {hkl}; try another Miller index")
    return slabs, table


def _slab_atoms(slab: Any, table: Any, vacuum: float) -> tuple[Atoms, bool]:
    """A pymatgen slab as Atoms (c perpendicular, ``vacuum`` on each side when > 0, atoms
    sorted by height then atomic number) and whether its two surfaces are equivalent."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from interphase_dft.builders.units import expand_units

    ortho = slab.get_orthogonal_c_slab()
    if table is not None:
        atoms = expand_units(ortho, table)
        symmetric = is_flip_symmetric(atoms)
    else:
        atoms = AseAtomsAdaptor.get_atoms(ortho)
        atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions,
                      cell=atoms.cell, pbc=True)
        symmetric = bool(slab.is_symmetric())
    if vacuum > 0:
        atoms.center(vacuum=vacuum, axis=2)
    atoms.pbc = True
    order = np.lexsort((atoms.numbers, atoms.positions[:, 2]))
    return atoms[order], symmetric


def _fix_bottom(atoms: Atoms, fixed_layers: int, d_hkl: float) -> None:
    """Hold the atoms below ``fixed_layers`` d_hkl units (less 0.1 A) from the bottom."""
    z = atoms.positions[:, 2]
    fixed = np.flatnonzero(z < z.min() + fixed_layers * d_hkl - 0.1)
    atoms.set_constraint(FixAtoms(indices=fixed))


def _termination(
    atoms: Atoms, surf: Surface, *, phase: str, hkl: tuple[int, int, int], shift: float,
    symmetric: bool, vacuum: float, use_units: bool,
) -> SlabTermination:
    """The :class:`SlabTermination` of ``atoms``; its fields are mirrored in ``atoms.info``."""
    meta = {
        "phase": phase, "miller": list(hkl), "shift": round(shift, 6),
        "termination": surf.termination, "is_symmetric": symmetric,
        "is_polar": surf.is_polar, "dipole_eA": round(surf.dipole, 6),
        "dipole_density_e_per_A": round(surf.dipole / surf.area, 6), "n_layers": surf.n_layers,
        "stoichiometric": surf.stoichiometric, "broken_bonds_per_A2": round(surf.broken_bonds, 6),
        "area_A2": round(surf.area, 6), "vacuum_A": float(vacuum),
        "top_atom_density_per_A2": round(surf.top_atom_density, 6),
        "units_kept_whole": use_units,
    }
    atoms.info.update(meta)
    return SlabTermination(
        atoms=atoms, miller=hkl, shift=meta["shift"], termination=surf.termination,
        is_symmetric=symmetric, is_polar=surf.is_polar, dipole=surf.dipole,
        dipole_density=surf.dipole / surf.area, n_layers=surf.n_layers,
        stoichiometric=surf.stoichiometric, broken_bonds=surf.broken_bonds, area=surf.area,
        info=meta,
    )


def default_millers(bulk: Atoms) -> list[tuple[int, int, int]]:
    """Low-index candidates for :func:`choose_surface` by lattice system."""
    a, b, c, al, be, ga = bulk.cell.cellpar()
    if np.allclose([a, b], c, rtol=1e-3) and np.allclose([al, be, ga], 90, atol=0.1):
        return [(1, 0, 0), (1, 1, 0), (1, 1, 1)]
    if abs(ga - 120) < 0.1 and abs(a - b) < 1e-3:
        return [(0, 0, 1), (1, 0, 0), (1, 1, 0)]
    if abs(a - b) < 1e-3 and np.allclose([al, be, ga], 90, atol=0.1):  # tetragonal
        return [(0, 0, 1), (1, 0, 0), (1, 1, 0)]
    return [(0, 0, 1), (0, 1, 0), (1, 0, 0)]


def choose_surface(
    phase: str | Atoms,
    settings: Any = None,
    *,
    layers: int | None = None,
    vacuum: float | None = None,
    fixed_layers: int | None = None,
    millers: Sequence[Sequence[int]] | None = None,
) -> SlabTermination:
    """Pick one surface by the stated rule ``SURFACE_RULE`` (deterministic).

    Rule: among the candidate Miller indices (``default_millers``: (100), (110), (111) for
    cubic; (001), (100), (110) for hexagonal and tetragonal; (001), (010), (100) otherwise)
    keep the
    terminations that are non-polar, symmetric and stoichiometric (if none qualify, drop
    stoichiometric, then symmetric, then non-polar); choose the lowest broken-bond density,
    ties broken by the highest top-layer atom density, then Miller order, then shift.
    The rule is stored in ``atoms.info['surface_rule']``.

    Parameters
    ----------
    phase : phase name or bulk Atoms
    settings : optional :class:`~interphase_dft.calc.settings.CalcSettings` or
        ``StructureSettings``; supplies slab_layers, slab_vacuum, slab_fixed_layers
    layers, vacuum, fixed_layers : explicit values override ``settings``
    millers : candidate Miller indices (default by lattice system)
    """
    from interphase_dft.phases import get_bulk, resolve_phase

    if isinstance(phase, Atoms):
        bulk, name = phase, str(phase.info.get("phase", phase.get_chemical_formula()))
    else:
        name = resolve_phase(phase)
        bulk = get_bulk(name)
    st = getattr(settings, "structure", settings)
    layers = layers if layers is not None else getattr(st, "slab_layers", 4)
    vacuum = vacuum if vacuum is not None else getattr(st, "slab_vacuum", 7.5)
    fixed_layers = fixed_layers if fixed_layers is not None else getattr(
        st, "slab_fixed_layers", 0)
    cands = [validate_miller(m) for m in (millers or default_millers(bulk))]
    terms: list[tuple[int, SlabTermination]] = []
    for rank, hkl in enumerate(cands):
        for t in make_slabs(bulk, hkl, layers=layers, vacuum=vacuum,
                            fixed_layers=min(fixed_layers, layers - 1), phase=name):
            terms.append((rank, t))
    filters = [
        lambda t: not t.is_polar and t.is_symmetric and t.stoichiometric,
        lambda t: not t.is_polar and t.is_symmetric,
        lambda t: not t.is_polar,
        lambda t: True,
    ]
    level, pool = 0, []
    for k, keep in enumerate(filters):
        pool = [(r, t) for r, t in terms if keep(t)]
        if pool:
            level = k
            break
    rank, best = min(pool, key=lambda rt: (round(rt[1].broken_bonds, 4),
                                           -rt[1].info["top_atom_density_per_A2"],
                                           rt[0], rt[1].shift))
    best.atoms.info["surface_rule"] = SURFACE_RULE
    best.atoms.info["surface_rule_level"] = level
    best.info["surface_rule"] = SURFACE_RULE
    return best


#: the Li's shortest distance to its own images, in units of sqrt(min_area) (a square cell has
#: 1, a hexagonal one 1.07): 0.85 x sqrt(60 A^2) = 6.6 A
IMAGE_DISTANCE_FACTOR = 0.85


def repeat_to_area(slab: Atoms, min_area: float) -> Atoms:
    """The in-plane supercell of ``slab`` with the smallest area at least ``min_area``
    (Angstrom^2): one Li per surface cell sets the coverage, so every phase gets as close to
    the same area per Li as its surface cell allows.

    Supercells (:func:`in_plane_supercell`): every integer matrix of ``n`` cells (Hermite
    normal form), non-diagonal ones included, ``n`` the fewest cells that reach ``min_area``
    with the Li at least :data:`IMAGE_DISTANCE_FACTOR` x sqrt(``min_area``) from its own
    images (a stripe of the right area is not an isolated adsorbate); among those the one
    whose shortest in-plane lattice vector is longest, diagonal first on a tie, with a
    Gauss-reduced basis. Constraints (FixAtoms) and ``info`` are kept;
    ``info['surface_repeat']`` records the 3x3 integer matrix (rows: new vectors in the
    slab's vectors).
    """
    from ase.build import make_supercell

    if min_area < 0:
        raise InputError(f"min_area must be >= 0 Angstrom^2, got {min_area}")
    area = area_of(slab)
    if area <= 0:
        raise InputError("slab has no in-plane area: check its cell")
    cell2d = np.asarray(slab.cell[:2, :2], float)
    n = max(1, int(np.ceil(min_area / area - 1e-9)))
    matrix, shortest = in_plane_supercell(cell2d, n)
    while shortest < IMAGE_DISTANCE_FACTOR * np.sqrt(min_area) - 1e-9:
        n += 1  # a stripe of the right area puts the Li too close to its own images
        matrix, shortest = in_plane_supercell(cell2d, n)
    if n == 1:
        return slab.copy()
    work = slab.copy()
    fixed = np.zeros(len(work), int)
    for c in work.constraints:
        if isinstance(c, FixAtoms):
            fixed[c.get_indices()] = 1
    work.set_constraint()
    work.new_array("_fixed", fixed)
    out = make_supercell(work, matrix, wrap=True)
    mask = out.get_array("_fixed").astype(bool)
    out.set_array("_fixed", None)
    if mask.any():
        out.set_constraint(FixAtoms(mask=mask))
    out.info = dict(slab.info)
    out.info["surface_repeat"] = np.asarray(matrix, int).tolist()
    return out


def in_plane_supercell(cell2d: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """(3x3 integer matrix, its shortest in-plane lattice vector in Angstrom) of the most
    compact in-plane supercell of ``n`` cells of the 2D lattice ``cell2d`` (rows: vectors;
    matrix rows: new vectors in units of the old, z unchanged): the longest shortest lattice
    vector over every Hermite normal form of determinant ``n``, diagonal first on a tie,
    basis Gauss-reduced."""
    best: tuple[float, int, np.ndarray] | None = None
    for a in range(1, n + 1):
        if n % a:
            continue
        d = n // a
        for b in range(a):  # distinct sublattices: b modulo a
            m = np.array([[a, 0], [b, d]], int)
            reduced = _gauss_reduce(m, cell2d)
            shortest = float(np.linalg.norm(reduced[0] @ cell2d))
            key = (round(shortest, 6), -int(b != 0))
            if best is None or key > best[:2]:
                best = (key[0], key[1], reduced)
    assert best is not None
    out = np.eye(3, dtype=int)
    out[:2, :2] = best[2]
    return out, best[0]


def _gauss_reduce(m: np.ndarray, cell2d: np.ndarray) -> np.ndarray:
    """Integer rows of ``m`` (in the basis ``cell2d``) reduced by Gauss's algorithm: the first
    row the shortest lattice vector, the second the shortest independent one; right-handed."""
    u, v = m[0].copy(), m[1].copy()

    def length(w: np.ndarray) -> float:
        return float(np.linalg.norm(w @ cell2d))

    if length(u) > length(v):
        u, v = v, u
    while True:
        cu, cv = u @ cell2d, v @ cell2d
        k = int(np.rint(np.dot(cu, cv) / np.dot(cu, cu)))
        v = v - k * u
        if length(v) >= length(u) - 1e-9:
            break
        u, v = v, u
    if np.linalg.det(np.array([u, v], float)) < 0:
        v = -v
    return np.array([u, v], int)
