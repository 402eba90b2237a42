"""Checkpoint files: an ASE trajectory of evaluated geometries plus a small JSON state file.

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


def is_master() -> bool:
    """True on MPI rank 0 (the rank that writes files)."""
    return world.rank == 0


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as JSON on rank 0, then synchronise all ranks."""
    path = Path(path)
    if is_master():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_default))
        os.replace(tmp, path)
    world.barrier()


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
