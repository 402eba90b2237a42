"""Slabs: every termination listed, metadata, constraints, Miller validation, surface rule."""

from __future__ import annotations

import numpy as np
import pytest
from ase.constraints import FixAtoms

from interphase_dft.builders.slabs import SURFACE_RULE, choose_surface, make_slabs
from interphase_dft.errors import InputError
from interphase_dft.phases import get_bulk


def test_al111_single_symmetric_nonpolar_termination():
    terms = make_slabs(get_bulk("Al"), (1, 1, 1), layers=4, vacuum=6.0)
    assert len(terms) == 1
    t = terms[0]
    assert t.is_symmetric and not t.is_polar and t.stoichiometric
    assert t.termination == "Al" and t.n_layers >= 4
    z = t.atoms.positions[:, 2]
    assert np.isclose(z.min(), 6.0) and np.isclose(t.atoms.cell[2, 2] - z.max(), 6.0)
    assert len(np.unique(z.round(3))) == t.n_layers == len(t.atoms)  # one atom per plane
    assert np.allclose(t.atoms.cell[2, :2], 0)  # c perpendicular to the surface


def test_li2s_111_lists_every_termination():
    terms = make_slabs(get_bulk("Li2S"), (1, 1, 1), layers=2, vacuum=5.0)
    assert len(terms) >= 2
    labels = {t.termination for t in terms}
    assert {"S", "Li"} <= labels
    polar = [t for t in terms if t.is_polar]
    nonpolar = [t for t in terms if not t.is_polar]
    assert polar and nonpolar
    assert all(abs(t.dipole) > 1 for t in polar)
    for t in terms:
        assert t.atoms.info["termination"] == t.termination
        assert t.atoms.info["miller"] == [1, 1, 1]


def test_fixed_layers_constrain_bottom():
    t = make_slabs(get_bulk("Al"), (1, 0, 0), layers=4, vacuum=5.0, fixed_layers=2)[0]
    (c,) = t.atoms.constraints
    assert isinstance(c, FixAtoms)
    fixed = set(c.get_indices().tolist())
    z = t.atoms.positions[:, 2]
    assert fixed == set(np.flatnonzero(z < z.min() + 2 * 4.0495 - 0.1).tolist())
    assert 0 < len(fixed) < len(t.atoms)


def test_thickness_option():
    t = make_slabs(get_bulk("LiCl"), (1, 0, 0), thickness=8.0, vacuum=5.0)[0]
    z = t.atoms.positions[:, 2]
    assert z.max() - z.min() >= 8.0 - 2.6


@pytest.mark.parametrize("miller", [(0, 0, 0), (1, 0.5, 0), (1, 1), "abc", (1, 0, 0, 1)])
def test_bad_miller_raises(miller):
    with pytest.raises(InputError):
        make_slabs(get_bulk("Al"), miller)


def test_layers_and_thickness_exclusive():
    with pytest.raises(InputError):
        make_slabs(get_bulk("Al"), (1, 1, 1), layers=3, thickness=5.0)


def test_choose_surface_rule_is_stated_and_deterministic():
    s1 = choose_surface("Al", layers=3, vacuum=5.0)
    assert s1.miller == (1, 1, 1)  # close-packed: fewest broken bonds
    assert s1.atoms.info["surface_rule"] == SURFACE_RULE
    s2 = choose_surface("Li2S", layers=2, vacuum=5.0)
    assert not s2.is_polar and s2.is_symmetric and s2.stoichiometric
    again = choose_surface("Li2S", layers=2, vacuum=5.0)
    assert again.miller == s2.miller and again.shift == s2.shift


def test_choose_surface_reads_settings():
    from interphase_dft.calc.presets import preset

    s = choose_surface("Al", preset("test"))
    assert s.n_layers >= 2
    assert np.isclose(s.atoms.positions[:, 2].min(), 4.0)
    assert len(s.atoms.constraints[0].get_indices()) == 1


def test_p2s5_slab_keeps_molecules_whole():
    """P4S10 molecules are never cut: no broken P-S bonds, 14-atom clusters only."""
    from ase.neighborlist import neighbor_list
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    for hkl in [(1, 0, 0), (0, 0, 1)]:
        terms = make_slabs(get_bulk("P2S5"), hkl, layers=1, vacuum=6.0)
        for t in terms:
            assert t.broken_bonds == 0 and t.atoms.info["units_kept_whole"]
            n = len(t.atoms)
            i, j = neighbor_list("ij", t.atoms, 2.3)
            _, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)))
            assert set(np.bincount(labels)) == {14}


