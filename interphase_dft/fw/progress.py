"""Progress of a campaign: counts, what runs, elapsed time and an estimated time to the end.

Pure functions on :class:`FireworkState` snapshots (read from the LaunchPad by
:func:`interphase_dft.fw.status.firework_states`); times in seconds.

Rules
-----
- Counts: ``done`` = COMPLETED, ``running`` = RUNNING + RESERVED, ``waiting`` = READY +
  WAITING + PAUSED, ``failed`` = FIZZLED (DEFUSED and ARCHIVED are not counted).
- A firework's estimate is its ``spec["cost"]["seconds"]`` when it has one (optional).
- Speed ratio: (measured + P) / (estimated + P), the wall times summed over the COMPLETED
  fireworks that have an estimate and computed (a firework that reused a stored result took
  no time worth measuring); 1 when there is none yet. ``P`` (:data:`PRIOR_SECONDS`) is the
  weight of the uncalibrated cost model, as if it had already been measured right for that
  long: a first firework of seconds (the reference energies took 13 s against an estimate of
  11 min) does not rescale a campaign of hours by itself, and hours of measured work do.
- Remaining seconds: ratio x estimate for a waiting firework; for a running one, ratio x
  estimate minus the time it has run (at least 0).
- ETA = max(sum of the remaining seconds / workers, the largest of them): the work is shared
  among the workers, and one firework is never shared.
- Unfinished fireworks without an estimate are left out of the sum and counted on the line
  (``N without estimate``); when none of the unfinished fireworks has one, the ETA is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DONE, RUNNING, WAITING, FAILED = "done", "running", "waiting", "failed"
#: FireWorks state -> progress count (states not listed are not counted)
STATE_GROUPS: dict[str, str] = {
    "COMPLETED": DONE, "RUNNING": RUNNING, "RESERVED": RUNNING, "READY": WAITING,
    "WAITING": WAITING, "PAUSED": WAITING, "FIZZLED": FAILED,
}
#: seconds of estimated work the cost model counts for, as if measured at ratio 1
PRIOR_SECONDS = 1800.0
#: states whose fireworks still have their work ahead (the ETA counts them)
UNFINISHED = ("READY", "WAITING", "RESERVED", "RUNNING")


@dataclass(frozen=True)
class FireworkState:
    """One firework as the progress line needs it.

    Attributes
    ----------
    estimate
        Estimated wall time, s (``spec["cost"]["seconds"]``); None without one.
    started, ended
        When its current launch started RUNNING and ended (COMPLETED or FIZZLED), epoch s.
    reused
        The launch completed by reusing a stored result (no calculation).
    """

    fw_id: int
    name: str
    state: str
    estimate: float | None = None
    started: float | None = None
    ended: float | None = None
    reused: bool = False

    @property
    def wall(self) -> float | None:
        """Wall time of the finished launch, s (None unless it started and ended)."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


@dataclass(frozen=True)
class Eta:
    """Estimated seconds to the end (None = unknown), the speed ratio measured/estimated
    (``measured`` False when no completed firework gave one) and the number of unfinished
    fireworks without an estimate."""

    seconds: float | None
    ratio: float
    measured: bool
    unestimated: int


def counts(fws: Iterable[FireworkState]) -> dict[str, int]:
    """done, running, waiting and failed fireworks (:data:`STATE_GROUPS`)."""
    out = {DONE: 0, RUNNING: 0, WAITING: 0, FAILED: 0}
    for fw in fws:
        group = STATE_GROUPS.get(fw.state)
        if group:
            out[group] += 1
    return out


def speed_ratio(fws: Iterable[FireworkState], prior: float = PRIOR_SECONDS
                ) -> tuple[float, bool]:
    """((measured + prior) / (estimated + prior) over the computed COMPLETED fireworks with
    estimates, True), or (1.0, False) when there is none."""
    measured = estimated = 0.0
    for fw in fws:
        if (fw.state == "COMPLETED" and not fw.reused and fw.estimate and fw.estimate > 0
                and fw.wall is not None):
            measured += fw.wall
            estimated += fw.estimate
    if estimated <= 0.0:
        return 1.0, False
    return (measured + prior) / (estimated + prior), True


