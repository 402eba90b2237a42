"""Lattice-matched interfaces between two phases (pymatgen ZSL + CoherentInterfaceBuilder).

Atoms in, Atoms out. Phase A is the unstrained "substrate" side at the bottom of the cell
unless ``strained_side='a'``; the strained side is always the pymatgen "film". Lengths in
Angstrom, areas in Angstrom^2, strains dimensionless (0.05 = 5 %).

The search (planes, terminations, ZSL supercells, the strain measure) is in
:mod:`interphase_dft.builders.lattice_match`; this module builds and checks the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.builders.lattice_match import Plan, Side, no_match_error, search
from interphase_dft.errors import InputError, StructureError

MIN_DISTANCE = 0.7  # Angstrom: closer atoms -> StructureError


@dataclass
class InterfaceCandidate:
    """One interface cell. ``atoms.info`` mirrors these fields as JSON-safe values.

    ``atoms.arrays['side']`` is 0 for phase A atoms and 1 for phase B atoms (``tags`` are
    1 and 2); atoms are ordered A first, then B, each bottom to top.
    """

    atoms: Atoms
    strain: float
    area: float
    miller_a: tuple[int, int, int]
    miller_b: tuple[int, int, int]
    termination_a: str
    termination_b: str
    n_atoms: int
    n_atoms_a: int
    n_atoms_b: int
    strained_side: str
    info: dict[str, Any] = field(default_factory=dict)


def check_overlaps(atoms: Atoms, min_dist: float = MIN_DISTANCE) -> None:
    """Raise :class:`StructureError` when two atoms are closer than ``min_dist`` Angstrom."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, min_dist)
    if len(d):
        k = int(np.argmin(d))
        raise StructureError(
            f"atoms {int(i[k])} ({atoms[int(i[k])].symbol}) and {int(j[k])} "
            f"({atoms[int(j[k])].symbol}) are {d[k]:.2f} A apart (< {min_dist} A); increase the "
            "interface gap or pick another termination"
        )


def _as_bulk(phase: str | Atoms) -> tuple[Atoms, str]:
    from interphase_dft.phases import get_bulk, resolve_phase

    if isinstance(phase, Atoms):
        if len(phase) == 0:
            raise InputError("empty Atoms given as interface phase")
        check_overlaps(phase)
        return phase, str(phase.info.get("phase", phase.get_chemical_formula()))
    name = resolve_phase(phase)
    return get_bulk(name), name


def make_interfaces(
    phase_a: str | Atoms,
    phase_b: str | Atoms,
    *,
    miller_a: Sequence[int] | None = None,
    miller_b: Sequence[int] | None = None,
    max_strain: float = 0.05,
    max_atoms: int = 120,
    max_area: float | None = None,
    strained_side: str = "b",
    gap: float = 2.2,
    layers_a: int = 2,
    layers_b: int = 2,
    vacuum: float = 0.0,
    max_candidates: int = 20,
    limits: Any = None,
) -> list[InterfaceCandidate]:
    """Lattice-matched A|B interface cells, sorted by (n_atoms, strain).

    Parameters
    ----------
    phase_a, phase_b : phase names or bulk Atoms (conventional cells)
    miller_a, miller_b : planes; ``None`` tries the low-index set of ``default_millers``
    max_strain : largest allowed principal strain of the strained side
    max_atoms : largest allowed cell
    max_area : largest in-plane area searched (Angstrom^2); default from ``max_atoms``
    strained_side : 'a' or 'b', the side strained to fit the other
    gap : distance between the two slabs, Angstrom (both interfaces when periodic)
    layers_a, layers_b : slab thickness in d_hkl units
    vacuum : 0 gives a periodic cell with two A|B interfaces; > 0 adds that much vacuum
        above B (one interface, two free surfaces)
    max_candidates : at most this many (smallest) candidates are built
    limits : ``CalcSettings`` or ``BudgetSettings`` with the build ceilings (default: the
        defaults); see :func:`~interphase_dft.builders.lattice_match.search`

    Raises
    ------
    InputError : an argument out of range, a limit above its ceiling, or a search estimated
        to be larger than ``budget.build_max_search`` (raised before the search runs).
    NoMatchError : nothing within the limits; the message names the limit to relax and the
        best strain found.
    StructureError : every matching cell had overlapping atoms.
    """
    _check_interface_args(strained_side, max_strain, max_atoms, layers_a, layers_b, gap, vacuum)
    bulk_a, bulk_b = _as_bulk(phase_a), _as_bulk(phase_b)
    a = Side.of(*bulk_a, miller_a, layers_a)
    b = Side.of(*bulk_b, miller_b, layers_b)
    found = search(a, b, strained_side == "b", max_strain=max_strain, max_atoms=max_atoms,
                   max_area=max_area, limits=limits)
    if not found.plans:
        raise no_match_error(found, a, b, max_strain=max_strain, max_atoms=max_atoms,
                             max_area=max_area)
    found.plans.sort(key=lambda p: (p.n_atoms, p.strain, str(p.miller_a), str(p.miller_b),
                                    str(p.term)))
    return _candidates(found.plans, a, b, strained_side=strained_side, gap=gap, vacuum=vacuum,
                       max_candidates=max_candidates)


