"""The queue (Slurm): a FireWorks queue adapter running the interphase worker, and qlaunch.

The default queue-adapter template ships with the package (``interphase_dft/data/
my_qadapter.yaml``, identical to ``hpc/my_qadapter.yaml``, the copy users edit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from interphase_dft.fw.launchpad import ENV_MONGOMOCK, LaunchPadConfig
from interphase_dft.fw.pool import PACKAGE_ROOT, worker_command
from interphase_dft.fw.status import ACTIVE, progress_line, state_counts


def default_qadapter_template() -> str:
    """Text of the queue-adapter template shipped with the package."""
    return (resources.files("interphase_dft") / "data" / "my_qadapter.yaml").read_text()


def make_qadapter(config: LaunchPadConfig, template: Path | None = None,
                  **overrides: Any) -> Any:
    """A FireWorks ``CommonAdapter`` (SLURM) from the template (default: the packaged
    ``my_qadapter.yaml``) whose jobs run the interphase worker on ``config`` (singleshot; the
    queue launcher appends ``--fw_id``)."""
    import yaml
    from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

    text = Path(template).read_text() if template else default_qadapter_template()
    data = yaml.safe_load(text)
    data.pop("_fw_name", None)
    q_type = data.pop("_fw_q_type", None) or data.pop("q_type", None) or "SLURM"
    # exec: the worker replaces the batch shell, so scancel/--signal=B:USR1 reach it directly
    data["rocket_launch"] = "exec " + " ".join(worker_command(config, "singleshot"))
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

    Jobs that die without reporting leave RUNNING launches: use
    :func:`interphase_dft.fw.status.detect_and_rerun`. Returns the final state counts.
    """
    start, last = time.monotonic(), ""
    while True:
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
