"""Climbing-image NEB runner with checkpoints.

Method: :class:`ase.mep.NEB` with ``settings.method`` (default ``improvedtangent``), spring
``settings.spring`` (eV/Angstrom^2), the climbing image switched on **from the start** when
``settings.climb``, optimizer
``settings.optimizer``: ``ode`` = :class:`ase.mep.neb.NEBOptimizer` (adaptive ODE solver),
or ``FIRE``/``BFGS``/``MDMin`` from :mod:`ase.optimize`. Each intermediate image gets its own
calculator from the factory (label ``img{i}``); endpoint energies come from the given
endpoint results and are never recomputed.

Checkpoint files in ``workdir`` for ``label`` (:class:`interphase_dft.calc.checkpoint.Checkpoint`):
``{label}.traj`` (the full band, endpoints included, after every optimizer step),
``{label}.json`` (state) and ``{label}-opt.json`` (restart file of FIRE/BFGS/MDMin). A second
call with the same arguments continues from the
last complete band in the trajectory (its stored energies and forces are reused), or returns the
stored result when the run had finished.

``stop_at`` ends a band early that cannot converge to the answer asked of it (the active-learning
finish passes the intermediate-minimum rule: a band through another minimum is split there,
and converging its climbing image first costs reference calls for nothing). Its reason is in
the result's ``stopped`` and warnings, and the stop is final for that checkpoint.

Convergence: every image's largest atom force of the NEB force vector at or below ``fmax``,
and, with the climbing image, also the largest atom force of its own (unprojected) force:
the climbing image is a saddle only where the true gradient vanishes, and the NEB force
(the force with its component along the tangent inverted) has the same total norm but not
the same largest atom force (on the Li3P|LiCl crossing 0.049 eV/A against 0.079). The
saddle certificate (:mod:`interphase_dft.recipes.saddle`) judges the unprojected force. A
stored band that converged by the NEB force alone (checkpoints written before this rule)
is continued from its last band until both hold (with ``reopen``, below).

Steps are accepted optimizer steps (one checkpoint record each), at most ``settings.steps``
over all restarts; the runner ends a run there itself, since ASE's ODE solver counts its
rejected trial steps against its own limit. The ODE solver also gives up early when its
adaptive step falls below its minimum: a band that stalls so is continued from its last
band with :data:`FALLBACK` (FIRE) for the steps left, in the same checkpoint (``fallback``
in its state, so a resume after a kill continues with FIRE too; ``stalled`` in the final
state when the last optimizer gave up as well).

With ``reopen``, a finished stored band is continued when it no longer counts as finished
and steps are left: converged by the NEB force alone (checkpoints written before the rule
above), stalled (continued with FIRE; an ODE checkpoint written before stalls were recorded
that ended unconverged is taken as stalled: it cannot tell a stall from running out of
solver iterations), or ended at a lower step limit than ``settings.steps`` (continued with
the optimizer it used).
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

from interphase_dft.calc.checkpoint import Checkpoint, info, remove_file, snapshot
from interphase_dft.calc.guard import CalcFactory, GuardedCalculator, check_geometry
from interphase_dft.calc.settings import NEBSettings
from interphase_dft.constraints import max_force
from interphase_dft.errors import InputError
from interphase_dft.schemas import settings_hash, structure_hash

log = logging.getLogger("interphase_dft.calc")


@dataclass
class NEBResult:
    """Outcome of a NEB run (energies eV absolute, forces eV/Angstrom).

    ``image_fmax`` holds the largest force on each intermediate image (NEB forces, springs
    included); ``climbing_image`` is the index of the highest image when it climbs.
    """

    images: list[Atoms]
    energies: list[float]
    image_fmax: list[float] = field(default_factory=list)
    fmax: float = 0.0
    steps: int = 0
    converged: bool = False
    force_calls: int = 0
    climbing_image: int | None = None
    warnings: list[str] = field(default_factory=list)
    wall_time: float = 0.0
    resumed: bool = False
    stopped: str | None = None
    #: a joined path whose hops end at different geometries or energies of their shared
    #: minimum (:func:`interphase_dft.recipes.neb_path.join_bands`); None when they agree
    seam_mismatch: str | None = None


class _Stop(Exception):
    """Raised by the step observer to end the optimizer run (``stop_at`` said why)."""


#: the NEBSettings fields that enter a band checkpoint's fingerprint
BAND_FIELDS = ("spring", "method", "optimizer")


def _band_fingerprint(images: list[Atoms], settings: NEBSettings, fmax: float,
                      climb: bool, extra: dict[str, Any]) -> str:
    h = "".join(structure_hash(im)[:8] for im in (images[0], images[-1]))
    # what shapes the band only: a rerun with more steps, another budget or other settings of
    # the recipes around it (ml_*, dft_refine, al_*) continues the stored band
    band = {k: getattr(settings, k) for k in BAND_FIELDS}
    return h + "-" + settings_hash({**band, "fmax_used": fmax, "climb_used": climb,
                                    **extra})[:16]


def _image_fmax(neb: Any) -> list[float]:
    f = np.asarray(neb.get_forces()).reshape(neb.nimages - 2, neb.natoms, 3)
    return [float(np.linalg.norm(fi, axis=1).max()) for fi in f]


def _climbing_force(band: list[Atoms], climb: bool) -> float:
    """Largest atom force (unprojected, constraints applied) on the climbing image of an
    evaluated band (the highest interior image, as :class:`ase.mep.NEB` picks it), eV/A;
    0 without a climbing image."""
    if not climb or len(band) < 3:
        return 0.0
    e = [float(im.get_potential_energy()) for im in band[1:-1]]
    return max_force(band[int(np.argmax(e)) + 1])


def _meets_rule(result: NEBResult, fmax: float, climb: bool) -> bool:
    """A stored result converged also by its climbing image's unprojected force."""
    return not (result.converged and _climbing_force(result.images, climb) > fmax)


