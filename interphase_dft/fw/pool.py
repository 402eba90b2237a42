"""The local worker pool: ``interphase-dft run`` and ``campaign`` start worker processes.

Parallel local workers are separate processes (``python -m interphase_dft.fw.worker``) that
share the LaunchPad through locked transactions (embedded store) or MongoDB itself, so every
firework runs once. The pool watches them (:class:`WorkerPool`): a worker that dies (``kill
-9``, out of memory) has its firework marked lost and requeued at once, with a warning, and a
replacement worker runs it (at most :data:`~interphase_dft.fw.heartbeat.MAX_REQUEUES` times per
firework; after that it is left FIZZLED). Workers ping their launch every heartbeat interval
and stop when the pool is gone. SIGTERM/SIGINT to the pool stop the workers and requeue their
fireworks (:class:`RunStopped`).

Time limit (``deadline``, from ``--hours``; :mod:`interphase_dft.timelimit`): the workers get
it in their environment, take the cheapest READY firework first and none after it; the pool
starts no worker after it, and returns when the workers have ended their last firework.

Progress: at each state change of a firework (READY -> RUNNING -> COMPLETED/FIZZLED) the pool
prints one line: elapsed time, what finished (name, wall time), what runs, the counts and the
estimated time to the end (:func:`interphase_dft.fw.progress.summary_line`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import interphase_dft
from interphase_dft.errors import InputError, InterphaseError
from interphase_dft.fw.heartbeat import (
    MAX_REQUEUES,
    Running,
    requeue,
    requeue_silent,
    running_launches,
)
from interphase_dft.fw.heartbeat import ping_secs as ping_secs_setting
from interphase_dft.fw.launchpad import LaunchPadConfig, lp_session, open_launchpad
from interphase_dft.fw.progress import format_duration, summary_line
from interphase_dft.fw.status import firework_states, progress_line, state_map
from interphase_dft.timelimit import deadline_env, passed

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


def worker_command(config: LaunchPadConfig, mode: str = "rapidfire", ping: float | None = None,
                   worker_id: str | None = None, parent_pid: int | None = None) -> list[str]:
    """Command line of one worker process on the LaunchPad of ``config``."""
    cmd = [sys.executable, "-m", "interphase_dft.fw.worker", mode]
    if config.yaml_path:
        cmd += ["--launchpad", str(config.yaml_path)]
    if ping is not None:
        cmd += ["--ping-secs", f"{ping:g}"]
    if worker_id:
        cmd += ["--worker-id", worker_id]
    if parent_pid:
        cmd += ["--parent-pid", str(parent_pid)]
    return cmd


class RunStopped(InterphaseError):
    """``run`` was stopped by a signal: its workers are stopped, their fireworks requeued."""

    def __init__(self, message: str, signum: int, fw_ids: list[int]) -> None:
        super().__init__(message)
        self.signum = signum
        self.fw_ids = fw_ids


class _Signal(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP while the pool runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class _Worker:
    token: str
    proc: subprocess.Popen[bytes]
    log: Path


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group of a worker (it leads its own: its MPI ranks go too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _how_it_ended(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class WorkerPool:
    """Local worker processes that are watched: a worker that dies has its firework requeued
    at once, and RUNNING launches of other workers are requeued when silent for three of
    their heartbeats (:mod:`interphase_dft.fw.heartbeat`)."""

    def __init__(self, config: LaunchPadConfig, workers: int, launch_root: Path,
                 progress: Callable[[str], None] | None, ping: float,
                 deadline: float | None = None) -> None:
        self.config, self.workers, self.launch_root = config, workers, launch_root
        self.progress, self.ping, self.deadline = progress, ping, deadline
        self.lp = open_launchpad(config)
        self.env = {**worker_env(workers), **deadline_env(deadline)}
        self.run_id = f"{socket.gethostname()}:{os.getpid()}"
        self.live: list[_Worker] = []
        self.started = 0
        self.requeued: Counter[int] = Counter()
        self.gave_up: list[int] = []

    def say(self, line: str) -> None:
        if self.progress:
            self.progress(line)

    @staticmethod
    def warn(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def start(self) -> None:
        token = f"{self.run_id}/w{self.started}"
        log = self.launch_root / f"worker{self.started}.log"
        self.started += 1
        with open(log, "a") as fh:
            proc = subprocess.Popen(
                worker_command(self.config, "rapidfire", self.ping, token, os.getpid()),
                cwd=self.launch_root, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True)  # Ctrl-C reaches `run` only; it stops the workers
        self.live.append(_Worker(token, proc, log))

    def _held(self, tokens: set[str]) -> list[Running]:
        with lp_session(self.lp) as lp:
            return [r for r in running_launches(lp) if r.worker in tokens]

    def _names(self, fw_ids: list[int]) -> dict[int, str]:
        with lp_session(self.lp) as lp:
            return {d["fw_id"]: d["name"] for d in lp.fireworks.find(
                {"fw_id": {"$in": fw_ids}}, {"fw_id": 1, "name": 1})}

    def reap(self) -> None:
        """Handle workers that have exited: requeue (or, after MAX_REQUEUES, fizzle) the
        fireworks they held."""
        for w in [w for w in self.live if w.proc.poll() is not None]:
            self.live.remove(w)
            _signal_group(w.proc.pid, signal.SIGKILL)  # leftovers (MPI ranks) of a dead worker
            held = self._held({w.token})
            if not held and w.proc.returncode != 0:
                self.warn(f"warning: worker {w.token} (pid {w.proc.pid}) "
                          f"{_how_it_ended(w.proc.returncode)}; see {w.log}")
            if not held:
                continue
            again = [r.launch_id for r in held if self.requeued[r.fw_id] < MAX_REQUEUES]
            stop = [r.launch_id for r in held if self.requeued[r.fw_id] >= MAX_REQUEUES]
            with lp_session(self.lp) as lp:
                fws, dead = requeue(lp, again), requeue(lp, stop, rerun=False)
            names = self._names(fws + dead)
            why = (f"worker {w.token} (pid {w.proc.pid}) {_how_it_ended(w.proc.returncode)} "
                   "while running firework")
            for fw in fws:
                self.requeued[fw] += 1
                self.warn(f"warning: {why} {fw} {names.get(fw)!r}: marked lost and requeued "
                          f"(attempt {self.requeued[fw] + 1}; it resumes from its checkpoint)")
            for fw in dead:
                self.gave_up.append(fw)
                self.warn(f"error: {why} {fw} {names.get(fw)!r} for the "
                          f"{MAX_REQUEUES + 1}th time: left FIZZLED, not requeued again; find "
                          f"the cause in {w.log}, then `interphase-dft rerun --fizzled`")

    def check_silent(self) -> None:
        """Requeue RUNNING launches of other (dead) workers silent past their window."""
        with lp_session(self.lp) as lp:
            fws = requeue_silent(lp, skip_workers=frozenset(w.token for w in self.live))
        names = self._names(fws) if fws else {}
        for fw in fws:
            self.requeued[fw] += 1
            self.warn(f"warning: firework {fw} {names.get(fw)!r} was RUNNING but its worker "
                      "stopped sending heartbeats: marked lost and requeued")

    def stale_elsewhere(self) -> list[Running]:
        """RUNNING launches of other workers that missed a heartbeat but are not past their
        window yet (:meth:`check_silent` requeues them then: worth waiting for)."""
        with lp_session(self.lp) as lp:
            runs = running_launches(lp)
        mine = {w.token for w in self.live}
        return [r for r in runs if r.worker not in mine and r.ping is not None
                and 1.5 * r.ping < r.silent <= r.expiration() + 2 * max(r.ping, self.ping)]

    def stop(self) -> list[int]:
        """Stop every live worker (SIGTERM, then SIGKILL) and requeue what they held."""
        if not self.live:
            return []
        for w in self.live:
            _signal_group(w.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for w in self.live:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(w.proc.pid, signal.SIGKILL)
                w.proc.wait()
        held = self._held({w.token for w in self.live})
        self.live.clear()
        with lp_session(self.lp) as lp:
            return requeue(lp, [r.launch_id for r in held])

    def run(self, poll: float, timeout: float | None) -> Counter[str]:
        """Start the workers and watch them until nothing is left to run."""
        start, next_check, waiting = time.monotonic(), 0.0, False
        last: dict[int, str] | None = None
        for _ in range(self.workers):
            self.start()
        while True:
            self.reap()
            if time.monotonic() >= next_check:
                self.check_silent()
                next_check = time.monotonic() + self.ping
            states = state_map(self.lp)  # light; the full states only when one changed
            counts = Counter(states.values())
            budget = self.workers + sum(self.requeued.values())
            while counts.get("READY") and len(self.live) < self.workers \
                    and self.started < budget and not passed(self.deadline):
                self.start()
            if states != last:  # the first line names no earlier completion as finished
                fws = firework_states(self.lp)
                self.say(summary_line(fws, workers=self.workers, now=time.time(),
                                      elapsed=time.monotonic() - start,
                                      previous=states if last is None else last,
                                      deadline=self.deadline))
                last = states
            if not self.live:
                stale = self.stale_elsewhere()
                if not stale:
                    break
                if not waiting:
                    self.say(f"waiting for firework(s) {sorted(r.fw_id for r in stale)}: "
                             "their worker missed heartbeats; requeued here if it stays silent")
                    waiting = True
            if timeout and time.monotonic() - start > timeout:
                raise TimeoutError(f"workers still running after {timeout:.0f} s")
            time.sleep(poll)
        fws = firework_states(self.lp)
        if {fw.fw_id: fw.state for fw in fws} != last:
            self.say(summary_line(fws, workers=self.workers, now=time.time(),
                                  elapsed=time.monotonic() - start, previous=last))
        counts = Counter(fw.state for fw in fws)
        self.say(f"[{format_duration(time.monotonic() - start):>12}] done: "
                 f"{progress_line(counts)} (worker logs in {self.launch_root})")
        return counts


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """In the main thread: SIGTERM, SIGHUP and SIGINT raise :class:`_Signal`, so the pool can
    stop its workers before exiting (SIGINT is handled explicitly: a process started in the
    background of a non-interactive shell inherits it ignored, and Ctrl-C must still work)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Signal(signum)

    sigs = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    saved = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """No interruption while the workers are being stopped and their fireworks requeued."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def run_workers(config: LaunchPadConfig, workers: int = 1, launch_root: Path | None = None,
                progress: Callable[[str], None] | None = print, poll: float = 2.0,
                timeout: float | None = None, ping_secs: float | None = None,
                deadline: float | None = None) -> Counter[str]:
    """Run ``workers`` watched worker processes until nothing is left, or until the UNIX time
    ``deadline`` (the run's time limit, see the module docstring); return final states.

    Raises
    ------
    RunStopped
        SIGTERM, SIGHUP or SIGINT (Ctrl-C): the workers were stopped and the fireworks they
        held requeued (READY; they resume from their checkpoints).
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    launch_root = Path(launch_root or Path.cwd() / "launches").resolve()
    launch_root.mkdir(parents=True, exist_ok=True)
    pool = WorkerPool(config, workers, launch_root, progress, ping_secs_setting(ping_secs),
                      deadline)
    try:
        with _signals_raise():
            return pool.run(poll, timeout)
    except (KeyboardInterrupt, _Signal) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        with _signals_ignored():
            n, fws = len(pool.live), pool.stop()
        what = f"firework(s) {fws} requeued (READY; they resume from their checkpoints)" \
            if fws else "no firework was running"
        raise RunStopped(f"stopped by {signal.Signals(signum).name}: {n} worker(s) stopped, "
                         f"{what}", signum, fws) from None
    finally:
        with _signals_ignored():
            pool.stop()
