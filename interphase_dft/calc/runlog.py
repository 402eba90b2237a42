"""Bookkeeping of one recipe run: wall time per stage, force calls per run, warnings.

A :class:`RunLog` is created by a recipe and handed to the helpers that run calculations;
the finished document copies its three fields (``timings``, ``force_calls``, ``warnings``;
see :meth:`interphase_dft.schemas.ResultDocBase.from_run`).

Example::

    run = RunLog()
    with run.stage("host"):
        res = relax(host, factory, workdir / "host", settings.relax, label="host")
    run.add("host", res)        # force calls under 'host', the run's warnings appended

Frames: a run log created with a frame sink (``RunLog(frames=sink, work_key=key)``, see
:mod:`interphase_dft.calc.frames`) hands it to the reference factories through
:meth:`RunLog.recorded`; without a sink that returns the factory unchanged. The sink is
passed explicitly by whoever creates the run log (a FireTask, the CLI), never read from
global state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from interphase_dft.calc.frames import FrameSink


class RunOutcome(Protocol):
    """What :meth:`RunLog.add` reads from a runner result (``RunResult``, ``NEBResult``)."""

    force_calls: int
    warnings: list[str]


@dataclass
class RunLog:
    """Timings (s), force calls and warnings of one recipe run, in the order they happened.

    Attributes
    ----------
    timings
        Wall-clock seconds per stage name (the last run of a stage counts).
    force_calls
        Calculator evaluations per run name (the last record of a name counts).
    warnings
        Messages for the document, in order.
    frames
        Where the reference (DFT) single points of this run go, or None (not stored).
    work_key
        Work key of the run, stored with its frames (None when unknown).
    """

    timings: dict[str, float] = field(default_factory=dict)
    force_calls: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    frames: FrameSink | None = field(default=None, repr=False, compare=False)
    work_key: str | None = None

    def recorded(self, factory: Any) -> Any:
        """``factory`` whose evaluations go to ``frames`` (unchanged without a sink).

        Wrap the reference (DFT) factory only, never the surrogate's.
        """
        from interphase_dft.calc.frames import recording

        return recording(factory, self.frames, self.work_key)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as stage ``name`` (recorded when the block completes)."""
        t0 = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t0

    def count(self, name: str, calls: int) -> None:
        """Record ``calls`` force calls under ``name``."""
        self.force_calls[name] = calls

    def warn(self, message: str) -> None:
        """Append one warning."""
        self.warnings.append(message)

    def add(self, name: str, result: RunOutcome) -> None:
        """Record a runner result: its force calls under ``name``, its warnings appended."""
        self.count(name, result.force_calls)
        self.warnings.extend(result.warnings)

    def merge(self, other: RunLog) -> None:
        """Take over the timings, force calls and warnings of ``other`` (a sub-run)."""
        self.timings.update(other.timings)
        self.force_calls.update(other.force_calls)
        self.warnings.extend(other.warnings)