def _check_band(images: list[Atoms]) -> None:
    if len(images) < 3:
        raise InputError("a NEB band needs at least 3 images (2 endpoints + 1)")
    for end in (images[0], images[-1]):
        if end.calc is None or "energy" not in end.calc.results:
            raise InputError("NEB endpoints need energies: relax them first and pass the "
                             "relaxed Atoms (with their SinglePointCalculator)")


def _working_band(images: list[Atoms], ckpt: Checkpoint, calc_factory: CalcFactory,
                  label: str) -> tuple[list[Atoms], list[GuardedCalculator]]:
    """Copies of ``images`` at the last recorded band, a guarded calculator per inner image.

    Inner images that carry energy and forces for their geometry (the last record, or results
    given with ``images``) are not recomputed.
    """
    n = len(images)
    band = [im.copy() for im in images]
    for im, src in zip(band, images, strict=True):
        im.set_constraint([c.copy() for c in src.constraints])
    band[0].calc = images[0].calc
    band[-1].calc = images[-1].calc
    seeds: list[Atoms | None] = [None] * n
    for i in range(1, n - 1):  # interior images that already carry results (e.g. checks)
        calc = images[i].calc
        if calc is not None and {"energy", "forces"} <= set(getattr(calc, "results", {})):
            seeds[i] = images[i]
    if ckpt.last is not None:
        for i in range(1, n - 1):
            band[i].positions = ckpt.last[i].positions
            seeds[i] = ckpt.last[i]
        info(log, "neb %s: resuming from band %d", label, ckpt.n - 1)
    else:
        ckpt.reset_optimizer()
    guards = []
    for i in range(1, n - 1):
        check_geometry(band[i], what=f"NEB image {i}")
        g = GuardedCalculator(calc_factory, label=f"{label}-img{i}", seed=seeds[i])
        band[i].calc = g
        guards.append(g)
    return band, guards


