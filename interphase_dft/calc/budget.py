"""Cost ceilings of one work item: a ledger of DFT calls and hours, and a metered factory.

Rules
-----
- One ledger per work directory (``budget.json``: ``dft_calls``, ``dft_seconds``), summed over
  every restart of the work item, so a rerun continues the count.
- The ledger's ``kind`` picks its ceilings in ``settings.budget`` (:data:`CEILINGS`):
  ``'barrier'`` (``max_dft_calls``, ``max_dft_hours``) or ``'binding'``
  (``binding_max_dft_calls``, ``binding_max_dft_hours``).
- :class:`MeteredFactory` wraps the factory of the reported level (DFT): each calculator it
  returns charges one call and its wall time to the ledger per evaluation (energy and forces
  of one geometry). Surrogate factories are not metered.
- A call is refused (:class:`BudgetExceeded`) when ``dft_calls >= max_dft_calls`` or
  ``dft_seconds >= 3600 * max_dft_hours``, or when the run's time limit has passed
  (:mod:`interphase_dft.timelimit`: ``--hours`` of ``run``/``campaign``); a call that starts
  below the ceilings and before the limit finishes.
  Under MPI the decision of rank 0 is broadcast, so every rank stops at the same call.
- Surrogate work between DFT calls (fine-tuning, surrogate bands) is not counted by the
  ceilings; :meth:`Ledger.check_time_limit` stops it at the run's time limit only.
- The runners' checkpoints hold every completed step, so a rerun with larger ceilings
  continues from there (:func:`unfinished_runs` and :func:`finished_runs` say what was
  reached; :func:`has_room` whether new ceilings allow more than a stored ``budget``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.parallel import broadcast

from interphase_dft.calc.checkpoint import read_json, write_json
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.settings import BudgetSettings
from interphase_dft.calc.wrapped import WrappedCalculator, WrappingFactory
from interphase_dft.errors import CalculationError
from interphase_dft.timelimit import passed, run_deadline

LEDGER = "budget.json"
#: ledger kind -> the (calls, hours) ceilings of ``BudgetSettings`` that bound it
CEILINGS: dict[str, tuple[str, str]] = {
    "barrier": ("max_dft_calls", "max_dft_hours"),
    "binding": ("binding_max_dft_calls", "binding_max_dft_hours"),
}


class BudgetExceeded(CalculationError):
    """A cost ceiling of ``settings.budget`` was reached; ``used`` says how much was spent."""

    def __init__(self, message: str, used: dict[str, Any]) -> None:
        super().__init__(message)
        self.used = used


@dataclass
class Ledger:
    """DFT calls and seconds of one work item against its ceilings (see module rules).

    Attributes
    ----------
    path
        The ledger file (``<workdir>/budget.json``).
    limits
        The ceilings (``settings.budget``).
    calls, seconds
        Spent so far, over all restarts.
    stage
        What is running (named by the recipe; for the over-budget record).
    kind
        Which ceilings of ``limits`` apply (:data:`CEILINGS`).
    deadline
        The UNIX time at which the run's time limit stops further calls (None = none; by
        default the limit of the run this process belongs to, ``$INTERPHASE_DEADLINE``).
    timed_out
        True once :meth:`check` or :meth:`check_time_limit` refused because of the time
        limit (a run whose last call started before the deadline and completed its work is
        not marked).
    """

    path: Path
    limits: BudgetSettings
    calls: int = 0
    seconds: float = 0.0
    stage: str = field(default="", compare=False)
    kind: str = field(default="barrier", compare=False)
    deadline: float | None = field(default_factory=run_deadline, compare=False)
    timed_out: bool = field(default=False, compare=False)

    @classmethod
    def open(cls, workdir: Path | str, limits: BudgetSettings, kind: str = "barrier") -> Ledger:
        """The ledger of ``workdir`` (zero when new) with the ``kind`` ceilings of ``limits``."""
        if kind not in CEILINGS:
            raise ValueError(f"ledger kind must be one of {sorted(CEILINGS)}, got {kind!r}")
        path = Path(workdir) / LEDGER
        data = read_json(path) or {}
        return cls(path, limits, int(data.get("dft_calls", 0)),
                   float(data.get("dft_seconds", 0.0)), kind=kind)

    @property
    def max_calls(self) -> int | None:
        """The DFT-call ceiling of this ledger's kind (None = none)."""
        return getattr(self.limits, CEILINGS[self.kind][0])

    @property
    def max_hours(self) -> float | None:
        """The wall-time ceiling of this ledger's kind, hours (None = none)."""
        return getattr(self.limits, CEILINGS[self.kind][1])

    def reason(self) -> str | None:
        """Which ceiling is reached, or None."""
        refusal = self._refusal()
        return None if refusal is None else refusal[0]

    def _refusal(self, time_only: bool = False) -> tuple[str, bool] | None:
        """(which ceiling is reached, whether it is the run's time limit), or None;
        ``time_only``: the run's time limit only."""
        calls_name, hours_name = CEILINGS[self.kind]
        if not time_only and self.max_calls is not None and self.calls >= self.max_calls:
            return f"{self.calls} of {calls_name}={self.max_calls} DFT calls used", False
        if (not time_only and self.max_hours is not None
                and self.seconds >= 3600.0 * self.max_hours):
            return (f"{self.seconds / 3600:.2f} h of {hours_name}={self.max_hours} h "
                    "of DFT used"), False
        if passed(self.deadline):
            return (f"the run's time limit (--hours) was reached after {self.calls} DFT calls "
                    f"({self.seconds / 3600:.2f} h of DFT)"), True
        return None

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` when a ceiling is reached (rank 0 decides)."""
        self._raise(broadcast(self._refusal(), root=0))

    def check_time_limit(self) -> None:
        """Raise :class:`BudgetExceeded` when the run's time limit has passed (rank 0
        decides): for work between DFT calls that the DFT ceilings do not count."""
        self._raise(broadcast(self._refusal(time_only=True), root=0))

    def _raise(self, refusal: tuple[str, bool] | None) -> None:
        """Raise :class:`BudgetExceeded` for ``refusal`` (from :meth:`_refusal`), if any."""
        if refusal is None:
            return
        reason, self.timed_out = refusal
        fix = ("run again to continue (submit the spec again: the work continues from its "
               "checkpoints)" if self.timed_out else
               "continue with a larger budget (settings.budget) in the same work directory")
        raise BudgetExceeded(f"over budget in stage {self.stage or '?'}: {reason}; {fix}",
                             self.summary())

    def charge(self, seconds: float) -> None:
        """Add one call of ``seconds`` wall time and write the ledger."""
        self.calls += 1
        self.seconds += float(seconds)
        write_json(self.path, {"dft_calls": self.calls, "dft_seconds": self.seconds})

    def summary(self) -> dict[str, Any]:
        """Ceilings in effect and use (``BarrierDoc.budget``, ``BindingEnergyDoc.budget``);
        a binding ledger also names its ceilings (``ceilings``), a ledger past the run's time
        limit says so (``time_limit``)."""
        out: dict[str, Any] = {"max_dft_calls": self.max_calls, "max_dft_hours": self.max_hours,
                               "dft_calls": self.calls,
                               "dft_hours": round(self.seconds / 3600.0, 4)}
        if self.kind != "barrier":
            out["ceilings"] = list(CEILINGS[self.kind])
        if self.timed_out:
            out["time_limit"] = "the run's time limit (--hours) stopped it"
        return out


def has_room(limits: BudgetSettings, used: dict[str, Any], kind: str = "barrier") -> bool:
    """True when the ``kind`` ceilings of ``limits`` allow more than the DFT calls and hours
    ``used`` (a stored document's ``budget``) spent."""
    calls_name, hours_name = CEILINGS[kind]
    max_calls, max_hours = getattr(limits, calls_name), getattr(limits, hours_name)
    calls, hours = int(used.get("dft_calls") or 0), float(used.get("dft_hours") or 0.0)
    return ((max_calls is None or max_calls > calls)
            and (max_hours is None or max_hours > hours))


class MeteredCalculator(WrappedCalculator):
    """Energy and forces of ``inner``, each evaluation checked against and charged to the
    ledger (see :class:`~interphase_dft.calc.wrapped.WrappedCalculator`)."""

    def __init__(self, inner: Calculator, ledger: Ledger) -> None:
        super().__init__(inner)
        self.ledger = ledger

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        self.ledger.check()
        t0 = time.perf_counter()
        results = self.evaluate(properties)
        self.ledger.charge(time.perf_counter() - t0)
        self.results = results


@dataclass(frozen=True)
class MeteredFactory(WrappingFactory):
    """``factory(atoms, attempt, label)`` whose calculators charge ``ledger``.

    ``description`` and ``paired()`` are those of the wrapped factory (metered by the same
    ledger), so checkpoint fingerprints and the spin-collapse fallback are unchanged.
    """

    inner: CalcFactory
    ledger: Ledger

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
        return MeteredCalculator(self.inner(atoms, attempt=attempt, label=label), self.ledger)

    def rewrap(self, inner: CalcFactory) -> MeteredFactory:
        return replace(self, inner=inner)


def unfinished_runs(workdir: Path | str) -> dict[str, dict[str, Any]]:
    """Checkpoint states under ``workdir`` still ``running``: relative path -> kind, steps,
    fmax (eV/Angstrom) and, for a band, the energies of its last step (eV)."""
    root = Path(workdir)
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*.json")):
        try:
            state = read_json(path) or {}
        except ValueError:
            continue
        if not isinstance(state, dict) or state.get("status") != "running":
            continue
        entry = {"kind": state.get("kind"), "steps": state.get("steps"),
                 "fmax": state.get("fmax")}
        if state.get("kind") == "neb":
            entry["energies"] = state.get("energies")
        out[str(path.relative_to(root).with_suffix(""))] = entry
    return out


def finished_runs(workdir: Path | str) -> list[str]:
    """Checkpoint states under ``workdir`` that are ``done``: their paths relative to
    ``workdir``, without suffix (e.g. ``layers-3/site-top/static``), sorted."""
    root = Path(workdir)
    out: list[str] = []
    for path in sorted(root.rglob("*.json")):
        try:
            state = read_json(path) or {}
        except ValueError:
            continue
        if isinstance(state, dict) and state.get("status") == "done":
            out.append(str(path.relative_to(root).with_suffix("")))
    return out
