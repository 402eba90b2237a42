"""Climbing-image NEB runner with checkpoints.

Method: :class:`ase.mep.NEB` with ``settings.method`` (default ``improvedtangent``), spring
``settings.spring`` (eV/Angstrom^2), the climbing image switched on **from the start** when
``settings.climb`` (the ODE optimizer handles this robustly from an IDPP band), optimizer
``settings.optimizer``: ``ode`` = :class:`ase.mep.neb.NEBOptimizer` (adaptive ODE solver),
or ``FIRE``/``BFGS``/``MDMin`` from :mod:`ase.optimize`. Each intermediate image gets its own
calculator from the factory (label ``img{i}``); endpoint energies come from the given
endpoint results and are never recomputed.

Checkpoint files in ``workdir`` for ``label``: ``{label}.traj`` (the full band, endpoints
included, after every optimizer step), ``{label}.json`` (state) and ``{label}-opt.json``
(restart file of FIRE/BFGS/MDMin). A second call with the same arguments continues from the
last complete band in the trajectory (its stored energies and forces are reused), or returns the
stored result when the run had finished.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from interphase_dft.calc.checkpoint import (
    append_frame,
    info,
    read_frames,
    read_json,
    remove_file,
    same_geometry,
    snapshot,
    write_json,
)
from interphase_dft.calc.guard import CalcFactory, GuardedCalculator, check_geometry
from interphase_dft.calc.settings import NEBSettings
from interphase_dft.errors import InputError
from interphase_dft.schemas import settings_hash, structure_hash

log = logging.getLogger("interphase_dft.calc")


@dataclass
class NEBResult:
    """Outcome of a NEB run (energies eV absolute, forces eV/Angstrom)."""

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


def _band_fingerprint(images: list[Atoms], settings: NEBSettings, fmax: float,
                      climb: bool, extra: dict) -> str:
    h = "".join(structure_hash(im)[:8] for im in (images[0], images[-1]))
    return h + "-" + settings_hash({**settings.model_dump(), "fmax_used": fmax,
                                    "climb_used": climb, **extra})[:16]


def _image_fmax(neb) -> list[float]:
    f = np.asarray(neb.get_forces()).reshape(neb.nimages - 2, neb.natoms, 3)
    return [float(np.linalg.norm(fi, axis=1).max()) for fi in f]


def run_neb(images: list[Atoms], calc_factory: CalcFactory, workdir: Path | str,
            settings: NEBSettings, *, label: str = "neb", fmax: float | None = None,
            climb: bool | None = None, describe: dict | None = None) -> NEBResult:
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
        NEB settings: spring, method, optimizer, steps; ``fmax``/``climb`` unless overridden.
    fmax, climb
        Override ``settings.fmax`` / ``settings.climb`` (used for the ML pre-stage).
    describe
        Extra description of the calculator that goes into the checkpoint fingerprint.
    """
    from ase.mep import NEB
    from ase.mep.neb import NEBOptimizer

    workdir = Path(workdir)
    fmax = settings.fmax if fmax is None else fmax
    climb = settings.climb if climb is None else climb
    n = len(images)
    if n < 3:
        raise InputError("a NEB band needs at least 3 images (2 endpoints + 1)")
    for end in (images[0], images[-1]):
        if end.calc is None or "energy" not in end.calc.results:
            raise InputError("NEB endpoints need energies: relax them first and pass the "
                             "relaxed Atoms (with their SinglePointCalculator)")
    traj = workdir / f"{label}.traj"
    state_path = workdir / f"{label}.json"
    opt_path = workdir / f"{label}-opt.json"
    fp = _band_fingerprint(images, settings, fmax, climb, describe or {})
    state = read_json(state_path)
    if state and state.get("fingerprint") not in (None, fp):
        raise InputError(f"{state_path} belongs to a different band or settings; use a fresh "
                         "workdir or delete it")
    frames = read_frames(traj)
    nbands = len(frames) // n
    if state and state.get("status") == "done" and nbands:
        band = frames[(nbands - 1) * n: nbands * n]
        return _result_from_state(state, band)

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
    if nbands:
        last = frames[(nbands - 1) * n: nbands * n]
        for i in range(1, n - 1):
            band[i].positions = last[i].positions
            seeds[i] = last[i]
        info(log, "neb %s: resuming from band %d", label, nbands - 1)
    else:
        remove_file(opt_path)
    guards = []
    for i in range(1, n - 1):
        check_geometry(band[i], what=f"NEB image {i}")
        g = GuardedCalculator(calc_factory, label=f"{label}-img{i}", seed=seeds[i])
        band[i].calc = g
        guards.append(g)
    prior_calls = int(state.get("force_calls", 0)) if state else 0
    prior_time = float(state.get("wall_time", 0.0)) if state else 0.0
    neb = NEB(band, k=settings.spring, climb=climb, method=settings.method,
              allow_shared_calculator=False)
    if settings.optimizer == "ode":
        opt = NEBOptimizer(neb, method="ode", logfile=None)
    else:
        from ase import optimize

        opt = getattr(optimize, settings.optimizer)(neb, restart=str(opt_path), logfile=None)
    t0 = time.perf_counter()
    written = {"n": nbands, "last": frames[(nbands - 1) * n: nbands * n] if nbands else None}

    def current(converged: bool = False) -> NEBResult:
        img_fmax = _image_fmax(neb)
        snap = [snapshot(im, im.calc.results) for im in band]
        energies = [float(im.get_potential_energy()) for im in snap]
        ci = int(np.argmax(energies[1:-1])) + 1 if climb else None
        return NEBResult(
            images=snap, energies=energies, image_fmax=img_fmax,
            fmax=max(img_fmax) if img_fmax else 0.0, steps=max(written["n"] - 1, 0),
            converged=converged, force_calls=prior_calls + sum(g.calls for g in guards),
            climbing_image=ci, warnings=[w for g in guards for w in g.warnings],
            wall_time=prior_time + time.perf_counter() - t0,
        )

    def observe() -> None:
        last = written["last"]
        if last is not None and all(same_geometry(a, b) for a, b in zip(last, band, strict=True)):
            return
        written["n"] += 1
        r = current()
        for im in r.images:
            append_frame(traj, im)
        written["last"] = r.images
        _write_state(state_path, r, fp, "running", n)
        e0 = r.energies[0]
        info(log, "neb %s step %d: E-E0 max = %.4f eV, fmax = %.4f eV/A, force calls %d", label,
                 r.steps, max(r.energies) - e0, r.fmax, r.force_calls)

    opt.attach(observe, interval=1)
    remaining = settings.steps - max(nbands - 1, 0)
    converged = False
    if remaining > 0:
        # the ODE optimizer evaluates the band before its first callback: make sure step 0
        # is checkpointed even if the first step fails
        neb.get_forces()
        observe()
        converged = bool(opt.run(fmax=fmax, steps=remaining))
    observe()
    result = current()
    result.converged = converged or result.fmax <= fmax
    result.resumed = bool(nbands)
    if not result.converged:
        result.warnings.append(f"neb {label}: not converged after {result.steps} steps "
                               f"(fmax {result.fmax:.3f} > {fmax} eV/A)")
    _write_state(state_path, result, fp, "done", n)
    return result


def _write_state(path: Path, r: NEBResult, fp: str, status: str, n: int) -> None:
    write_json(path, {
        "kind": "neb", "status": status, "fingerprint": fp, "steps": r.steps, "n_band": n,
        "energies": r.energies, "image_fmax": r.image_fmax, "fmax": r.fmax,
        "converged": r.converged, "force_calls": r.force_calls,
        "climbing_image": r.climbing_image, "warnings": r.warnings, "wall_time": r.wall_time,
    })


def _result_from_state(state: dict, band: list[Atoms]) -> NEBResult:
    return NEBResult(
        images=band, energies=list(state["energies"]), image_fmax=list(state["image_fmax"]),
        fmax=state["fmax"], steps=state["steps"], converged=state["converged"],
        force_calls=state["force_calls"], climbing_image=state.get("climbing_image"),
        warnings=list(state.get("warnings", [])), wall_time=state.get("wall_time", 0.0),
        resumed=True,
    )
