"""NEB endpoints and interpolation: atom order, constraints, sides, vacancy hops."""

from __future__ import annotations

import numpy as np
import pytest
from ase.constraints import FixAtoms

from interphase_dft.builders.interfaces import make_interfaces
from interphase_dft.builders.neb import (
    interface_endpoints,
    interface_plane,
    interpolate_images,
    vacancy_hop_endpoints,
)
from interphase_dft.builders.sites import supercell_for
from interphase_dft.errors import InputError, StructureError
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


# --- interface endpoints genuinely on the two sides (thin, periodic, one layer per side) ---

def _test_preset_interface():
    """The interface ``migration_barrier`` builds with the ``test`` preset (Al|LiCl)."""
    from interphase_dft.calc.presets import preset

    st = preset("test").structure
    cands = make_interfaces("Al", "LiCl", max_strain=st.interface_max_strain,
                            max_atoms=st.interface_max_atoms, gap=st.interface_gap,
                            layers_a=st.interface_layers, layers_b=st.interface_layers,
                            vacuum=st.interface_vacuum)
    return min(cands, key=lambda c: (c.n_atoms, c.strain)).atoms


def _lial_li2s():
    return make_interfaces("LiAl", "Li2S", miller_a=(1, 1, 0), miller_b=(1, 1, 0),
                           layers_a=1, layers_b=1, max_atoms=60, max_candidates=1)[0].atoms


@pytest.fixture(scope="module", params=["test-preset Al|LiCl", "LiAl|Li2S"])
def thin_interface(request):
    return _test_preset_interface() if request.param.startswith("test") else _lial_li2s()


def _mic(atoms, vec):
    from ase.geometry import find_mic

    return find_mic(np.atleast_2d(vec), atoms.cell, atoms.pbc)[0][0]


def test_thin_periodic_endpoints_are_inside_each_slab(thin_interface):
    iface = thin_interface
    assert iface.info["periodic"] and iface.info["layers_a"] == 1  # two interfaces in the cell
    ini, fin = interface_endpoints(iface, fix_beyond=4.0)
    side, z = iface.arrays["side"], iface.positions[:, 2]
    z_a, z_b, z_mid = interface_plane(iface)
    assert z_a < z_mid < z_b  # B above A
    za_li, zb_li = ini.positions[-1, 2], fin.positions[-1, 2]
    # Li of the initial state inside A's slab, >= 0.5 A below the midplane (0.1 A plane tol)
    assert z[side == 0].min() - 0.1 <= za_li <= z[side == 0].max() + 0.1
    assert za_li <= z_mid - 0.5
    # Li of the final state inside B's slab, >= 0.5 A above the midplane
    assert z[side == 1].min() - 0.1 <= zb_li <= z[side == 1].max() + 0.1
    assert zb_li >= z_mid + 0.5
    # genuinely different sites: >= 2 A apart (minimum image) -- the reported bug was 0.86 A
    hop = _mic(iface, fin.positions[-1] - ini.positions[-1])
    assert np.linalg.norm(hop) >= 2.0
    assert np.isclose(ini.info["li_hop_A"], np.linalg.norm(hop), atol=1e-5)
    # next to the SAME interface: the mic hop goes up through this interface's midplane,
    # not down through the periodic second interface
    assert np.isclose(hop[2], zb_li - za_li, atol=1e-6)
    assert np.allclose(fin.positions[-1] - ini.positions[-1], hop)  # stored as that image
    assert za_li + hop[2] > z_mid > za_li
    # order, sides and constraints kept
    assert ini.get_chemical_symbols() == fin.get_chemical_symbols()
    assert ini[-1].symbol == "Li" and len(ini) == len(iface) + 1
    assert np.allclose(ini.positions[:-1], iface.positions)
    assert np.allclose(fin.positions[:-1], iface.positions)
    assert ini.arrays["side"][-1] == 0 and fin.arrays["side"][-1] == 1
    assert _fixed(ini) == _fixed(fin)
    for atoms in (ini, fin):
        assert atoms.get_distances(len(atoms) - 1, range(len(iface)), mic=True).min() >= 1.6


def test_endpoints_keep_existing_fixatoms(thin_interface):
    iface = thin_interface.copy()
    iface.set_constraint(FixAtoms(indices=[0, 1]))
    ini, fin = interface_endpoints(iface, fix_beyond=2.0)
    assert {0, 1} <= set(_fixed(ini)) and _fixed(ini) == _fixed(fin)
    _, _, z_mid = interface_plane(iface)
    far = np.flatnonzero(np.abs(iface.positions[:, 2] - z_mid) > 2.0)
    assert set(far.tolist()) <= set(_fixed(ini))
    assert len(ini) - 1 not in _fixed(ini)  # the Li itself is free


def test_endpoints_raise_when_no_pair_is_far_enough(thin_interface):
    with pytest.raises(StructureError, match="interface_layers") as exc:
        interface_endpoints(thin_interface, min_separation=20.0)
    info = thin_interface.info
    assert f"{info['phase_a']}|{info['phase_b']}" in str(exc.value)


def test_endpoints_raise_when_a_slab_has_no_interior_site(thin_interface):
    with pytest.raises(StructureError, match="interface_layers"):
        interface_endpoints(thin_interface, min_dist=3.5)  # no void that large in either slab


def test_endpoints_reject_bad_parameters(thin_interface):
    for kw in ({"min_separation": 0.0}, {"margin": -1.0}, {"depth": 0.0}):
        with pytest.raises(InputError):
            interface_endpoints(thin_interface, **kw)


def test_li2s_validation_hop_is_a_nearest_neighbour_vacancy_hop():
    from interphase_dft.builders.neb import LI2S_A_EXP, li2s_vacancy_hop, nearest_li_vacancy_hop

    initial, final, meta = li2s_vacancy_hop()
    assert initial.get_chemical_formula() == final.get_chemical_formula() == "Li15S8"
    assert meta["charge"] == -1 and meta["hop_distance_A"] == pytest.approx(LI2S_A_EXP / 2)
    moved = np.linalg.norm(final.positions - initial.positions, axis=1)
    assert np.count_nonzero(moved > 1e-9) == 1  # only the hopping Li moves
    assert moved.max() == pytest.approx(LI2S_A_EXP / 2)
    from ase.build import bulk

    with pytest.raises(InputError, match="not Li"):
        nearest_li_vacancy_hop(bulk("SLi2", "fluorite", a=5.69), vacancy=0)
    with pytest.raises(InputError, match="two Li"):
        nearest_li_vacancy_hop(bulk("Al"))
