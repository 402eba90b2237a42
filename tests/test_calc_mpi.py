"""Runners under MPI (``mpiexec -n 2 gpaw python``): files written once, same numbers as serial."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from interphase_dft.calc.checkpoint import read_frames

pytestmark = [pytest.mark.mpi, pytest.mark.gpaw, pytest.mark.slow]

SCRIPT = """
import json, sys
from ase.build import bulk
from ase.parallel import world
from interphase_dft.calc.factory import GPAWFactory
from interphase_dft.calc.runners import relax
from interphase_dft.calc.presets import preset
s = preset("test")
atoms = bulk("Li", "bcc", a=3.44, cubic=True)
atoms.positions[1] += (0.2, 0.1, 0.0)
r = relax(atoms, GPAWFactory(s, is_metal=True), sys.argv[1], s.relax)
if world.rank == 0:
    print("RESULT", json.dumps({"energy": r.energy, "steps": r.steps, "size": world.size}))
"""


def _run(cmd: list[str]) -> dict:
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert len(lines) == 1, out.stdout  # printed once, by rank 0
    return json.loads(lines[0].split(" ", 1)[1])


def test_parallel_relax_matches_serial(tmp_path):
    gpaw = Path(sys.executable).with_name("gpaw")
    if not gpaw.exists() or shutil.which("mpiexec") is None:
        pytest.skip("needs the gpaw launcher and mpiexec")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    serial = _run([sys.executable, str(script), str(tmp_path / "serial")])
    par = _run(["mpiexec", "--oversubscribe", "-n", "2", str(gpaw), "python", str(script),
                str(tmp_path / "par")])
    assert par["size"] == 2 and serial["size"] == 1
    assert par["energy"] == pytest.approx(serial["energy"], abs=1e-4)
    assert par["steps"] == serial["steps"] >= 1
    frames = read_frames(tmp_path / "par" / "relax.traj")
    assert len(frames) == par["steps"] + 1  # each frame written once, not once per rank
    state = json.loads((tmp_path / "par" / "relax.json").read_text())
    assert state["status"] == "done"
    assert not list((tmp_path / "par").glob(".*.tmp"))


METERED_RECORDED = """
import json, sys
from pathlib import Path
from ase.build import bulk
from ase.parallel import world
from interphase_dft.calc.budget import Ledger, MeteredFactory
from interphase_dft.calc.factory import GPAWFactory
from interphase_dft.calc.frames import open_frames, recording
from interphase_dft.calc.presets import preset
from interphase_dft.calc.runners import static
s = preset("test")
work = Path(sys.argv[1])
sink = open_frames(work) if world.rank == 0 else None  # as the calc commands do
factory = MeteredFactory(recording(GPAWFactory(s, is_metal=True), sink, "k"),
                         Ledger.open(work, s.budget))
atoms = bulk("Al", "fcc", a=4.05, cubic=True)
energies = []
for k in range(3):
    a = atoms.copy()
    a.rattle(0.02, seed=k)
    energies.append(static(a, factory, work / f"s{k}").energy)
if world.rank == 0:
    print("RESULT", json.dumps({"calls": factory.ledger.calls, "frames": sink.count(),
                                "energies": energies}))
