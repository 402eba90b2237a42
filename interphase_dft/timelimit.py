"""The time limit of a run (``interphase-dft run|campaign --hours H``, ``make demo HOURS=H``).

Rules
-----
- The run that starts the workers fixes one deadline (a UNIX time) and hands it to every worker
  process in ``$INTERPHASE_DEADLINE`` (:func:`deadline_env`); no setting of the work changes,
  so the work keys, settings hashes and checkpoints are those of a run without a limit.
- Workers check out no firework after the deadline (:mod:`interphase_dft.fw.worker`), and
  before it they take the READY fireworks kind by kind (references, binding energies, bulk
  reference hops, interface hops: a barrier enters the ΔE fit only with the binding energies
  of both its phases), the smallest cost estimate first within a kind, so the limit holds as
  many usable results as it can.
- A running calculation is stopped at its next DFT call after the deadline by its cost ledger
  (:class:`interphase_dft.calc.budget.Ledger`): a call that started before the deadline
  finishes, so a run ends within the limit plus the last DFT call of each worker. The work item
  then ends like one over its cost ceiling (``'not certified: over budget'``,
  ``'not converged: over budget'``) with what it reached, and the next run (``submit`` again)
  continues it from its checkpoints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from interphase_dft.errors import InputError

ENV_DEADLINE = "INTERPHASE_DEADLINE"


def check_hours(hours: float | str) -> float:
    """``hours`` as a positive number of hours.

    Raises
    ------
    InputError
        Not a number, or not positive.
    """
    try:
        value = float(hours)
    except (TypeError, ValueError):
        raise InputError(f"--hours must be a number of hours (e.g. 1.5), got {hours!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise InputError(f"--hours must be a positive, finite number of hours, got {hours!r}; "
                         "leave it out for a run without a time limit")
    return value


def deadline_after(hours: float, now: float | None = None) -> float:
    """The UNIX time ``hours`` after ``now`` (default: the present)."""
    return (time.time() if now is None else now) + 3600.0 * check_hours(hours)


def deadline_env(deadline: float | None) -> dict[str, str]:
    """The environment entry that hands ``deadline`` to a worker process ({} for none)."""
    return {} if deadline is None else {ENV_DEADLINE: f"{deadline:.3f}"}


def run_deadline(env: Mapping[str, str] | None = None) -> float | None:
    """The deadline of this process's run (``$INTERPHASE_DEADLINE``), or None without one.

    Raises
    ------
    InputError
        The variable is set but is not a UNIX time.
    """
    raw = (os.environ if env is None else env).get(ENV_DEADLINE, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"{ENV_DEADLINE} must be a UNIX time in seconds (set by `interphase-dft "
                         f"run --hours`), got {raw!r}; unset it for a run without a time "
                         "limit") from None


def passed(deadline: float | None, now: float | None = None) -> bool:
    """True when ``deadline`` is set and ``now`` (default: the present) is at or past it."""
    return deadline is not None and (time.time() if now is None else now) >= deadline
