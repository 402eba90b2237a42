"""Phase library: symmetry, composition, lattice parameters, sane distances, provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spglib
from ase.io import read

from interphase_dft.errors import InputError
from interphase_dft.phases import (
    PHASE_NAMES,
    PhaseInfo,
    get_bulk,
    is_metal,
    p4s10_molecule,
    phase_info,
    resolve_phase,
)

REPO = Path(__file__).resolve().parents[1]

# phase -> (spglib space group of the cell as built, reduced formula, atoms in cell)
EXPECTED = {
    "Al": (225, "Al", 4),
    "LiAl": (227, "AlLi", 16),
    "Li2S": (225, "Li2S", 12),
    "Li3P": (194, "Li3P", 8),
    "LiCl": (225, "ClLi", 8),
    "Li": (229, "Li", 2),
    "P2S5": (2, "P2S5", 28),
    "Li6PS5Cl": (None, "ClLi6PS5", 52),  # ordered approximant: lower symmetry than 216
    "LPSC": (None, "Cl3Li11P2S9", 25),
}


def _sg(atoms) -> int:
    return spglib.get_symmetry_dataset(
        (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=1e-3).number


def _min_dist(atoms) -> float:
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_phase_names_cover_the_project():
    assert set(PHASE_NAMES) >= {"Al", "LiAl", "LPSC", "Li2S", "Li3P", "LiCl", "P2S5", "Li"}


@pytest.mark.parametrize("name", PHASE_NAMES)
def test_spacegroup_composition_and_info(name):
    atoms = get_bulk(name)
    sg, formula, natoms = EXPECTED[name]
    assert len(atoms) == natoms
    from pymatgen.core import Composition

    assert Composition(atoms.get_chemical_formula()).reduced_formula == \
        Composition(formula).reduced_formula
    info = phase_info(name)
    assert isinstance(info, PhaseInfo)
    assert atoms.info["phase"] == name
    assert atoms.info["source"] == info.source and len(info.source) > 20
    assert atoms.info["spacegroup"] == _sg(atoms)
    if sg is not None:
        assert _sg(atoms) == sg == info.spacegroup
    else:
        assert info.spacegroup == 216 and info.ordered_approximant


@pytest.mark.parametrize("name", PHASE_NAMES)
def test_lattice_matches_recorded_experiment(name):
    atoms = get_bulk(name)
    a, b, c, al, be, ga = phase_info(name).lattice
    if name == "LPSC":  # tetragonal half cell of the cubic argyrodite
        expected = (a / np.sqrt(2), a / np.sqrt(2), a, 90, 90, 90)
    else:
        expected = (a, b, c, al, be, ga)
    assert np.allclose(atoms.cell.cellpar(), expected, atol=1e-6)


@pytest.mark.parametrize("name", PHASE_NAMES)
def test_no_atoms_too_close(name):
    atoms = get_bulk(name)
    assert _min_dist(atoms) > 1.85  # shortest real bond here: P=S 1.91 A


def test_li2s_is_antifluorite_not_fluorite():
    atoms = get_bulk("Li2S")
    s_pos = atoms.get_scaled_positions()[atoms.numbers == 16]
    li_pos = atoms.get_scaled_positions()[atoms.numbers == 3]
    # S on the fcc 4a sublattice (0,0,0)+F, Li on 8c (1/4,1/4,1/4)
    assert np.allclose(s_pos * 2, np.round(s_pos * 2), atol=1e-6)
    assert np.allclose(li_pos * 4, np.round(li_pos * 4), atol=1e-6)
    assert np.all(np.round(li_pos * 4) % 2 == 1)
    d = atoms.get_all_distances(mic=True)
    li, s = atoms.numbers == 3, atoms.numbers == 16
    assert np.isclose(d[np.ix_(li, s)].min(), 5.71 * np.sqrt(3) / 4, atol=1e-6)


def test_lial_two_diamond_sublattices():
    atoms = get_bulk("LiAl")
    d = atoms.get_all_distances(mic=True)
    for z in (3, 13):
        sub = d[np.ix_(atoms.numbers == z, atoms.numbers == z)]
        np.fill_diagonal(sub, np.inf)
        assert np.isclose(sub.min(), 6.37 * np.sqrt(3) / 4, atol=1e-6)  # diamond NN


def test_argyrodites_charge_balance_and_li_spacing():
    charge = {"Li": 1, "P": 5, "S": -2, "Cl": -1}
    for name, variant in [("LPSC", None), ("LPSC", "conventional"), ("Li6PS5Cl", None),
                          ("Li6PS5Cl", "tetragonal")]:
        atoms = get_bulk(name, variant=variant)
        assert sum(charge[s] for s in atoms.get_chemical_symbols()) == 0
        li = atoms.numbers == 3
        d = atoms.get_all_distances(mic=True)[np.ix_(li, li)]
        np.fill_diagonal(d, np.inf)
        assert d.min() >= 1.9
        p = atoms.numbers == 15
        s = atoms.numbers == 16
        ps = atoms.get_all_distances(mic=True)[np.ix_(p, s)]
        assert np.all(np.sort(ps, axis=1)[:, :4] < 2.1)  # intact PS4 tetrahedra
    lpsc = get_bulk("LPSC", variant="conventional")
    assert lpsc.get_chemical_formula() == "Cl6Li22P4S18"
    assert "Ewald" in lpsc.info["ordering"]


def test_p2s5_is_two_intact_p4s10_molecules():
    atoms = get_bulk("P2S5")
    mol = p4s10_molecule()
    d = mol.get_all_distances()
    p, s = mol.numbers == 15, mol.numbers == 16
    ps = np.sort(d[np.ix_(p, s)].ravel())[:16]
    assert np.allclose(ps[:4], 1.91, atol=1e-6) and np.allclose(ps[4:], 2.09, atol=1e-6)
    from ase.neighborlist import neighbor_list
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i, j = neighbor_list("ij", atoms, 2.3)
    n, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(28, 28)))
    assert n == 2 and sorted(np.bincount(labels)) == [14, 14]
    assert phase_info("P2S5").needs_dispersion


def test_metals_flagged():
    assert [n for n in PHASE_NAMES if is_metal(n)] == ["Al", "LiAl", "Li"]


def test_resolve_is_case_insensitive_and_suggests():
    assert resolve_phase("lial") == "LiAl"
    assert resolve_phase("p4s10") == "P2S5"
    with pytest.raises(InputError, match="Did you mean 'LiAl'"):
        resolve_phase("LiAll")
    with pytest.raises(InputError, match="LPSC"):
        get_bulk("lpcs")


def test_get_bulk_returns_independent_copies():
    a = get_bulk("Al")
    a.positions += 1.0
    a.info["phase"] = "changed"
    b = get_bulk("Al")
    assert b.info["phase"] == "Al" and np.allclose(b.positions[0], 0)


def test_bad_variant():
    with pytest.raises(InputError):
        get_bulk("Al", variant="tetragonal")


def test_committed_structures_match_builders(tmp_path):
    """Drift test: structures/*.extxyz equal a fresh build."""
    from ase.io import write

    from interphase_dft.builders.reference import REFERENCE_FILES, reference_structures

    for stem, atoms in reference_structures().items():
        write(tmp_path / f"{stem}.extxyz", atoms, format="extxyz")  # same precision as the file
    for stem in REFERENCE_FILES:
        committed = REPO / "structures" / f"{stem}.extxyz"
        assert committed.exists(), f"run python structures/regenerate.py ({stem} missing)"
        a, b = read(committed), read(tmp_path / f"{stem}.extxyz")
        assert a.get_chemical_symbols() == b.get_chemical_symbols(), stem
        assert np.allclose(a.cell[:], b.cell[:], atol=1e-6), stem
        assert np.allclose(a.positions, b.positions, atol=1e-6), stem
    readme = (REPO / "structures" / "README.md").read_text()
    for name in PHASE_NAMES:
        assert name in readme


def test_argyrodite_ordering_is_canonical_under_the_parent_symmetry():
    """Any symmetry image of an ordering maps to the same representative (the committed
    structure does not depend on which equivalent minimum the annealer found)."""
    from interphase_dft.builders.argyrodite import argyrodite_parent, canonical_ordering

    parent, groups = argyrodite_parent(cell="tetragonal")
    rng = np.random.default_rng(7)
    q = np.zeros(len(parent))
    q[rng.choice(groups["48h"], 11, replace=False)] = 1.0
    shift = parent.copy()
    shift.positions += parent.cell[:].T @ np.array([0.5, 0.5, 0.5])  # a lattice-site map
    frac = parent.get_scaled_positions()
    moved = (shift.get_scaled_positions() - frac[:, None, :] + 0.5) % 1.0 - 0.5
    target = np.linalg.norm(moved, axis=2).argmin(axis=0)
    image = np.empty_like(q)
    image[target] = q
    assert not np.array_equal(image, q)
    assert np.array_equal(canonical_ordering(parent, q), canonical_ordering(parent, image))