"""


def _run_on_two_ranks(tmp_path: Path, source: str, *args: str) -> dict:
    """Run the script ``source`` with ``mpiexec -n 2 gpaw python`` and ``args``; its RESULT."""
    gpaw = Path(sys.executable).with_name("gpaw")
    if not gpaw.exists() or shutil.which("mpiexec") is None:
        pytest.skip("needs the gpaw launcher and mpiexec")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(source))
    return _run(["mpiexec", "--oversubscribe", "-n", "2", str(gpaw), "python", str(script),
                 *args])


def test_metered_and_recorded_calls_stay_in_step_on_two_ranks(tmp_path):
    """The frame store writes on rank 0 only and the budget ledger broadcasts rank 0's verdict:
    the two must not pair one rank's collective with another's (a shared-collective frame
    write once made the second DFT call of every MPI barrier 'over budget')."""
    par = _run_on_two_ranks(tmp_path, METERED_RECORDED, str(tmp_path / "par"))
    assert par["calls"] == 3 and par["frames"] == 3
    assert len(set(par["energies"])) == 3


AL_LOOP = """
import json, sys
sys.path.insert(0, sys.argv[2])
import torch
torch.set_num_threads(1)
from ase.parallel import broadcast, world
from interphase_dft.calc.frames import AseDbFrames
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.settings import MLSettings
from interphase_dft.recipes.active_learning import active_learning_band
from test_active_learning import EMTFactory, settings, vacancy_hop
initial, final = vacancy_hop()
store = AseDbFrames(sys.argv[1] + "/frames.db")
s = settings(al_force_correction=True)
r = active_learning_band(initial, final, EMTFactory(), MLFactory(MLSettings()), s,
                         sys.argv[1] + "/hop", frames=store, work_key="a" * 64)
mine = [r.stage, r.reference_calls, round(r.barrier_forward, 6), r.weights_hash]
every = [broadcast(mine if world.rank == k else None, root=k) for k in range(world.size)]
if world.rank == 0:
    print("RESULT", json.dumps({"ranks": every, "size": world.size}))
"""


def test_active_learning_runs_the_same_surrogate_on_every_rank(tmp_path):
    """The loop fine-tunes on rank 0 and sends the model to every rank (ranks that trained
    themselves got different weights, so their surrogate checkpoints disagreed)."""
    par = _run_on_two_ranks(tmp_path, AL_LOOP, str(tmp_path), str(Path(__file__).parent))
    assert par["size"] == 2
    first, second = par["ranks"]
    assert first == second and first[0] == "dft-certified" and first[3]


ON_RANK0 = """
import json
from ase.parallel import world
from interphase_dft.parallel import on_rank0

def fails():
    raise ValueError("rank-0 work failed")

value = on_rank0(lambda: world.rank + 41)
try:
    on_rank0(fails)
    caught = None
except ValueError as exc:
    caught = str(exc)

# the loop's fine-tuning: trained on rank 0, whose failure to store the weights must reach
# rank 1 too (before, rank 1 waited for the broadcast forever)
from pathlib import Path
from types import SimpleNamespace
import interphase_dft.recipes.al_steps as al_steps

def no_disk(*args):
    raise OSError("disk full")

al_steps.save_tuned = no_disk
try:
    al_steps._tune_on_rank0(lambda model, frames, **kw: object(), SimpleNamespace(model=None),
                            [], SimpleNamespace(al_epochs=1, al_learning_rate=1e-3),
                            Path("."), "host", "key")
    stored = None
except OSError as exc:
    stored = str(exc)
print("RESULT", json.dumps({"rank": world.rank, "value": value, "caught": caught,
                            "stored": stored}), flush=True)
"""


def test_rank0_work_reaches_every_rank_and_so_does_its_failure(tmp_path):
    """Both ranks get rank 0's value; rank 0's exception is raised on both (no rank hangs in
    the broadcast), also when the loop's fine-tuning cannot store its weights."""
    gpaw = Path(sys.executable).with_name("gpaw")
    if not gpaw.exists() or shutil.which("mpiexec") is None:
        pytest.skip("needs the gpaw launcher and mpiexec")
    script = tmp_path / "on_rank0.py"
    script.write_text(textwrap.dedent(ON_RANK0))
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["mpiexec", "--oversubscribe", "-n", "2", str(gpaw), "python",
                          str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(x.split(" ", 1)[1]) for x in out.stdout.splitlines()
            if x.startswith("RESULT")]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    assert all(r["value"] == 41 and r["caught"] == "rank-0 work failed" for r in rows)
    assert all(r["stored"] == "disk full" for r in rows)
