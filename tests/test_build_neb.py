"""NEB endpoints and interpolation: atom order, constraints, sides, vacancy hops."""

from __future__ import annotations

import numpy as np
import pytest
from ase.constraints import FixAtoms

from interphase_dft.build.interfaces import make_interfaces
from interphase_dft.build.neb import (
    interface_endpoints,
    interface_plane,
    interpolate_images,
    vacancy_hop_endpoints,
)
from interphase_dft.build.sites import supercell_for
from interphase_dft.errors import InputError
from interphase_dft.phases import get_bulk


@pytest.fixture(scope="module")
def interface():
    return make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0),
                           layers_a=1, layers_b=1, max_atoms=40, max_candidates=1)[0].atoms


def _fixed(atoms):
    return sorted(int(i) for c in atoms.constraints if isinstance(c, FixAtoms)
                  for i in c.get_indices())


def test_endpoints_same_order_li_on_each_side(interface):
    ini, fin = interface_endpoints(interface, fix_beyond=3.0)
    assert ini.get_chemical_symbols() == fin.get_chemical_symbols()
    assert ini[-1].symbol == "Li" and len(ini) == len(interface) + 1
    assert np.allclose(ini.positions[:-1], interface.positions)
    assert np.allclose(fin.positions[:-1], interface.positions)
    _, _, z_mid = interface_plane(interface)
    assert ini.positions[-1, 2] < z_mid < fin.positions[-1, 2]
    assert ini.arrays["side"][-1] == 0 and fin.arrays["side"][-1] == 1
    fixed = _fixed(ini)
    assert fixed == _fixed(fin) and fixed
    assert np.all(np.abs(interface.positions[fixed, 2] - z_mid) > 3.0)
    for atoms in (ini, fin):
        d = np.linalg.norm(atoms.positions[:-1] - atoms.positions[-1], axis=1)
        assert d.min() > 1.5


def test_interpolation_keeps_order_and_fixatoms(interface):
    ini, fin = interface_endpoints(interface, fix_beyond=3.0)
    band = interpolate_images(ini, fin, 3, method="idpp")
    assert len(band) == 5
    fixed = _fixed(ini)
    for k, img in enumerate(band):
        assert img.get_chemical_symbols() == ini.get_chemical_symbols()
        assert _fixed(img) == fixed
        assert np.allclose(img.positions[fixed], ini.positions[fixed])
        assert img.info["image_index"] == k
    assert np.allclose(band[0].positions, ini.positions)
    assert np.allclose(band[-1].positions, fin.positions)
    li = np.array([img.positions[-1] for img in band])
    steps = np.linalg.norm(np.diff(li, axis=0), axis=1)
    assert np.all(steps > 0) and steps.max() < 2 * steps.mean() + 1e-6  # continuous path


def test_linear_interpolation_uses_minimum_image():
    sc = supercell_for(get_bulk("Li2S"), 5.0)
    li = [i for i, s in enumerate(sc.get_chemical_symbols()) if s == "Li"]
    d = sc.get_all_distances(mic=True)
    j = min(li[1:], key=lambda k: d[li[0], k])
    ini, fin = vacancy_hop_endpoints(sc, li[0], j)
    assert np.isclose(ini.info["hop_distance_A"], 5.71 / 2)
    assert len(ini) == len(sc) - 1
    band = interpolate_images(ini, fin, 3, method="linear")
    hop = ini.info["hop_index"]
    mid = band[2].positions[hop]
    assert np.isclose(np.linalg.norm(mid - ini.positions[hop]), 5.71 / 4, atol=1e-6)
    moved = np.linalg.norm(band[2].positions - ini.positions, axis=1)
    assert np.count_nonzero(moved > 1e-8) == 1


def test_interpolation_rejects_mismatched_endpoints(interface):
    ini, fin = interface_endpoints(interface)
    with pytest.raises(InputError):
        interpolate_images(ini, fin[::-1], 3)
    other = fin.copy()
    other.set_constraint(FixAtoms(indices=[0]))
    with pytest.raises(InputError):
        interpolate_images(ini, other, 3)
    with pytest.raises(InputError):
        interpolate_images(ini, fin, 0)


def test_vacancy_hop_rejects_non_li():
    bulk = get_bulk("Li2S")
    s_index = bulk.get_chemical_symbols().index("S")
    with pytest.raises(InputError):
        vacancy_hop_endpoints(bulk, 0, s_index)


def test_endpoints_when_a_is_on_top():
    iface = make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0),
                            layers_a=1, layers_b=1, max_atoms=40, strained_side="a",
                            max_candidates=1)[0].atoms
    side, z = iface.arrays["side"], iface.positions[:, 2]
    assert z[side == 0].mean() > z[side == 1].mean()  # A (strained film) on top
    ini, fin = interface_endpoints(iface)
    _, _, z_mid = interface_plane(iface)
    assert ini.positions[-1, 2] > z_mid > fin.positions[-1, 2]
