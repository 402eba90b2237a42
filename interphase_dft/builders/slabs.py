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
    """Return ``miller`` as three ints or raise :class:`InputError`."""
    try:
        values = list(miller)
    except TypeError as exc:
        raise InputError(f"Miller index must be three integers, got {miller!r}") from exc
    if len(values) != 3:
        raise InputError(f"Miller index needs exactly three integers (h k l), got {miller!r}")
    out = []
    for v in values:
        try:
            ok = not isinstance(v, bool) and float(v).is_integer()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"Miller indices must be integers, got {miller!r}; e.g. use 1 1 1")
        out.append(int(float(v)))
    if not any(out):
        raise InputError("Miller index (0 0 0) does not define a plane; use e.g. 1 0 0")
    return (out[0], out[1], out[2])


def formal_charges(symbols: Sequence[str]) -> np.ndarray:
    """Formal oxidation states: Li+1, Cl-1, S-2, P+5 with S present else P-3; Al 0."""
    has_s = "S" in symbols
    table = {"Li": 1.0, "Cl": -1.0, "S": -2.0, "P": 5.0 if has_s else -3.0, "Al": 0.0}
    return np.array([table.get(s, 0.0) for s in symbols])


def _is_metallic(symbols: Sequence[str]) -> bool:
    return set(symbols) <= {"Li", "Al"}


def _bond_cutoffs(bulk: Atoms) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """Bond rule and mean bulk coordination per species.

    A pair X-Y is bonded up to 1.15 x its shortest bulk distance, for pairs whose shortest
    distance is within 1.25 x the shortest distance of X or of Y (first shells only).
    """
    from ase.neighborlist import neighbor_list

    sym = np.array(bulk.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", bulk, 4.5)
    pair_min: dict[tuple[str, str], float] = {}
    for a, b, dist in zip(sym[i], sym[j], d, strict=True):
        key = (str(a), str(b))
        pair_min[key] = min(pair_min.get(key, np.inf), float(dist))
    atom_min = {el: min(v for (x, _), v in pair_min.items() if x == el) for el in set(sym)}
    cutoffs = {k: 1.15 * v for k, v in pair_min.items()
               if v <= 1.25 * min(atom_min[k[0]], atom_min[k[1]])}
    counts = _neighbour_counts(bulk, cutoffs)
    return cutoffs, {str(el): float(counts[sym == el].mean()) for el in set(sym)}


def _neighbour_counts(atoms: Atoms, cutoffs: dict[tuple[str, str], float]) -> np.ndarray:
    from ase.neighborlist import neighbor_list

    sym = np.array(atoms.get_chemical_symbols())
    if not cutoffs:
        return np.zeros(len(atoms))
    i, j, d = neighbor_list("ijd", atoms, max(cutoffs.values()))
    ok = np.array([d[k] <= cutoffs.get((sym[i[k]], sym[j[k]]), -1.0) for k in range(len(d))],
                  dtype=bool)
    return np.bincount(i[ok], minlength=len(atoms)).astype(float)


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
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor

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

    from interphase_dft.builders.units import expand_units, has_units, pseudo_structure, rigid_units

    structure = AseAtomsAdaptor.get_structure(bulk)
    d_hkl = float(structure.lattice.d_hkl(hkl))
    use_units = has_units(bulk) if keep_units is None else bool(keep_units)
    table = None
    if use_units:
        structure_gen, table = pseudo_structure(bulk, rigid_units(bulk))
    else:
        structure_gen = structure
    gen = SlabGenerator(
        structure_gen, hkl,
        min_slab_size=float(layers if layers is not None else thickness),
        min_vacuum_size=2.0 * vacuum if vacuum > 0 else 10.0,
        in_unit_planes=layers is not None, center_slab=True, primitive=not use_units,
        lll_reduce=True, reorient_lattice=not use_units,
        max_normal_search=max(abs(x) for x in hkl),
    )
    slabs = gen.get_slabs(symmetrize=False, filter_out_sym_slabs=True)
    if not slabs:
        raise InputError(f"no slab could be generated for {hkl}; try another Miller index")
    symbols = bulk.get_chemical_symbols()
    metallic = _is_metallic(symbols)
    cutoffs, bulk_cn = _bond_cutoffs(bulk)
    bulk_comp = structure.composition.reduced_composition
    name = phase or str(bulk.info.get("phase", bulk.get_chemical_formula()))
    out: list[SlabTermination] = []
    for slab in sorted(slabs, key=lambda s: round(float(s.shift), 6)):
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
        atoms = atoms[order]
        z = atoms.positions[:, 2]
        per_layer = len(bulk) / bulk.get_volume() * _area_of(atoms) * d_hkl
        n_layers = max(1, round(len(atoms) / per_layer))
        if fixed_layers:
            fixed = np.flatnonzero(z < z.min() + fixed_layers * d_hkl - 0.1)
            atoms.set_constraint(FixAtoms(indices=fixed))
        area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
        q = np.zeros(len(atoms)) if metallic else formal_charges(atoms.get_chemical_symbols())
        dipole = float(np.sum(q * (z - z.mean())))
        is_polar = bool(abs(dipole) / area > 1e-3)
        top = z > z.max() - 0.6
        top_symbols = np.array(atoms.get_chemical_symbols())[top].tolist()
        termination = Atoms(top_symbols).get_chemical_formula("hill")
        from pymatgen.core import Composition

        comp = Composition(atoms.get_chemical_formula())
        stoich = comp.reduced_composition.almost_equals(bulk_comp)
        broken = _broken_bonds(atoms, cutoffs, bulk_cn) / (2.0 * area)
        meta = {
            "phase": name, "miller": list(hkl), "shift": round(float(slab.shift), 6),
            "termination": termination, "is_symmetric": symmetric,
            "is_polar": is_polar, "dipole_eA": round(dipole, 6),
            "dipole_density_e_per_A": round(dipole / area, 6), "n_layers": n_layers,
            "stoichiometric": bool(stoich), "broken_bonds_per_A2": round(broken, 6),
            "area_A2": round(area, 6), "vacuum_A": float(vacuum),
            "top_atom_density_per_A2": round(float(top.sum()) / area, 6),
            "units_kept_whole": use_units,
        }
        atoms.info.update(meta)
        out.append(SlabTermination(
            atoms=atoms, miller=hkl, shift=meta["shift"], termination=termination,
            is_symmetric=meta["is_symmetric"], is_polar=is_polar, dipole=dipole,
            dipole_density=dipole / area, n_layers=n_layers, stoichiometric=bool(stoich),
            broken_bonds=broken, area=area, info=meta,
        ))
    return out


def _area_of(atoms: Atoms) -> float:
    return float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))


