"""Worker process: FireWorks' rocket launcher on an interphase LaunchPad, with heartbeats.

``python -m interphase_dft.fw.worker rapidfire|singleshot [--launchpad FILE] [--fw_id N]
[--ping-secs S] [--worker-id ID] [--parent-pid PID]``

Like FireWorks' ``rlaunch``, but the embedded store is opened through
:class:`interphase_dft.fw.embedded.EmbeddedLaunchPad` (locked transactions), so several
workers and Slurm jobs can share it, and the running launch is pinged every ``--ping-secs``
(:mod:`interphase_dft.fw.heartbeat`; the interval, worker id, host and pid are recorded in the
launch). Within a run's time limit (``$INTERPHASE_DEADLINE``, :mod:`interphase_dft.timelimit`)
it takes the READY firework of the earliest kind of :data:`TIME_LIMIT_ORDER` first, the one
with the smallest cost estimate (``spec._priority``, estimated seconds) among them, and none
after the deadline. Used by ``interphase-dft run`` (one per local
worker, ``--parent-pid``: the worker stops when ``run`` is gone) and by the Slurm job script
written by ``interphase-dft qlaunch``.
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
from interphase_dft.fw.launchpad import lp_session, open_launchpad, redact, resolve_launchpad
from interphase_dft.timelimit import passed, run_deadline


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


#: states of fireworks that may still make a WAITING one READY
BUSY_STATES = ("RUNNING", "RESERVED")
#: within a time limit, the kinds (``spec.kind``) in the order they are taken: a barrier
#: enters the ΔE fit only with the binding energies of both its phases, and a bulk reference
#: hop (small cell) is cheaper and more often certified than an interface hop; other kinds last
TIME_LIMIT_ORDER = ("references", "binding", "bulk_barrier", "barrier")


def _time_limit_rank(doc: dict[str, Any]) -> tuple[int, float, int]:
    spec = doc.get("spec") or {}
    kind = spec.get("kind")
    tier = TIME_LIMIT_ORDER.index(kind) if kind in TIME_LIMIT_ORDER else len(TIME_LIMIT_ORDER)
    return tier, float(spec.get("_priority", 0)), int(doc["fw_id"])


def cheapest_ready(lp: Any, query: dict[str, Any] | None = None) -> int | None:
    """The READY firework (matching the FireWorker ``query``) to take within a time limit: the
    earliest kind of :data:`TIME_LIMIT_ORDER`, then the smallest cost estimate
    (``spec._priority``: estimated seconds), then the lowest fw_id. None when none is READY
    and none that could make one READY is running; -1 when only running ones are left."""
    with lp_session(lp) as db:
        ready = list(db.fireworks.find({**(query or {}), "state": "READY"},
                                       {"fw_id": 1, "spec._priority": 1, "spec.kind": 1}))
        if not ready:
            busy = db.fireworks.count_documents({"state": {"$in": list(BUSY_STATES)}})
            return -1 if busy else None
    return min(ready, key=_time_limit_rank)["fw_id"]


def run_until(lp: Any, fworker: Any, deadline: float, sleep: float) -> int:
    """Launch the cheapest READY firework, one after the other, until none is left or the UNIX
    time ``deadline`` has passed; return the number launched. The chosen firework is checked
    out through the FireWorker's query narrowed to its fw_id (READY only, in one transaction),
    so one another worker or a queue reservation took first is skipped."""
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import launch_rocket

    launched = 0
    while not passed(deadline):
        fw_id = cheapest_ready(lp, fworker.query)
        if fw_id is None:
            break
        if fw_id < 0:  # other workers hold what comes next: wait for it
            time.sleep(sleep)
            continue
        one = FWorker(name=fworker.name, category=fworker.category,
                      query={**fworker._query, "fw_id": fw_id}, env=fworker.env)
        if launch_rocket(lp, one, strm_lvl="INFO"):
            launched += 1
    return launched


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
        deadline = run_deadline()
        if args.mode == "singleshot":
            launch_rocket(lp, fworker, fw_id=args.fw_id, strm_lvl="INFO")
        elif deadline is not None:
            run_until(lp, fworker, deadline, args.sleep)
        else:
            rapidfire(lp, fworker, nlaunches=args.nlaunches, sleep_time=args.sleep,
                      strm_lvl="INFO")
    except InterphaseError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