def _band_residual(forces: Any = None, positions: Any = None) -> float:
    """Largest atom force of a band's NEB force vector, eV/Angstrom (climbing image included)."""
    return float(np.linalg.norm(np.asarray(forces).reshape(-1, 3), axis=1).max())


#: the optimizer that continues a band whose ODE solver stalled
FALLBACK = "FIRE"


class _Limit(Exception):
    """Raised by the step observer when the band has taken ``settings.steps`` steps (ASE's
    ODE solver counts its rejected trial steps against its own limit)."""


def _reopen_reason(state: dict[str, Any], stored: NEBResult, settings: NEBSettings,
                   fmax: float, climb: bool) -> str | None:
    """Why a finished stored band is continued with ``reopen`` (None: it stays as stored):
    ``'rule'`` (converged by its NEB force only), ``'stalled'`` (its ODE solver gave up) or
    ``'limit'`` (it used the fewer steps it was allowed then)."""
    if stored.stopped is not None or stored.steps >= settings.steps:
        return None
    if stored.converged:
        return None if _meets_rule(stored, fmax, climb) else "rule"
    if "stalled" in state:
        return "stalled" if state["stalled"] else "limit"
    # written before the stall was recorded: an ODE band that ended unconverged stalled or ran
    # out of solver iterations (rejected ones included), which the state does not tell apart;
    # either way FIRE continues it
    return "stalled" if settings.optimizer == "ode" and not state.get("fallback") else "limit"


def _optimizer(neb: Any, name: str, opt_path: Path, climb: bool) -> Any:
    """The band's optimizer ``name``, converging on the module's rule (every image's NEB
    force and the climbing image's own force)."""
    band = neb.images
    if name == "ode":
        from ase.mep.neb import NEBOptimizer

        opt = NEBOptimizer(neb, method="ode", logfile=None)
        # ASE's NEB residual leaves out the climbing image, so its ODE solver can stop with an
        # unconverged climbing image; converge on every image's force instead
        opt.get_residual = lambda F=None, X=None: (
            neb.get_residual() if F is None
            else max(_band_residual(F), _climbing_force(band, climb)))
        return opt
    from ase import optimize

    try:
        opt = getattr(optimize, name)(neb, restart=str(opt_path), logfile=None)
    except Exception as exc:  # a restart file cut short by a kill while it was written
        log.warning("neb: restart file %s unreadable (%s); the optimizer starts afresh from "
                    "the last band", opt_path, exc)
        remove_file(opt_path)
        opt = getattr(optimize, name)(neb, restart=str(opt_path), logfile=None)
    converged = opt.optimizable.converged
    opt.optimizable.converged = lambda gradient, fmax: (
        converged(gradient, fmax) and _climbing_force(band, climb) <= fmax)
    return opt


