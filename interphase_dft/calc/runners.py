"""Static and relaxation runners with checkpoints that survive a kill at any point.

Files in ``workdir`` for a run called ``label``: ``{label}.traj`` (every evaluated geometry,
with energy/forces(/stress)), ``{label}.json`` (state: steps, energy, fmax, converged, force
calls, warnings, wall time, formula, and why a watch stopped a relaxation) and
``{label}-opt.json`` (the optimizer's restart file); see
:class:`interphase_dft.calc.checkpoint.Checkpoint`.

Calling the same runner again with the same arguments and ``workdir`` resumes from the last
trajectory frame (its stored energy and forces are reused, so no step is recomputed) with the
optimizer's restart file, or returns the stored result when the run had finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from interphase_dft.calc.checkpoint import Checkpoint, info, snapshot
from interphase_dft.calc.guard import CalcFactory, GuardedCalculator
from interphase_dft.calc.prior_bfgs import PriorBFGS
from interphase_dft.calc.settings import RelaxSettings
from interphase_dft.errors import CalculationError, InputError
from interphase_dft.schemas import settings_hash, structure_hash

log = logging.getLogger("interphase_dft.calc")


@dataclass
class RunResult:
    """Outcome of a static or relaxation run (energies eV, forces eV/Angstrom)."""

    atoms: Atoms
    energy: float
    fmax: float
    steps: int
    converged: bool
    force_calls: int
    warnings: list[str] = field(default_factory=list)
    wall_time: float = 0.0
    resumed: bool = False
    #: why a relaxation's ``watch`` stopped it (None: it ran to convergence or its steps)
    stopped: str | None = None


def _factory_of(calc: Calculator | CalcFactory) -> CalcFactory:
    if isinstance(calc, Calculator):
        def fixed(atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
            return calc
        return fixed
    return calc


def _describe(calc: Calculator | CalcFactory) -> dict[str, Any]:
    desc = getattr(calc, "description", None)
    if isinstance(desc, dict):
        return desc
    settings = getattr(calc, "settings", None)
    if settings is not None and hasattr(settings, "model_dump"):
        return {"settings": settings.model_dump()}
    return {}  # plain calculators/functions: fingerprint by structure and run settings only


def _fingerprint(atoms: Atoms, extra: dict[str, Any]) -> str:
    """Checkpoint identity: the structure, the run and calculator settings, and the k-point
    mesh tag when it gives the cell another mesh than its size would (a cell recomputed on
    another mesh is another calculation; a tag that changes nothing changes no fingerprint)."""
    from interphase_dft.calc.factory import mesh_tag

    tag = mesh_tag(atoms, extra.get("dft"))
    return structure_hash(atoms)[:16] + "-" + settings_hash({**extra, **tag})[:16]


def _fmax(forces: np.ndarray) -> float:
    return float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0


def _result_from_state(state: dict[str, Any], atoms: Atoms) -> RunResult:
    return RunResult(
        atoms=atoms, energy=state["energy"], fmax=state["fmax"], steps=state["steps"],
        converged=state["converged"], force_calls=state["force_calls"],
        warnings=list(state.get("warnings", [])), wall_time=state.get("wall_time", 0.0),
        resumed=True, stopped=state.get("stopped"),
    )


def _state(r: RunResult) -> dict[str, Any]:
    """The runner's fields of the checkpoint state."""
    return {
        "steps": r.steps, "energy": r.energy, "fmax": r.fmax, "converged": r.converged,
        "force_calls": r.force_calls, "warnings": r.warnings, "wall_time": r.wall_time,
        "formula": r.atoms.get_chemical_formula(), "stopped": r.stopped,
    }


class _Stop(Exception):
    """Raised by a relaxation's observer when its ``watch`` names a reason to stop."""


