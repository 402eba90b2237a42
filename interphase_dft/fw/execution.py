"""Submit, run, watch, queue and rerun campaigns (used by ``interphase-dft`` commands).

Parallel local workers are separate processes (``python -m interphase_dft.fw.worker``) that
share the LaunchPad through locked transactions (embedded store) or MongoDB itself, so every
firework runs once. Slurm jobs run the same worker (see :func:`make_qadapter`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interphase_dft.campaign import CampaignSpec
from interphase_dft.errors import InputError
from interphase_dft.fw.launchpad import ENV_MONGOMOCK, LaunchPadConfig, lp_session
from interphase_dft.store import ResultStore

ACTIVE = ("READY", "WAITING", "RESERVED", "RUNNING", "PAUSED")
DEAD = ("FIZZLED", "DEFUSED")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class SubmitReport:
    workflow_ids: list[int]
    n_fireworks: int
    skipped_stored: int
    skipped_queued: int


def submit_campaign(launchpad: Any, spec: CampaignSpec, runs_dir: Path,
                    report_dir: Path | None = None) -> SubmitReport:
    """Add the fireworks of ``spec`` that are neither stored nor queued."""
    from interphase_dft.fw.workflows import campaign_keys, campaign_workflow

    with lp_session(launchpad) as lp:
        store = ResultStore(lp.db)
        store.ensure_indexes()
        stored = store.keys()
        queued = {d["spec"]["_task_key"] for d in lp.fireworks.find(
            {"spec._task_key": {"$exists": True}, "state": {"$nin": list(DEAD)}},
            {"spec._task_key": True})}
        wf = campaign_workflow(spec, runs_dir, skip=stored | queued, report_dir=report_dir)
        mine = set(campaign_keys(spec))
        n_stored, n_queued = len(mine & stored), len((mine & queued) - stored)
        if wf is None:
            return SubmitReport([], 0, n_stored, n_queued)
        id_map = lp.add_wf(wf)
    return SubmitReport(sorted(id_map.values()), len(wf.fws), n_stored, n_queued)


def state_counts(launchpad: Any) -> Counter[str]:
    """Number of fireworks per state."""
    with lp_session(launchpad) as lp:
        return Counter(d["state"] for d in lp.fireworks.find({}, {"state": True}))


def firework_rows(launchpad: Any) -> list[dict[str, Any]]:
    """fw_id, name, state and Slurm/queue reservation ids of every firework."""
    with lp_session(launchpad) as lp:
        rows = []
        fields = {"fw_id": 1, "name": 1, "state": 1, "launches": 1, "archived_launches": 1}
        for d in lp.fireworks.find({}, fields):
            ids = d.get("archived_launches", []) + d.get("launches", [])
            res = []  # FireWorks keeps the queue job id in the RESERVED state_history entry
            for launch in lp.launches.find({"launch_id": {"$in": ids}},
                                           {"state_history": 1, "launch_id": 1}):
                res += [str(h["reservation_id"]) for h in launch.get("state_history", [])
                        if h.get("reservation_id")]
            rows.append({"fw_id": d["fw_id"], "name": d["name"], "state": d["state"],
                         "reservation_ids": res})
    return sorted(rows, key=lambda r: r["fw_id"])


#: thread-count variables of the numerical libraries a worker loads (OpenBLAS under GPAW, torch)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(workers: int, base: dict[str, str] | None = None,
               cores: int | None = None) -> dict[str, str]:
    """Environment of the worker processes: the cores shared out between ``workers``.

    Without limits every worker's OpenBLAS and torch start one thread per core, so two workers
    on two cores run four to six busy threads and thrash. Each variable of ``THREAD_VARS`` the
    user has not set becomes ``max(1, cores // workers)``; set values are kept.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("PYTHONPATH", str(REPO))
    n = max(1, (cores or os.cpu_count() or 1) // max(1, workers))
    for var in THREAD_VARS:
        env.setdefault(var, str(n))
    return env


def worker_command(config: LaunchPadConfig, mode: str = "rapidfire") -> list[str]:
    cmd = [sys.executable, "-m", "interphase_dft.fw.worker", mode]
    if config.yaml_path:
        cmd += ["--launchpad", str(config.yaml_path)]
    return cmd


def run_workers(config: LaunchPadConfig, workers: int = 1, launch_root: Path | None = None,
                progress: Callable[[str], None] | None = print, poll: float = 2.0,
                timeout: float | None = None) -> Counter[str]:
    """Run ``workers`` worker processes until nothing is left to run; return final states."""
    from interphase_dft.fw.launchpad import open_launchpad

    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    launch_root = Path(launch_root or Path.cwd() / "launches").resolve()
    launch_root.mkdir(parents=True, exist_ok=True)
    lp = open_launchpad(config)
    stale = state_counts(lp).get("RUNNING", 0)
    if stale and progress:
        progress(f"note: {stale} firework(s) already RUNNING; if no other worker or job runs "
                 "them, stop with Ctrl-C and requeue them: interphase-dft rerun --lost "
                 "--expiration 0")
    env = worker_env(workers)
    logs = [open(launch_root / f"worker{i}.log", "a") for i in range(workers)]  # noqa: SIM115
    procs = [subprocess.Popen(worker_command(config), cwd=launch_root, env=env, stdout=log,
                              stderr=subprocess.STDOUT) for log in logs]
    start, last = time.monotonic(), ""
    try:
        while any(p.poll() is None for p in procs):
            line = _progress_line(state_counts(lp))
            if progress and line != last:
                progress(f"[{time.monotonic() - start:6.0f} s] {line}")
                last = line
            if timeout and time.monotonic() - start > timeout:
                raise TimeoutError(f"workers still running after {timeout:.0f} s")
            time.sleep(poll)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        for log in logs:
            log.close()
    counts = state_counts(lp)
    if progress:
        progress(f"[{time.monotonic() - start:6.0f} s] done: {_progress_line(counts)} "
                 f"(worker logs in {launch_root})")
    return counts


def _progress_line(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no fireworks"


def detect_and_rerun(launchpad: Any, expiration_secs: float = 60, lost: bool = True,
                     fizzled: bool = False) -> dict[str, list[int]]:
    """Mark RUNNING launches silent for ``expiration_secs`` as lost and rerun them (and/or
    rerun FIZZLED fireworks). Returns the fw_ids per reason."""
    out: dict[str, list[int]] = {"lost": [], "fizzled": []}
    if lost:
        _, lost_fws, _ = launchpad.detect_lostruns(expiration_secs=expiration_secs, rerun=True)
        out["lost"] = sorted(lost_fws)
    if fizzled:
        with lp_session(launchpad) as lp:
            ids = [d["fw_id"] for d in lp.fireworks.find({"state": "FIZZLED"}, {"fw_id": 1})]
            for fw_id in ids:
                lp.rerun_fw(fw_id)
        out["fizzled"] = sorted(ids)
    return out


def make_qadapter(config: LaunchPadConfig, template: Path | None = None,
                  **overrides: Any) -> Any:
    """A FireWorks ``CommonAdapter`` (SLURM) from ``hpc/my_qadapter.yaml`` whose jobs run the
    interphase worker on ``config`` (singleshot; the queue launcher appends ``--fw_id``)."""
    import yaml
    from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

    template = Path(template or REPO / "hpc" / "my_qadapter.yaml")
    data = yaml.safe_load(template.read_text())
    data.pop("_fw_name", None)
    q_type = data.pop("_fw_q_type", None) or data.pop("q_type", None) or "SLURM"
    # exec: the worker replaces the batch shell, so scancel/--signal=B:USR1 reach it directly
    data["rocket_launch"] = "exec " + " ".join(worker_command(config, "singleshot"))
    pre = [str(data.get("pre_rocket") or "").strip(), f"export PYTHONPATH={REPO}:$PYTHONPATH"]
    if config.kind == "embedded":
        pre.append(f"export {ENV_MONGOMOCK}={config.store_file}")
    data["pre_rocket"] = "\n".join(p for p in pre if p)
    data.update(overrides)
    adapter = CommonAdapter(q_type=q_type, **{k: v for k, v in data.items() if v is not None})
    # explicit class path: FireWorks' load_object then imports it directly instead of
    # scanning every FireWorks module (which imports its test modules)
    adapter._fw_name = "{{fireworks.user_objects.queue_adapters.common_adapter.CommonAdapter}}"
    return adapter


def qlaunch(launchpad: Any, qadapter: Any, launcher_dir: Path, njobs: int = 1) -> list[str]:
    """Reserve up to ``njobs`` READY fireworks and submit one queue job each.

    Returns the queue (Slurm) job ids; FireWorks records them as ``reservation_id``.
    """
    from fireworks import FWorker
    from fireworks.queue.queue_launcher import launch_rocket_to_queue

    launcher_dir = Path(launcher_dir).resolve()
    launcher_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    for _ in range(njobs):
        rid = launch_rocket_to_queue(launchpad, FWorker(), qadapter, str(launcher_dir),
                                     reserve=True, create_launcher_dir=True, strm_lvl="WARNING")
        if not rid:
            break
        ids.append(str(rid))
    return ids


def drive_queue(launchpad: Any, qadapter: Any, launcher_dir: Path, njobs: int = 4,
                poll: float = 2.0, timeout: float = 3600.0,
                progress: Callable[[str], None] | None = print) -> Counter[str]:
    """Keep up to ``njobs`` queue jobs busy with READY fireworks until none is active.

    Jobs that die without reporting leave RUNNING launches: use :func:`detect_and_rerun`.
    """
    start, last = time.monotonic(), ""
    while True:
        counts = state_counts(launchpad)
        busy = counts.get("RESERVED", 0) + counts.get("RUNNING", 0)
        if counts.get("READY") and busy < njobs:
            qlaunch(launchpad, qadapter, launcher_dir, njobs=njobs - busy)
            counts = state_counts(launchpad)
        line = _progress_line(counts)
        if progress and line != last:
            progress(f"[{time.monotonic() - start:6.0f} s] {line}")
            last = line
        if not any(counts.get(s) for s in ACTIVE if s != "PAUSED"):
            return counts
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"queue still busy after {timeout:.0f} s: {line}")
        time.sleep(poll)


def write_report(docs: list[dict[str, Any]], outdir: str | Path, campaign: Any = None,
                 missing: list[str] | None = None) -> str | None:
    """Write the analysis report if that layer exists; return ``index.html`` or None."""
    try:
        from interphase_dft.analysis.report import write_report as _write
    except ImportError:
        print("the report is not available yet (interphase_dft.analysis.report missing)")
        return None
    return str(_write(docs, Path(outdir), campaign=campaign, missing=missing or None))
