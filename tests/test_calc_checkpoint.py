"""Checkpoint protocol shared by the runners, and the run log of the recipes (EMT, no GPAW)."""

from __future__ import annotations

import json
import time

import pytest
from ase.build import add_adsorbate, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.mep import NEB

from interphase_dft.calc.checkpoint import Checkpoint, read_frames
from interphase_dft.calc.neb import run_neb
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import RunResult, relax, static
from interphase_dft.calc.settings import NEBSettings, RelaxSettings
from interphase_dft.errors import InputError

#: fields of the state files as written before the Checkpoint class (a killed run resumes)
RUNNER_STATE = {"kind", "status", "fingerprint", "steps", "energy", "fmax", "converged",
                "force_calls", "warnings", "wall_time", "formula", "stopped"}
NEB_STATE = {"kind", "status", "fingerprint", "steps", "n_band", "energies", "image_fmax",
             "fmax", "converged", "force_calls", "climbing_image", "warnings", "wall_time",
             "stopped", "fallback", "step_limit", "stalled"}


def test_run_log_times_stages_and_collects_calls_and_warnings():
    run = RunLog()
    with run.stage("host"):
        time.sleep(0.01)
    run.add("host", RunResult(atoms=None, energy=0.0, fmax=0.0, steps=0, converged=True,
                              force_calls=3, warnings=["w1"]))
    run.count("host_ml", 7)
    run.warn("w2")
    sub = RunLog(timings={"ml_screen": 1.5}, force_calls={"ml-site-a": 2}, warnings=["w3"])
    run.merge(sub)
    assert run.timings["host"] >= 0.01 and run.timings["ml_screen"] == 1.5
    assert run.force_calls == {"host": 3, "host_ml": 7, "ml-site-a": 2}
    assert run.warnings == ["w1", "w2", "w3"]
    with pytest.raises(RuntimeError), run.stage("failed"):
        raise RuntimeError("boom")
    assert "failed" not in run.timings  # a stage that raised is not recorded


def test_state_files_keep_their_fields(tmp_path):
    slab = fcc111("Al", (2, 2, 3), vacuum=5.0)
    slab.rattle(0.1, seed=3)
    slab.set_constraint(FixAtoms(indices=[a.index for a in slab if a.tag == 3]))
    relax(slab, EMT(), tmp_path / "r", RelaxSettings(fmax=0.05, steps=50))
    static(slab, EMT(), tmp_path / "s")
    state = json.loads((tmp_path / "r" / "relax.json").read_text())
    assert set(state) == RUNNER_STATE and state["kind"] == "relax" and state["status"] == "done"
    state = json.loads((tmp_path / "s" / "static.json").read_text())
    assert set(state) == RUNNER_STATE and state["kind"] == "static"

    s = fcc100("Al", (2, 2, 2), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    s.set_constraint(FixAtoms(mask=[a.tag == 2 for a in s]))
    i = relax(s, EMT(), tmp_path / "i", RelaxSettings(fmax=0.05)).atoms
    f0 = s.copy()
    f0.positions[-1, 0] += s.cell[0, 0] / 2
    f = relax(f0, EMT(), tmp_path / "f", RelaxSettings(fmax=0.05)).atoms
    band = [i] + [i.copy() for _ in range(3)] + [f]
    NEB(band).interpolate("idpp")
    r = run_neb(band, lambda a, attempt=0, label="": EMT(), tmp_path / "neb",
                NEBSettings(n_images=3, fmax=0.1, steps=3, ml_prestage=False))
    state = json.loads((tmp_path / "neb" / "neb.json").read_text())
    assert set(state) == NEB_STATE and state["kind"] == "neb" and state["n_band"] == 5
    assert len(read_frames(tmp_path / "neb" / "neb.traj")) == 5 * (r.steps + 1)


def _frame(x: float):
    atoms = fcc111("Al", (1, 1, 2), vacuum=4.0)
    atoms.positions[0, 0] += x
    atoms.calc = SinglePointCalculator(atoms, energy=x, forces=atoms.positions * 0)
    return atoms


def test_checkpoint_keeps_whole_records_and_refuses_other_fingerprints(tmp_path):
    ckpt = Checkpoint(tmp_path, "band", kind="neb", fingerprint="fp", band_size=2, what="band")
    assert ckpt.load() is None and not ckpt.done and ckpt.steps == 0
    first = [_frame(0.0), _frame(0.1)]
    assert ckpt.is_new(first)
    ckpt.record(first)
    assert not ckpt.is_new([_frame(0.0), _frame(0.1)])
    ckpt.update({"steps": 0, "force_calls": 2})
    ckpt.record([_frame(0.2), _frame(0.3)])
    ckpt.record([_frame(0.4)])  # a band cut short by a kill: one frame of two
    again = Checkpoint(tmp_path, "band", kind="neb", fingerprint="fp", band_size=2)
    state = again.load()
    assert state["status"] == "running" and again.prior("force_calls", 0) == 2
    assert again.n == 2 and again.steps == 1 and not again.done  # the partial band is ignored
    assert [im.get_potential_energy() for im in again.last] == [0.2, 0.3]
    again.finish({"steps": 1})
    done = Checkpoint(tmp_path, "band", kind="neb", fingerprint="fp", band_size=2)
    done.load()
    assert done.done and done.state["kind"] == "neb"
    with pytest.raises(InputError, match="different band or settings"):
        Checkpoint(tmp_path, "band", kind="neb", fingerprint="other", band_size=2,
                   what="band").load()


def test_band_fingerprint_follows_the_band_settings_only():
    """More steps or other loop settings (al_*, ml_*) continue a stored band; another spring,
    tangent method or optimizer does not."""
    from ase.build import bulk

    from interphase_dft.calc.neb import _band_fingerprint
    from interphase_dft.calc.settings import NEBSettings

    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    b = a.copy()
    b.positions[0] += 0.3
    base = NEBSettings()

    def fp(**update):
        return _band_fingerprint([a, b], base.model_copy(update=update), 0.05, True, {})

    assert fp() == fp(steps=900, al_max_rounds=7, al_force_correction=True, ml_fmax=0.01)
    assert fp() != fp(spring=0.2) and fp() != fp(method="aseneb") and fp() != fp(optimizer="FIRE")
    assert fp() != _band_fingerprint([a, b], base, 0.03, True, {})  # another fmax
