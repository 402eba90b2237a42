"""Runners, checkpoints and guards with cheap calculators (EMT, fakes): fast, no GPAW runs."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc100, fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.io import read

from interphase_dft.calc.checkpoint import read_frames
from interphase_dft.calc.guard import GuardedCalculator
from interphase_dft.calc.neb import run_neb
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import NEBSettings, RelaxSettings
from interphase_dft.errors import CalculationError, InputError


def emt_factory(atoms, attempt=0, label=""):
    return EMT()


def never_factory(atoms, attempt=0, label=""):
    raise AssertionError("a finished run must not build a calculator")


def rattled_slab() -> Atoms:
    slab = fcc111("Al", (2, 2, 3), vacuum=5.0)
    slab.rattle(0.1, seed=3)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    return slab


def test_relax_converges_and_finished_run_is_not_recomputed(tmp_path):
    slab = rattled_slab()
    r = relax(slab, emt_factory, tmp_path, RelaxSettings(fmax=0.02, steps=100))
    assert r.converged and r.fmax <= 0.02
    frames = read_frames(tmp_path / "relax.traj")
    assert len(frames) == r.steps + 1
    assert r.force_calls == len(frames)  # one evaluation per stored frame
    # fixed atoms did not move
    fixed = slab.constraints[0].get_indices()
    assert np.allclose(r.atoms.positions[fixed], slab.positions[fixed])
    again = relax(slab, never_factory, tmp_path, RelaxSettings(fmax=0.02, steps=100))
    assert again.resumed and again.energy == pytest.approx(r.energy, abs=1e-12)
    assert again.steps == r.steps


def test_step_limited_relax_is_not_converged_and_settings_are_checked(tmp_path):
    slab = rattled_slab()
    first = relax(slab, emt_factory, tmp_path / "a", RelaxSettings(fmax=0.02, steps=4))
    assert not first.converged and first.steps == 4 and first.warnings
    # a different steps limit is a different run: refused in the same workdir
    with pytest.raises(InputError, match="different structure or settings"):
        relax(slab, emt_factory, tmp_path / "a", RelaxSettings(fmax=0.02, steps=100))


def test_static_is_stored(tmp_path):
    atoms = fcc111("Al", (1, 1, 2), vacuum=4.0)
    r1 = static(atoms, EMT(), tmp_path)
    r2 = static(atoms, never_factory, tmp_path)
    assert r2.resumed and r2.energy == r1.energy and r1.force_calls == 1


KILL_SCRIPT = """
import sys, time
from ase.build import add_adsorbate, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.mep import NEB
from interphase_dft.calc.neb import run_neb
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import NEBSettings, RelaxSettings

DELAY = float(sys.argv[3])
CALLS = []

class SlowEMT(EMT):
    def calculate(self, *args, **kwargs):
        CALLS.append(1)
        time.sleep(DELAY)
        super().calculate(*args, **kwargs)

def factory(atoms, attempt=0, label=""):
    return SlowEMT()

kind, workdir = sys.argv[1], sys.argv[2]
if kind == "relax":
    slab = fcc111("Al", (2, 2, 3), vacuum=5.0)
    slab.rattle(0.1, seed=3)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    r = relax(slab, factory, workdir, RelaxSettings(fmax=0.02, steps=100))
    print("RESULT", r.steps, r.force_calls, len(CALLS), r.converged, r.resumed)