def _check_interface_args(strained_side: str, max_strain: float, max_atoms: int,
                          layers_a: int, layers_b: int, gap: float, vacuum: float) -> None:
    """Raise :class:`InputError` for arguments outside their allowed range."""
    if strained_side not in ("a", "b"):
        raise InputError(f"strained_side must be 'a' or 'b', got {strained_side!r}")
    if not 0 < max_strain < 0.5:
        raise InputError(f"max_strain={max_strain} must be between 0 and 0.5 (e.g. 0.05)")
    if max_atoms < 2 or layers_a < 1 or layers_b < 1 or gap <= 0 or vacuum < 0:
        raise InputError("need max_atoms >= 2, layers >= 1, gap > 0 and vacuum >= 0")


def _candidates(plans: list[Plan], a: Side, b: Side, *, strained_side: str, gap: float,
                vacuum: float, max_candidates: int) -> list[InterfaceCandidate]:
    """Build the sorted ``plans`` into interface cells, at most ``max_candidates``.

    Symmetry-equivalent plans (same size, strain, planes, termination and area) are built
    once; a cell with overlapping atoms is skipped, and :class:`StructureError` is raised
    when every cell overlaps. The result is sorted by (n_atoms, strain).
    """
    out: list[InterfaceCandidate] = []
    seen: set[tuple] = set()
    overlaps: list[str] = []
    for plan in plans:
        key = (plan.n_atoms, plan.strain, plan.miller_a, plan.miller_b, plan.term,
               round(plan.area, 2))
        if key in seen:  # symmetry-equivalent ZSL matches give identical key values
            continue
        seen.add(key)
        try:
            out.append(build_plan(plan, a, b, strained_side=strained_side, gap=gap,
                                  vacuum=vacuum))
        except StructureError as exc:
            overlaps.append(str(exc))
            continue
        if len(out) >= max_candidates:
            break
    if not out:
        raise StructureError(f"every {a.name}|{b.name} candidate has overlapping atoms "
                             f"({overlaps[0]})")
    out.sort(key=lambda c: (c.n_atoms, c.strain))
    return out


def build_plan(plan: Plan, a: Side, b: Side, *, strained_side: str, gap: float,
               vacuum: float) -> InterfaceCandidate:
    """The interface cell of one lattice-match ``plan`` (A first, then B, bottom to top).

    Parameters
    ----------
    plan : a :class:`~interphase_dft.builders.lattice_match.Plan` of ``search(a, b, ...)``
    a, b : the two sides the plan was found for
    strained_side : 'a' or 'b', as in the search
    gap : distance between the two slabs, Angstrom
    vacuum : 0 = periodic (two interfaces, both with ``gap``); > 0 = that much vacuum above
        the top side, Angstrom

    Raises
    ------
    StructureError : two atoms closer than ``MIN_DISTANCE``.
    """
    strained_b = strained_side == "b"
    sub, film = (a, b) if strained_b else (b, a)
    tables = {"substrate": sub.table, "film": film.table}
    iface, map_sub, map_film = _join(plan.substrate_slab, plan.film_slab, plan.match, plan.term,
                                     gap=gap, vacuum=vacuum if vacuum > 0 else gap)
    atoms = _to_ase(iface, strained_b, tables, {"substrate": map_sub, "film": map_film},
                    gap=gap, vacuum=vacuum)
    check_overlaps(atoms)
    term_sub = _readable(plan.term[1], sub.names)
    term_film = _readable(plan.term[0], film.names)
    ta, tb = (term_sub, term_film) if strained_b else (term_film, term_sub)
    return _candidate(atoms, plan, a, b, (ta, tb), strained_side=strained_side, gap=gap,
                      vacuum=vacuum)