def run_neb(images: list[Atoms], calc_factory: CalcFactory, workdir: Path | str,
            settings: NEBSettings, *, label: str = "neb", fmax: float | None = None,
            climb: bool | None = None, describe: dict[str, Any] | None = None,
            stop_at: Callable[[list[float]], str | None] | None = None,
            reopen: bool = False) -> NEBResult:
    """Run (or resume) a NEB on the full band ``images``.

    Parameters
    ----------
    images
        Initial band including both endpoints (e.g. from IDPP interpolation). The endpoints
        must carry energies (a SinglePointCalculator from their relaxation); interior images
        that carry energy and forces for their geometry are not recomputed.
    calc_factory
        ``factory(atoms, attempt=0, label='') -> Calculator``; one calculator per image.
    workdir
        Checkpoint directory (see module docstring).
    settings
        NEB settings: spring (eV/Angstrom^2), method, optimizer, steps; ``fmax`` (eV/Angstrom)
        and ``climb`` unless overridden.
    label
        Stem of the checkpoint file names and of the image labels (``{label}-img{i}``).
    fmax, climb
        Override ``settings.fmax`` / ``settings.climb`` (used for the ML pre-stage).
    describe
        Extra description of the calculator that goes into the checkpoint fingerprint.
    stop_at
        Called with the band's energies (endpoints included, eV) after every step, the first
        and a resumed band included; a reason (str) ends the run there, not converged.
    reopen
        Continue a finished stored band that no longer counts as finished (see the module
        docstring); off, a finished band is returned as stored. Only for a band that no
        later stored stage was computed from (the reference-level finish): continuing a
        surrogate band of an active-learning round would change the images its stored
        reference points belong to. Where a later stage was computed from a reopened band
        (a split at an intermediate minimum of a band that had ended at its step limit), that
        stage's checkpoint refuses the continued band and names itself; nothing is
        overwritten.

    Returns
    -------
    NEBResult
        The band with energies and forces; ``steps`` and ``force_calls`` over all restarts.
    """
    from ase.mep import NEB

    fmax = settings.fmax if fmax is None else fmax
    climb = settings.climb if climb is None else climb
    _check_band(images)
    n = len(images)
    ckpt = Checkpoint(workdir, label, kind="neb", band_size=n, what="band",
                      fingerprint=_band_fingerprint(images, settings, fmax, climb,
                                                    describe or {}))
    ckpt.load()
    restart = False  # a stored band whose ODE solver stalled starts its FALLBACK run now
    if ckpt.done:
        stored = _result_from_state(ckpt.state or {}, ckpt.last or [])
        why = _reopen_reason(ckpt.state or {}, stored, settings, fmax, climb) if reopen else None
        if why is None:
            return stored
        restart = why == "stalled" and not ckpt.prior("fallback", False)
        info(log, "neb %s: the stored band %s; continuing it%s to neb.steps = %d", label, {
            "rule": f"converged by its NEB force only (climbing image's own force "
                    f"{_climbing_force(stored.images, climb):.4f} > {fmax} eV/A)",
            "stalled": f"stalled at step {ckpt.steps} (fmax {stored.fmax:.4f} eV/A)",
            "limit": f"ended at its step limit {ckpt.steps}"}[why],
            f" with {FALLBACK}" if restart else "", settings.steps)
    fallback = restart or bool(ckpt.prior("fallback", False))
    resumed = ckpt.n > 0
    band, guards = _working_band(images, ckpt, calc_factory, label)
    prior_calls = int(ckpt.prior("force_calls", 0))
    prior_time = float(ckpt.prior("wall_time", 0.0))
    neb = NEB(band, k=settings.spring, climb=climb, method=settings.method,
              allow_shared_calculator=False)
    if restart:  # the stalled band's fallback run starts now
        ckpt.reset_optimizer()
    opt = _optimizer(neb, FALLBACK if fallback else settings.optimizer, ckpt.opt_path, climb)
    t0 = time.perf_counter()

    def current(steps: int) -> NEBResult:
        img_fmax = _image_fmax(neb)  # evaluates the band first: the snapshots are current
        snap = [snapshot(im, im.calc.results) for im in band]
        energies = [float(im.get_potential_energy()) for im in snap]
        ci = int(np.argmax(energies[1:-1])) + 1 if climb else None
        if ci is not None:  # the module's rule: its own force too
            img_fmax[ci - 1] = max(img_fmax[ci - 1], _climbing_force(snap, climb))
        return NEBResult(
            images=snap, energies=energies, image_fmax=img_fmax,
            fmax=max(img_fmax) if img_fmax else 0.0, steps=steps,
            converged=False, force_calls=prior_calls + sum(g.calls for g in guards),
            climbing_image=ci, warnings=[w for g in guards for w in g.warnings],
            wall_time=prior_time + time.perf_counter() - t0,
        )

    def observe(check: bool = True) -> None:
        if ckpt.is_new(band):
            r = current(steps=ckpt.n)  # the step number of the record written now
            ckpt.record(r.images)
            ckpt.update(_state(r, n, fallback, settings.steps))
            info(log, "neb %s step %d: E-E0 max = %.4f eV, fmax = %.4f eV/A, force calls %d",
                 label, r.steps, max(r.energies) - r.energies[0], r.fmax, r.force_calls)
        if check and stop_at is not None and (why := stop_at(
                [float(im.get_potential_energy()) for im in band])):
            raise _Stop(why)
        if check and ckpt.steps >= settings.steps:
            raise _Limit

    def advance(opt: Any) -> bool:
        """Run ``opt`` to convergence or the step limit; False when it gave up before both
        (ASE's ODE solver, its adaptive step below its minimum)."""
        if settings.steps <= ckpt.steps:
            return True
        # the ODE optimizer evaluates the band before its first callback: make sure the
        # first band is checkpointed even if the first step fails
        neb.get_forces()
        observe()
        try:
            # the observer ends the run at settings.steps accepted steps: the solver's own
            # limit counts rejected trial steps too, so it is set out of reach
            opt.run(fmax=fmax, steps=100 * (settings.steps - ckpt.steps))
        except _Limit:
            return True
        observe(check=False)
        return current(steps=ckpt.steps).fmax <= fmax

    opt.attach(observe, interval=1)
    stopped, stalled = None, False
    try:
        stalled = not advance(opt)
        if stalled and not fallback and settings.optimizer == "ode":
            fallback = True
            ckpt.update(_state(current(steps=ckpt.steps), n, fallback, settings.steps))
            info(log, "neb %s: the ODE solver stalled at step %d; continuing with %s",
                 label, ckpt.steps, FALLBACK)
            ckpt.reset_optimizer()
            opt = _optimizer(neb, FALLBACK, ckpt.opt_path, climb)
            opt.attach(observe, interval=1)
            stalled = not advance(opt)
    except _Stop as stop:
        stopped = str(stop)
    observe(check=False)
    result = current(steps=ckpt.steps)
    # every image, the climbing image included, at or below fmax (the optimizer's own flag
    # is not enough: see _optimizer)
    result.converged = result.fmax <= fmax and stopped is None
    result.resumed, result.stopped = resumed, stopped
    if stopped is not None:
        result.warnings.append(f"neb {label}: stopped after {result.steps} steps: {stopped}")
        log.warning(result.warnings[-1])
    elif not result.converged:
        result.warnings.append(f"neb {label}: not converged after {result.steps} steps "
                               f"(fmax {result.fmax:.3f} > {fmax} eV/A)")
    if fallback:
        result.warnings.append(f"neb {label}: the ODE solver stalled; the band was continued "
                               f"with {FALLBACK}")
    ckpt.finish({**_state(result, n, fallback, settings.steps),
                 "stalled": stalled and stopped is None})
    return result


def _state(r: NEBResult, n: int, fallback: bool, limit: int) -> dict[str, Any]:
    """The runner's fields of the checkpoint state (``n_band``: images per band;
    ``fallback``: the band continues with :data:`FALLBACK`; ``step_limit``: the steps it was
    allowed; the final state adds ``stalled``: its last optimizer gave up before
    convergence and the step limit)."""
    return {
        "steps": r.steps, "n_band": n, "energies": r.energies, "image_fmax": r.image_fmax,
        "fmax": r.fmax, "converged": r.converged, "force_calls": r.force_calls,
        "climbing_image": r.climbing_image, "warnings": r.warnings, "wall_time": r.wall_time,
        "stopped": r.stopped, "fallback": fallback, "step_limit": limit,
    }


def _result_from_state(state: dict[str, Any], band: list[Atoms]) -> NEBResult:
    return NEBResult(
        images=band, energies=list(state["energies"]), image_fmax=list(state["image_fmax"]),
        fmax=state["fmax"], steps=state["steps"], converged=state["converged"],
        force_calls=state["force_calls"], climbing_image=state.get("climbing_image"),
        warnings=list(state.get("warnings", [])), wall_time=state.get("wall_time", 0.0),
        resumed=True, stopped=state.get("stopped"),
    )
