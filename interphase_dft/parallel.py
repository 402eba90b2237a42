"""Work that MPI rank 0 does for every rank.

GPAW runs the package's recipes on several MPI ranks; decisions and surrogate results that
feed checkpoints must be identical on all of them, so rank 0 computes and broadcasts. An
exception on rank 0 is sent too and raised on every rank: no rank waits forever in a
broadcast that rank 0 never reaches.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, TypeVar

from ase.parallel import broadcast, world

T = TypeVar("T")


def on_rank0(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` computed on MPI rank 0 and returned on every rank (its exception raised
    on every rank; one that cannot be pickled arrives as a RuntimeError with its text)."""
    out: tuple[T | None, BaseException | None] = (None, None)
    if world.rank == 0:
        try:
            out = (func(*args), None)
        except Exception as exc:
            try:
                pickle.dumps(exc)
                out = (None, exc)
            except Exception:
                out = (None, RuntimeError(f"{type(exc).__name__}: {exc}"))
    value, error = broadcast(out, root=0)
    if error is not None:
        raise error
    return value  # type: ignore[return-value]
