"""Paths of more than one hop: joining two bands converged through an intermediate minimum.

A band that passes through an intermediate minimum M (an image well below both endpoints)
is not one hop. :func:`interphase_dft.recipes.barrier.neb_barrier` then relaxes M and
converges the hops A -> M and M -> B separately; this module joins the two bands into one
path and summarises each hop.

The barriers of a joined path are its energetic spans (:mod:`interphase_dft.span`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from interphase_dft.calc.neb import NEBResult


def segment_summary(res: NEBResult, first: int, stage: str, *, ml_barrier: float | None,
                    fallback: str | None) -> dict[str, object]:
    """What one hop of a joined path stores (image indices refer to the joined path)."""
    e = np.asarray(res.energies, float)
    return {
        "images": [first, first + len(res.images) - 1],
        "barrier_forward": float(e.max() - e[0]),
        "barrier_reverse": float(e.max() - e[-1]),
        "reaction_energy": float(e[-1] - e[0]),
        "converged": bool(res.converged),
        "fmax": float(res.fmax),
        "stage": stage,
        "ml_barrier": ml_barrier,
        "ml_fallback_reason": fallback,
    }


def join_bands(first: NEBResult, second: NEBResult, middle_fmax: float) -> NEBResult:
    """One path from two bands that share an endpoint (``first`` ends where ``second`` starts).

    ``middle_fmax`` is the largest force on the shared (relaxed) minimum; it joins the
    per-image list of intermediate images, while ``fmax`` stays the largest force on the
    images of the two bands (how far each band is from its saddle).
    """
    images: list[Atoms] = [*first.images, *second.images[1:]]
    energies = [*first.energies, *second.energies[1:]]
    inner = np.asarray(energies[1:-1], float)
    return NEBResult(
        images=images, energies=energies,
        image_fmax=[*first.image_fmax, middle_fmax, *second.image_fmax],
        fmax=max(first.fmax, second.fmax), steps=first.steps + second.steps,
        converged=first.converged and second.converged,
        force_calls=first.force_calls + second.force_calls,
        climbing_image=int(np.argmax(inner)) + 1 if inner.size else None,
        warnings=[*first.warnings, *second.warnings],
        wall_time=first.wall_time + second.wall_time,
    )