def _broken_bonds(slab: Atoms, cutoffs: dict[tuple[str, str], float],
                  bulk_cn: dict[str, float]) -> float:
    """Bulk bonds missing in the slab: 0.5 * (sum of mean bulk coordinations - neighbours)."""
    expected = sum(bulk_cn[s] for s in slab.get_chemical_symbols())
    actual = float(_neighbour_counts(slab, cutoffs).sum())
    return round(max(0.0, 0.5 * (expected - actual)), 9)


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


def repeat_to_area(slab: Atoms, min_area: float) -> Atoms:
    """Repeat ``slab`` in plane until its area is at least ``min_area`` (Angstrom^2).

    Adsorbing one Li per surface cell sets the coverage: a 1x1 Al(111) cell would put the Li
    2.9 Angstrom from its periodic images (a full monolayer). The shorter in-plane vector is
    doubled first, so the cell stays as square as possible. Constraints (FixAtoms) and
    ``info`` are kept; ``info['surface_repeat']`` records the repeat.
    """
    if min_area < 0:
        raise InputError(f"min_area must be >= 0 Angstrom^2, got {min_area}")
    reps = [1, 1]
    lengths = slab.cell.lengths()[:2]
    area = _area_of(slab)
    if area <= 0:
        raise InputError("slab has no in-plane area: check its cell")
    while area * reps[0] * reps[1] < min_area:
        i = int(np.argmin([lengths[0] * reps[0], lengths[1] * reps[1]]))
        reps[i] += 1
    if reps == [1, 1]:
        return slab.copy()
    out = slab.repeat((reps[0], reps[1], 1))
    out.info = dict(slab.info)
    out.info["surface_repeat"] = [reps[0], reps[1], 1]
    return out
