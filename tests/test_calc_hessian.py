"""The surrogate's Hessian as the starting curvature of a reference-level BFGS relaxation
(calc/hessian.py, ``relax(..., hessian=)``): a reference that is the surrogate plus a uniform
force on the free atoms (what a field across an ionic film adds to a local surrogate)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc100
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from interphase_dft.calc.hessian import surrogate_hessian
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import RelaxSettings
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import InputError


def emt(atoms, attempt=0, label=""):
    return EMT()


class FieldEMT(Calculator):
    """EMT plus a constant force on every atom (energy -f.(r - r0)): a uniform field."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, force: np.ndarray, origin: np.ndarray) -> None:
        super().__init__()
        self.force, self.origin, self.calls = force, origin, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        work = self.atoms.copy()
        work.calc = EMT()
        e = work.get_potential_energy() - float(np.sum(self.force * (work.positions
                                                                   - self.origin)))
        self.results = {"energy": e, "free_energy": e,
                        "forces": work.get_forces() + self.force}


def slab():
    s = fcc100("Al", (2, 2, 4), vacuum=6.0)
    s.set_constraint(FixAtoms(mask=[a.tag >= 3 for a in s]))  # the two bottom layers
    s.calc = EMT()
    return s


def test_the_hessian_is_symmetric_positive_and_leaves_fixed_atoms_out():
    s = slab()
    h = surrogate_hessian(s, emt)
    assert h.shape == (3 * len(s), 3 * len(s)) and np.allclose(h, h.T)
    assert np.linalg.eigvalsh(h).min() >= 0.5 - 1e-9
    fixed = fixed_indices(s)
    assert fixed == [a.index for a in s if a.tag >= 3]
    for a in fixed:
        block = h[3 * a: 3 * a + 3]
        assert np.allclose(np.delete(block, [3 * a, 3 * a + 1, 3 * a + 2], axis=1), 0.0)
    # the free block is EMT's curvature: a small move of a free atom changes the forces as -H d
    free = next(a.index for a in s if a.tag == 1)
    d = np.zeros((len(s), 3))
    d[free, 2] = 0.002
    moved = s.copy()
    moved.positions += d
    moved.calc = EMT()
    df = (moved.get_forces() - s.get_forces()).ravel()
    assert np.allclose(df, -h @ d.ravel(), atol=2e-3)


def test_bfgs_from_the_surrogate_hessian_needs_fewer_reference_calls(tmp_path):
    start = slab()
    r0 = relax(start, emt, tmp_path / "ml", RelaxSettings(fmax=0.005, steps=300))  # surrogate
    start = r0.atoms
    force = np.zeros((len(start), 3))
    # opposite forces on the two free layers, as a field on the ions of a film
    force[[a.index for a in start if a.tag == 1], 2] = 0.15
    force[[a.index for a in start if a.tag == 2], 2] = -0.15
    settings = RelaxSettings(fmax=0.01, steps=200, optimizer="BFGS")
    plain_calc, seeded_calc = (FieldEMT(force, start.positions.copy()) for _ in range(2))
    plain = relax(start, lambda a, attempt=0, label="": plain_calc, tmp_path / "plain",
                  settings)
    seeded = relax(start, lambda a, attempt=0, label="": seeded_calc, tmp_path / "seeded",
                   settings, hessian=surrogate_hessian(start, emt))
    assert plain.converged and seeded.converged
    assert seeded.energy == pytest.approx(plain.energy, abs=2e-3)  # the same minimum
    assert np.abs(seeded.atoms.positions - plain.atoms.positions).max() < 0.02
    assert seeded_calc.calls <= plain_calc.calls / 2, (seeded_calc.calls, plain_calc.calls)
    fixed = fixed_indices(start)
    assert np.allclose(seeded.atoms.positions[fixed], start.positions[fixed])


def test_a_starting_hessian_needs_bfgs_on_positions_and_the_right_shape(tmp_path):
    s = slab()
    h = np.eye(3 * len(s))
    with pytest.raises(InputError, match=r"relax\.optimizer='BFGS'"):
        relax(s, emt, tmp_path / "a", RelaxSettings(optimizer="FIRE"), hessian=h)
    with pytest.raises(InputError, match="must be"):
        relax(s, emt, tmp_path / "b", RelaxSettings(), hessian=np.eye(3))


def test_start_hessian_is_the_surrogates_only_for_bfgs_with_the_setting_on(tmp_path):
    from interphase_dft.calc.hessian import HESSIAN_FILE, start_hessian
    from interphase_dft.calc.settings import CalcSettings

    s = slab()
    base = CalcSettings(preset="test")
    h = start_hessian(s, emt, tmp_path / "a", base)
    assert h is not None and h.shape == (3 * len(s), 3 * len(s))
    assert (tmp_path / "a" / HESSIAN_FILE).exists()
    assert np.allclose(h, surrogate_hessian(s, emt))
    off = base.with_overrides({"neb": {"surrogate_hessian": False}})
    fire = base.with_overrides({"relax": {"optimizer": "FIRE"}})
    for settings, surrogate in ((off, emt), (fire, emt), (base, None)):
        assert start_hessian(s, surrogate, tmp_path / "b", settings) is None
    assert not (tmp_path / "b").exists()


