"""Worker process: FireWorks' rocket launcher on an interphase LaunchPad, with heartbeats.

``python -m interphase_dft.fw.worker rapidfire|singleshot [--launchpad FILE] [--fw_id N]
[--ping-secs S] [--worker-id ID] [--parent-pid PID]``

Like FireWorks' ``rlaunch``, but the embedded store is opened through
:class:`interphase_dft.fw.embedded.EmbeddedLaunchPad` (locked transactions), so several
workers and Slurm jobs can share it, and the running launch is pinged every ``--ping-secs``
(:mod:`interphase_dft.fw.heartbeat`; the interval, worker id, host and pid are recorded in the
launch). Used by ``interphase-dft run`` (one per local worker, ``--parent-pid``: the worker
stops when ``run`` is gone) and by the Slurm job script written by ``interphase-dft qlaunch``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interphase_dft.errors import InputError, InterphaseError
from interphase_dft.fw.launchpad import open_launchpad, redact, resolve_launchpad


def _stop_now(signum: int, frame: object) -> None:
    # No database work here (the main thread may hold the store lock): the launch stays
    # RUNNING; `run` requeues it at once, elsewhere it is lost after three missed heartbeats.
    sys.stderr.write(f"worker: signal {signum}, stopping; the firework resumes from its "
                     "checkpoint after `interphase-dft rerun --lost`\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    """Stop this worker when the process ``parent`` is gone (no orphan workers)."""
    while True:
        if os.getppid() != parent:
            sys.stderr.write(f"worker: parent process {parent} is gone, stopping\n")
            sys.stderr.flush()
            if os.getpgid(0) == os.getpid():  # our own process group: MPI ranks stop too
                os.killpg(os.getpid(), signal.SIGTERM)
            os._exit(128 + signal.SIGTERM)
        time.sleep(interval)


#: environment variable naming the FireWorker file of every worker (local and Slurm jobs)
ENV_FWORKER = "INTERPHASE_FWORKER"


def load_fworker(path: str | None, heartbeat_env: dict[str, Any]) -> Any:
    """The FireWorker of this process: ``path`` (a ``my_fworker.yaml``) if given, with the
    heartbeat entries added to its ``env``; else a default FireWorker with those entries."""
    from fireworks import FWorker

    if not path:
        return FWorker(env=heartbeat_env)
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"FireWorker file {file} not found; give a my_fworker.yaml (see "
                         f"hpc/my_fworker.yaml) or unset {ENV_FWORKER}")
    base = FWorker.from_file(str(file))
    return FWorker(name=base.name, category=base.category, query=base.query,
                   env={**(base.env or {}), **heartbeat_env})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interphase_dft.fw.worker")
    parser.add_argument("mode", choices=["rapidfire", "singleshot"])
    parser.add_argument("--launchpad", default=None)
    parser.add_argument("--fw_id", type=int, default=None)
    parser.add_argument("--nlaunches", type=int, default=0, help="0 = until nothing is left")
    parser.add_argument("--sleep", type=int, default=2,
                        help="seconds between checks while other workers hold the next step")
    parser.add_argument("--ping-secs", default=None,
                        help="heartbeat interval in s (default $INTERPHASE_PING_SECS, else 60)")
    parser.add_argument("--worker-id", default=None,
                        help="recorded in the launch (default slurm-<job> or host:pid)")
    parser.add_argument("--fworker", default=None, metavar="FILE",
                        help=f"FireWorks my_fworker.yaml: name, category, query and env (e.g. "
                        f"mpi_command) of this worker (default: ${ENV_FWORKER})")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="stop when this process (the `run` that started us) is gone")
    args = parser.parse_args(argv)
    # scancel (SIGTERM), the pre-walltime signal (--signal=B:USR1@300) or `run` stopping: exit
    # at once. The launch stays RUNNING (a SystemExit would be recorded as FIZZLED) and is
    # requeued; the calculation resumes from its checkpoint (written atomically).
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, _stop_now)
    if args.parent_pid:
        if os.getppid() != args.parent_pid:
            return 1  # started by a parent that is already gone
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    try:
        from interphase_dft.fw import heartbeat

        ping = heartbeat.ping_secs(args.ping_secs)
        config = resolve_launchpad(args.launchpad)
        lp = open_launchpad(config)
        from fireworks.core.rocket_launcher import launch_rocket, rapidfire

        heartbeat.install(ping)
        fworker = load_fworker(args.fworker or os.environ.get(ENV_FWORKER),
                               heartbeat.worker_env(ping, args.worker_id))
        if args.mode == "singleshot":
            launch_rocket(lp, fworker, fw_id=args.fw_id, strm_lvl="INFO")
        else:
            rapidfire(lp, fworker, nlaunches=args.nlaunches, sleep_time=args.sleep,
                      strm_lvl="INFO")
    except InterphaseError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
