"""What the LaunchPad says: firework states, rows for ``status``, lost and fizzled reruns, and
the progress summary (:mod:`interphase_dft.fw.progress`)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from interphase_dft.fw.heartbeat import fw_time
from interphase_dft.fw.launchpad import lp_session
from interphase_dft.fw.progress import FireworkState, format_duration, summary_line

ACTIVE = ("READY", "WAITING", "RESERVED", "RUNNING", "PAUSED")
DEAD = ("FIZZLED", "DEFUSED")


def state_counts(launchpad: Any) -> Counter[str]:
    """Number of fireworks per state."""
    with lp_session(launchpad) as lp:
        return Counter(d["state"] for d in lp.fireworks.find({}, {"state": True}))


def progress_line(counts: Counter[str]) -> str:
    """``COMPLETED 3, RUNNING 1`` (alphabetical), or ``no fireworks``."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no fireworks"


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


def queued_work_keys(lp: Any) -> set[str]:
    """Work keys of the fireworks in the LaunchPad that are not FIZZLED or DEFUSED."""
    return {d["spec"]["work_key"] for d in lp.fireworks.find(
        {"spec.work_key": {"$exists": True}, "state": {"$nin": list(DEAD)}},
        {"spec.work_key": True})}


def detect_and_rerun(launchpad: Any, expiration_secs: float | None = None, lost: bool = True,
                     fizzled: bool = False) -> dict[str, list[int]]:
    """Rerun lost RUNNING fireworks and/or FIZZLED ones. Returns the fw_ids per reason.

    A RUNNING launch is lost when silent for :data:`~interphase_dft.fw.heartbeat.MISSED_PINGS`
    of its worker's heartbeat interval (recorded in the launch): a firework whose worker still
    pings is never rerun. ``expiration_secs`` only applies to launches without a recorded
    interval (FireWorks' ``rlaunch``; default 4 h) and can lengthen, never shorten, the window
    of the others.
    """
    from interphase_dft.fw.heartbeat import requeue_silent

    out: dict[str, list[int]] = {"lost": [], "fizzled": []}
    with lp_session(launchpad) as lp:
        if lost:
            out["lost"] = requeue_silent(lp, expiration_secs)
        if fizzled:
            ids = [d["fw_id"] for d in lp.fireworks.find({"state": "FIZZLED"}, {"fw_id": 1})]
            for fw_id in ids:
                lp.rerun_fw(fw_id)
            out["fizzled"] = sorted(ids)
    return out


def heartbeats(launchpad: Any) -> dict[int, str]:
    """fw_id -> ``worker W, last ping N s ago (lost after M s)`` for RUNNING fireworks."""
    from interphase_dft.fw.heartbeat import running_launches

    with lp_session(launchpad) as lp:
        runs = running_launches(lp)
    out = {}
    for run in runs:
        who = run.worker or "(no heartbeat interval recorded)"
        silent = "never pinged" if run.silent == float("inf") else f"{run.silent:.0f} s ago"
        out[run.fw_id] = f"worker {who}, last ping {silent} (lost after {run.expiration():.0f} s)"
    return out


def _epoch(value: Any) -> float | None:
    """Epoch seconds of a FireWorks timestamp (naive values are UTC), None if unreadable."""
    stamp = fw_time(value)
    return None if stamp is None else stamp.timestamp()


def _estimate(spec: dict[str, Any]) -> float | None:
    """``spec["cost"]["seconds"]`` as a float, None when absent or not a number."""
    cost = (spec or {}).get("cost")
    try:
        return float(cost["seconds"]) if isinstance(cost, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def state_map(launchpad: Any) -> dict[int, str]:
    """fw_id -> state of every firework: one light query (what a watcher polls; the full
    :func:`firework_states` only when this changed)."""
    with lp_session(launchpad) as lp:
        return {int(d["fw_id"]): str(d["state"])
                for d in lp.fireworks.find({}, {"fw_id": 1, "state": 1})}


def firework_states(launchpad: Any) -> list[FireworkState]:
    """Every firework with its estimate (``spec.cost.seconds``) and the start/end times of its
    current launch (for :func:`interphase_dft.fw.progress.summary_line`)."""
    with lp_session(launchpad) as lp:
        docs = list(lp.fireworks.find({}, {"fw_id": 1, "name": 1, "state": 1, "launches": 1,
                                           "spec.cost": 1}))
        current = [d["launches"][-1] for d in docs if d.get("launches")]
        launches = {ld["launch_id"]: ld for ld in lp.launches.find(
            {"launch_id": {"$in": current}},
            {"launch_id": 1, "state_history": 1, "action.stored_data.reused": 1})}
    out = []
    for d in sorted(docs, key=lambda d: d["fw_id"]):
        launch = launches.get(d["launches"][-1]) if d.get("launches") else None
        started = ended = None
        reused = False
        if launch is not None:
            for h in launch.get("state_history") or []:
                if h.get("state") == "RUNNING":
                    started = _epoch(h.get("created_on"))
                elif h.get("state") in ("COMPLETED", "FIZZLED"):
                    ended = _epoch(h.get("created_on"))
            stored = ((launch.get("action") or {}).get("stored_data") or {})
            reused = bool(stored.get("reused"))
        out.append(FireworkState(int(d["fw_id"]), str(d.get("name", "")), str(d["state"]),
                                 _estimate(d.get("spec") or {}), started, ended, reused))
    return out


def status_summary(launchpad: Any, now: float | None = None) -> str:
    """The progress summary for ``status``: elapsed since the first current launch started,
    what runs, counts and the ETA (one worker per running firework, at least one)."""
    fws = firework_states(launchpad)
    if not fws:
        return "progress: no fireworks"
    now = time.time() if now is None else now
    starts = [fw.started for fw in fws if fw.started is not None]
    elapsed = now - min(starts) if starts else 0.0
    running = sum(fw.state == "RUNNING" for fw in fws)
    line = summary_line(fws, workers=max(1, running), now=now, elapsed=None,
                        previous={fw.fw_id: fw.state for fw in fws})
    return (f"progress ({format_duration(elapsed)} since the first firework started; ETA "
            f"with {max(1, running)} worker(s)): {line}")
