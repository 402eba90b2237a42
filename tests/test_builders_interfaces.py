"""Interfaces: the six interphase pairs match within 5 %, metadata, sides, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interphase_dft.builders.interfaces import check_overlaps, make_interfaces
from interphase_dft.builders.lattice_match import principal_strain
from interphase_dft.errors import NoMatchError, StructureError
from interphase_dft.phases import get_bulk

# (A, B, miller_a, miller_b, max_atoms): the smallest cells found (layers 1 + 1)
PAIRS = [
    ("LiAl", "LPSC", (1, 0, 0), (1, 1, 0), 80),
    ("LiAl", "Li2S", (1, 1, 0), (1, 1, 0), 60),
    ("LiAl", "Li3P", (1, 1, 0), (1, 1, 0), 80),
    ("LiAl", "LiCl", (1, 1, 0), (1, 1, 0), 40),
    ("Al", "LPSC", (1, 1, 0), (1, 0, 0), 50),
]


def _check(cands, a, b, max_strain=0.05):
    assert cands
    keys = [(c.n_atoms, c.strain) for c in cands]
    assert keys == sorted(keys)
    comp_a = set(get_bulk(a).get_chemical_symbols())
    comp_b = set(get_bulk(b).get_chemical_symbols())
    for c in cands:
        assert c.strain <= max_strain + 1e-9
        side = c.atoms.arrays["side"]
        sym = np.array(c.atoms.get_chemical_symbols())
        assert set(sym[side == 0]) == comp_a and set(sym[side == 1]) == comp_b
        assert c.n_atoms == len(c.atoms) == c.n_atoms_a + c.n_atoms_b
        assert list(c.atoms.get_tags()) == list(side + 1)
        json.dumps(c.atoms.info)  # JSON-safe metadata
        assert c.atoms.info["phase_a"] == a and c.atoms.info["phase_b"] == b
        check_overlaps(c.atoms)


@pytest.mark.parametrize(("a", "b", "ma", "mb", "max_atoms"), PAIRS)
def test_interphase_pairs_match(a, b, ma, mb, max_atoms):
    cands = make_interfaces(a, b, miller_a=ma, miller_b=mb, layers_a=1, layers_b=1,
                            max_atoms=max_atoms, max_candidates=3)
    _check(cands, a, b)
    assert cands[0].n_atoms <= max_atoms


@pytest.mark.slow
def test_p2s5_lpsc_match():
    cands = make_interfaces("P2S5", "LPSC", miller_a=(1, 0, 0), miller_b=(1, 0, 0),
                            layers_a=1, layers_b=1, max_atoms=200, max_candidates=1)
    _check(cands, "P2S5", "LPSC")
    assert cands[0].n_atoms == 184


def test_periodic_cell_has_gap_on_both_interfaces():
    c = make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1,
                        layers_b=1, max_atoms=40, gap=2.2, max_candidates=1)[0]
    z, side, height = c.atoms.positions[:, 2], c.atoms.arrays["side"], c.atoms.cell[2, 2]
    assert np.isclose(z[side == 1].min() - z[side == 0].max(), 2.2, atol=0.05)
    assert np.isclose(z[side == 0].min() + height - z[side == 1].max(), 2.2, atol=0.05)
    assert c.atoms.info["periodic"] is True
    assert np.allclose(c.atoms.cell[2, :2], 0)


def test_vacuum_cell():
    c = make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1,
                        layers_b=1, max_atoms=40, vacuum=10.0, max_candidates=1)[0]
    z, height = c.atoms.positions[:, 2], c.atoms.cell[2, 2]
    assert np.isclose(z.min() + height - z.max(), 10.0, atol=0.05)
    assert c.atoms.info["periodic"] is False


def _is_licl110_lattice(cell) -> bool:
    """In-plane vectors are integer combinations of unstrained LiCl(110): a/sqrt2 x a."""
    u, v = 5.13 / np.sqrt(2), 5.13
    ok = []
    for vec in cell[:2]:
        l2 = float(vec @ vec)
        ok.append(any(np.isclose(l2, (m * u) ** 2 + (n * v) ** 2, rtol=1e-4)
                      for m in range(5) for n in range(5)))
    return all(ok)


def test_strained_side_a_keeps_b_unstrained():
    kw = dict(miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1, layers_b=1, max_atoms=40,
              max_candidates=1)
    ca = make_interfaces("LiAl", "LiCl", strained_side="a", **kw)[0]
    assert ca.strained_side == "a" and ca.atoms.info["strained_side"] == "a"
    assert _is_licl110_lattice(ca.atoms.cell[:])
    cb = make_interfaces("LiAl", "LiCl", **kw)[0]
    assert cb.strain > 0.005 and not _is_licl110_lattice(cb.atoms.cell[:])


def test_no_match_names_the_limit():
    with pytest.raises(NoMatchError, match="max_atoms"):
        make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1,
                        layers_b=1, max_atoms=10)
    with pytest.raises(NoMatchError, match="best strain found"):
        make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1,
                        layers_b=1, max_atoms=30, max_strain=0.005)


def test_overlap_raises_structure_error():
    bad = get_bulk("Al")
    bad.positions[1] = bad.positions[0] + 0.2
    with pytest.raises(StructureError):
        make_interfaces(bad, "LiCl")
    with pytest.raises(StructureError):
        check_overlaps(bad)


def test_principal_strain():
    a = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert np.isclose(principal_strain(a, a * 1.03), 0.03)
    rot = np.array([[0, 1.0, 0], [-1.0, 0, 0]])
    assert np.isclose(principal_strain(a, rot), 0.0)


def test_rigid_units_stay_whole_and_gap_is_real():
    """PS4 tetrahedra (LPSC) and P4S10 molecules are never cut by the interface."""
    from ase.neighborlist import neighbor_list

    cands = make_interfaces("Al", "LPSC", miller_a=(1, 1, 0), miller_b=(1, 0, 0), layers_a=1,
                            layers_b=1, max_atoms=50, max_candidates=20)
    assert len(cands) > 3  # several LPSC terminations
    for c in cands:
        at = c.atoms
        i, j = neighbor_list("ij", at, 2.3)
        sym = np.array(at.get_chemical_symbols())
        for p in np.flatnonzero(sym == "P"):
            assert np.sum((i == p) & (sym[j] == "S")) == 4
        z, side = at.positions[:, 2], at.arrays["side"]
        assert np.isclose(z[side == 1].min() - z[side == 0].max(), 2.2, atol=1e-6)


def test_build_plan_gives_the_candidate_of_make_interfaces():
    """build_plan (used by the migration cells) is the builder of make_interfaces."""
    from interphase_dft.builders.interfaces import build_plan
    from interphase_dft.builders.lattice_match import Side, search

    kw = dict(miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1, layers_b=1, max_atoms=40)
    first = make_interfaces("LiAl", "LiCl", max_candidates=1, **kw)[0]
    a = Side.of(get_bulk("LiAl"), "LiAl", (1, 1, 0), 1)
    b = Side.of(get_bulk("LiCl"), "LiCl", (1, 1, 0), 1)
    found = search(a, b, True, max_strain=0.05, max_atoms=40, max_area=None)
    plan = min(found.plans, key=lambda p: (p.n_atoms, p.strain, str(p.term)))
    built = build_plan(plan, a, b, strained_side="b", gap=2.2, vacuum=0.0)
    assert built.info == first.info
    assert np.allclose(built.atoms.positions, first.atoms.positions)
