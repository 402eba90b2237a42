"""What the LaunchPad says: firework states, rows for ``status``, lost and fizzled reruns."""

from __future__ import annotations

from collections import Counter
from typing import Any

from interphase_dft.fw.launchpad import lp_session

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
