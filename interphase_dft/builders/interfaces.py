"""Lattice-matched interfaces between two phases (pymatgen ZSL + CoherentInterfaceBuilder).

Atoms in, Atoms out. Phase A is the unstrained "substrate" side at the bottom of the cell
unless ``strained_side='a'``; the strained side is always the pymatgen "film". Lengths in
Angstrom, areas in Angstrom^2, strains dimensionless (0.05 = 5 %).

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
from interphase_dft.errors import InputError, NoMatchError, StructureError

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


def principal_strain(strained_vecs: np.ndarray, fixed_vecs: np.ndarray) -> float:
    """max |lambda - 1| of the in-plane map strained -> fixed (see module docstring)."""
    f = np.asarray(strained_vecs, float)[:2, :3]
    s = np.asarray(fixed_vecs, float)[:2, :3]
    ev = np.linalg.eigvals(np.linalg.solve(f @ f.T, s @ s.T)).real
    return float(np.max(np.abs(np.sqrt(ev) - 1.0)))


def _as_bulk(phase: str | Atoms) -> tuple[Atoms, str]:
    from interphase_dft.phases import get_bulk, resolve_phase

    if isinstance(phase, Atoms):
        if len(phase) == 0:
            raise InputError("empty Atoms given as interface phase")
        check_overlaps(phase)
        return phase, str(phase.info.get("phase", phase.get_chemical_formula()))
    name = resolve_phase(phase)
    return get_bulk(name), name


def _area(vecs: np.ndarray) -> float:
    v = np.asarray(vecs, float)
    return float(np.linalg.norm(np.cross(v[0], v[1])))


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

    Raises
    ------
    NoMatchError : nothing within the limits; the message names the limit to relax and the
        best strain found.
    StructureError : every matching cell had overlapping atoms.
    """
    from pymatgen.analysis.interfaces import CoherentInterfaceBuilder, ZSLGenerator
    from pymatgen.core.surface import SlabGenerator

    if strained_side not in ("a", "b"):
        raise InputError(f"strained_side must be 'a' or 'b', got {strained_side!r}")
    if not 0 < max_strain < 0.5:
        raise InputError(f"max_strain={max_strain} must be between 0 and 0.5 (e.g. 0.05)")
    if max_atoms < 2 or layers_a < 1 or layers_b < 1 or gap <= 0 or vacuum < 0:
        raise InputError("need max_atoms >= 2, layers >= 1, gap > 0 and vacuum >= 0")
    bulk_a, name_a = _as_bulk(phase_a)
    bulk_b, name_b = _as_bulk(phase_b)
    millers_a = [validate_miller(miller_a)] if miller_a is not None else default_millers(bulk_a)
    millers_b = [validate_miller(miller_b)] if miller_b is not None else default_millers(bulk_b)
    # rigid units (P4S10, PS4) become pseudo-atoms so that no slab cuts through them
    sa, table_a = pseudo_structure(bulk_a, rigid_units(bulk_a))
    sb, table_b = pseudo_structure(bulk_b, rigid_units(bulk_b))
    names_a, names_b = placeholder_names(table_a, sa), placeholder_names(table_b, sb)
    kw = dict(min_vacuum_size=3, in_unit_planes=True, center_slab=True, primitive=True,
              reorient_lattice=False)

    def sigma(struct: Any, hkl: tuple[int, int, int], layers: int) -> float:
        """Atoms per Angstrom^2 of a ``layers``-thick slab (shift 0)."""
        slab = SlabGenerator(struct, hkl, min_slab_size=layers, **kw).get_slab()
        return count_atoms(slab, table_a if struct is sa else table_b) / _area(
            slab.lattice.matrix)

    # (substrate = unstrained, film = strained) in pymatgen language
    strained_b = strained_side == "b"
    tables = {"substrate": table_a, "film": table_b} if strained_b else {
        "substrate": table_b, "film": table_a}
    plans = []  # (n_atoms, strain, ...)
    best_strain, best_strain_atoms = np.inf, 0
    probes = []  # (film lattice, substrate lattice, area cap) for the no-match message
    for ha in millers_a:
        for hb in millers_b:
            sub, film = (sa, sb) if strained_b else (sb, sa)
            h_sub, h_film = (ha, hb) if strained_b else (hb, ha)
            l_sub, l_film = (layers_a, layers_b) if strained_b else (layers_b, layers_a)
            # bound the search: atoms = (sigma_a + sigma_b) * area
            area_cap = 1.1 * max_atoms / (sigma(sa, ha, layers_a) + sigma(sb, hb, layers_b))
            if max_area is not None:
                area_cap = min(area_cap, max_area)
            zsl = ZSLGenerator(max_area_ratio_tol=max_strain * 2, max_area=area_cap,
                               max_length_tol=max_strain, max_angle_tol=max_strain,
                               bidirectional=True)
            builder = CoherentInterfaceBuilder(sub, film, film_miller=h_film,
                                               substrate_miller=h_sub, zslgen=zsl,
                                               label_index=True)
            if not builder.zsl_matches:
                probes.append((film, h_film, sub, h_sub, area_cap))
                continue
            f_gen = SlabGenerator(film, h_film, min_slab_size=l_film, **kw)
            s_gen = SlabGenerator(sub, h_sub, min_slab_size=l_sub, **kw)
            for term in builder.terminations:
                f_shift, s_shift = builder._terminations[term]
                f_slab, s_slab = f_gen.get_slab(shift=f_shift), s_gen.get_slab(shift=s_shift)
                f_area, s_area = _area(f_slab.lattice.matrix), _area(s_slab.lattice.matrix)
                for match in builder.zsl_matches:
                    strain = principal_strain(match.film_sl_vectors, match.substrate_sl_vectors)
                    n_f = count_atoms(f_slab, tables["film"]) * round(
                        _area(match.film_sl_vectors) / f_area)
                    n_s = count_atoms(s_slab, tables["substrate"]) * round(
                        _area(match.substrate_sl_vectors) / s_area)
                    if strain < best_strain:
                        best_strain, best_strain_atoms = strain, n_f + n_s
                    if strain > max_strain + 1e-9 or n_f + n_s > max_atoms:
                        continue
                    plans.append((n_f + n_s, round(strain, 6), str(ha), str(hb), term, match,
                                  (s_slab, f_slab), ha, hb, n_s, n_f,
                                  _area(match.substrate_sl_vectors)))
    if not plans:
        if not np.isfinite(best_strain):
            loose = _probe_best_strain(probes, min(0.3, 4 * max_strain), kw)
            found = (f"best strain found {loose:.4f} (within the same area)" if np.isfinite(loose)
                     else "best strain found: none below 0.3 within the same area")
            limit = "max_strain" if np.isfinite(loose) else "max_atoms/max_area"
            raise NoMatchError(
                f"no lattice match for {name_a}|{name_b} within max_strain={max_strain} and "
                f"max_atoms={max_atoms} (max_area={max_area}); {found}: relax {limit} or "
                "try other Miller indices")
        limit = "max_strain" if best_strain > max_strain else "max_atoms"
        raise NoMatchError(
            f"no {name_a}|{name_b} interface within max_strain={max_strain} and "
            f"max_atoms={max_atoms}; best strain found {best_strain:.4f} with "
            f"{best_strain_atoms} atoms: relax {limit} (or reduce layers_a/layers_b)")
    plans.sort(key=lambda p: (p[0], p[1], p[2], p[3], str(p[4])))
    out: list[InterfaceCandidate] = []
    seen: set[tuple] = set()
    overlaps: list[str] = []
    for n, strain, _, _, term, match, slabs, ha, hb, _n_s, _n_f, area in plans:
        key = (n, strain, ha, hb, term, round(area, 2))
        if key in seen:  # symmetry-equivalent ZSL matches give identical key values
            continue
        seen.add(key)
        iface, map_sub, map_film = _join(slabs[0], slabs[1], match, term, gap=gap,
                                         vacuum=vacuum if vacuum > 0 else gap)
        atoms = _to_ase(iface, strained_b, tables, {"substrate": map_sub, "film": map_film},
                        gap=gap, vacuum=vacuum)
        try:
            check_overlaps(atoms)
        except StructureError as exc:
            overlaps.append(str(exc))
            continue
        names_sub, names_film = (names_a, names_b) if strained_b else (names_b, names_a)
        term_sub, term_film = _readable(term[1], names_sub), _readable(term[0], names_film)
        ta, tb = (term_sub, term_film) if strained_b else (term_film, term_sub)
        na = int((atoms.arrays["side"] == 0).sum())
        meta = {
            "phase_a": name_a, "phase_b": name_b, "miller_a": list(ha), "miller_b": list(hb),
            "termination_a": ta, "termination_b": tb, "strain": float(strain),
            "area_A2": round(float(area), 4), "n_atoms": len(atoms), "n_atoms_a": na,
            "n_atoms_b": len(atoms) - na, "strained_side": strained_side, "gap_A": float(gap),
            "vacuum_A": float(vacuum), "periodic": vacuum == 0, "layers_a": layers_a,
            "layers_b": layers_b,
        }
        atoms.info.update(meta)
        out.append(InterfaceCandidate(
            atoms=atoms, strain=float(strain), area=float(area), miller_a=ha, miller_b=hb,
            termination_a=ta, termination_b=tb, n_atoms=len(atoms), n_atoms_a=na,
            n_atoms_b=len(atoms) - na, strained_side=strained_side, info=meta))
        if len(out) >= max_candidates:
            break
    if not out:
        raise StructureError(f"every {name_a}|{name_b} candidate has overlapping atoms "
                             f"({overlaps[0]})")
    out.sort(key=lambda c: (c.n_atoms, c.strain))
    return out


def _readable(label: str, names: dict[str, str]) -> str:
    """Termination label with rigid-unit placeholders replaced by their formulas."""
    for placeholder, formula in names.items():
        label = label.replace(placeholder, f"[{formula}]")
    return label


def _probe_best_strain(probes: list, tol: float, kw: dict) -> float:
    """Smallest principal strain of any ZSL match with loose tolerance ``tol`` (or inf)."""
    from pymatgen.analysis.interfaces import ZSLGenerator
    from pymatgen.core.surface import SlabGenerator

    best = np.inf
    for film, h_film, sub, h_sub, area_cap in probes:
        f_vec = SlabGenerator(film, h_film, min_slab_size=1, **kw).get_slab().lattice.matrix
        s_vec = SlabGenerator(sub, h_sub, min_slab_size=1, **kw).get_slab().lattice.matrix
        zsl = ZSLGenerator(max_area_ratio_tol=2 * tol, max_area=area_cap, max_length_tol=tol,
                           max_angle_tol=tol, bidirectional=True)
        for match in zsl(f_vec[:2], s_vec[:2], lowest=False):
            best = min(best, principal_strain(match.film_sl_vectors, match.substrate_sl_vectors))
    return best


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
