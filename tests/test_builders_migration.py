"""Migration cells: thick sides, one interface with vacuum, outer thirds fixed, registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from interphase_dft.builders.contact import contact_distances, li_host_reference
from interphase_dft.builders.migration import (
    migration_cell,
    migration_cell_for,
    outer_fixed,
    set_registry,
)
from interphase_dft.builders.thickness import atomic_planes
from interphase_dft.calc.presets import preset
from interphase_dft.errors import InputError, NoMatchError
from interphase_dft.phases import get_bulk
from interphase_dft.recipes.registry import EV_PER_A2_TO_J_PER_M2, scan_cell, side_alone

KW = dict(miller_a=(1, 1, 0), miller_b=(1, 1, 0))


@pytest.fixture(scope="module")
def cell():
    """LiAl(110)|LiCl(110), 6 A per side (the laptop thickness)."""
    return migration_cell("LiAl", "LiCl", min_thickness=6.0, max_atoms=200, **KW)


def _fixed_of(atoms) -> list[int]:
    return sorted(int(i) for c in atoms.constraints for i in c.get_indices())


def test_sides_thick_one_interface_with_vacuum(cell):
    at, side, z = cell.atoms, cell.atoms.arrays["side"], cell.atoms.positions[:, 2]
    for s, thick, planes in ((0, cell.thickness_a, cell.planes_a), (1, cell.thickness_b,
                                                                    cell.planes_b)):
        assert np.ptp(z[side == s]) == pytest.approx(thick)
        assert thick >= 6.0 and planes >= 3
        assert len(atomic_planes(z[side == s])) == planes
    assert z[side == 0].max() < z[side == 1].min()  # A below B: one A|B interface
    assert z[side == 0].min() + at.cell[2, 2] - z[side == 1].max() == pytest.approx(10.0)
    assert np.allclose(at.cell[2, :2], 0) and np.allclose(at.cell[:2, 2], 0)
    info = at.info
    assert info["dipole_correction"] is True and info["periodic"] is False
    assert info["interfaces_per_cell"] == 1 and info["vacuum_A"] == 10.0
    assert info["strain"] <= info["max_strain"] == 0.05 and info["strained_side"] == "b"
    assert z[side == 1].min() - z[side == 0].max() == pytest.approx(cell.gap)
    json.dumps(info)


def test_outer_third_fixed(cell):
    at, side, z = cell.atoms, cell.atoms.arrays["side"], cell.atoms.positions[:, 2]
    fixed = _fixed_of(at)
    assert fixed == list(cell.fixed) == at.info["fixed"] and fixed
    za, zb = z[side == 0], z[side == 1]
    expect = np.flatnonzero(((side == 0) & (z < za.min() + np.ptp(za) / 3 + 0.1))
                            | ((side == 1) & (z > zb.max() - np.ptp(zb) / 3 - 0.1)))
    assert fixed == expect.tolist()
    # the interface plane of each side and the inner two thirds are free
    assert not set(fixed) & set(np.flatnonzero((side == 0) & (z > za.max() - 0.1)))
    assert not set(fixed) & set(np.flatnonzero((side == 1) & (z < zb.min() + 0.1)))


def test_contact_registry_keeps_bulk_contacts(cell):
    at, side = cell.atoms, cell.atoms.arrays["side"]
    r = contact_distances(get_bulk("LiAl"), get_bulk("LiCl"))
    from ase.geometry import get_distances

    _, d = get_distances(at.positions[side == 0], at.positions[side == 1], cell=at.cell,
                         pbc=[True, True, False])
    sym = np.array(at.get_chemical_symbols())
    ref = np.array([[r[(x, y)] for y in sym[side == 1]] for x in sym[side == 0]])
    assert (d >= ref - 1e-3).all()
    assert np.isclose(d - ref, 0, atol=1e-3).any()  # in contact, not floating
    assert at.info["registry_rule"].startswith("contact")


def test_set_registry_moves_b_rigidly(cell):
    moved = set_registry(cell, (0.25, 0.5), 3.0)
    side = cell.atoms.arrays["side"]
    assert moved.atoms.get_chemical_symbols() == cell.atoms.get_chemical_symbols()
    assert _fixed_of(moved.atoms) == list(cell.fixed)
    z = moved.atoms.positions[:, 2]
    assert z[side == 1].min() - z[side == 0].max() == pytest.approx(3.0)
    da = moved.atoms.positions[side == 0] - cell.atoms.positions[side == 0]
    assert np.allclose(da - da[0], 0, atol=1e-8)  # A rigid
    frac = moved.atoms.get_scaled_positions()[side == 1] - cell.atoms.get_scaled_positions()[
        side == 1]
    d12 = (frac[:, :2] - np.subtract((0.25, 0.5), cell.shift) + 0.5) % 1.0 - 0.5
    assert np.allclose(d12, 0, atol=1e-8)
    assert moved.info["shift"] == [0.25, 0.5]


def test_strained_side_a_keeps_a_at_bottom():
    c = migration_cell("LiAl", "LiCl", min_thickness=6.0, strained_side="a", **KW)
    z, side = c.atoms.positions[:, 2], c.atoms.arrays["side"]
    assert z[side == 0].max() < z[side == 1].min()
    assert c.strained_side == "a" and c.atoms.info["strained_side"] == "a"
    assert c.atoms.cell.handedness == 1
    u, v = 5.13 / np.sqrt(2), 5.13  # LiCl(110) unstrained: in-plane vectors m u + n v
    for vec in c.atoms.cell[:2]:
        assert any(np.isclose(vec @ vec, (m * u) ** 2 + (n * v) ** 2, rtol=1e-4)
                   for m in range(5) for n in range(5))


def test_settings_fields_reach_the_cell():
    st = preset("test").structure
    c = migration_cell_for("LiAl", "LiCl", preset("test"), **KW)
    assert c.thickness_a >= st.interface_min_thickness and c.planes_a >= 3
    assert c.thickness_b >= st.interface_min_thickness and c.planes_b >= 3
    assert c.vacuum == st.interface_migration_vacuum >= 10
    assert preset("laptop").structure.interface_min_thickness >= 6
    assert preset("production").structure.interface_min_thickness >= 10


def test_bad_input_names_the_fix():
    with pytest.raises(NoMatchError, match="needs 68 atoms: raise max_atoms"):
        migration_cell("LiAl", "LiCl", min_thickness=6.0, max_atoms=50, **KW)
    with pytest.raises(NoMatchError, match="max_strain"):
        migration_cell("LiAl", "LiCl", min_thickness=6.0, max_strain=0.001, **KW)
    with pytest.raises(InputError, match="vacuum"):
        migration_cell("LiAl", "LiCl", vacuum=5.0, **KW)
    with pytest.raises(InputError, match="min_planes"):
        migration_cell("LiAl", "LiCl", min_planes=2, **KW)


def test_atomic_planes_chain_within_half_an_angstrom():
    planes = atomic_planes(np.array([2.3, 0.0, 0.2, 2.0, 2.7, 3.3, 5.0]))
    assert [p.tolist() for p in planes] == [[1, 2], [0, 3, 4], [5], [6]]


def test_registry_scan_with_lj(cell):
    """Cheap calculator: the registry is the lowest point, W_ad follows its definition."""
    c = migration_cell_for("LiAl", "LiCl", preset("test"), **KW)
    assert outer_fixed(c.atoms, 0.0) == []

    def factory(atoms):
        return LennardJones(sigma=2.3, epsilon=0.01, rc=5.0, smooth=True)

    scan = scan_cell(c, factory, grid=2, gap_offsets=(0.0, 0.4))
    assert 8 <= len(scan.points) <= 12  # 2 x 2 shifts x 2 gaps, + the gap extension
    same = sorted(p[2] for p in scan.points if p[:2] == scan.best_shift)
    assert same[0] < scan.best_gap < same[-1] or len(scan.points) == 12
    energies = [p[3] for p in scan.points]
    assert scan.energy_ab == min(energies)
    assert scan.best_gap == pytest.approx(scan.points[int(np.argmin(energies))][2])
    best = scan.cell.atoms.copy()
    best.calc = factory(best)
    assert best.get_potential_energy() == pytest.approx(scan.energy_ab, abs=1e-8)
    e = []
    for s in (0, 1):
        alone = side_alone(c, s)
        alone.calc = factory(alone)
        e.append(alone.get_potential_energy())
    w = (e[0] + e[1] - scan.energy_ab) / c.area
    assert scan.work_of_adhesion_eV_A2 == pytest.approx(w)
    assert scan.work_of_adhesion_J_m2 == pytest.approx(w * EV_PER_A2_TO_J_PER_M2)
    assert scan.work_of_adhesion_J_m2 > 0  # LJ sides attract
    assert scan.cell.info["registry_rule"].startswith("lowest energy")
    json.dumps(scan.to_dict())
    # confirmation of given points (e.g. the best surrogate points with DFT)
    again = scan_cell(c, factory, points=[p[:3] for p in scan.points[:3]])
    assert again.points == scan.points[:3] and again.meta["scan_rule"] == "given points"


def test_li_host_reference():
    assert li_host_reference("LiAl")["nearest_non_li"] == pytest.approx(6.37 * np.sqrt(3) / 4,
                                                                       abs=1e-3)
    assert li_host_reference("Li2S")["nearest_non_li"] == pytest.approx(5.71 * np.sqrt(3) / 4,
                                                                       abs=1e-3)
    assert li_host_reference("Al") == {"nearest_non_li": None, "nearest_li": None}


def test_formal_dipole_tells_polar_from_non_polar_films():
    """Rock-salt LiCl(111) (alternating Li+ and Cl- planes) is polar; (100) and (110) and
    any Li/Al metal are not."""
    from ase.build import bulk, surface

    from interphase_dft.builders.slab_properties import POLAR_TOL, dipole_density

    licl = bulk("LiCl", "rocksalt", a=5.13, cubic=True)
    polar = surface(licl, (1, 1, 1), 4, vacuum=5.0)
    assert dipole_density(polar) > 10 * POLAR_TOL
    for hkl in ((1, 0, 0), (1, 1, 0)):
        assert dipole_density(surface(licl, hkl, 4, vacuum=5.0)) < POLAR_TOL
    metal = polar.copy()
    metal.symbols = ["Al" if x == "Cl" else "Li" for x in metal.symbols]
    assert dipole_density(metal) == 0.0


@pytest.mark.slow
def test_polar_sides_are_ranked_after_non_polar_ones():
    """Li3P|LiCl at the laptop thickness: the smallest cell (47 atoms) has rock-salt
    LiCl(111), a polar film that reconstructed by over 1 A under DFT; the builder takes the
    smallest cell whose two sides carry no formal dipole and records the dipoles."""
    c = migration_cell_for("Li3P", "LiCl", preset("laptop"))
    info = c.atoms.info
    assert info["polar_sides"] == [] and tuple(c.miller_b) != (1, 1, 1)
    assert info["dipole_a_e_per_A"] < 1e-3 and info["dipole_b_e_per_A"] < 1e-3
    assert len(c.atoms) > 47 and "polar" in info["rank_rule"]
    polar = migration_cell_for("Li3P", "LiCl", preset("laptop"), miller_b=(1, 1, 1))
    assert polar.atoms.info["polar_sides"] == ["b"]