def static(atoms: Atoms, calc: Calculator | CalcFactory, workdir: Path | str,
           label: str = "static") -> RunResult:
    """Single point: energy and forces of ``atoms``; stored result returned on a second call.

    Parameters
    ----------
    atoms
        Structure (not modified).
    calc
        A calculator or a factory ``factory(atoms, attempt=0, label='')``.
    workdir
        Directory for ``{label}.traj`` and ``{label}.json``.
    label
        Stem of the checkpoint file names.

    Returns
    -------
    RunResult
        Energy (eV) and largest force (eV/Angstrom); ``steps`` 0, ``converged`` True.
    """
    ckpt = Checkpoint(workdir, label, kind="static",
                      fingerprint=_fingerprint(atoms, {"kind": "static", **_describe(calc)}))
    ckpt.load()
    if ckpt.done:
        return _result_from_state(ckpt.state or {}, ckpt.last[-1])
    t0 = time.perf_counter()
    work = atoms.copy()
    guard = GuardedCalculator(_factory_of(calc), label=label)
    work.calc = guard
    energy = float(work.get_potential_energy())
    forces = work.get_forces()
    frame = snapshot(work, guard.results)
    ckpt.record([frame])
    result = RunResult(atoms=frame, energy=energy, fmax=_fmax(forces), steps=0, converged=True,
                       force_calls=guard.calls, warnings=guard.warnings,
                       wall_time=time.perf_counter() - t0)
    ckpt.finish(_state(result))
    info(log, "static %s %s: E = %.6f eV (%.1f s)", label, atoms.get_chemical_formula(), energy,
         result.wall_time)
    return result


def _optimizer_class(name: str) -> type:
    from ase import optimize

    try:
        return getattr(optimize, name)
    except AttributeError as exc:
        raise InputError(f"unknown optimizer {name!r}; use BFGS, FIRE, LBFGS or "
                         "BFGSLineSearch") from exc


def _check_prior(hessian: np.ndarray, optimizer: str, cell: bool, natoms: int) -> None:
    """A starting Hessian needs BFGS and the shape of the relaxed degrees of freedom (N atoms,
    and 3 cell rows of ``FrechetCellFilter`` when ``cell``); the error names what to change."""
    if optimizer != "BFGS":
        raise InputError(f"a starting Hessian needs relax.optimizer='BFGS', got {optimizer!r}")
    from interphase_dft.calc.hessian import dof_size

    n = dof_size(natoms, cell)
    if np.shape(hessian) != (n, n):
        what = f"{natoms} atoms and the cell" if cell else f"{natoms} atoms"
        raise InputError(f"starting Hessian of shape {np.shape(hessian)} for {what}; "
                         f"it must be ({n}, {n})"
                         + (" (calc.hessian.surrogate_hessian(..., cell=True))" if cell else ""))