def test_the_signed_hessian_keeps_only_clear_negative_curvature():
    """At the bridge saddle of an Al adatom hop the hop direction has negative curvature:
    the signed Hessian keeps it, the plain one makes it positive; curvatures between -floor
    and floor become floor in both."""
    s = fcc100("Al", (2, 2, 3), vacuum=6.0)
    s.set_constraint(FixAtoms(mask=[a.tag >= 2 for a in s]))
    top = s.positions[[a.index for a in s if a.tag == 1]]
    # bridge between two hollow sites: above the midpoint of a top-layer Al pair
    s.append("Al")
    s.positions[-1] = 0.5 * (top[0] + top[1]) + (0.0, 0.0, 1.9)
    plain = np.linalg.eigvalsh(surrogate_hessian(s, emt, floor=0.2))
    signed = np.linalg.eigvalsh(surrogate_hessian(s, emt, floor=0.2, signed=True))
    assert plain.min() >= 0.2 - 1e-9
    assert signed.min() < -0.2  # the hop's negative curvature
    assert ((signed < 0.2 - 1e-9) == (signed < -0.2)).all()  # nothing in between


class ScaledEMT(Calculator):
    """EMT of the structure scaled by ``s`` (positions and cell): E_ref(r) = E_EMT(s r), a
    reference whose lattice constant is 1/s of the surrogate's (as a universal potential's is a
    few per cent off) and whose position curvature is s^2 times it; with stress."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s, self.calls = s, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        work = self.atoms.copy()
        work.set_cell(work.cell[:] * self.s, scale_atoms=True)
        work.calc = EMT()
        e = work.get_potential_energy()
        self.results = {"energy": e, "free_energy": e, "forces": self.s * work.get_forces(),
                        "stress": work.get_stress() * self.s ** 3}


def strained_crystal():
    from ase.build import bulk

    a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    a.set_cell(a.cell[:] @ np.array([[1.03, 0.02, 0.0], [0.0, 0.98, 0.0], [0.0, 0.0, 1.01]]),
               scale_atoms=True)
    a.rattle(0.05, seed=3)
    return a


def test_the_cell_hessian_is_the_curvature_of_the_frechet_filter_coordinates():
    """cell=True: the (3N + 9)-square matrix of FrechetCellFilter's degrees of freedom,
    symmetric, floored, and the filter's force change under a small move of a cell row (and of
    an atom) is -H d."""
    from ase.filters import FrechetCellFilter

    a = strained_crystal()
    h = surrogate_hessian(a, emt, cell=True)
    n = 3 * (len(a) + 3)
    assert h.shape == (n, n) and np.allclose(h, h.T)
    assert np.linalg.eigvalsh(h).min() >= 0.5 - 1e-9
    a.calc = EMT()
    f = FrechetCellFilter(a)
    x0, f0 = f.get_positions().copy(), f.get_forces().copy()
    for row, col in ((len(a), 0), (len(a) + 1, 2), (len(a) + 2, 2), (3, 1)):
        d = np.zeros_like(x0)
        d[row, col] = 0.004
        f.set_positions(x0 + d)
        df = (f.get_forces() - f0).ravel()
        f.set_positions(x0)
        # the stiff part only: the floor raised nothing here (a strained, rattled crystal)
        assert np.allclose(df, -h @ d.ravel(), atol=2e-3), (row, col)
    assert np.abs(h[3 * len(a):, :3 * len(a)]).max() > 0.1  # cell and atoms are coupled


def test_a_cell_relaxation_from_the_surrogates_cell_hessian_needs_fewer_reference_calls(
        tmp_path):
    """BFGS on atoms and cell against a reference 2 % off the surrogate's lattice: from the
    surrogate's cell Hessian (rescaled once, PriorBFGS) it reaches the same cell and energy
    as from alpha x identity, in at most half the reference calls; a Hessian of the positions
    only is refused for a cell relaxation, with the fix in the message."""
    start = strained_crystal()
    settings = RelaxSettings(fmax=0.005, steps=300, optimizer="BFGS")
    plain_calc, seeded_calc = ScaledEMT(0.98), ScaledEMT(0.98)
    plain = relax(start, lambda a, attempt=0, label="": plain_calc, tmp_path / "plain",
                  settings, cell=True)
    seeded = relax(start, lambda a, attempt=0, label="": seeded_calc, tmp_path / "seeded",
                   settings, cell=True, hessian=surrogate_hessian(start, emt, cell=True))
    assert plain.converged and seeded.converged
    assert seeded.energy == pytest.approx(plain.energy, abs=1e-3)
    assert seeded.atoms.get_volume() == pytest.approx(plain.atoms.get_volume(), rel=2e-3)
    # the reference's own lattice: 3.6/0.98 would be EMT's Cu a0 (3.59) / 0.98 = 3.66 A
    assert seeded.atoms.get_volume() / len(start) == pytest.approx((3.59 / 0.98) ** 3 / 4,
                                                                   rel=0.02)
    assert seeded_calc.calls <= plain_calc.calls / 2, (seeded_calc.calls, plain_calc.calls)
    with pytest.raises(InputError, match=r"cell=True"):
        relax(start, emt, tmp_path / "wrong", settings, cell=True,
              hessian=surrogate_hessian(start, emt))


def test_a_stored_hessian_of_the_positions_is_not_served_to_a_cell_relaxation(tmp_path):
    """The cache is keyed on the geometry and the kind of matrix: the same work directory asked
    for the cell Hessian recomputes it rather than return the positions-only one."""
    from interphase_dft.calc.hessian import stored_hessian

    a = strained_crystal()
    n = 3 * len(a)
    assert stored_hessian(a, emt, tmp_path).shape == (n, n)
    assert stored_hessian(a, emt, tmp_path, cell=True).shape == (n + 9, n + 9)
    moved = a.copy()
    moved.set_cell(a.cell[:] * 1.01, scale_atoms=False)  # same positions, another cell
    again = stored_hessian(moved, emt, tmp_path, cell=True)
    assert not np.allclose(again, stored_hessian(a, emt, tmp_path / "fresh", cell=True))
