"""Checkpoint files: an ASE trajectory of evaluated geometries plus a small JSON state file.

:class:`Checkpoint` is the protocol the runners share (static, relax, NEB). Files in
``workdir`` for a run called ``label``:

``{label}.traj``
    every recorded geometry with its results in a SinglePointCalculator; a record is one
    structure (static, relax) or one whole band (NEB, ``band_size`` frames);
``{label}.json``
    state: ``kind``, ``status`` (``running`` while the optimizer works, ``done`` at the end),
    ``fingerprint`` of the input and settings, plus the runner's own fields;
``{label}-opt.json``
    the optimizer's own restart file (BFGS Hessian, FIRE velocities, ...).

A state written for a different fingerprint is refused (:class:`InputError`); a ``done``
state with at least one complete record is the stored result; otherwise the run resumes
from the last complete record, and an optimizer restart file without any record is removed.

All writes happen on MPI rank 0 only (``ase.parallel.world``) and are followed by a barrier,
so a run started with ``gpaw -P N python ...`` or ``mpiexec`` writes each file once. JSON files
are written atomically (temporary file + rename), so a run killed at any moment leaves either
the old or the new state, never a truncated one. A trajectory whose last frame was cut short
by a kill is read up to its last complete frame.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.trajectory import Trajectory
from ase.parallel import world

from interphase_dft.errors import InputError


def is_master() -> bool:
    """True on MPI rank 0 (the rank that writes files)."""
    return world.rank == 0


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as JSON on rank 0, then synchronise all ranks."""
    if is_master():
        write_json_here(path, data)
    world.barrier()


def write_json_here(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as JSON from the calling rank alone (no barrier): for work
    that only one rank does, such as storing the weights it trained."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_default))
    os.replace(tmp, path)


def info(logger: logging.Logger, msg: str, *args: Any) -> None:
    """``logger.info`` on rank 0 only (progress lines are printed once under MPI)."""
    if is_master():
        logger.info(msg, *args)


def remove_file(path: Path) -> None:
    """Delete ``path`` on rank 0 (if present); every rank must call this (two barriers)."""
    path = Path(path)
    world.barrier()
    if is_master():
        path.unlink(missing_ok=True)
    world.barrier()


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON content of ``path`` or ``None`` when it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def snapshot(atoms: Atoms, results: dict[str, Any]) -> Atoms:
    """Copy of ``atoms`` with ``results`` (energy, forces, stress) in a SinglePointCalculator."""
    copy = atoms.copy()
    keep = {k: v for k, v in results.items() if k in ("energy", "free_energy", "forces", "stress",
                                                      "magmom", "magmoms")}
    copy.calc = SinglePointCalculator(copy, **keep)
    return copy


def append_frame(path: Path, atoms: Atoms) -> None:
    """Append one frame (with its SinglePointCalculator results) to trajectory ``path``."""
    path = Path(path)
    if is_master():
        path.parent.mkdir(parents=True, exist_ok=True)
        with Trajectory(str(path), "a", master=True) as traj:
            traj.write(atoms)
    world.barrier()


def read_frames(path: Path) -> list[Atoms]:
    """All complete frames of trajectory ``path`` (empty list if missing or unreadable)."""
    path = Path(path)
    frames: list[Atoms] = []
    if not path.exists() or path.stat().st_size == 0:
        return frames
    try:
        traj = Trajectory(str(path), "r")
    except Exception:  # a header cut short by a kill: nothing usable
        return frames
    with traj:
        for i in range(len(traj)):
            try:
                frames.append(traj[i])
            except Exception:  # a frame cut short by a kill: stop at the last good one
                break
    return frames


def same_geometry(a: Atoms, b: Atoms, tol: float = 1e-8) -> bool:
    """Same number of atoms, positions and cell within ``tol`` (Angstrom)."""
    return (
        len(a) == len(b)
        and np.allclose(a.positions, b.positions, atol=tol, rtol=0)
        and np.allclose(a.cell[:], b.cell[:], atol=tol, rtol=0)
    )


class Checkpoint:
    """Checkpoint files of one run (see the module docstring).

    Parameters
    ----------
    workdir
        Directory of the files.
    label
        Stem of the file names.
    kind
        Stored as ``state['kind']`` (``'static'``, ``'relax'``, ``'neb'``).
    fingerprint
        Identity of the input and settings; a stored state with another one is refused.
    band_size
        Frames per record (1 for one structure, the number of images for a NEB band).
    what
        What the fingerprint identifies, for the error message (``'structure'``, ``'band'``).
    """

    def __init__(self, workdir: Path | str, label: str, *, kind: str, fingerprint: str,
                 band_size: int = 1, what: str = "structure") -> None:
        workdir = Path(workdir)
        self.traj = workdir / f"{label}.traj"
        self.state_path = workdir / f"{label}.json"
        self.opt_path = workdir / f"{label}-opt.json"
        self.kind = kind
        self.fingerprint = fingerprint
        self.band_size = band_size
        self.what = what
        self.state: dict[str, Any] | None = None
        self.last: list[Atoms] | None = None
        self.n = 0  # complete records in the trajectory

    def load(self) -> dict[str, Any] | None:
        """Read the state and the complete records; return the state (None without one).

        Raises
        ------
        InputError
            The stored state belongs to another fingerprint.
        """
        state = read_json(self.state_path)
        if state and state.get("fingerprint") not in (None, self.fingerprint):
            raise InputError(
                f"{self.state_path} belongs to a different {self.what} or settings "
                f"({state.get('fingerprint')} != {self.fingerprint}); use a fresh workdir or "
                "delete it"
            )
        frames = read_frames(self.traj)
        size = self.band_size
        self.n = len(frames) // size
        self.last = frames[(self.n - 1) * size: self.n * size] if self.n else None
        self.state = state
        return state

    @property
    def done(self) -> bool:
        """The loaded state says the run finished and its last record is readable."""
        return bool(self.state and self.state.get("status") == "done" and self.n)

    @property
    def steps(self) -> int:
        """Optimizer steps of the records so far (the first record is the start)."""
        return max(self.n - 1, 0)

    def prior(self, key: str, default: Any) -> Any:
        """``state[key]`` of the loaded state (what earlier runs accumulated), else ``default``."""
        return self.state.get(key, default) if self.state else default

    def reset_optimizer(self) -> None:
        """Remove the optimizer restart file (it belongs to nothing without a record)."""
        remove_file(self.opt_path)

    def is_new(self, images: list[Atoms]) -> bool:
        """True unless ``images`` have the geometry of the last record."""
        if self.last is None:
            return True
        return not all(same_geometry(a, b) for a, b in zip(self.last, images, strict=True))

    def record(self, frames: list[Atoms]) -> None:
        """Append one record (``band_size`` frames with their results) to the trajectory."""
        for frame in frames:
            append_frame(self.traj, frame)
        self.n += 1
        self.last = list(frames)

    def update(self, fields: dict[str, Any]) -> None:
        """Write the state of a running optimization."""
        self._write("running", fields)

    def finish(self, fields: dict[str, Any]) -> None:
        """Write the final state; a later :meth:`load` returns it as the stored result."""
        self._write("done", fields)

    def _write(self, status: str, fields: dict[str, Any]) -> None:
        write_json(self.state_path, {"kind": self.kind, "status": status,
                                     "fingerprint": self.fingerprint, **fields})