def relax(atoms: Atoms, calc_factory: CalcFactory | Calculator, workdir: Path | str,
          settings: RelaxSettings, cell: bool = False, label: str = "relax",
          hessian: np.ndarray | None = None,
          watch: Callable[[Atoms], str | None] | None = None) -> RunResult:
    """Relax positions (and the cell when ``cell``) to ``settings.fmax`` with checkpoints.

    Parameters
    ----------
    atoms
        Starting structure with its constraints (not modified).
    calc_factory
        ``factory(atoms, attempt=0, label='') -> Calculator`` (e.g. :class:`GPAWFactory`) or a
        calculator (then SCF retries reuse it unchanged).
    workdir
        Directory for the checkpoint files (see module docstring).
    settings
        ``fmax`` (eV/Angstrom), ``steps`` (total over all restarts) and ``optimizer``.
    cell
        Also relax the cell (``FrechetCellFilter``; needs a calculator with stress).
    label
        Stem of the checkpoint file names.
    hessian
        The (3N, 3N) starting curvature of a BFGS relaxation of positions, eV/Angstrom^2,
        or with ``cell`` the (3N + 9, 3N + 9) one of the ``FrechetCellFilter`` degrees of
        freedom (e.g. :func:`interphase_dft.calc.hessian.surrogate_hessian`) instead of BFGS's
        ``alpha`` x identity, rescaled once by the reference curvature along the first step
        (:class:`~interphase_dft.calc.prior_bfgs.PriorBFGS`); a resumed run continues the
        stored curvature.
    watch
        Called with every new geometry (and with the last stored one on a resume, or of a
        run that finished earlier); a string it returns stops the relaxation there, not
        converged, with that reason in ``stopped`` (e.g. an endpoint whose hopping Li left
        its site, :mod:`interphase_dft.recipes.basin`). A watch that already fires on
        ``atoms`` is dropped with a warning: only what this relaxation does is judged. Not
        part of the checkpoint's fingerprint.

    Returns
    -------
    RunResult
        ``steps`` counts optimizer steps over all restarts; ``force_calls`` the real
        calculator evaluations (a resumed run reuses the stored last frame).
    """
    from ase.filters import FrechetCellFilter

    fingerprint = _fingerprint(atoms, {"kind": "relax", "cell": cell,
                                       **settings.model_dump(), **_describe(calc_factory)})
    ckpt = Checkpoint(workdir, label, kind="relax", fingerprint=fingerprint)
    ckpt.load()
    if watch is not None and (at_start := watch(atoms)):
        log.warning("relax %s: the start already meets the watch (%s); not watched", label,
                    at_start)
        watch = None
    if ckpt.done:
        info(log, "relax %s: finished earlier, returning the stored result", label)
        done = _result_from_state(ckpt.state or {}, ckpt.last[-1])
        if watch is not None and not done.stopped and (reason := watch(done.atoms)):
            done.stopped, done.converged = reason, False  # finished before it was watched
        return done

    work = atoms.copy()
    seed: Atoms | None = None
    resumed = ckpt.n > 0
    if resumed:
        last = ckpt.last[-1]
        work.positions = last.positions
        work.cell = last.cell
        seed = last
        info(log, "relax %s: resuming from step %d", label, ckpt.steps)
    else:
        ckpt.reset_optimizer()
    prior_calls = int(ckpt.prior("force_calls", 0))
    prior_warnings = list(ckpt.prior("warnings", []))
    prior_time = float(ckpt.prior("wall_time", 0.0))
    guard = GuardedCalculator(_factory_of(calc_factory), label=label, seed=seed)
    work.calc = guard
    target = FrechetCellFilter(work) if cell else work
    t0 = time.perf_counter()
    if hessian is not None:
        _check_prior(hessian, settings.optimizer, cell, len(work))
        opt = PriorBFGS(target, hessian, restart=str(ckpt.opt_path), logfile=None)
    else:
        opt = _optimizer_class(settings.optimizer)(target, restart=str(ckpt.opt_path),
                                                   logfile=None)

    def current() -> RunResult:
        forces = target.get_forces()
        return RunResult(
            atoms=snapshot(work, guard.results), energy=float(work.get_potential_energy()),
            fmax=_fmax(np.asarray(forces)), steps=ckpt.steps, converged=False,
            force_calls=prior_calls + guard.calls, warnings=prior_warnings + guard.warnings,
            wall_time=prior_time + time.perf_counter() - t0,
        )

    def observe() -> None:
        if not ckpt.is_new([work]):
            return
        ckpt.record([snapshot(work, guard.results)])
        r = current()
        ckpt.update(_state(r))
        info(log, "relax %s %s step %d: E = %.6f eV fmax = %.4f eV/A", label,
             work.get_chemical_formula(), r.steps, r.energy, r.fmax)
        reason = watch(work) if watch is not None else None
        if reason:
            raise _Stop(reason)

    opt.attach(observe, interval=1)
    remaining = settings.steps - ckpt.steps
    converged = False
    stopped = watch(work) if watch is not None and resumed else None
    try:
        if remaining > 0 and not stopped:
            converged = bool(opt.run(fmax=settings.fmax, steps=remaining))
        observe()
    except _Stop as exc:
        stopped = str(exc)
    if getattr(opt, "scale", None) is not None:  # PriorBFGS: its one rescaling of the prior
        info(log, "relax %s: the starting curvature scaled by %.2f along the first step",
             label, opt.scale)
    result = current()
    result.stopped = stopped
    result.converged = not stopped and (converged or result.fmax <= settings.fmax)
    result.resumed = resumed
    if stopped:
        msg = (f"relax {label} {work.get_chemical_formula()}: stopped after {result.steps} "
               f"steps: {stopped}")
        log.warning(msg)
        result.warnings.append(msg)
    elif not result.converged:
        msg = (f"relax {label} {work.get_chemical_formula()}: not converged after "
               f"{result.steps} steps (fmax {result.fmax:.3f} > {settings.fmax} eV/A)")
        log.warning(msg)
        result.warnings.append(msg)
    ckpt.finish(_state(result))
    return result


def require_converged(result: RunResult, what: str) -> None:
    """Raise :class:`CalculationError` if a relaxation did not converge."""
    if not result.converged:
        raise CalculationError(
            f"{what} {result.atoms.get_chemical_formula()} did not converge "
            f"(fmax {result.fmax:.3f} eV/A after {result.steps} steps); raise relax.steps"
        )
