"""The queue (Slurm): a FireWorks queue adapter running the interphase worker, and qlaunch.

The default queue-adapter template ships with the package (``interphase_dft/data/
my_qadapter.yaml``, identical to ``hpc/my_qadapter.yaml``, the copy users edit). The job's
worker pings its launch every heartbeat interval (``--ping-secs``, from
``$INTERPHASE_PING_SECS`` or 60 s) and records the interval, so a job that ``scancel`` or the
walltime killed is detected as lost after three missed heartbeats by ``interphase-dft rerun
--lost`` (no expiration to guess) and requeued by ``qlaunch --wait`` on its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from interphase_dft.fw.heartbeat import MAX_REQUEUES, ping_secs, requeue_silent
from interphase_dft.fw.launchpad import ENV_MONGOMOCK, LaunchPadConfig, lp_session
from interphase_dft.fw.pool import PACKAGE_ROOT, worker_command
from interphase_dft.fw.status import ACTIVE, progress_line, state_counts


def default_qadapter_template() -> str:
    """Text of the queue-adapter template shipped with the package."""
    return (resources.files("interphase_dft") / "data" / "my_qadapter.yaml").read_text()


def make_qadapter(config: LaunchPadConfig, template: Path | None = None,
                  ping: float | None = None, **overrides: Any) -> Any:
    """A FireWorks ``CommonAdapter`` (SLURM) from the template (default: the packaged
    ``my_qadapter.yaml``) whose jobs run the interphase worker on ``config`` (singleshot; the
    queue launcher appends ``--fw_id``), pinging every ``ping`` s (default: the setting)."""
    import yaml
    from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

    text = Path(template).read_text() if template else default_qadapter_template()
    data = yaml.safe_load(text)
    data.pop("_fw_name", None)
    q_type = data.pop("_fw_q_type", None) or data.pop("q_type", None) or "SLURM"
    # exec: the worker replaces the batch shell, so scancel/--signal=B:USR1 reach it directly
    data["rocket_launch"] = "exec " + " ".join(
        worker_command(config, "singleshot", ping_secs(ping)))
    pre = [str(data.get("pre_rocket") or "").strip(),
           f"export PYTHONPATH={PACKAGE_ROOT}:$PYTHONPATH"]
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
                progress: Callable[[str], None] | None = print) -> Any:
    """Keep up to ``njobs`` queue jobs busy with READY fireworks until none is active.

    A job that dies without reporting (``scancel``, walltime, node failure) leaves a RUNNING
    launch that stops pinging: after three missed heartbeats it is requeued here (with a
    warning) and a new job resumes it from its checkpoint, at most ``MAX_REQUEUES + 1`` times
    per firework. Returns the final state counts.
    """
    start, last = time.monotonic(), ""
    requeued: dict[int, int] = {}
    while True:
        with lp_session(launchpad) as lp:
            too_often = frozenset(f for f, n in requeued.items() if n > MAX_REQUEUES)
            lost = requeue_silent(lp, skip_fws=too_often)  # those wait for `rerun --lost`
        for fw_id in lost:
            requeued[fw_id] = requeued.get(fw_id, 0) + 1
            print(f"warning: firework {fw_id} was RUNNING but its job stopped sending "
                  "heartbeats (scancel, walltime, node failure): marked lost and requeued",
                  file=sys.stderr, flush=True)
        counts = state_counts(launchpad)
        busy = counts.get("RESERVED", 0) + counts.get("RUNNING", 0)
        if counts.get("READY") and busy < njobs:
            qlaunch(launchpad, qadapter, launcher_dir, njobs=njobs - busy)
            counts = state_counts(launchpad)
        line = progress_line(counts)
        if progress and line != last:
            progress(f"[{time.monotonic() - start:6.0f} s] {line}")
            last = line
        if not any(counts.get(s) for s in ACTIVE if s != "PAUSED"):
            return counts
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"queue still busy after {timeout:.0f} s: {line}")
        time.sleep(poll)