def _candidate(atoms: Atoms, plan: Plan, a: Side, b: Side, terms: tuple[str, str], *,
               strained_side: str, gap: float, vacuum: float) -> InterfaceCandidate:
    """The :class:`InterfaceCandidate` of ``atoms``; its fields are mirrored in ``atoms.info``."""
    ta, tb = terms
    na = int((atoms.arrays["side"] == 0).sum())
    meta = {
        "phase_a": a.name, "phase_b": b.name, "miller_a": list(plan.miller_a),
        "miller_b": list(plan.miller_b), "termination_a": ta, "termination_b": tb,
        "strain": float(plan.strain), "area_A2": round(float(plan.area), 4),
        "n_atoms": len(atoms), "n_atoms_a": na, "n_atoms_b": len(atoms) - na,
        "strained_side": strained_side, "gap_A": float(gap), "vacuum_A": float(vacuum),
        "periodic": vacuum == 0, "layers_a": a.layers, "layers_b": b.layers,
    }
    atoms.info.update(meta)
    return InterfaceCandidate(
        atoms=atoms, strain=float(plan.strain), area=float(plan.area), miller_a=plan.miller_a,
        miller_b=plan.miller_b, termination_a=ta, termination_b=tb, n_atoms=len(atoms),
        n_atoms_a=na, n_atoms_b=len(atoms) - na, strained_side=strained_side, info=meta)


def _readable(label: str, names: dict[str, str]) -> str:
    """Termination label with rigid-unit placeholders replaced by their formulas."""
    for placeholder, formula in names.items():
        label = label.replace(placeholder, f"[{formula}]")
    return label


def _join(sub_slab: Any, film_slab: Any, match: Any, term: tuple[str, str], *, gap: float,
          vacuum: float) -> tuple[Any, np.ndarray, np.ndarray]:
    """Supercells of both slabs for one ZSL match, joined by pymatgen ``Interface``.

    Returns the interface and the linear maps (row-vector convention, cart_new = cart_old @ F)
    that ``Interface.from_slabs`` applied to the substrate and film (used to place the atoms
    of rigid units around their pseudo-atoms).
    """
    from pymatgen.analysis.interfaces.coherent_interfaces import from_2d_to_3d, get_2d_transform
    from pymatgen.core.interface import Interface

    slabs = []
    for slab, vecs in ((film_slab, match.film_sl_vectors), (sub_slab, match.substrate_sl_vectors)):
        xform = np.round(from_2d_to_3d(get_2d_transform(slab.lattice.matrix[:2], vecs)))
        big = slab.copy()
        big.make_supercell(xform.astype(int))
        slabs.append(big)
    # from_slabs first makes c perpendicular (Cartesian positions kept), keeps fractional
    # coordinates in-plane, rescales z to the new c and mirrors the film (z -> -z)
    old = []
    for sl in slabs:
        m = np.array(sl.lattice.matrix)
        n = np.cross(m[0], m[1])
        n /= np.linalg.norm(n)
        m[2] = n * float(np.dot(m[2], n))
        old.append(m)
    iface = Interface.from_slabs(substrate_slab=slabs[1], film_slab=slabs[0], gap=gap,
                                 vacuum_over_film=vacuum,
                                 interface_properties={"termination": term})
    new = np.array(iface.lattice.matrix)
    c_new = float(np.linalg.norm(new[2]))
    maps = [np.linalg.inv(m) @ np.diag([1.0, 1.0, sign * np.linalg.norm(m[2]) / c_new]) @ new
            for m, sign in zip(old, (-1.0, 1.0), strict=True)]
    return iface, maps[1], maps[0]


def _to_ase(iface: Any, strained_b: bool, tables: dict[str, list], maps: dict[str, np.ndarray],
            *, gap: float, vacuum: float) -> Atoms:
    """pymatgen Interface -> Atoms (units expanded), c perpendicular, A first then B.

    The gap is re-imposed on the real atoms (pymatgen measured it between pseudo-atoms):
    film bottom - substrate top = ``gap``; the cell height closes the second interface with
    ``gap`` (periodic) or leaves ``vacuum`` above the film.
    """
    symbols: list[str] = []
    positions: list[np.ndarray] = []
    labels: list[str] = []
    for site in iface:
        label = site.properties["interface_label"]
        unit_symbols, rel = tables[label][int(site.properties["unit"])]
        symbols.extend(unit_symbols)
        positions.extend(site.coords + rel @ maps[label])
        labels.extend([label] * len(unit_symbols))
    cell = np.array(iface.lattice.matrix)
    normal = np.cross(cell[0], cell[1])
    normal /= np.linalg.norm(normal)
    pos = np.array(positions)
    is_film = np.array(labels) == "film"
    h = pos @ normal
    pos[is_film] += normal * (gap - (h[is_film].min() - h[~is_film].max()))
    h = pos @ normal
    pos -= normal * h.min()
    cell[2] = normal * float(h.max() - h.min() + (vacuum if vacuum > 0 else gap))
    is_a = ~is_film if strained_b else is_film
    side = np.where(is_a, 0, 1)
    atoms = Atoms(symbols, positions=pos, cell=cell, pbc=True)
    atoms.wrap()
    height = atoms.positions @ normal
    order = np.lexsort((height, side))
    atoms = atoms[order]
    atoms.arrays["side"] = side[order].astype(int)
    atoms.set_tags(side[order] + 1)
    return atoms
