"""BFGS from a surrogate's curvature rescaled on the first reference step (calc/prior_bfgs.py):
a prior that is too soft by a known factor, EMT standing in for DFT."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.optimize import BFGS

from interphase_dft.calc.hessian import surrogate_hessian
from interphase_dft.calc.prior_bfgs import SCALE_BOUNDS, PriorBFGS


def _minimum():
    s = fcc100("Al", (3, 3, 4), vacuum=6.0)
    s.set_constraint(FixAtoms(mask=[a.tag >= 3 for a in s]))
    s.calc = EMT()
    BFGS(s, logfile=None).run(fmax=0.002)
    return s


@pytest.fixture(scope="module")
def minimum_and_hessian():
    s = _minimum()
    return s, surrogate_hessian(s, lambda a, attempt=0, label="": EMT())


def _displaced(s, amplitude, seed=0):
    out = s.copy()
    free = [a.index for a in s if a.tag < 3]
    out.positions[free] += np.random.default_rng(seed).normal(0, amplitude, (len(free), 3))
    out.calc = EMT()
    return out


def test_the_scale_is_the_reference_curvature_over_the_priors(minimum_and_hessian):
    s, h = minimum_and_hessian
    atoms = _displaced(s, 0.01)  # harmonic region: the reference curvature is h's
    opt = PriorBFGS(atoms, 0.25 * h, logfile=None)
    opt.run(fmax=1e-4, steps=2)
    assert opt.scale == pytest.approx(4.0, rel=0.1)
    assert SCALE_BOUNDS[0] <= opt.scale <= SCALE_BOUNDS[1]


def test_a_soft_prior_rescaled_needs_fewer_steps_to_the_same_minimum(minimum_and_hessian):
    s, h = minimum_and_hessian
    soft = 0.15 * h  # a surrogate several times softer than the reference
    plain = _displaced(s, 0.2)
    opt_plain = BFGS(plain, logfile=None)
    opt_plain.H0 = soft.copy()
    assert opt_plain.run(fmax=0.01, steps=200)
    scaled = _displaced(s, 0.2)
    opt = PriorBFGS(scaled, soft, logfile=None)
    assert opt.run(fmax=0.01, steps=200)
    assert opt.nsteps < opt_plain.nsteps, (opt.nsteps, opt_plain.nsteps)
    assert opt.scale > 3.0
    assert scaled.get_potential_energy() == pytest.approx(plain.get_potential_energy(),
                                                          abs=1e-3)
    assert np.allclose(soft, 0.15 * h)  # the caller's prior is not updated in place


def test_the_scaling_survives_a_kill_before_the_second_step_and_is_applied_once(
        minimum_and_hessian, tmp_path):
    s, h = minimum_and_hessian
    restart = str(tmp_path / "opt.json")
    atoms = _displaced(s, 0.05)
    PriorBFGS(atoms, 0.25 * h, restart=restart, logfile=None).run(fmax=1e-4, steps=1)
    # killed after the first step: the restart file still holds the unscaled prior
    resumed = PriorBFGS(atoms, 0.25 * h, restart=restart, logfile=None)
    resumed.run(fmax=1e-4, steps=1)
    assert resumed.scale is not None and resumed.scale > 2.0
    again = PriorBFGS(atoms, 0.25 * h, restart=restart, logfile=None)  # a later kill
    before = again.state.hessian.copy()
    again.run(fmax=1e-4, steps=1)
    assert again.scale is None  # already scaled: plain BFGS from here
    assert not np.allclose(before, 0.25 * h)
