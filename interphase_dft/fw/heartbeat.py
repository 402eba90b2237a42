"""Heartbeats: how often a worker pings its launch, and which RUNNING launches are lost.

A FireWorks Rocket pings the LaunchPad every ``fireworks.core.rocket.PING_TIME_SECS`` while a
firework runs (FireWorks' default: every hour, lost after four hours). An interphase worker
pings every :func:`ping_secs` seconds instead (``--ping-secs`` of the worker, else
``$INTERPHASE_PING_SECS``, else 60 s) and records the interval, its host, pid and a worker id in
the launch (the FireWorker ``env``: ``interphase_ping_secs``, ``interphase_worker``, ...).

A RUNNING launch is *lost* when it has been silent for :data:`MISSED_PINGS` of its own
intervals, so ``interphase-dft rerun --lost`` needs no guessed expiration, and a launch whose
worker still pings is never requeued, whatever ``--expiration`` says. Launches of workers that
did not record an interval (FireWorks' ``rlaunch``, older interphase-dft) use ``--expiration``
or FireWorks' default of four hours.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from interphase_dft.errors import InputError

ENV_PING = "INTERPHASE_PING_SECS"
DEFAULT_PING_SECS = 60.0
MIN_PING_SECS, MAX_PING_SECS = 0.1, 3600.0
#: a launch is lost after this many missed heartbeats
MISSED_PINGS = 3
#: times one run requeues a firework whose worker died before leaving it FIZZLED
MAX_REQUEUES = 2
#: without a recorded interval (FireWorks' own default, RUN_EXPIRATION_SECS)
LEGACY_EXPIRATION_SECS = 4 * 3600.0
KEY_PING, KEY_WORKER, KEY_HOST, KEY_PID = (
    "interphase_ping_secs", "interphase_worker", "interphase_host", "interphase_pid")


def ping_secs(value: float | str | None = None) -> float:
    """The heartbeat interval in s: ``value``, else ``$INTERPHASE_PING_SECS``, else 60.

    Raises
    ------
    InputError
        Not a number in [0.1, 3600] s.
    """
    raw = value if value is not None else os.environ.get(ENV_PING) or DEFAULT_PING_SECS
    try:
        secs = float(raw)
    except (TypeError, ValueError):
        raise InputError(f"heartbeat interval {ENV_PING}/--ping-secs must be a number of "
                         f"seconds, got {raw!r}") from None
    if not MIN_PING_SECS <= secs <= MAX_PING_SECS:
        raise InputError(f"heartbeat interval {ENV_PING}/--ping-secs must be between "
                         f"{MIN_PING_SECS} and {MAX_PING_SECS:.0f} s, got {secs:g}")
    return secs


def window(ping: float) -> float:
    """Seconds of silence after which a launch pinging every ``ping`` s is lost."""
    return MISSED_PINGS * ping


def worker_env(ping: float, worker_id: str | None = None) -> dict[str, Any]:
    """The FireWorker ``env`` entries a worker records in every launch it runs."""
    host, pid = socket.gethostname(), os.getpid()
    job = os.environ.get("SLURM_JOB_ID")
    default_id = f"slurm-{job}" if job else f"{host}:{pid}"
    return {KEY_PING: ping, KEY_WORKER: worker_id or default_id, KEY_HOST: host, KEY_PID: pid}


def install(ping: float) -> None:
    """Make this process's Rockets ping every ``ping`` s and survive a failed ping.

    FireWorks' ping thread reads ``fireworks.core.rocket.PING_TIME_SECS`` and calls
    ``do_ping`` at each beat; an exception would end the thread silently (and the launch
    would look lost while it runs), so a failed ping is reported and retried next beat.
    """
    import fireworks.core.rocket as rocket
    import fireworks.fw_config as fw_config

    fw_config.PING_TIME_SECS = rocket.PING_TIME_SECS = ping
    original = getattr(rocket.do_ping, "__wrapped__", rocket.do_ping)

    def do_ping(launchpad: Any, launch_id: int) -> None:
        try:
            original(launchpad, launch_id)
        except Exception as exc:
            from interphase_dft.secrets import redact

            sys.stderr.write(f"worker: heartbeat of launch {launch_id} failed "
                             f"({type(exc).__name__}: {redact(exc)[:200]}); retrying\n")

    do_ping.__wrapped__ = original  # type: ignore[attr-defined]
    rocket.do_ping = do_ping


@dataclass(frozen=True)
class Running:
    """A RUNNING launch and its heartbeat."""

    launch_id: int
    fw_id: int
    worker: str | None  # interphase worker id, None for other launchers
    ping: float | None  # its heartbeat interval (s), None if not recorded
    silent: float  # seconds since its last ping
    host: str = ""
    pid: int | None = None

    def expiration(self, expiration: float | None = None) -> float:
        """Silence (s) after which this launch is lost: never less than its heartbeat window."""
        if self.ping is None:
            return LEGACY_EXPIRATION_SECS if expiration is None else expiration
        return max(window(self.ping), expiration or 0.0)


def fw_time(value: Any) -> datetime.datetime | None:
    """A FireWorks timestamp as an aware datetime (naive values are UTC), None if unreadable."""
    if isinstance(value, datetime.datetime):
        stamp = value
    else:
        try:
            stamp = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)


def running_launches(lp: Any) -> list[Running]:
    """The RUNNING launches of RUNNING fireworks of the (real, session) LaunchPad ``lp``, with
    their heartbeats (a launch left RUNNING by a firework rerun by hand is not one of them)."""
    now = datetime.datetime.now(datetime.UTC)
    current = [i for d in lp.fireworks.find({"state": "RUNNING"}, {"launches": 1})
               for i in d.get("launches", [])]
    out = []
    for d in lp.launches.find({"state": "RUNNING", "launch_id": {"$in": current}},
                              {"launch_id": 1, "fw_id": 1, "state_history": 1, "fworker": 1}):
        beats = [fw_time(h.get("updated_on") or h.get("created_on"))
                 for h in d.get("state_history", []) if h.get("state") == "RUNNING"]
        beats = [b for b in beats if b is not None]
        silent = (now - max(beats)).total_seconds() if beats else float("inf")
        env = (d.get("fworker") or {}).get("env") or {}
        ping = env.get(KEY_PING)
        out.append(Running(d["launch_id"], d["fw_id"], env.get(KEY_WORKER),
                           float(ping) if ping else None, silent, str(env.get(KEY_HOST, "")),
                           env.get(KEY_PID)))
    return out


def requeue(lp: Any, launch_ids: list[int], expiration: float = 0.0,
            rerun: bool = True) -> list[int]:
    """Mark ``launch_ids`` lost if silent for ``expiration`` s; rerun (else fizzle) their
    fireworks. FireWorks re-checks the silence in the same query (a ping just in between
    keeps the launch). Returns the fw_ids."""
    if not launch_ids:
        return []
    _, fw_ids, _ = lp.detect_lostruns(expiration_secs=expiration, rerun=rerun,
                                      fizzle=not rerun,
                                      launch_query={"launch_id": {"$in": list(launch_ids)}})
    return sorted(fw_ids)


def requeue_silent(lp: Any, expiration: float | None = None,
                   skip_workers: frozenset[str] = frozenset(),
                   skip_fws: frozenset[int] = frozenset()) -> list[int]:
    """Rerun the fireworks of launches silent for longer than their expiration.

    ``expiration`` (s) applies to launches without a recorded heartbeat; for the others it is
    raised to their heartbeat window. Launches of ``skip_workers`` (known alive) and of the
    fireworks ``skip_fws`` are kept.
    Returns the requeued fw_ids.
    """
    groups: dict[float, list[int]] = defaultdict(list)
    for run in running_launches(lp):
        limit = run.expiration(expiration)
        if run.worker not in skip_workers and run.fw_id not in skip_fws and run.silent > limit:
            groups[limit].append(run.launch_id)
    return sorted(fw for limit, ids in groups.items() for fw in requeue(lp, ids, limit))
