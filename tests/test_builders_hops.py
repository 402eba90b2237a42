"""Hops across a migration cell: vacancy crossing, interstitial candidates and minima."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms

from interphase_dft.builders.contact import bulk_like, li_host_reference
from interphase_dft.builders.hops import (
    PAIR_RULE,
    interface_layer,
    li_host_distance,
    vacancy_hop,
    vacancy_pairs,
)
from interphase_dft.builders.interstitial import guess_hop, interstitial_candidates
from interphase_dft.builders.migration import migration_cell
from interphase_dft.errors import InputError, StructureError
from interphase_dft.recipes.interstitial import interstitial_path

KW = dict(miller_a=(1, 1, 0), miller_b=(1, 1, 0))


@pytest.fixture(scope="module")
def cell():
    """LiAl(110)|LiCl(110) at the laptop thickness (6 A per side)."""
    return migration_cell("LiAl", "LiCl", min_thickness=6.0, max_atoms=200, **KW)


def _fixed(atoms) -> list[int]:
    return sorted(int(i) for c in atoms.constraints if isinstance(c, FixAtoms)
                  for i in c.get_indices())


def _same_but_li(hop) -> None:
    """Endpoints: same atoms, order, constraints and side labels; only the Li moves."""
    i, f, li = hop.initial, hop.final, hop.li_index
    assert i.get_chemical_symbols() == f.get_chemical_symbols() and i[li].symbol == "Li"
    assert _fixed(i) == _fixed(f) == hop.meta["fixed"] and li not in _fixed(i)
    assert (i.arrays["side"] == f.arrays["side"]).all()
    assert i.info["li_index"] == f.info["li_index"] == li
    assert np.allclose(i.cell, f.cell)


def test_vacancy_hop_endpoints(cell):
    hop = vacancy_hop(cell)
    _same_but_li(hop)
    i, f, li = hop.initial, hop.final, hop.li_index
    assert len(i) == len(cell.atoms) - 1
    moved = np.linalg.norm(f.positions - i.positions, axis=1)
    assert np.flatnonzero(moved > 1e-9).tolist() == [li]
    assert hop.hop_distance == pytest.approx(moved[li]) and hop.hop_distance <= 3.5
    m = hop.meta
    assert m["mechanism"] == "vacancy" and m["pair_rule"] == PAIR_RULE
    # lattice sites: initial Li on an A site, final on the (vacated) B site
    assert i.arrays["side"][li] == 0
    j = m["site_final"]["cell_index"]
    assert np.allclose(f.positions[li], cell.atoms.positions[j])
    for atoms, phase, key in ((i, "LiAl", "initial"), (f, "LiCl", "final")):
        d, _ = li_host_distance(atoms, li)
        assert d == pytest.approx(m[f"li_host_{key}_A"], abs=1e-4)
        assert bulk_like(d, li_host_reference(phase)) and m[f"bulk_like_{key}"]
    assert m["thickness_a_A"] >= 6 and m["thickness_b_A"] >= 6
    assert set(m["bulk_li_host_A"]) == {"LiAl", "LiCl"}
    json.dumps(m)


def test_vacancy_pairs_ranked_by_rule(cell):
    pairs = vacancy_pairs(cell)
    keys = [(not p.bulk_like, round(p.hop_distance, 3)) for p in pairs]
    assert keys == sorted(keys)
    la, lb = set(interface_layer(cell.atoms, 0)), set(interface_layer(cell.atoms, 1))
    assert all(p.i in la and p.j in lb and p.hop_distance <= 3.5 for p in pairs)
    assert vacancy_hop(cell, pair=len(pairs) - 1).meta["pair"] == len(pairs) - 1


def test_vacancy_without_close_pair_points_to_interstitial(cell):
    with pytest.raises(InputError, match=r"gap site.*interstitial"):
        vacancy_pairs(cell, max_hop=1.5)


def test_vacancy_with_li_free_side():
    al = migration_cell("Al", "LiCl", min_thickness=3.0, max_atoms=80, **KW)
    with pytest.raises(InputError, match=r"Al has no Li lattice sites.*interstitial"):
        vacancy_hop(al)
    cands = interstitial_candidates(al)  # the interstitial mechanism is offered
    assert cands.region("A") and cands.region("B")


def test_interstitial_candidates_and_guess(cell):
    cands = interstitial_candidates(cell)
    bounds = cands.meta["region_bounds_A"]
    for region in ("A", "interface", "B"):
        sites = cands.region(region)
        assert sites, region
        assert [s.clearance for s in sites] == sorted((s.clearance for s in sites), reverse=True)
        lo, hi = bounds[region]
        assert all(lo - 1e-3 <= s.position[2] < hi + 1e-3 and s.clearance >= 1.5 for s in sites)
    hop = guess_hop(cands)
    _same_but_li(hop)
    assert hop.li_index == len(cell.atoms) and hop.meta["relaxed"] is False
    assert hop.meta["site_initial"]["label"] == "A_1" and hop.meta["site_final"]["label"] == "B_1"
    json.dumps(hop.meta)


def _stand_in(energy_of, move=None):
    """relax(atoms) -> (atoms, energy): energy from the Li start position; ``move`` may put
    the Li elsewhere; zero forces are attached (fmax 0)."""

    def relax(atoms):
        li = len(atoms) - 1
        e = energy_of(atoms.positions[li])
        if move is not None:
            atoms.positions[li] = move(atoms.positions[li])
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=np.zeros((len(atoms), 3)))
        return atoms, e

    return relax


def test_interstitial_path_picks_lowest_minima(cell):
    cands = interstitial_candidates(cell)
    rng = np.random.default_rng(7)
    table = {s.position: float(rng.uniform(-1, 1)) for s in cands.sites}

    def energy(pos):
        return next(e for p, e in table.items() if np.allclose(p, pos))

    path = interstitial_path(cands, _stand_in(energy), max_per_region=None)
    for region in ("A", "interface", "B"):
        best = min(table[s.position] for s in cands.region(region))
        assert path.minima[region].energy == best
    assert [h.meta["region_initial"] for h in path.hops] == ["A", "interface"]
    assert [h.meta["region_final"] for h in path.hops] == ["interface", "B"]
    for hop in path.hops:
        _same_but_li(hop)
        assert hop.meta["relaxed"] is True and hop.meta["fmax_initial_eV_A"] == 0.0
    assert path.hops[0].final.positions[-1] == pytest.approx(path.hops[1].initial.positions[-1])
    json.dumps(path.meta)


def test_interstitial_path_without_interface_minimum(cell):
    cands = interstitial_candidates(cell)
    b1 = np.array(cands.region("B")[0].position)
    lo, hi = cands.meta["region_bounds_A"]["interface"]

    def move(pos):  # gap candidates fall into the best B site
        return b1.copy() if lo - 1e-3 <= pos[2] < hi + 1e-3 else pos

    path = interstitial_path(cands, _stand_in(lambda p: -p[2], move), max_per_region=3)
    assert "interface" not in path.minima and len(path.hops) == 1
    assert (path.hops[0].meta["region_initial"], path.hops[0].meta["region_final"]) == ("A", "B")
    # minima closer than 0.3 A are one
    li = len(cell.atoms)
    pos = [m.atoms.positions[li] for m in path.all_minima]
    assert all(np.linalg.norm(p - q) > 0.3 for k, p in enumerate(pos) for q in pos[:k])


def test_interstitial_relaxer_must_keep_atoms(cell):
    cands = interstitial_candidates(cell)

    def bad(atoms):
        return atoms[::-1], 0.0

    with pytest.raises(StructureError, match="order"):
        interstitial_path(cands, bad, max_per_region=1)
