"""What a slab surface is: termination, dipole, stoichiometry and broken bulk bonds.

Atoms in, numbers out (no calculators). Lengths in Angstrom, dipoles in e*Angstrom. Bonds
follow a rule derived from the bulk (:func:`bond_cutoffs`); dipoles use formal charges
(:func:`formal_charges`), none for metals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms


def formal_charges(symbols: Sequence[str]) -> np.ndarray:
    """Formal oxidation states: Li+1, Cl-1, S-2, P+5 with S present else P-3; Al 0."""
    has_s = "S" in symbols
    table = {"Li": 1.0, "Cl": -1.0, "S": -2.0, "P": 5.0 if has_s else -3.0, "Al": 0.0}
    return np.array([table.get(s, 0.0) for s in symbols])


def is_metallic(symbols: Sequence[str]) -> bool:
    """True for Li/Al-only cells (no formal charges, never polar)."""
    return set(symbols) <= {"Li", "Al"}


#: a slab is polar above this formal-charge dipole per in-plane area, e/Angstrom
POLAR_TOL = 1e-3


def dipole_density(atoms: Atoms) -> float:
    """|Formal-charge dipole along z| per in-plane area of a slab (z normal to it), e/Angstrom;
    0 for a metal. Origin at the mean height (the slabs compared here are neutral)."""
    symbols = atoms.get_chemical_symbols()
    if not len(atoms) or is_metallic(symbols):
        return 0.0
    z = atoms.positions[:, 2]
    return abs(float(np.sum(formal_charges(symbols) * (z - z.mean())))) / area_of(atoms)


def bond_cutoffs(bulk: Atoms) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
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
    counts = neighbour_counts(bulk, cutoffs)
    return cutoffs, {str(el): float(counts[sym == el].mean()) for el in set(sym)}


def neighbour_counts(atoms: Atoms, cutoffs: dict[tuple[str, str], float]) -> np.ndarray:
    """Bonded neighbours of every atom under the pair ``cutoffs`` (Angstrom)."""
    from ase.neighborlist import neighbor_list

    sym = np.array(atoms.get_chemical_symbols())
    if not cutoffs:
        return np.zeros(len(atoms))
    i, j, d = neighbor_list("ijd", atoms, max(cutoffs.values()))
    ok = np.array([d[k] <= cutoffs.get((sym[i[k]], sym[j[k]]), -1.0) for k in range(len(d))],
                  dtype=bool)
    return np.bincount(i[ok], minlength=len(atoms)).astype(float)


@dataclass(frozen=True)
class BulkReference:
    """The bulk quantities every termination of one (hkl) slab is compared with."""

    d_hkl: float  # Angstrom
    density: float  # atoms per Angstrom^3
    metallic: bool
    cutoffs: dict[tuple[str, str], float]  # bond rule of :func:`bond_cutoffs`, Angstrom
    coordination: dict[str, float]  # mean bulk coordination per species
    composition: Any  # pymatgen reduced Composition

    @classmethod
    def of(cls, bulk: Atoms, hkl: tuple[int, int, int]) -> BulkReference:
        """The reference of ``bulk`` for slabs of the (hkl) plane."""
        from pymatgen.io.ase import AseAtomsAdaptor

        structure = AseAtomsAdaptor.get_structure(bulk)
        cutoffs, coordination = bond_cutoffs(bulk)
        return cls(
            d_hkl=float(structure.lattice.d_hkl(hkl)), density=len(bulk) / bulk.get_volume(),
            metallic=is_metallic(bulk.get_chemical_symbols()), cutoffs=cutoffs,
            coordination=coordination, composition=structure.composition.reduced_composition,
        )


@dataclass(frozen=True)
class Surface:
    """Surface properties of one slab (the fields of
    :class:`interphase_dft.builders.slabs.SlabTermination`)."""

    termination: str
    is_polar: bool
    dipole: float  # e*Angstrom
    n_layers: int
    stoichiometric: bool
    broken_bonds: float  # per Angstrom^2
    area: float  # Angstrom^2
    top_atom_density: float  # per Angstrom^2


def surface_properties(atoms: Atoms, ref: BulkReference) -> Surface:
    """Termination, polarity, thickness, stoichiometry and broken bonds of a slab.

    The dipole uses formal charges (none for metals); a slab is polar above :data:`POLAR_TOL`.
    The top layer is every atom within 0.6 Angstrom of the highest one. ``n_layers`` is the
    atom count over the atoms of one d_hkl unit of bulk.
    """
    from pymatgen.core import Composition

    z = atoms.positions[:, 2]
    area = area_of(atoms)
    q = np.zeros(len(atoms)) if ref.metallic else formal_charges(atoms.get_chemical_symbols())
    dipole = float(np.sum(q * (z - z.mean())))
    top = z > z.max() - 0.6
    top_symbols = np.array(atoms.get_chemical_symbols())[top].tolist()
    comp = Composition(atoms.get_chemical_formula()).reduced_composition
    return Surface(
        termination=Atoms(top_symbols).get_chemical_formula("hill"),
        is_polar=bool(abs(dipole) / area > POLAR_TOL), dipole=dipole,
        n_layers=max(1, round(len(atoms) / (ref.density * area * ref.d_hkl))),
        stoichiometric=bool(comp.almost_equals(ref.composition)),
        broken_bonds=broken_bonds(atoms, ref.cutoffs, ref.coordination) / (2.0 * area),
        area=area, top_atom_density=float(top.sum()) / area,
    )


def area_of(atoms: Atoms) -> float:
    """Area spanned by the first two cell vectors, Angstrom^2."""
    return float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))


def broken_bonds(slab: Atoms, cutoffs: dict[tuple[str, str], float],
                 bulk_cn: dict[str, float]) -> float:
    """Bulk bonds missing in the slab: 0.5 * (sum of mean bulk coordinations - neighbours)."""
    expected = sum(bulk_cn[s] for s in slab.get_chemical_symbols())
    actual = float(neighbour_counts(slab, cutoffs).sum())
    return round(max(0.0, 0.5 * (expected - actual)), 9)
