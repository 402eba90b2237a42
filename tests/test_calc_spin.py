"""Spin-polarised insertion SCFs whose moment collapses: the rule, the guard's switch to a
spin-paired recomputation, and a real GPAW run where it happens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from interphase_dft.calc.factory import GPAWFactory, gpaw_parameters, seed_moment
from interphase_dft.calc.guard import COLLAPSE_NOTE, GuardedCalculator
from interphase_dft.calc.presets import preset
from interphase_dft.calc.spin import CollapseWatch, SpinCollapsed, attach_collapse_watch
from interphase_dft.errors import CalculationError


def test_collapse_rule_needs_twice_the_window_and_a_whole_window_below_threshold():
    watch = CollapseWatch(moment=0.1, window=3)
    for n, m in enumerate([0.9, 0.5, 0.05, 0.04, 0.03], 1):  # 5 < 2 * 3 iterations
        watch.observe(n, m)
    with pytest.raises(SpinCollapsed, match=r"0\.020 mu_B after 6 SCF iterations"):
        watch.observe(6, -0.02)  # the sign of the moment does not matter
    # a moment that comes back above the threshold inside the window keeps the run going
    watch = CollapseWatch(moment=0.1, window=3)
    for n, m in enumerate([0.9, 0.05, 0.05, 0.05, 0.05, 0.2, 0.05, 0.05], 1):
        watch.observe(n, m)
    with pytest.raises(SpinCollapsed):
        watch.observe(9, 0.05)
    # a localised moment (1 mu_B) is never stopped
    watch = CollapseWatch(moment=0.1, window=3)
    for n in range(1, 50):
        watch.observe(n, 0.98)
    # iteration 1 of the next geometry starts a fresh history
    watch.observe(1, 0.0)
    assert list(watch.history) == [0.0]
    with pytest.raises(ValueError, match="window"):
        CollapseWatch(moment=0.1, window=0)


class _Collapses(EMT):
    def calculate(self, *args, **kwargs):
        raise SpinCollapsed(0.03, 30, 0.1, 15)


@dataclass(frozen=True)
class _SpinFactory:
    """A factory whose spin-polarised calculators collapse; ``paired()`` gives EMT."""

    spin: bool = True

    def __call__(self, atoms, attempt=0, label=""):
        return _Collapses() if self.spin else EMT()

    def paired(self):
        return _SpinFactory(spin=False)


def test_guard_recomputes_a_collapsed_geometry_spin_paired_and_stays_paired():
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    guard = GuardedCalculator(_SpinFactory(), label="site")
    atoms.calc = guard
    e = atoms.get_potential_energy()
    ref = atoms.copy()
    ref.calc = EMT()
    assert e == pytest.approx(ref.get_potential_energy())
    assert guard.spin_collapsed and guard.calls == 1
    assert len(guard.warnings) == 1 and COLLAPSE_NOTE in guard.warnings[0]
    assert "0.030 mu_B after 30 SCF iterations" in guard.warnings[0]
    atoms.positions[0, 0] += 0.05  # the next geometry goes straight to the paired factory
    atoms.get_potential_energy()
    assert guard.calls == 2 and len(guard.warnings) == 1


def test_guard_without_a_paired_variant_names_the_setting():
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = GuardedCalculator(lambda a, attempt=0, label="": _Collapses(), label="site")
    with pytest.raises(CalculationError, match="spin_collapse_moment = 0"):
        atoms.get_potential_energy()


def test_watch_is_attached_to_insertion_spin_runs_only():
    s = preset("test")
    li = Atoms("Li2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[6, 6, 6], pbc=True)
    ins = GPAWFactory(s, is_metal=False, spin=True, li_inserted=True)(seed_moment(li, 1))
    assert isinstance(ins.hooks.get("scf_step"), CollapseWatch)
    assert "scf_step" not in GPAWFactory(s, is_metal=False, spin=True)(li).hooks
    assert "scf_step" not in GPAWFactory(s, is_metal=False, li_inserted=True)(li).hooks
    off = s.with_overrides({"dft": {"spin_collapse_moment": 0.0}})
    assert not attach_collapse_watch(GPAWFactory(off, is_metal=False)(li), 0.0, 15)
    paired = GPAWFactory(s, is_metal=False, spin=True, li_inserted=True,
                         txt="/tmp/x/gpaw-static.txt").paired()
    assert paired.spin is False and paired.txt == "/tmp/x/gpaw-static-paired.txt"
    # the recomputation keeps the spin runs' mixer (Pulay) and is really spin-paired
    assert paired.mixer == s.dft.spin_mixer == "pulay"
    params = gpaw_parameters(s, seed_moment(li, 1), moving=True, is_metal=False,
                             li_inserted=True, mixer=paired.mixer)
    assert params["mixer"]["backend"] == "pulay" and params["magmoms"] == [0.0, 0.0]
    assert "spinpol" not in params


@pytest.mark.slow
def test_gpaw_metal_with_a_seeded_moment_collapses_and_is_recomputed_paired(tmp_path):
    """Bulk Li (a metal) seeded with 1 mu_B: the moment collapses within a few iterations;
    the guard stops the spin run and the spin-paired energy is returned, with no moment."""
    s = preset("test").with_overrides({"dft": {"spin_collapse_window": 2, "kpt_density": 1.5}})
    li = bulk("Li", "bcc", a=3.44, cubic=True)
    spin = GPAWFactory(s, is_metal=True, spin=True, li_inserted=True, moving=False,
                       txt=str(tmp_path / "spin.txt"))
    atoms = seed_moment(li, 0)
    guard = GuardedCalculator(spin, label="bcc")
    atoms.calc = guard
    e = atoms.get_potential_energy()
    assert guard.spin_collapsed and COLLAPSE_NOTE in guard.warnings[0]
    assert "magmom" not in guard.results
    column = "|  magmom |"  # the SCF table's moment column: spin-polarised runs only
    assert column in (tmp_path / "spin-bcc.txt").read_text()  # the stopped spin log is kept
    assert column not in (tmp_path / "spin-paired-bcc.txt").read_text()
    paired = li.copy()
    paired.calc = GPAWFactory(s, is_metal=True, li_inserted=True, moving=False)(li)
    assert e == pytest.approx(paired.get_potential_energy(), abs=1e-4)


@pytest.mark.slow
def test_gpaw_localised_moment_is_kept_and_recorded():
    """The isolated Li atom keeps its 1 mu_B; the guard adds the moment to the results."""
    s = preset("test")
    atom = Atoms("Li", positions=[[4.0, 4.0, 4.0]], cell=[8.0, 8.0, 8.0], pbc=False)
    factory = GPAWFactory(s, is_metal=False, spin=True, li_inserted=True, moving=False,
                          extra={"hund": True})
    guard = GuardedCalculator(factory, label="atom")
    atom.calc = guard
    atom.get_potential_energy()
    assert not guard.spin_collapsed
    assert guard.results["magmom"] == pytest.approx(1.0, abs=0.02)
    assert np.isfinite(guard.results["energy"])
