"""The local worker pool: ``interphase-dft run`` and ``campaign`` start worker processes.

Parallel local workers are separate processes (``python -m interphase_dft.fw.worker``) that
share the LaunchPad through locked transactions (embedded store) or MongoDB itself, so every
firework runs once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import interphase_dft
from interphase_dft.errors import InputError
from interphase_dft.fw.launchpad import LaunchPadConfig, open_launchpad
from interphase_dft.fw.status import progress_line, state_counts

#: thread-count variables of the numerical libraries a worker loads (OpenBLAS under GPAW, torch)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: the directory that holds the imported ``interphase_dft`` package (source tree or site-packages)
PACKAGE_ROOT = Path(interphase_dft.__file__).resolve().parents[1]


def worker_env(workers: int, base: dict[str, str] | None = None,
               cores: int | None = None) -> dict[str, str]:
    """Environment of the worker processes: the cores shared out between ``workers``.

    Without limits every worker's OpenBLAS and torch start one thread per core, so two workers
    on two cores run four to six busy threads and thrash. Each variable of ``THREAD_VARS`` the
    user has not set becomes ``max(1, cores // workers)``; set values are kept. ``PYTHONPATH``
    gets the directory of the running package, so workers import the same code.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("PYTHONPATH", str(PACKAGE_ROOT))
    n = max(1, (cores or os.cpu_count() or 1) // max(1, workers))
    for var in THREAD_VARS:
        env.setdefault(var, str(n))
    return env


def worker_command(config: LaunchPadConfig, mode: str = "rapidfire") -> list[str]:
    """Command line of one worker process on the LaunchPad of ``config``."""
    cmd = [sys.executable, "-m", "interphase_dft.fw.worker", mode]
    if config.yaml_path:
        cmd += ["--launchpad", str(config.yaml_path)]
    return cmd


def run_workers(config: LaunchPadConfig, workers: int = 1, launch_root: Path | None = None,
                progress: Callable[[str], None] | None = print, poll: float = 2.0,
                timeout: float | None = None) -> Counter[str]:
    """Run ``workers`` worker processes until nothing is left to run; return final states."""
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
            line = progress_line(state_counts(lp))
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
        progress(f"[{time.monotonic() - start:6.0f} s] done: {progress_line(counts)} "
                 f"(worker logs in {launch_root})")
    return counts
