"""The first-order reference correction of the surrogate (calc.correction)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.optimize import BFGS

from interphase_dft.calc.correction import CorrectedFactory, correction_at


class Harmonic(Calculator):
    """E = k/2 |x - centre|^2 + offset for every atom (analytic minimum at ``centre``)."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, centre: np.ndarray, k: float, offset: float = 0.0) -> None:
        super().__init__()
        self.centre, self.k, self.offset = np.asarray(centre, float), k, offset

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions - self.centre
        e = 0.5 * self.k * float(np.sum(d * d)) + self.offset
        self.results = {"energy": e, "free_energy": e, "forces": -self.k * d}


REF_CENTRE = np.array([[0.0, 0.0, 0.0], [2.0, 0.1, -0.2], [0.3, 2.2, 0.0]])
ML_CENTRE = REF_CENTRE + np.array([[0.2, -0.1, 0.05], [-0.15, 0.2, 0.1], [0.1, 0.1, -0.2]])


def _reference_point(atoms: Atoms, k: float) -> Atoms:
    out = atoms.copy()
    calc = Harmonic(REF_CENTRE, k, offset=-3.0)
    out.calc = calc
    e, f = out.get_potential_energy(), out.get_forces()
    out.calc = SinglePointCalculator(out, energy=e, forces=f)
    return out


def _surrogate(atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
    return Harmonic(ML_CENTRE, 4.0, offset=1.0)


def test_the_corrected_surrogate_equals_the_reference_at_its_anchor_and_is_consistent():
    start = Atoms("H3", positions=REF_CENTRE + 0.3)
    ref = _reference_point(start, 6.0)
    corr = correction_at(ref, _surrogate)
    calc = CorrectedFactory(_surrogate, {}, corr)(start, 0, "ml")
    work = start.copy()
    work.calc = calc
    assert work.get_potential_energy() == pytest.approx(ref.get_potential_energy())
    np.testing.assert_allclose(work.get_forces(), ref.get_forces(), atol=1e-12)
    # forces are minus the gradient of the corrected energy (finite differences)
    h = 1e-5
    for i, c in ((0, 0), (1, 2), (2, 1)):
        plus, minus = work.copy(), work.copy()
        plus.positions[i, c] += h
        minus.positions[i, c] -= h
        plus.calc = CorrectedFactory(_surrogate, {}, corr)(plus)
        minus.calc = CorrectedFactory(_surrogate, {}, corr)(minus)
        grad = (plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert -grad == pytest.approx(work.get_forces()[i, c], abs=1e-6)


def test_corrected_relaxations_reach_the_reference_minimum_as_quasi_newton_steps():
    """Same curvature: one corrected surrogate relaxation lands on the reference minimum;
    different curvature (4 vs 6): the error shrinks by |1 - 6/4| = 0.5 per round."""
    x = Atoms("H3", positions=REF_CENTRE + 0.3)
    errors = []
    for _ in range(6):
        ref = _reference_point(x, 6.0)
        errors.append(float(np.abs(ref.get_forces()).max()))
        relaxed = x.copy()
        relaxed.calc = CorrectedFactory(_surrogate, {}, correction_at(ref, _surrogate))(x)
        BFGS(relaxed, logfile=None).run(fmax=1e-6)
        x = Atoms("H3", positions=relaxed.positions)
    ratios = np.array(errors[1:]) / np.array(errors[:-1])
    np.testing.assert_allclose(ratios, 0.5, rtol=1e-3)
    # the plain surrogate's minimum is 0.25 A away; the corrected loop gets within 1e-2 A
    assert np.abs(x.positions - REF_CENTRE).max() < 0.3 * 0.5**5 + 1e-6


def test_images_get_their_own_correction_and_other_labels_the_default():
    start = Atoms("H3", positions=REF_CENTRE + 0.3)
    corr_a = correction_at(_reference_point(start, 6.0), _surrogate)
    corr_b = correction_at(_reference_point(start, 2.0), _surrogate)
    factory = CorrectedFactory(_surrogate, {1: corr_b}, corr_a)
    assert factory(start, 0, "neb-img1").correction is corr_b
    assert factory(start, 0, "neb-img2").correction is corr_a
    assert factory(start, 0, "ml").correction is corr_a
    assert isinstance(CorrectedFactory(_surrogate)(start, 0, "neb-img1"), Harmonic)
    assert "reference_correction" in factory.description
    assert factory.description["reference_correction"] != \
        CorrectedFactory(_surrogate, {1: corr_a}, corr_a).description["reference_correction"]
    with pytest.raises(ValueError, match="anchored on 3 atoms"):
        two = Atoms("H2", positions=REF_CENTRE[:2])
        two.calc = factory(two)
        two.get_potential_energy()


def test_a_damped_step_converges_where_the_full_quasi_newton_step_diverges():
    """Reference 3x stiffer than the surrogate (12 vs 4): the full corrected step multiplies
    the error by |1 - 3| = 2 per round, the active-learning loop's damped step of 0.5 by
    |1 - 0.5 * 3| = 0.5; the reference minimum stays the fixed point."""
    from interphase_dft.recipes.al_moves import damped_step

    def rounds(step: float) -> list[float]:
        x = Atoms("H3", positions=REF_CENTRE + 0.3)
        errors = []
        for _ in range(5):
            ref = _reference_point(x, 12.0)
            errors.append(float(np.abs(ref.get_forces()).max()))
            relaxed = x.copy()
            relaxed.calc = CorrectedFactory(_surrogate, {}, correction_at(ref, _surrogate))(x)
            BFGS(relaxed, logfile=None).run(fmax=1e-7)
            x = damped_step(x, relaxed, step)
        return errors

    full, half = np.array(rounds(1.0)), np.array(rounds(0.5))
    np.testing.assert_allclose(full[1:] / full[:-1], 2.0, rtol=1e-3)
    np.testing.assert_allclose(half[1:] / half[:-1], 0.5, rtol=1e-3)


def test_the_step_fraction_adapts_to_the_measured_stiffness_ratio():
    """After one full corrected step on the 3x stiffer reference the measured ratio gives the
    fraction 1/3, and that step lands on the reference minimum (isotropic harmonic)."""
    from interphase_dft.recipes.al_moves import adapted_steps, damped_step

    x0 = _reference_point(Atoms("H3", positions=REF_CENTRE + 0.3), 12.0)
    relaxed = x0.copy()
    relaxed.calc = CorrectedFactory(_surrogate, {}, correction_at(x0, _surrogate))(x0)
    BFGS(relaxed, logfile=None).run(fmax=1e-8)
    x1 = _reference_point(damped_step(x0, relaxed, 1.0), 12.0)
    (b,) = adapted_steps([x0], [x1], [1.0], floor=0.25)
    assert b == pytest.approx(1 / 3, rel=1e-4)
    assert adapted_steps([x0], [x0], [0.7], floor=0.25) == [0.7]  # did not move: kept
    relaxed.calc = CorrectedFactory(_surrogate, {}, correction_at(x1, _surrogate))(x1)
    relaxed.positions = x1.positions
    BFGS(relaxed, logfile=None).run(fmax=1e-8)
    x2 = damped_step(x1, relaxed, b)
    np.testing.assert_allclose(x2.positions, REF_CENTRE, atol=1e-5)