else:
    s = fcc100("Al", (2, 2, 3), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    s.set_constraint(FixAtoms(mask=[a.tag > 1 for a in s]))
    i = relax(s, EMT(), workdir + "/i", RelaxSettings(fmax=0.05)).atoms
    s2 = s.copy()
    s2.positions[-1, 0] += s.cell[0, 0] / 2
    f = relax(s2, EMT(), workdir + "/f", RelaxSettings(fmax=0.05)).atoms
    band = [i] + [i.copy() for _ in range(3)] + [f]
    NEB(band).interpolate("idpp")
    r = run_neb(band, factory, workdir + "/neb",
                NEBSettings(n_images=3, fmax=0.05, ml_prestage=False))
    print("RESULT", r.steps, r.force_calls, len(CALLS), r.converged, r.resumed,
          r.energies[2] - r.energies[0], r.energies[2] - r.energies[4])
"""


def _run_and_kill(script: Path, kind: str, workdir: Path, state: Path, min_steps: int) -> None:
    proc = subprocess.Popen([sys.executable, str(script), kind, str(workdir), "0.25"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if state.exists() and json.loads(state.read_text())["steps"] >= min_steps:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the run never wrote a checkpoint")
    finally:
        proc.kill()
        proc.wait()


def _finish(script: Path, kind: str, workdir: Path) -> list[str]:
    out = subprocess.run([sys.executable, str(script), kind, str(workdir), "0"],
                         capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    return line.split()[1:]


@pytest.mark.parametrize("kind", ["relax", "neb"])
def test_kill_and_resume(tmp_path, kind):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    work = tmp_path / "work"
    state = work / ("relax.json" if kind == "relax" else "neb/neb.json")
    traj = work / ("relax.traj" if kind == "relax" else "neb/neb.traj")
    _run_and_kill(script, kind, work, state, min_steps=2)
    killed_state = json.loads(state.read_text())
    assert killed_state["status"] == "running"
    n_before = len(read_frames(traj))
    steps, calls, calls_now, converged, resumed = _finish(script, kind, work)[:5]
    assert converged == "True" and resumed == "True"
    frames = read_frames(traj)
    per = 1 if kind == "relax" else 5
    # the trajectory continued: the frames from before the kill are still there, in order
    assert len(frames) >= n_before and len(frames) % per == 0
    assert int(steps) == len(frames) // per - 1
    # no duplicated geometry at the restart point (the stored last step was reused)
    positions = [f.positions for f in frames[per - 1::per]] if per == 1 else \
        [np.concatenate([f.positions for f in frames[k:k + per]]) for k in
         range(0, len(frames), per)]
    for a, b in itertools.pairwise(positions):
        assert not np.allclose(a, b, atol=1e-10)
    # the resumed process only computed the steps after the checkpoint
    images = 1 if kind == "relax" else 3
    assert int(calls_now) <= (len(frames) // per - n_before // per + 1) * images
    assert int(calls) >= int(calls_now) + killed_state["force_calls"] - images
    if kind == "neb":
        fwd, rev = (float(x) for x in _finish(script, kind, work)[5:7])
        assert fwd == pytest.approx(rev, abs=0.02) and fwd > 0.1


class NaNCalc(Calculator):
    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.full((len(self.atoms), 3), np.nan)}


def test_nan_forces_raise_with_formula():
    atoms = Atoms("Li2S", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]], cell=[6, 6, 6],
                  pbc=True)
    atoms.calc = GuardedCalculator(lambda a, attempt=0, label="": NaNCalc(), setting="test")
    with pytest.raises(CalculationError, match=r"Li2S.*NaN"):
        atoms.get_forces()


def test_collapsed_atoms_raise_before_computing():
    atoms = Atoms("LiAl", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[5, 5, 5], pbc=True)
    atoms.calc = GuardedCalculator(never_factory)
    with pytest.raises(CalculationError, match=r"AlLi.*collapsed"):
        atoms.get_potential_energy()


def test_huge_forces_raise():
    atoms = Atoms("Al2", positions=[[0, 0, 0], [0.9, 0, 0]], cell=[8, 8, 8], pbc=True)
    atoms.calc = GuardedCalculator(emt_factory, max_force=50.0)
    with pytest.raises(CalculationError, match=r"Al2.*exceeds"):
        atoms.get_forces()


def test_scf_failure_is_retried_with_safer_settings():
    from gpaw import KohnShamConvergenceError

    attempts = []

    def flaky(atoms, attempt=0, label=""):
        attempts.append(attempt)
        if attempt == 0:
            class Fails(EMT):
                def calculate(self, *a, **k):
                    raise KohnShamConvergenceError("did not converge")
            return Fails()
        return EMT()

    atoms = fcc111("Al", (1, 1, 2), vacuum=4.0)
    guard = GuardedCalculator(flaky, label="x")
    atoms.calc = guard
    atoms.get_potential_energy()
    assert attempts == [0, 1]
    assert guard.warnings and "safer mixing" in guard.warnings[0]


def test_scf_gives_up_after_three_attempts():
    from gpaw import KohnShamConvergenceError

    class Fails(EMT):
        def calculate(self, *a, **k):
            raise KohnShamConvergenceError("no")

    atoms = fcc111("Al", (1, 1, 2), vacuum=4.0)
    atoms.calc = GuardedCalculator(lambda a, attempt=0, label="": Fails())
    with pytest.raises(CalculationError, match="Al2: SCF did not converge"):
        atoms.get_potential_energy()


def test_neb_needs_endpoint_energies(tmp_path):
    s = fcc100("Al", (2, 2, 2), vacuum=4.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    with pytest.raises(InputError, match="endpoints need energies"):
        run_neb([s, s.copy(), s.copy()], emt_factory, tmp_path, NEBSettings())


def test_trajectory_is_readable_by_ase(tmp_path):
    relax(rattled_slab(), emt_factory, tmp_path, RelaxSettings(fmax=0.05, steps=50))
    last = read(tmp_path / "relax.traj", index=-1)
    assert last.get_potential_energy() == pytest.approx(
        json.loads((tmp_path / "relax.json").read_text())["energy"])


def test_neb_with_fire_optimizer_keeps_restart_file(tmp_path):
    from ase.mep import NEB

    s = fcc100("Al", (2, 2, 2), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    s.set_constraint(FixAtoms(mask=[a.tag == 2 for a in s]))
    i = relax(s, EMT(), tmp_path / "i", RelaxSettings(fmax=0.05)).atoms
    f0 = s.copy()
    f0.positions[-1, 0] += s.cell[0, 0] / 2
    f = relax(f0, EMT(), tmp_path / "f", RelaxSettings(fmax=0.05)).atoms
    band = [i] + [i.copy() for _ in range(3)] + [f]
    NEB(band).interpolate("idpp")
    settings = NEBSettings(n_images=3, fmax=0.05, optimizer="FIRE", ml_prestage=False)
    r = run_neb(band, emt_factory, tmp_path / "neb", settings)
    assert r.converged and (tmp_path / "neb" / "neb-opt.json").exists()
    assert r.force_calls == 3 * (r.steps + 1)
    assert r.energies[2] - r.energies[0] == pytest.approx(r.energies[2] - r.energies[4],
                                                          abs=0.02)


def test_cell_relaxation_records_stress(tmp_path):
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=4.25, cubic=True)
    settings = RelaxSettings(fmax=0.001, steps=1)
    first = relax(atoms, emt_factory, tmp_path / "a", settings, cell=True)
    assert not first.converged
    full = relax(atoms, emt_factory, tmp_path / "b", RelaxSettings(fmax=0.01, steps=200),
                 cell=True)
    assert full.converged and full.atoms.cell.lengths()[0] < 4.15
    assert "stress" in full.atoms.calc.results


def test_atom_at_the_vacuum_boundary_of_a_slab_is_refused():
    """A molecule that left the slab during a surrogate relaxation must not reach GPAW."""
    from interphase_dft.calc.guard import check_geometry, edge_distance

    slab = fcc111("Al", (1, 1, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    d, _, axis = edge_distance(slab)
    assert d == pytest.approx(5.0) and axis == 2
    check_geometry(slab)  # fine
    slab.positions[-1, 2] = slab.cell[2, 2] - 0.3  # 0.3 A below the top of the cell
    with pytest.raises(CalculationError, match=r"atom 2 \(Al\) is 0.30 A from the cell "
                                               r"boundary.*slab_vacuum"):
        check_geometry(slab)
    bulk_al = slab.copy()
    bulk_al.pbc = True
    check_geometry(bulk_al)  # periodic along z: no boundary
    assert edge_distance(Atoms("Li"))[0] == float("inf")  # no cell at all


def test_neb_stop_rule_ends_the_band_and_the_stop_is_final(tmp_path):
    """``stop_at`` sees every band (the first one included) and ends the run, not converged,
    with its reason; a rerun returns the stored stop without a calculator."""
    from tests.test_recipes_barrier import three_wells_factory, three_wells_hop

    initial, final = three_wells_hop()
    for end in (initial, final):
        end.calc = three_wells_factory(end)
        end.get_potential_energy()
    band = [initial] + [initial.copy() for _ in range(3)] + [final]
    for im in band[1:4]:
        im.set_constraint([c.copy() for c in initial.constraints])
    for k, im in enumerate(band[1:4], start=1):
        im.positions[-1, 0] += k  # x = 1, 2 (the deepest well) and 3 A
    seen = []

    def deep(energies):
        seen.append(list(energies))
        return "image 2 is deeper" if energies[2] < energies[0] - 0.05 else None

    settings = NEBSettings(n_images=3, fmax=0.01, ml_prestage=False)
    r = run_neb(band, three_wells_factory, tmp_path / "neb", settings, stop_at=deep)
    assert r.stopped == "image 2 is deeper" and not r.converged and r.steps == 0
    assert r.force_calls == 3 and len(seen) == 1 and len(seen[0]) == 5
    assert any("stopped after 0 steps: image 2 is deeper" in w for w in r.warnings)
    again = run_neb(band, never_factory, tmp_path / "neb", settings, stop_at=deep)
    assert again.stopped == r.stopped and not again.converged and len(seen) == 1
    free = run_neb(band, three_wells_factory, tmp_path / "free", settings)
    assert free.stopped is None and free.steps > 0


def asymmetric_adatom_band(tmp_path: Path, n_images: int = 2) -> list[Atoms]:
    """An Al adatom on Al(100) hopping between two hollows made inequivalent by three Cu in
    the surface (EMT): the saddle is not a symmetry point, so the climbing image keeps a
    force along the path until it reaches it."""
    from ase.mep import NEB

    s = fcc100("Al", (3, 3, 3), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    for i in (18, 19, 20):
        s[i].symbol = "Cu"
    s.set_constraint(FixAtoms(mask=[a.tag == 3 for a in s]))
    f0 = s.copy()
    f0.positions[-1, 0] += s.cell[0, 0] / 3
    ends = [relax(a, EMT(), tmp_path / name, RelaxSettings(fmax=0.01, steps=200)).atoms
            for name, a in (("i", s), ("f", f0))]
    band = [ends[0]] + [ends[0].copy() for _ in range(n_images)] + [ends[1]]
    NEB(band).interpolate("idpp")
    return band


def climbing_force(r) -> float:
    return float(np.linalg.norm(r.images[r.climbing_image].get_forces(apply_constraint=True),
                                axis=1).max())


@pytest.mark.parametrize(("optimizer", "fmax"), [("ode", 0.07), ("FIRE", 0.09)])
def test_a_converged_climbing_image_has_its_own_force_below_fmax(tmp_path, optimizer, fmax):
    """The NEB force of the climbing image (its tangent component inverted) has the norm of
    its own force but not the same largest atom force: on this band the NEB force alone
    converges at 0.064 eV/A (ode, fmax 0.07) and 0.089 (FIRE, fmax 0.09) while the climbing
    image's own force is 0.073 and 0.091. The runner continues until both are at or below
    fmax and reports the larger."""
    band = asymmetric_adatom_band(tmp_path)
    settings = NEBSettings(n_images=2, fmax=fmax, steps=300, optimizer=optimizer)
    r = run_neb(band, emt_factory, tmp_path / "neb", settings, climb=True)
    assert r.converged and r.climbing_image is not None
    own = climbing_force(r)
    assert own <= fmax
    assert r.image_fmax[r.climbing_image - 1] >= own - 1e-9


def test_a_stored_band_converged_by_its_neb_force_only_is_continued(tmp_path, monkeypatch):
    """A checkpoint written under the NEB-force-only rule (simulated by switching the
    climbing image's own force off) says converged with the climbing image's own force above
    fmax; the same call with ``reopen`` continues that band from its last step to the full
    rule (without it, the stored band is returned as stored)."""
    from interphase_dft.calc import neb

    band = asymmetric_adatom_band(tmp_path)
    settings = NEBSettings(n_images=2, fmax=0.07, steps=300)
    with monkeypatch.context() as m:
        m.setattr(neb, "_climbing_force", lambda band, climb: 0.0)
        old = run_neb(band, emt_factory, tmp_path / "neb", settings, climb=True)
    assert old.converged and climbing_force(old) > 0.07  # the case the rule is for
    assert run_neb(band, never_factory, tmp_path / "neb", settings, climb=True).steps == old.steps
    new = run_neb(band, emt_factory, tmp_path / "neb", settings, climb=True, reopen=True)
    assert new.converged and climbing_force(new) <= 0.07
    assert new.steps > old.steps and new.force_calls > old.force_calls
    # and a band that meets the rule stays the stored result
    assert run_neb(band, never_factory, tmp_path / "neb", settings, climb=True,
                   reopen=True).steps == new.steps


def stalling_ode(m, after: int) -> None:
    """Make ASE's ODE solver give up after ``after`` accepted steps, as it does when its
    adaptive step falls below its minimum."""
    import ase.mep.neb as ase_neb
    from ase.optimize.sciopt import OptimizerConvergenceError

    real = ase_neb.ode12r

    def ode12r(f, x0, *args, steps=100, callback=None, **kw):
        count = [0]

        def cb(x):
            count[0] += 1
            if callback is not None:
                callback(x)
            if count[0] >= after:
                raise OptimizerConvergenceError("ODE12r terminates unsuccessfully: step "
                                                "size too small")
        return real(f, x0, *args, steps=steps, callback=cb, **kw)

    m.setattr(ase_neb, "ode12r", ode12r)


def test_a_stalled_ode_band_is_continued_with_fire(tmp_path, monkeypatch):
    """ASE's ODE solver gives up without convergence (here after 3 steps); the runner
    continues the same band with FIRE to convergence, says so, and a resume of the finished
    checkpoint returns it without a calculator."""
    band = asymmetric_adatom_band(tmp_path)
    settings = NEBSettings(n_images=2, fmax=0.07, steps=300)
    with monkeypatch.context() as m:
        stalling_ode(m, after=3)
        r = run_neb(band, emt_factory, tmp_path / "neb", settings, climb=True)
    assert r.converged and climbing_force(r) <= 0.07
    assert r.steps > 3
    assert any("stalled" in w and "FIRE" in w for w in r.warnings)
    state = json.loads((tmp_path / "neb" / "neb.json").read_text())
    assert state["fallback"] is True and state["stalled"] is False
    again = run_neb(band, never_factory, tmp_path / "neb", settings, climb=True, reopen=True)
    assert again.converged and again.steps == r.steps


def test_the_stall_case_needs_the_fallback(tmp_path, monkeypatch):
    """The setup of the test above is a stall: with the fallback stalling as well the band
    ends unconverged before its step limit and its state says stalled."""
    from interphase_dft.calc import neb

    band = asymmetric_adatom_band(tmp_path)
    settings = NEBSettings(n_images=2, fmax=0.07, steps=300)
    with monkeypatch.context() as m:
        stalling_ode(m, after=3)
        m.setattr(neb, "FALLBACK", "ode")  # the fallback stalls as well
        r = run_neb(band, emt_factory, tmp_path / "neb", settings, climb=True)
    assert not r.converged and r.steps < 300
    assert json.loads((tmp_path / "neb" / "neb.json").read_text())["stalled"] is True


def test_steps_are_accepted_steps_and_the_limit_is_no_stall(tmp_path):
    """ASE's ODE solver counts rejected trial steps against its limit; the runner ends the
    band at ``steps`` accepted steps itself (one record each) and does not take that for a
    stall: no FIRE, ``stalled`` false."""
    band = asymmetric_adatom_band(tmp_path)
    r = run_neb(band, emt_factory, tmp_path / "neb", NEBSettings(n_images=2, fmax=0.01,
                                                                  steps=12), climb=True)
    assert not r.converged and r.steps == 12
    assert len(read_frames(tmp_path / "neb" / "neb.traj")) == 4 * 13
    state = json.loads((tmp_path / "neb" / "neb.json").read_text())
    assert state["stalled"] is False and state["fallback"] is False
    assert not any("FIRE" in w for w in r.warnings)


class Killed(BaseException):
    """Stands for a kill: not an Exception, so no layer catches it."""


def test_a_band_killed_during_its_fallback_resumes_with_fire(tmp_path, monkeypatch):
    """A kill during the FIRE continuation leaves a running state with ``fallback``; the
    resume continues with FIRE (the ODE solver must not run again) to convergence."""
    import ase.mep.neb as ase_neb

    band = asymmetric_adatom_band(tmp_path)
    settings = NEBSettings(n_images=2, fmax=0.07, steps=300)
    calls = [0]

    class DyingEMT(EMT):
        def calculate(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] > 16:  # after 3 ODE steps (2 images each) and a few FIRE steps
                raise Killed
            super().calculate(*args, **kwargs)

    def dying(atoms, attempt=0, label=""):
        return DyingEMT()

    with monkeypatch.context() as m:
        stalling_ode(m, after=3)
        with pytest.raises(Killed):
            run_neb(band, dying, tmp_path / "neb", settings, climb=True)
    state = json.loads((tmp_path / "neb" / "neb.json").read_text())
    assert state["status"] == "running" and state["fallback"] is True
    assert state["steps"] > 3  # FIRE steps were recorded before the kill

    def no_ode(*args, **kwargs):
        raise AssertionError("the resumed band must continue with FIRE")

    with monkeypatch.context() as m:
        m.setattr(ase_neb, "ode12r", no_ode)
        r = run_neb(band, emt_factory, tmp_path / "neb", settings, climb=True)
    assert r.converged and r.resumed and climbing_force(r) <= 0.07


def test_a_stored_band_that_stalled_before_the_fallback_is_continued(tmp_path):
    """With ``reopen``, an ODE checkpoint written before stalls were recorded (no
    ``stalled``/``fallback``/``step_limit`` in its state) that ended unconverged before the
    steps now allowed is continued with FIRE; a band that ended at its own step limit
    continues with its own optimizer (ODE) when more are allowed, and a reopen that allows
    no more steps returns it as stored. Without ``reopen`` both stay as stored."""
    band = asymmetric_adatom_band(tmp_path)
    short = NEBSettings(n_images=2, fmax=0.07, steps=3)
    long = NEBSettings(n_images=2, fmax=0.07, steps=300)
    for name in ("old", "limit"):
        old = run_neb(band, emt_factory, tmp_path / name, short, climb=True)
        assert not old.converged and old.steps == 3
    path = tmp_path / "old" / "neb.json"
    state = json.loads(path.read_text())
    del state["fallback"], state["step_limit"], state["stalled"]
    path.write_text(json.dumps(state))
    # without reopen a finished band stays as stored (a later stage may build on it)
    kept = run_neb(band, never_factory, tmp_path / "old", long, climb=True)
    assert not kept.converged and kept.steps == 3
    assert run_neb(band, never_factory, tmp_path / "old", short, climb=True,
                   reopen=True).steps == 3
    new = run_neb(band, emt_factory, tmp_path / "old", long, climb=True, reopen=True)
    assert new.converged and new.steps > 3
    assert any("FIRE" in w for w in new.warnings)
    more = run_neb(band, emt_factory, tmp_path / "limit", long, climb=True, reopen=True)
    assert more.converged and more.steps > 3
    assert not any("FIRE" in w for w in more.warnings)