def eta(fws: Sequence[FireworkState], workers: int, now: float,
        prior: float = PRIOR_SECONDS) -> Eta:
    """The estimated time to the end at ``now`` (epoch s) with ``workers`` workers
    (``prior``: :func:`speed_ratio`)."""
    ratio, measured = speed_ratio(fws, prior)
    left = [fw for fw in fws if fw.state in UNFINISHED]
    remaining: list[float] = []
    for fw in left:
        if fw.estimate is None or fw.estimate < 0:
            continue
        ran = now - fw.started if fw.state == "RUNNING" and fw.started is not None else 0.0
        remaining.append(max(0.0, ratio * fw.estimate - max(0.0, ran)))
    unestimated = len(left) - len(remaining)
    if not left:
        return Eta(0.0, ratio, measured, 0)
    if not remaining:
        return Eta(None, ratio, measured, unestimated)
    seconds = max(sum(remaining) / max(1, workers), max(remaining))
    return Eta(seconds, ratio, measured, unestimated)


def format_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min 05 s``, ``3 h 05 min``, ``2 d 04 h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def eta_text(e: Eta) -> str:
    """``ETA 2 h 10 min (measured 1.30 x the estimates; 1 without estimate)``,
    ``ETA unknown``, or ``nothing left``."""
    if e.seconds is None:
        return "ETA unknown (no estimates)"
    if e.seconds == 0.0 and not e.unestimated:
        return "nothing left"
    notes = []
    if e.measured:
        notes.append(f"measured {e.ratio:.2f} x the estimates")
    if e.unestimated:
        notes.append(f"{e.unestimated} without estimate")
    return f"ETA {format_duration(e.seconds)}" + (f" ({'; '.join(notes)})" if notes else "")


def changed(previous: Mapping[int, str], fws: Iterable[FireworkState]) -> bool:
    """True when a firework's state differs from ``previous`` (fw_id -> state)."""
    return {fw.fw_id: fw.state for fw in fws} != dict(previous)


def running_text(fws: Iterable[FireworkState], now: float) -> str:
    """``name (4 min 10 s), name (12 s)`` of the RUNNING fireworks, or ``none``."""
    parts = [f"{fw.name} ({format_duration(now - fw.started)})" if fw.started is not None
             else fw.name for fw in fws if fw.state == "RUNNING"]
    return ", ".join(parts) or "none"


def counts_text(fws: Iterable[FireworkState]) -> str:
    """``3 done, 2 running, 5 waiting, 0 failed``."""
    c = counts(fws)
    return f"{c[DONE]} done, {c[RUNNING]} running, {c[WAITING]} waiting, {c[FAILED]} failed"


def summary_line(fws: Sequence[FireworkState], *, workers: int, now: float,
                 elapsed: float | None, previous: Mapping[int, str] | None = None,
                 deadline: float | None = None) -> str:
    """One progress line (see the module rules).

    ``[  12 min 05 s] finished binding:Al:bulk (1 min 30 s) | running: ... | 3 done, 2
    running, 5 waiting, 0 failed | ETA 2 h 10 min``; the ``finished``/``failed`` part names
    the fireworks that reached COMPLETED or FIZZLED since ``previous`` (fw_id -> state), in
    the order they ended; no ``[elapsed]`` prefix when ``elapsed`` is None. With the run's
    time limit ``deadline`` (UNIX time) the line ends with the time left to it.
    """
    before = dict(previous or {})
    events = []
    for fw in sorted(fws, key=lambda f: (f.ended is None, f.ended or 0.0, f.fw_id)):
        if before.get(fw.fw_id) == fw.state or fw.state not in ("COMPLETED", "FIZZLED"):
            continue
        wall = format_duration(fw.wall) if fw.wall is not None else "?"
        if fw.state == "COMPLETED":
            events.append(f"finished {fw.name} ({wall}{', stored result' if fw.reused else ''})")
        else:
            events.append(f"FAILED {fw.name} (after {wall})")
    parts = [f"[{format_duration(elapsed):>12}]"] if elapsed is not None else []
    if events:
        parts.append("; ".join(events) + " |")
    parts += [f"running: {running_text(fws, now)} |", f"{counts_text(fws)} |",
              eta_text(eta(fws, workers, now))]
    if deadline is not None:
        parts.append(f"| time limit in {format_duration(max(0.0, deadline - now))}")
    return " ".join(parts)
