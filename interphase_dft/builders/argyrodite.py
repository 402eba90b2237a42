"""Ordered approximants of the argyrodite Li6PS5Cl and of Cl-rich Li(6-x)PS(5-x)Cl(1+x).

Parent structure (F-43m, No. 216, a = 9.85 A): P on 4b (1/2,1/2,1/2), S on 16e (x,x,x) with
x = 0.619 (PS4 tetrahedra), free anions on 4a (0,0,0) and 4c (1/4,1/4,1/4), Li on 48h (x,x,z)
with x = 0.3172, z = 0.016 (half occupied; the 48 sites form 24 close pairs ~1.87 A apart).

Ordering rule (deterministic): formal charges Li+1, P+5, S-2, Cl-1; the arrangement with the
lowest Ewald energy (pymatgen ``EwaldSummation`` pair matrix) found by simulated annealing
from four fixed seeds, subject to: at most one Li per 48h pair, no Li-Li distance below
``MIN_LI_LI``; of its symmetry-equivalent images the canonical one
(:func:`canonical_ordering`). Li6PS5Cl keeps Cl on 4a and S on 4c; the Cl-rich cell
distributes the extra Cl over the 8 free-anion sites (4a + 4c) and removes Li from whole
pairs.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from ase import Atoms
from ase.spacegroup import crystal

from interphase_dft.errors import InputError

LI_48H = (0.3172, 0.3172, 0.016)
S_16E = 0.619
MIN_LI_LI = 1.9  # Angstrom
SEEDS = (0, 1, 2, 3)
CHARGES = {"Li": 1, "P": 5, "S": -2, "Cl": -1}


def _parse(composition: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for el, num in re.findall(r"([A-Z][a-z]?)([0-9.]*)", composition):
        out[el] = float(num) if num else 1.0
    return out


TETRAGONAL = np.array([[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def argyrodite_parent(a: float = 9.85, cell: str = "conventional"
                      ) -> tuple[Atoms, dict[str, np.ndarray]]:
    """All sites of the F-43m argyrodite (P 4b, S 16e, 4a, 4c, Li 48h).

    ``cell='conventional'`` gives the cubic cell (4 P, 76 sites); ``'tetragonal'`` the half
    cell spanned by (a/2)(1,1,0), (a/2)(-1,1,0), a(0,0,1) (2 P, 38 sites; it is a valid cell
    because (1/2,1/2,0) is an F-centring translation). Returns the Atoms (free-anion sites as
    'Cl' on 4a and 'S' on 4c, all Li sites) and a mapping from Wyckoff label to atom indices.
    """
    atoms = crystal(
        ["P", "S", "Cl", "S", "Li"],
        [(0.5, 0.5, 0.5), (S_16E,) * 3, (0, 0, 0), (0.25, 0.25, 0.25), LI_48H],
        spacegroup=216, cellpar=[a, a, a, 90, 90, 90],
    )
    if cell == "tetragonal":
        atoms = _subcell(atoms, TETRAGONAL @ atoms.cell[:])
    elif cell != "conventional":
        raise InputError(f"cell must be 'conventional' or 'tetragonal', got {cell!r}")
    kinds = atoms.get_array("spacegroup_kinds")
    labels = {"4b": 0, "16e": 1, "4a": 2, "4c": 3, "48h": 4}
    groups = {k: np.flatnonzero(kinds == v) for k, v in labels.items()}
    return atoms, groups


def _subcell(atoms: Atoms, new_cell: np.ndarray) -> Atoms:
    """Atoms of a periodic structure inside a smaller cell that is also a lattice cell."""
    frac = np.linalg.solve(np.asarray(new_cell).T, atoms.positions.T).T % 1.0
    frac[np.isclose(frac, 1.0, atol=1e-6)] = 0.0
    keep: list[int] = []
    for i, f in enumerate(frac):
        if not any(np.allclose((f - frac[j] + 0.5) % 1.0 - 0.5, 0, atol=1e-5) for j in keep):
            keep.append(i)
    sub = atoms[keep]
    sub.set_cell(new_cell, scale_atoms=False)
    sub.set_scaled_positions(frac[keep])
    return sub


def li_pairs(atoms: Atoms, li_idx: np.ndarray) -> np.ndarray:
    """Pair every 48h Li with its nearest 48h neighbour -> array (24, 2) of atom indices."""
    d = atoms.get_all_distances(mic=True)[np.ix_(li_idx, li_idx)]
    np.fill_diagonal(d, np.inf)
    partner = d.argmin(axis=1)
    pairs = sorted({tuple(sorted((int(i), int(partner[i])))) for i in range(len(li_idx))})
    if len(pairs) != len(li_idx) // 2:
        raise RuntimeError("48h sites do not form unique nearest-neighbour pairs")
    return np.array([[li_idx[i], li_idx[j]] for i, j in pairs])


def ordered_argyrodite(
    composition: str = "Li6PS5Cl", a: float = 9.85, steps: int = 20000,
    cell: str = "conventional",
) -> tuple[Atoms, dict[str, Any]]:
    """Lowest-Ewald-energy ordered cell of ``composition``.

    Parameters
    ----------
    composition : per-P formula, e.g. ``'Li6PS5Cl'`` or ``'Li5.5PS4.5Cl1.5'``; the cell holds
        4 (conventional) or 2 (tetragonal) formula units, counts must fit.
    a : cubic lattice parameter, Angstrom.
    cell : 'conventional' (cubic, 4 P) or 'tetragonal' (half cell, 2 P), see
        :func:`argyrodite_parent`.
    steps : annealing steps per seed.

    Returns
    -------
    atoms, extra : the ordered cell and JSON-safe metadata (``spacegroup`` of the ordered
        cell, ``ewald_energy_eV``, ``ordering`` rule, ``composition``).
    """
    from pymatgen.core import Lattice, Structure
    from pymatgen.core.ewald import EwaldSummation

    comp = _parse(composition)
    n_fu = 2 if cell == "tetragonal" else 4
    n = {el: comp.get(el, 0.0) * n_fu for el in ("Li", "P", "S", "Cl")}
    if any(abs(v - round(v)) > 1e-6 for v in n.values()) or round(n["P"]) != n_fu:
        raise InputError(f"{composition!r} does not fit the {n_fu}-P argyrodite cell; "
                         f"use per-P counts that are multiples of 1/{n_fu}")
    n = {k: round(v) for k, v in n.items()}
    charge = sum(CHARGES[el] * n[el] for el in n)
    if charge != 0:
        raise InputError(f"{composition!r} is not charge balanced (net {charge:+d} e per cell)")
    n_cl, n_free_s = n["Cl"], n["S"] - 4 * n_fu
    if n_cl + n_free_s != 2 * n_fu or n["Li"] > 6 * n_fu:
        raise InputError(f"{composition!r}: need {2 * n_fu} free anions and <= {6 * n_fu} Li")

    parent, groups = argyrodite_parent(a, cell)
    free = np.concatenate([groups["4a"], groups["4c"]])
    pairs = li_pairs(parent, groups["48h"])
    lattice = Lattice(parent.cell[:])
    unit = Structure(lattice, ["Li"] * len(parent), parent.get_scaled_positions(),
                     site_properties={"charge": [1.0] * len(parent)})
    unit.add_oxidation_state_by_site([1.0] * len(parent))
    matrix = np.asarray(EwaldSummation(unit).total_energy_matrix)
    fixed_q = np.zeros(len(parent))
    fixed_q[groups["4b"]] = 5.0
    fixed_q[groups["16e"]] = -2.0
    dist = parent.get_all_distances(mic=True)

    best: tuple[float, np.ndarray] | None = None
    for seed in SEEDS:
        q, e = _anneal(matrix, fixed_q, free, pairs, n_cl, n["Li"], dist, steps, seed,
                       fix_anions=(composition.replace(" ", "") == "Li6PS5Cl"),
                       groups=groups)
        if best is None or e < best[0] - 1e-8:
            best = (e, q)
    assert best is not None
    q = canonical_ordering(parent, best[1])
    keep = np.flatnonzero(q != 0)
    atoms = parent[keep]
    symbols = ["Cl" if q[i] == -1 else parent[i].symbol if q[i] != -2 else "S" for i in keep]
    atoms.set_chemical_symbols(symbols)
    del atoms.arrays["spacegroup_kinds"]
    import spglib

    cellt = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    sg = spglib.get_symmetry_dataset(cellt, symprec=1e-3)
    extra = {
        "spacegroup": int(sg.number),
        "composition": composition,
        "argyrodite_cell": cell,
        "ewald_energy_eV": round(float(best[0]), 6),
        "ordering": ("lowest Ewald energy (formal charges) over 4 annealing seeds; "
                     "one Li per 48h pair; Li-Li >= 1.9 A"),
    }
    return atoms, extra


def canonical_ordering(parent: Atoms, q: np.ndarray) -> np.ndarray:
    """The representative of the ordering ``q`` (charge per parent site) that is smallest
    lexicographically among its images under the parent cell's symmetry operations.

    Symmetry-equivalent orderings are the same structure; the annealer may end in any of them
    (which one depends on floating-point details of the Ewald matrix), so the committed
    structures use this representative.
    """
    import spglib

    kinds = parent.get_array("spacegroup_kinds")
    frac = parent.get_scaled_positions()
    sym = spglib.get_symmetry((parent.cell[:], frac, kinds), symprec=1e-4)
    best = q
    for rot, trans in zip(sym["rotations"], sym["translations"], strict=True):
        image = (frac @ rot.T + trans) % 1.0
        diff = (image[:, None, :] - frac[None, :, :] + 0.5) % 1.0 - 0.5
        target = np.linalg.norm(diff, axis=2).argmin(axis=1)  # site i goes to site target[i]
        moved = np.empty_like(q)
        moved[target] = q
        if tuple(moved) < tuple(best):
            best = moved
    return best


def _anneal(matrix: np.ndarray, fixed_q: np.ndarray, free: np.ndarray, pairs: np.ndarray,
            n_cl: int, n_li: int, dist: np.ndarray, steps: int, seed: int, *,
            fix_anions: bool, groups: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """Simulated annealing over (free-anion species, occupied Li pair members)."""
    rng = np.random.default_rng(seed)
    n_pairs = len(pairs)
    if fix_anions:
        is_cl = np.isin(free, groups["4a"])
    else:
        is_cl = np.zeros(len(free), bool)
        is_cl[rng.choice(len(free), n_cl, replace=False)] = True
    occ = np.zeros(n_pairs, bool)
    occ[rng.choice(n_pairs, n_li, replace=False)] = True
    side = rng.integers(0, 2, n_pairs)

    def charges() -> np.ndarray:
        q = fixed_q.copy()
        q[free] = np.where(is_cl, -1.0, -2.0)
        q[pairs[occ, side[occ]]] = 1.0
        return q

    def energy(q: np.ndarray) -> float:
        li = np.flatnonzero(q == 1.0)
        dll = dist[np.ix_(li, li)] + np.eye(len(li)) * 99
        penalty = 100.0 * float((dll < MIN_LI_LI).sum())
        return float(q @ matrix @ q) + penalty

    q = charges()
    e = energy(q)
    temps = np.geomspace(1.0, 0.005, steps)
    for t in temps:
        saved = (is_cl.copy(), occ.copy(), side.copy())
        move = rng.integers(0, 3)
        if move == 0:
            k = rng.integers(n_pairs)
            side[k] = 1 - side[k]
        elif move == 1 and 0 < n_li < n_pairs:
            on, off = rng.choice(np.flatnonzero(occ)), rng.choice(np.flatnonzero(~occ))
            occ[on], occ[off] = False, True
        elif move == 2 and not fix_anions and 0 < n_cl < len(free):
            c, s = rng.choice(np.flatnonzero(is_cl)), rng.choice(np.flatnonzero(~is_cl))
            is_cl[c], is_cl[s] = False, True
        else:
            continue
        q_new = charges()
        e_new = energy(q_new)
        if e_new <= e or rng.random() < np.exp(-(e_new - e) / t):
            q, e = q_new, e_new
        else:
            is_cl, occ, side = saved
    return q, e
