"""Li sites: interstitials, adsorption sites, vacancies, insertion, supercells."""

from __future__ import annotations

import numpy as np
import pytest
from ase.constraints import FixAtoms

from interphase_dft.builders.sites import (
    Site,
    adsorption_sites,
    insert_li,
    interstitial_sites,
    remove_atom,
    supercell_for,
    vacancy_sites,
)
from interphase_dft.builders.slabs import make_slabs
from interphase_dft.errors import InputError, StructureError
from interphase_dft.phases import get_bulk


def test_fcc_al_one_octahedral_one_tetrahedral():
    sites = interstitial_sites(get_bulk("Al"))
    assert sorted((s.kind, s.multiplicity) for s in sites) == [
        ("octahedral", 4), ("tetrahedral", 8)]
    a = 4.0495
    oct_site = next(s for s in sites if s.kind == "octahedral")
    d = np.linalg.norm(get_bulk("Al").positions - oct_site.position, axis=1).min()
    assert np.isclose(d, a / 2, atol=0.05)


def test_li2s_interstitials_include_empty_cube_site():
    sites = interstitial_sites(get_bulk("Li2S"))
    assert len(sites) == 2
    cube = sites[0]  # largest void first: the empty 4b site inside a Li8 cube
    assert cube.multiplicity == 4 and cube.kind == "8-fold"
    frac = np.linalg.solve(get_bulk("Li2S").cell[:].T, cube.position) % 1
    assert np.allclose(frac * 2, np.round(frac * 2), atol=1e-3)


def test_lial_and_bcc_li_interstitials():
    lial = interstitial_sites(get_bulk("LiAl"))
    assert [(s.kind, s.multiplicity) for s in lial] == [("tetrahedral", 96)]
    li = interstitial_sites(get_bulk("Li"))
    assert [(s.kind, s.multiplicity) for s in li] == [("tetrahedral", 12)]


def test_al111_adsorption_sites():
    slab = make_slabs(get_bulk("Al"), (1, 1, 1), layers=4, vacuum=6.0)[0].atoms
    sites = adsorption_sites(slab)
    kinds = [s.kind for s in sites]
    for k in ("top", "bridge", "hollow_fcc", "hollow_hcp", "subsurface"):
        assert kinds.count(k) == 1, kinds
    ztop = slab.positions[:, 2].max()
    for s in sites:
        d = np.linalg.norm(slab.positions - s.position, axis=1).min()
        assert d > 1.4
        assert (s.position[2] > ztop) == (s.kind != "subsurface")
    hcp = next(s for s in sites if s.kind == "hollow_hcp")
    second = slab.positions[np.abs(slab.positions[:, 2] - (ztop - 2.338)) < 0.3]
    assert np.linalg.norm(second[:, :2] - np.array(hcp.position[:2]), axis=1).min() < 0.5


def test_al100_fourfold_hollow():
    slab = make_slabs(get_bulk("Al"), (1, 0, 0), layers=4, vacuum=6.0)[0].atoms
    kinds = {s.kind for s in adsorption_sites(slab)}
    assert {"top", "bridge", "hollow"} <= kinds


def test_vacancy_sites():
    assert [(s.kind, s.multiplicity) for s in vacancy_sites(get_bulk("Li2S"))] == [
        ("vacancy", 8)]
    li3p = vacancy_sites(get_bulk("Li3P"))
    assert sorted(s.multiplicity for s in li3p) == [2, 4]
    with pytest.raises(InputError):
        vacancy_sites(get_bulk("Al"))


def test_insert_and_remove_keep_constraints():
    slab = make_slabs(get_bulk("Al"), (1, 1, 1), layers=3, vacuum=5.0, fixed_layers=1)[0].atoms
    site = adsorption_sites(slab)[0]
    with_li = insert_li(slab, site)
    assert len(with_li) == len(slab) + 1 and with_li[-1].symbol == "Li"
    assert with_li.info["site_label"] == site.label
    assert isinstance(with_li.constraints[0], FixAtoms)
    assert list(with_li.constraints[0].get_indices()) == list(slab.constraints[0].get_indices())
    with pytest.raises(StructureError):
        insert_li(slab, Site("bad", "top", tuple(slab.positions[0] + 0.1), 1))
    fixed = slab.constraints[0].get_indices()
    removed = remove_atom(slab, 0)
    assert len(removed) == len(slab) - 1
    new_fixed = removed.constraints[0].get_indices() if removed.constraints else []
    assert len(new_fixed) == len([i for i in fixed if i != 0])


def test_supercell_for_widths():
    sc = supercell_for(get_bulk("Li3P"), 8.0)
    cell = sc.cell[:]
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
              for i in range(3)]
    assert min(widths) >= 8.0
    assert sc.info["supercell"] == [3, 3, 2]  # a = 4.27 (width 3.70), c = 7.59