def test_lpsc_slab_keeps_ps4_whole():
    from ase.neighborlist import neighbor_list

    for t in make_slabs(get_bulk("LPSC"), (0, 0, 1), layers=1, vacuum=6.0):
        sym = np.array(t.atoms.get_chemical_symbols())
        i, j = neighbor_list("ij", t.atoms, 2.3)
        for p in np.flatnonzero(sym == "P"):
            assert np.sum((i == p) & (sym[j] == "S")) == 4


def test_repeat_to_area_sets_coverage_and_keeps_constraints():
    from interphase_dft.builders.slabs import repeat_to_area

    al = get_bulk("Al")
    term = make_slabs(al, (1, 1, 1), layers=3, vacuum=6.0, fixed_layers=1)[0]
    area1 = float(np.linalg.norm(np.cross(term.atoms.cell[0], term.atoms.cell[1])))
    big = repeat_to_area(term.atoms, 3.5 * area1)
    n_rep = round(abs(np.linalg.det(np.array(big.info["surface_repeat"]))))
    assert n_rep == 4  # 4 cells are the fewest reaching 3.5x the area
    assert len(big) == 4 * len(term.atoms)
    fixed = [i for c in big.constraints if isinstance(c, FixAtoms) for i in c.get_indices()]
    fixed1 = [i for c in term.atoms.constraints if isinstance(c, FixAtoms) for i in c.get_indices()]
    assert len(fixed) == 4 * len(fixed1) > 0
    assert len(repeat_to_area(term.atoms, 0.0)) == len(term.atoms)
    with pytest.raises(InputError):
        repeat_to_area(term.atoms, -1.0)


def test_surface_properties_match_the_termination():
    """The slab's stored descriptors are those of :func:`surface_properties` on its atoms."""
    from interphase_dft.builders.slab_properties import BulkReference, surface_properties

    bulk = get_bulk("Li2S")
    ref = BulkReference.of(bulk, (1, 1, 1))
    assert ref.d_hkl > 0 and not ref.metallic and ref.cutoffs
    for t in make_slabs(bulk, (1, 1, 1), layers=2, vacuum=5.0):
        surf = surface_properties(t.atoms, ref)
        assert (surf.termination, surf.is_polar, surf.n_layers, surf.stoichiometric) == (
            t.termination, t.is_polar, t.n_layers, t.stoichiometric)
        assert np.isclose(surf.dipole, t.dipole) and np.isclose(surf.area, t.area)
        assert np.isclose(surf.broken_bonds, t.broken_bonds)


def test_miller_index_in_lowest_terms_and_bounded():
    """Issue 16 item 3: (2 2 2) is the (1 1 1) plane; indices beyond 3 are refused."""
    assert make_slabs(get_bulk("Al"), (2, 2, 2), layers=2)[0].miller == (1, 1, 1)
    with pytest.raises(InputError, match="beyond the largest supported index 3"):
        make_slabs(get_bulk("Al"), (4, 1, 0))


@pytest.mark.parametrize("cell2d", [
    [[2.864, 0.0], [0.0, 2.864]],                       # square, reduced basis
    [[2.864, 0.0], [-2.864, 2.864]],                    # the same lattice, skewed basis
    [[2.864, 0.0], [1.432, 2.480]],                     # hexagonal
    [[3.0, 0.0], [0.0, 4.7]],                           # rectangular
])
def test_the_supercell_search_is_a_brute_force_search(cell2d):
    """For every n up to 15 the most compact n-cell supercell equals the best over every
    sublattice of index n (whatever basis the lattice is given in). The reference
    enumeration over-counts: [[a, 0], [b, d]] with a d = n and every b < n, and also the
    transposed form, so it cannot miss one the search skips."""
    from interphase_dft.builders.slabs import _gauss_reduce, in_plane_supercell

    c = np.array(cell2d)
    for n in range(1, 16):
        best = 0.0
        for a in (k for k in range(1, n + 1) if n % k == 0):
            for b in range(n):
                for mat in (np.array([[a, 0], [b, n // a]]), np.array([[a, b], [0, n // a]])):
                    red = _gauss_reduce(mat, c)
                    best = max(best, float(np.linalg.norm(red[0] @ c)))
        matrix, shortest = in_plane_supercell(c, n)
        assert shortest == pytest.approx(best, abs=1e-6), n
        assert round(abs(np.linalg.det(matrix[:2, :2]))) == n
