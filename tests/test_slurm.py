"""Local single-node Slurm (hpc/slurm-local-start.sh): sbatch, qlaunch, scancel + rerun."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interphase_dft.fw.launchpad import get_launchpad, init_embedded, open_launchpad
from interphase_dft.fw.queue import drive_queue, make_qadapter, qlaunch
from interphase_dft.fw.status import detect_and_rerun, firework_rows, state_counts
from interphase_dft.store import ResultStore

pytestmark = pytest.mark.slurm


def job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    for token in out.stdout.split():
        if token.startswith("JobState="):
            return token.split("=", 1)[1]
    return "GONE"


def wait_job_end(job_id: str, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = job_state(job_id)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {job_state(job_id)}")


def test_sbatch_wrap_job_completes(slurm_cluster, tmp_path):
    out = subprocess.run(["sbatch", "--parsable", "-o", str(tmp_path / "job.out"), "--wrap",
                          f"echo hello from $SLURM_JOB_ID > {tmp_path / 'hello.txt'}"],
                         capture_output=True, text=True, check=True)
    job_id = out.stdout.strip().split(";")[0]
    assert wait_job_end(job_id) == "COMPLETED"
    assert (tmp_path / "hello.txt").read_text().strip() == f"hello from {job_id}"


def _countdown_campaign(runs: Path, n: int, steps: int, seconds: float):
    """prepare (real GPAW Li references, test preset) -> n countdown fireworks."""
    from fireworks import Firework, Workflow

    from interphase_dft.calc.presets import preset
    from interphase_dft.campaign import WorkItem
    from interphase_dft.fw.tasks import CountdownTask
    from interphase_dft.fw.workflows import work_firework

    prepare = work_firework(WorkItem.create("references", preset("test")), runs, "slurm")
    work = [Firework([CountdownTask(work_key=f"{i:02d}" * 32, runs_dir=str(runs), steps=steps,
                                    seconds=seconds)],
                     spec={"_add_launchpad_and_fw_id": True}, name=f"countdown{i}")
            for i in range(n)]
    return Workflow([prepare, *work], links_dict={prepare: work}, name="slurm")


def test_campaign_through_qlaunch_records_job_ids(slurm_cluster, tmp_path):
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(_countdown_campaign(tmp_path / "runs", 2, steps=2, seconds=0.2))
    qadapter = make_qadapter(cfg, walltime="00:10:00")
    counts = drive_queue(lp, qadapter, tmp_path / "launches", njobs=2, poll=1, timeout=300,
                         progress=None)
    assert counts == {"COMPLETED": 3}
    rows = firework_rows(lp)
    job_ids = [r["reservation_ids"] for r in rows]
    assert all(len(ids) == 1 and ids[0].isdigit() for ids in job_ids), rows
    assert len({ids[0] for ids in job_ids}) == 3
    # the firework completes before its batch script exits: wait for each job to end
    assert all(wait_job_end(ids[0]) in ("COMPLETED", "GONE") for ids in job_ids)
    # results visible from a fresh read of the store file
    docs = ResultStore(get_launchpad(cfg.yaml_path).db).find()
    assert sorted(d["kind"] for d in docs) == ["references", "test", "test"]


def _long_firework(lp, runs: Path, key: str, steps: int = 16) -> Path:
    from fireworks import Firework, Workflow

    from interphase_dft.fw.tasks import CountdownTask

    lp.add_wf(Workflow([Firework([CountdownTask(work_key=key, runs_dir=str(runs), steps=steps,
                                                seconds=0.5)],
                                 spec={"_add_launchpad_and_fw_id": True}, name="long")]))
    return runs / key[:12] / "checkpoint.json"


def _wait_step(ckpt: Path, job: str, step: int) -> None:
    end = time.monotonic() + 120
    while not (ckpt.exists() and json.loads(ckpt.read_text())["done"] >= step):
        assert time.monotonic() < end, f"job {job} never progressed ({job_state(job)})"
        time.sleep(0.2)


def test_scancel_is_lost_rerun_and_resumes_from_checkpoint(slurm_cluster, tmp_path):
    """The job's worker pings every second (the adapter passes --ping-secs): the running job
    is never found lost; after scancel, `rerun --lost` finds it within three missed
    heartbeats, with no expiration to guess."""
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    key = "ab" * 32
    ckpt = _long_firework(lp, tmp_path / "runs", key)
    qadapter = make_qadapter(cfg, ping=1.0, walltime="00:10:00")
    assert "--ping-secs 1" in qadapter["rocket_launch"]
    (first,) = qlaunch(lp, qadapter, tmp_path / "launches", njobs=1)
    _wait_step(ckpt, first, 3)
    assert detect_and_rerun(lp, expiration_secs=0)["lost"] == []  # it pings: never lost
    subprocess.run(["scancel", first], check=True)
    wait_job_end(first)
    assert state_counts(lp) == {"RUNNING": 1}
    start, lost = time.monotonic(), ""
    while "lost [1]" not in lost:
        assert time.monotonic() - start < 3 * 1.0 + 20, lost
        time.sleep(0.5)
        lost = subprocess.run([sys.executable, "-m", "interphase_dft.cli", "rerun", "--lost",
                               "--launchpad", str(cfg.yaml_path)], capture_output=True,
                              text=True, check=True).stdout
    assert state_counts(lp) == {"READY": 1}
    counts = drive_queue(lp, qadapter, tmp_path / "launches", njobs=1, poll=1, timeout=300,
                         progress=None)
    assert counts == {"COMPLETED": 1}
    (row,) = firework_rows(lp)
    assert len(row["reservation_ids"]) == 2 and row["reservation_ids"][0] == first
    doc = next(iter(ResultStore(get_launchpad(cfg.yaml_path).db).find(kind="test")))
    assert doc["resumed_from"] >= 3  # the rerun continued from the checkpoint
    starts = [int(x) for x in (ckpt.parent / "starts.txt").read_text().split()]
    assert starts[0] == 0 and starts[-1] >= 3


def test_qlaunch_wait_requeues_a_cancelled_job_on_its_own(slurm_cluster, tmp_path, capfd):
    """`qlaunch --wait` (drive_queue) notices the silent launch and submits a new job."""
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    ckpt = _long_firework(lp, tmp_path / "runs", "cd" * 32, steps=12)
    qadapter = make_qadapter(cfg, ping=1.0, walltime="00:10:00")
    (first,) = qlaunch(lp, qadapter, tmp_path / "launches", njobs=1)
    _wait_step(ckpt, first, 2)
    subprocess.run(["scancel", first], check=True)
    counts = drive_queue(lp, qadapter, tmp_path / "launches", njobs=1, poll=1, timeout=300,
                         progress=None)
    assert counts == {"COMPLETED": 1}
    assert "marked lost and requeued" in capfd.readouterr().err
    (row,) = firework_rows(lp)
    assert len(row["reservation_ids"]) == 2
    doc = next(iter(ResultStore(get_launchpad(cfg.yaml_path).db).find(kind="test")))
    assert doc["resumed_from"] >= 2
