"""What a barrier is: the certification rule of a NEB band, and E_KRA.

Pure functions on energy profiles; no calculator is run here. Energies in eV, forces in
eV/Angstrom.

Rules (:func:`certify`, first match wins)
-----------------------------------------
1. ``not certified: over budget`` - a cost ceiling stopped the run (set by the recipe);
2. ``not certified: surrogate only`` - stage ``'ml'``: surrogate energies are never a barrier;
3. ``not certified: unrelaxed endpoints`` - an endpoint's largest force (free atoms) is above
   ``relax.fmax`` at the barrier's level (at the PBE//surrogate level: the DFT force on the
   surrogate minimum);
4. ``not certified: not one hop`` - the band passes through another minimum and was not split;
5. ``no saddle: reaction energy`` - the band's highest image is an endpoint (a monotonic band,
   or a final state above every interior image), or the highest interior image lies within
   :data:`SEPARATION` of an endpoint along the path (it is that minimum, not a saddle apart
   from it); for a joined path, any such hop;
6. ``not converged`` - the interior maximum's force (the climbing image, eV/Angstrom, at the
   barrier's level) is above ``neb.fmax``; for a joined path, the largest over its hops;
7. ``saddle`` - otherwise: a barrier.

The recipe itself ends a hop with ``no saddle: endpoint not a minimum`` when an endpoint's
relaxation at the barrier's level carries the hopping Li to the other endpoint's site
(:mod:`interphase_dft.recipes.basin`); no band is certified then.

E_KRA = E_saddle - (E_initial + E_final) / 2 (Van der Ven et al., PRB 64, 184307 (2001)),
with E_saddle the highest interior image of the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from interphase_dft.barrier_status import (
    NO_SADDLE,
    NOT_CONVERGED,
    NOT_ONE_HOP,
    OVER_BUDGET,
    SADDLE,
    SURROGATE_ONLY,
    UNRELAXED,
)

__all__ = ["SEPARATION", "Certificate", "certify", "e_kra", "hop_saddle"]

#: Angstrom of path length (3N-dimensional, minimum image) that the highest interior image must
#: keep from both endpoints of its hop to be a saddle. A climbing image converged to
#: neb.fmax = 0.05 eV/Angstrom on a curvature of about 1 eV/Angstrom^2 is placed to about
#: 0.05 Angstrom; closer to a minimum than twice that, it cannot be told apart from the
#: minimum (its energy above it is then numerical noise: 0.2 meV on the LiAl|Li2S hop,
#: docs/history.md session 13).
SEPARATION = 0.1


@dataclass(frozen=True)
class Certificate:
    """Outcome of :func:`certify`.

    Attributes
    ----------
    status
        One of the statuses of the module rules (``BarrierDoc.saddle``).
    note
        Why, with the numbers (``BarrierDoc.saddle_note``).
    saddle_image
        Index of the highest interior image of the path (None without one).
    saddle_fmax
        Force on that image (for a joined path: the largest over the hops' saddles), eV/A.
    """

    status: str
    note: str
    saddle_image: int | None = None
    saddle_fmax: float | None = None


def hop_saddle(energies: Sequence[float], path: Sequence[float] | None = None) -> int | None:
    """Index of the interior maximum of one hop when it is the band's maximum, else None.

    None for fewer than three images, when the highest image (ties included) is an endpoint,
    and, with ``path`` (cumulative path length of the images, Angstrom), when the interior
    maximum lies within :data:`SEPARATION` of an endpoint.
    """
    return None if _no_saddle(energies, path) else _top(energies)


def _top(energies: Sequence[float]) -> int:
    return int(np.argmax(np.asarray(energies, float)[1:-1])) + 1


def _no_saddle(energies: Sequence[float], path: Sequence[float] | None) -> str | None:
    """Why the hop ``energies`` has no saddle of its own (module rule 5), or None."""
    e = np.asarray(energies, float)
    if e.size < 3:
        return "the band has no interior image"
    top = _top(e)
    if e[top] <= max(e[0], e[-1]):
        return "highest image is an endpoint"
    if path is not None:
        x = np.asarray(path, float)
        near = min((x[top] - x[0], "initial"), (x[-1] - x[top], "final"))
        if near[0] < SEPARATION:
            return (f"highest interior image lies {near[0]:.3f} A from the {near[1]} endpoint "
                    f"along the path (< {SEPARATION} A: that minimum, not a saddle apart "
                    "from it)")
    return None


def e_kra(energies: Sequence[float]) -> float | None:
    """E_saddle - (E_initial + E_final)/2 with E_saddle the highest interior image, eV."""
    e = np.asarray(energies, float)
    if e.size < 3:
        return None
    return float(e[1:-1].max() - 0.5 * (e[0] + e[-1]))


def _unrelaxed(inner: np.ndarray, neb_fmax: float) -> str:
    """The note's clause for a band without a saddle whose interior images still carry
    forces above ``neb_fmax`` ('' when they do not): the profile bounds the forward barrier by
    the reaction energy along this path only."""
    if inner.size == 0 or inner.max() <= neb_fmax:
        return ""
    return (f"; its interior images are not relaxed (largest force {inner.max():.3f} eV/A > "
            f"neb.fmax {neb_fmax}): along this path the barriers are set by the endpoints "
            "(forward max(0, reaction energy)), and a relaxed path could still pass through an "
            "intermediate minimum")


def certify(energies: Sequence[float], image_fmax: Sequence[float], *, neb_fmax: float,
            relax_fmax: float, endpoint_fmax: Mapping[str, float],
            segments: Sequence[tuple[int, int]] = (), stage: str = "dft",
            continuous: bool = True, over_budget: bool = False,
            path: Sequence[float] | None = None) -> Certificate:
    """Certify a band by the module rules.

    Parameters
    ----------
    energies
        Image energies of the whole path (endpoints included), eV.
    image_fmax
        Largest force on each image of the path (same length as ``energies``), eV/Angstrom,
        at the barrier's level; for the climbing image its own (unprojected) force, which
        :func:`~interphase_dft.calc.neb.run_neb` converges together with its NEB force.
    neb_fmax, relax_fmax
        Convergence criteria of the band and of the endpoints, eV/Angstrom.
    endpoint_fmax
        Largest force on the free atoms of each minimum of the path (``'initial'``,
        ``'final'`` and the minima a joined path passes through), eV/Angstrom.
    segments
        Image ranges (first, last) of the hops of a joined path; empty for one hop.
    stage
        ``BarrierDoc.stage``.
    continuous
        False when the band passes through another minimum (``BarrierDoc.band_continuous``).
    over_budget
        A cost ceiling stopped the run.
    path
        Cumulative path length of the images, Angstrom (``BarrierDoc.path_coordinate``);
        None skips the separation test of rule 5.
    """
    e = np.asarray(energies, float)
    f = np.asarray(image_fmax, float)
    if over_budget:
        return Certificate(OVER_BUDGET, "a cost ceiling (settings.budget) stopped the run")
    if stage == "ml":
        return Certificate(SURROGATE_ONLY, "surrogate energies and forces (engine 'ml')")
    forces = ", ".join(f"{k} {v:.3f}" for k, v in endpoint_fmax.items())
    if max(endpoint_fmax.values()) > relax_fmax:
        return Certificate(UNRELAXED, f"endpoint forces {forces} eV/A > relax.fmax "
                           f"{relax_fmax} eV/A at the barrier's level")
    if not continuous:
        return Certificate(NOT_ONE_HOP, "the band passes through another minimum")
    hops = list(segments) or [(0, len(e) - 1)]
    tops = []
    for k, (lo, hi) in enumerate(hops, 1):
        why = _no_saddle(e[lo:hi + 1], None if path is None else path[lo:hi + 1])
        if why is not None:
            which = "the band" if len(hops) == 1 else f"hop {k} of {len(hops)}"
            return Certificate(NO_SADDLE, f"{which}: {why} "
                               f"(reaction energy {e[hi] - e[lo]:+.3f} eV)"
                               + _unrelaxed(f[lo + 1:hi], neb_fmax))
        tops.append(lo + _top(e[lo:hi + 1]))
    worst = max(tops, key=lambda i: f[i])
    highest = int(np.argmax(e[1:-1])) + 1
    note = ", ".join(f"image {i}: {f[i]:.3f} eV/A" for i in tops)
    if f[worst] > neb_fmax:
        return Certificate(NOT_CONVERGED, f"climbing-image force {note} > neb.fmax "
                           f"{neb_fmax} eV/A", highest, float(f[worst]))
    return Certificate(SADDLE, f"interior maximum, climbing-image force {note} <= neb.fmax "
                       f"{neb_fmax} eV/A; endpoint forces {forces} eV/A",
                       highest, float(f[worst]))
