"""Rigid units (P4S10 molecules, PS4 tetrahedra) kept whole when slabs are cut.

pymatgen's ``SlabGenerator`` cuts planes of atoms, which splits P4S10 molecules in P2S5 and
PS4 groups in LPSC. Here each unit is replaced by one pseudo-atom at its centroid, the slab
is cut for the pseudo-atoms, and every pseudo-atom is expanded back into its unit (same
orientation, translated). Distances in Angstrom.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

UNIT_BONDS: dict[tuple[str, str], float] = {("P", "S"): 2.4}
_PLACEHOLDERS = ("Xe", "Kr", "Rn", "Ar", "Ne", "He", "Ra", "Fr", "Ac", "Th", "Pa", "U")


def has_units(bulk: Atoms, bonds: dict[tuple[str, str], float] = UNIT_BONDS) -> bool:
    """True when ``bulk`` contains any bonded pair listed in ``bonds``."""
    return len(rigid_units(bulk, bonds)) < len(bulk)


def rigid_units(bulk: Atoms, bonds: dict[tuple[str, str], float] = UNIT_BONDS
                ) -> list[tuple[list[int], np.ndarray]]:
    """Connected components under ``bonds`` -> [(atom indices, unwrapped positions)]."""
    from ase.neighborlist import neighbor_list

    cutoff = max(bonds.values())
    i, j, vec = neighbor_list("ijD", bulk, cutoff)
    sym = bulk.get_chemical_symbols()
    keep = [k for k in range(len(i))
            if np.linalg.norm(vec[k]) <= max(bonds.get((sym[i[k]], sym[j[k]]), 0.0),
                                             bonds.get((sym[j[k]], sym[i[k]]), 0.0))]
    adj: dict[int, list[tuple[int, np.ndarray]]] = {}
    for k in keep:
        adj.setdefault(int(i[k]), []).append((int(j[k]), vec[k]))
    seen: dict[int, np.ndarray] = {}
    units = []
    for start in range(len(bulk)):
        if start in seen:
            continue
        seen[start] = bulk.positions[start].copy()
        members, stack = [start], [start]
        while stack:
            a = stack.pop()
            for b, d in adj.get(a, []):
                if b not in seen:
                    seen[b] = seen[a] + d
                    members.append(b)
                    stack.append(b)
        members.sort()
        units.append((members, np.array([seen[m] for m in members])))
    return units


def pseudo_structure(bulk: Atoms, units: list[tuple[list[int], np.ndarray]]
                     ) -> tuple[Any, list[tuple[list[str], np.ndarray]]]:
    """pymatgen Structure with one site per unit (site property 'unit') and the unit table.

    The table holds, per unit, its symbols and positions relative to the centroid. Every
    multi-atom unit gets its own placeholder element (while placeholders last), so units of
    different orientation are never treated as translation-equivalent.
    """
    from pymatgen.core import Lattice, Structure

    sym = bulk.get_chemical_symbols()
    n_multi = sum(len(m) > 1 for m, _ in units)
    species, coords, table = [], [], []
    used = 0
    for members, pos in units:
        centre = pos.mean(axis=0)
        symbols = [sym[m] for m in members]
        if len(members) == 1:
            species.append(symbols[0])
        else:
            k = used if n_multi <= len(_PLACEHOLDERS) else 0
            species.append(_PLACEHOLDERS[k % len(_PLACEHOLDERS)])
            used += 1
        coords.append(centre)
        table.append((symbols, pos - centre))
    struct = Structure(Lattice(bulk.cell[:]), species, coords, coords_are_cartesian=True,
                       site_properties={"unit": list(range(len(units)))})
    return struct, table


def placeholder_names(table: list[tuple[list[str], np.ndarray]], struct: Any) -> dict[str, str]:
    """placeholder element -> unit formula (for readable termination labels)."""
    out = {}
    for site in struct:
        symbols = table[int(site.properties["unit"])][0]
        if len(symbols) > 1:
            out[site.specie.symbol] = Atoms(symbols).get_chemical_formula()
    return out


def count_atoms(slab: Any, table: list[tuple[list[str], np.ndarray]]) -> int:
    """Number of real atoms behind a pseudo-atom structure."""
    return sum(len(table[int(site.properties["unit"])][0]) for site in slab)


def expand_units(slab: Any, table: list[tuple[list[str], np.ndarray]]) -> Atoms:
    """Atoms of a pseudo-atom slab (c perpendicular) with every unit put back, c along z."""
    symbols: list[str] = []
    positions: list[np.ndarray] = []
    for site in slab:
        unit_symbols, rel = table[int(site.properties["unit"])]
        symbols.extend(unit_symbols)
        positions.extend(site.coords + rel)
    cell = np.asarray(slab.lattice.matrix)
    atoms = Atoms(symbols, positions=np.array(positions), cell=cell, pbc=True)
    std, rot = atoms.cell.standard_form()
    atoms.positions = atoms.positions @ rot.T
    atoms.set_cell(std, scale_atoms=False)
    if atoms.cell[2, 2] < 0:  # left-handed input: mirror z
        atoms.positions[:, 2] *= -1
        cell = atoms.cell[:].copy()
        cell[2] *= -1
        atoms.set_cell(cell, scale_atoms=False)
    frac = atoms.get_scaled_positions(wrap=False)
    frac[:, :2] %= 1.0
    atoms.set_scaled_positions(frac)
    return atoms


def is_flip_symmetric(atoms: Atoms, symprec: float = 0.05) -> bool:
    """True if a symmetry operation maps z -> -z (top and bottom surfaces equivalent)."""
    import spglib

    data = spglib.get_symmetry((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers),
                               symprec=symprec)
    return bool(data is not None and any(r[2, 2] == -1 for r in data["rotations"]))
