"""P-RFO saddle search (calc/prfo.py) on the Mueller-Brown surface, whose saddles are known."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms

from interphase_dft.calc.prfo import bofill, prfo_saddle
from interphase_dft.errors import InputError

# Mueller and Brown, Theor. Chim. Acta 53, 75 (1979); energies scaled by 0.01 (eV), x, y in A
A = np.array([-200.0, -100.0, -170.0, 15.0])
a = np.array([-1.0, -1.0, -6.5, 0.7])
b = np.array([0.0, 0.0, 11.0, 0.6])
c = np.array([-10.0, -10.0, -6.5, 0.7])
X0 = np.array([1.0, 0.0, -0.5, -1.0])
Y0 = np.array([0.0, 0.5, 1.5, 1.0])
SCALE = 0.01
#: the two saddles and the three minima of the surface (x, y)
SADDLE_1 = (-0.822002, 0.624313)
SADDLE_2 = (0.212487, 0.292988)
MINIMA = [(-0.558224, 1.441726), (0.623499, 0.028038), (-0.050011, 0.466694)]
KZ = 1.0  # harmonic in z, eV/A^2


def mb(x, y):
    dx, dy = x - X0, y - Y0
    t = A * np.exp(a * dx**2 + b * dx * dy + c * dy**2)
    e = SCALE * t.sum()
    fx = -SCALE * (t * (2 * a * dx + b * dy)).sum()
    fy = -SCALE * (t * (b * dx + 2 * c * dy)).sum()
    return e, fx, fy


class MuellerBrown(Calculator):
    """The last atom moves on the surface (x, y) with a harmonic z; other atoms feel nothing."""

    implemented_properties = ("energy", "forces")
    calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        MuellerBrown.calls += 1
        x, y, z = self.atoms.positions[-1]
        e, fx, fy = mb(x, y)
        forces = np.zeros((len(self.atoms), 3))
        forces[-1] = (fx, fy, -KZ * z)
        self.results = {"energy": e + 0.5 * KZ * z**2, "forces": forces}


def factory(atoms, attempt=0, label=""):
    return MuellerBrown()


def hessian_at(atoms, delta=1e-4):
    """Finite-difference Hessian of the surface (the stand-in for a surrogate's)."""
    n = 3 * len(atoms)
    h = np.zeros((n, n))
    work = atoms.copy()
    work.calc = MuellerBrown()
    base = work.positions.copy()
    for k in range(n):
        cols = []
        for sgn in (1, -1):
            pos = base.copy()
            pos.ravel()[k] += sgn * delta
            work.positions = pos
            cols.append(work.get_forces().ravel())
        h[:, k] = -(cols[0] - cols[1]) / (2 * delta)
    return 0.5 * (h + h.T)


def one_atom(x, y, z=0.0):
    return Atoms("Li", positions=[(x, y, z)], cell=[20, 20, 20])


def test_the_surface_has_its_published_stationary_points():
    for x, y in [SADDLE_1, SADDLE_2, *MINIMA]:
        _, fx, fy = mb(x, y)
        assert abs(fx) < 2e-4 and abs(fy) < 2e-4


def test_prfo_finds_a_published_saddle_from_a_biased_start_with_a_wrong_curvature_scale():
    """Start 0.15 A off saddle 1 with the Hessian of the start scaled by 0.6 (a surrogate that
    is too soft): the search follows the negative mode and ends on the saddle."""
    start = one_atom(SADDLE_1[0] + 0.1, SADDLE_1[1] - 0.1, 0.2)
    h = 0.6 * hessian_at(start)
    MuellerBrown.calls = 0
    res = prfo_saddle(start, factory, hessian=h, fmax=1e-3, steps=60)
    assert res.converged and res.negative_modes == 1
    assert res.atoms.positions[-1] == pytest.approx([*SADDLE_1, 0.0], abs=2e-3)
    assert res.energy == pytest.approx(mb(*SADDLE_1)[0], abs=1e-5)
    assert res.force_calls == res.steps == MuellerBrown.calls <= 30
    assert start.positions[-1] == pytest.approx([SADDLE_1[0] + 0.1, SADDLE_1[1] - 0.1, 0.2])


def test_the_negative_mode_is_the_exact_hessians_lowest_eigenvector_at_the_saddle():
    """At the converged saddle the reported negative mode is, within 5 degrees, the lowest
    eigenvector of the surface's own Hessian there, even when the search started along a
    direction 40 degrees away from it."""
    start = one_atom(SADDLE_1[0] + 0.05, SADDLE_1[1] - 0.05)
    w, v = np.linalg.eigh(hessian_at(one_atom(*SADDLE_1)))
    lowest = v[:, 0]
    across = next(v[:, k] for k in (1, 2) if abs(v[2, k]) < 1e-6)  # the other mode in x, y
    off = np.cos(np.radians(40)) * lowest + np.sin(np.radians(40)) * across
    res = prfo_saddle(start, factory, hessian=hessian_at(start), fmax=1e-4, steps=80,
                      mode=off)
    assert res.converged and w[0] < 0 < w[1]
    cosine = abs(float(res.negative_mode.ravel() @ lowest))
    assert cosine > np.cos(np.radians(5))
    assert np.linalg.norm(res.negative_mode) == pytest.approx(1.0)


def test_the_followed_mode_picks_which_saddle_a_start_between_two_reaches():
    """From just off the shallow minimum, following the direction towards each neighbour
    minimum gives that side's saddle (the band tangent plays this role for a hop)."""
    mid = np.array(MINIMA[2])
    for target, saddle in ((MINIMA[0], SADDLE_1), (MINIMA[1], SADDLE_2)):
        tangent = np.array([[target[0] - mid[0], target[1] - mid[1], 0.0]])
        start = one_atom(*(mid + 0.05 * tangent[0, :2] / np.linalg.norm(tangent)))
        h = hessian_at(start)
        res = prfo_saddle(start, factory, hessian=h, mode=tangent, fmax=1e-3, steps=80)
        assert res.converged and res.negative_modes == 1
        assert res.atoms.positions[-1][:2] == pytest.approx(saddle, abs=2e-3)
        # the followed mode at the saddle points along the path
        assert abs(res.mode[-1] @ tangent[0]) / np.linalg.norm(tangent) > 0.5


def test_fixed_atoms_do_not_move_and_a_killed_search_resumes(tmp_path):
    spectator = Atoms("Li2", positions=[(5, 5, 5), (SADDLE_2[0] - 0.08, SADDLE_2[1] + 0.1,
                                                     0.1)], cell=[20, 20, 20])
    spectator.set_constraint(FixAtoms(indices=[0]))
    h = hessian_at(spectator)
    towards = np.zeros((2, 3))
    towards[1, :2] = np.subtract(MINIMA[1], MINIMA[2])  # the hop from minimum 3 to minimum 2
    kw = dict(hessian=h, mode=towards, fmax=1e-3)
    ckpt = tmp_path / "prfo.npz"
    first = prfo_saddle(spectator, factory, steps=3, checkpoint=ckpt, **kw)
    assert not first.converged and first.steps == 3 and ckpt.is_file()
    MuellerBrown.calls = 0
    done = prfo_saddle(spectator, factory, steps=60, checkpoint=ckpt, **kw)
    assert done.converged and done.atoms.positions[-1][:2] == pytest.approx(SADDLE_2, abs=2e-3)
    assert done.atoms.positions[0] == pytest.approx([5, 5, 5])
    assert MuellerBrown.calls == done.steps - 3  # nothing recomputed
    MuellerBrown.calls = 0
    other = prfo_saddle(spectator, factory, steps=60, checkpoint=ckpt, level="other", **kw)
    assert MuellerBrown.calls == other.steps == done.steps  # another level: started over
    straight = prfo_saddle(spectator, factory, steps=60, **kw)
    assert straight.steps == done.steps and np.allclose(straight.atoms.positions,
                                                        done.atoms.positions)
    with pytest.raises(InputError, match="another structure"):
        prfo_saddle(one_atom(0, 0), factory, hessian=hessian_at(one_atom(0, 0)), fmax=1e-3,
                    steps=5, checkpoint=ckpt)


def test_a_minimum_is_never_reported_as_a_saddle():
    """Forces vanish at a minimum, and the probe of the followed mode confirms its positive
    curvature: the search stops there, not converged, after two calls."""
    start = one_atom(*MINIMA[1])
    res = prfo_saddle(start, factory, hessian=hessian_at(start), fmax=1e-3, steps=50)
    assert res.fmax < 1e-3 and res.negative_modes == 0 and not res.converged
    assert res.steps == 2


def test_bad_input_is_refused():
    start = one_atom(0, 0)
    with pytest.raises(InputError, match="Hessian of shape"):
        prfo_saddle(start, factory, hessian=np.eye(6), fmax=0.01, steps=5)
    with pytest.raises(InputError, match="fmax"):
        prfo_saddle(start, factory, hessian=np.eye(3), fmax=0.0, steps=5)


def test_bofill_update_satisfies_the_secant_condition():
    rng = np.random.default_rng(3)
    h = np.diag([1.0, -0.5, 2.0])
    s, y = rng.normal(size=3), rng.normal(size=3)
    new = bofill(h, s, y)
    assert np.allclose(new, new.T) and new @ s == pytest.approx(y)


def test_a_negative_mode_that_only_the_model_has_is_probed_away():
    """The starting Hessian says z is a negative mode (the true surface is harmonic in z,
    +1 eV/A^2): no step moves along z, so at the stationary point one reference call probes
    it, the update makes it positive and the saddle is first order."""
    start = one_atom(SADDLE_1[0] + 0.05, SADDLE_1[1] - 0.05)
    h = hessian_at(start)
    h[2, 2] = -1.0
    MuellerBrown.calls = 0
    res = prfo_saddle(start, factory, hessian=h, fmax=1e-3, steps=60)
    assert res.converged and res.negative_modes == 1
    assert res.atoms.positions[-1] == pytest.approx([*SADDLE_1, 0.0], abs=2e-3)
    assert res.steps == MuellerBrown.calls


class UpsideDownZ(MuellerBrown):
    """The surface with z a true negative mode: every stationary point in the plane z = 0 is
    one order higher."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        z = self.atoms.positions[-1, 2]
        self.results["energy"] -= KZ * z**2  # +0.5 KZ z^2 becomes -0.5 KZ z^2
        self.results["forces"][-1, 2] = KZ * z


def test_a_second_order_saddle_is_not_reported_as_a_saddle():
    start = one_atom(SADDLE_1[0] + 0.05, SADDLE_1[1] - 0.05)
    h = hessian_at(start)
    h[2, 2] = -1.0  # the model knows; the probe confirms it
    lines = []
    res = prfo_saddle(start, lambda atoms, attempt=0, label="": UpsideDownZ(), hessian=h,
                      fmax=1e-3, steps=60, log=lines.append)
    assert res.fmax <= 1e-3 and res.negative_modes == 2 and not res.converged
    assert sum("probed" in line for line in lines) == 1  # DFT's curvature, not the model's


def test_a_search_resumed_after_a_probe_ends_as_an_uninterrupted_one(tmp_path):
    start = one_atom(SADDLE_1[0] + 0.05, SADDLE_1[1] - 0.05)
    h = hessian_at(start)
    h[2, 2] = -1.0
    whole = prfo_saddle(start, factory, hessian=h, fmax=1e-3, steps=60)
    ckpt = tmp_path / "p.npz"
    cut = prfo_saddle(start, factory, hessian=h, fmax=1e-3, steps=whole.steps - 1,
                      checkpoint=ckpt)  # stopped at the stationary point, before its probe
    assert not cut.converged and cut.negative_modes == 2
    MuellerBrown.calls = 0
    again = prfo_saddle(start, factory, hessian=h, fmax=1e-3, steps=60, checkpoint=ckpt)
    assert again.converged and again.steps == whole.steps and MuellerBrown.calls == 1
    assert np.allclose(again.atoms.positions, whole.atoms.positions)
    MuellerBrown.calls = 0  # killed after the probe was stored: nothing to repeat
    done = prfo_saddle(start, factory, hessian=h, fmax=1e-3, steps=60, checkpoint=ckpt)
    assert done.converged and done.steps == whole.steps and MuellerBrown.calls == 0
    # a search from another start (a new band's climbing image) starts over
    other = one_atom(SADDLE_1[0] - 0.05, SADDLE_1[1] + 0.05)
    fresh = prfo_saddle(other, factory, hessian=h, fmax=1e-3, steps=60, checkpoint=ckpt)
    assert fresh.converged and MuellerBrown.calls == fresh.steps


def test_a_watch_stops_the_search_and_sees_a_resumed_point_without_a_call(tmp_path):
    start = one_atom(SADDLE_2[0] - 0.08, SADDLE_2[1] + 0.1)
    towards = np.array([[MINIMA[1][0] - MINIMA[2][0], MINIMA[1][1] - MINIMA[2][1], 0.0]])
    kw = dict(hessian=hessian_at(start), mode=towards, fmax=1e-3)
    seen: list[tuple[float, int]] = []

    def watch(atoms, energy, negative):
        seen.append((energy, negative))
        return "third point" if len(seen) == 3 else None

    ckpt = tmp_path / "prfo.npz"
    MuellerBrown.calls = 0
    res = prfo_saddle(start, factory, steps=60, checkpoint=ckpt, watch=watch, **kw)
    assert res.stopped == "third point" and not res.converged
    assert res.steps == 3 == MuellerBrown.calls
    assert res.energy == pytest.approx(seen[-1][0])
    MuellerBrown.calls = 0
    again = prfo_saddle(start, factory, steps=60, checkpoint=ckpt,
                        watch=lambda atoms, energy, negative: "at once", **kw)
    assert again.stopped == "at once" and MuellerBrown.calls == 0 and again.steps == 3
    rest = prfo_saddle(start, factory, steps=60, checkpoint=ckpt, **kw)
    assert rest.converged and rest.stopped is None
    assert rest.atoms.positions[0][:2] == pytest.approx(SADDLE_2, abs=2e-3)
