"""Is a relaxing endpoint still the state it was built as? The basin rule of a hop's endpoints.

A hop's endpoints put the hopping Li (``atoms.info['li_index']``) on two sites: its own
(initial: site i, final: site j) and the other endpoint's, ``separation`` apart. When an
endpoint relaxed at the barrier's level carries the hopping Li to within :data:`ARRIVED` x
``separation`` of the other endpoint's site, that endpoint is not a minimum of its own: the Li
crosses to the other site without a barrier, and the hop has no saddle in that direction
(:data:`~interphase_dft.barrier_status.NOT_A_MINIMUM`). Arriving near the other site, not
only passing the midpoint, is asked for so that a relaxation into a third minimum between
the sites (an interface void of an interstitial hop) is not taken for a crossing.

:class:`SiteWatch` is the rule as a ``watch`` of :func:`interphase_dft.calc.runners.relax`,
so the relaxation stops as soon as it happens instead of relaxing on into the other endpoint.
Only a move made by that relaxation counts: a start that already has the Li there (moved by
an earlier surrogate stage) is not judged (``relax`` drops a watch that fires on its input),
and only the two real endpoints of a hop are watched, not the intermediate minima of a joined
path.

Distances in Angstrom, with the minimum-image convention along periodic directions when
``mic`` (as the band interpolation uses it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from interphase_dft.geometry import displacements, mic_distance, mic_vectors

#: the hopping Li counts as arrived at the other site within this fraction of the sites'
#: separation
ARRIVED = 1.0 / 3.0
#: a host atom that moves farther than this while an endpoint relaxes has changed site
#: (Angstrom): more than the relaxation of the bonded neighbours of a point defect (a few
#: tenths of an Angstrom), less than a hop between lattice sites (2.3 Angstrom and more)
REARRANGED = 1.0

log = logging.getLogger("interphase_dft.recipes")


@dataclass(frozen=True)
class SiteWatch:
    """The basin rule for one endpoint (module docstring).

    Attributes
    ----------
    name
        ``'initial'`` or ``'final'``.
    li_index
        Index of the hopping Li.
    own, other
        Positions of that Li in this endpoint and in the other endpoint as built, Angstrom.
    separation
        Distance between the two sites, Angstrom.
    mic
        Minimum-image distances along the periodic directions of the watched cell.
    """

    name: str
    li_index: int
    own: tuple[float, float, float]
    other: tuple[float, float, float]
    separation: float
    mic: bool = True

    def distances(self, atoms: Atoms) -> tuple[float, float]:
        """Distances of the hopping Li in ``atoms`` from its own and the other site."""
        x = atoms.positions[self.li_index]
        d = mic_vectors(atoms, [x - np.asarray(self.own), x - np.asarray(self.other)], self.mic)
        own, other = np.linalg.norm(d, axis=1)
        return float(own), float(other)

    def __call__(self, atoms: Atoms) -> str | None:
        """Why ``atoms`` is no longer this endpoint, or None."""
        own, other = self.distances(atoms)
        if other > ARRIVED * self.separation:
            return None
        return (f"the hopping Li {self.li_index} of the {self.name} state left its site for "
                f"the other endpoint's ({self.separation:.2f} A away): {own:.2f} A from its "
                f"own, {other:.2f} A from the other; the {self.name} state is not a minimum "
                "at this level")


def site_watches(initial: Atoms, final: Atoms,
                 mic: bool = True) -> tuple[SiteWatch, SiteWatch] | None:
    """The watches of the two endpoints of one hop, or None when the endpoints do not name
    their hopping Li (``info['li_index']``, same in both) or it does not move between them."""
    li = initial.info.get("li_index")
    if li is None or final.info.get("li_index") != li or len(initial) != len(final):
        return None
    li = int(li)
    a = tuple(float(x) for x in initial.positions[li])
    b = tuple(float(x) for x in final.positions[li])
    separation = mic_distance(final, a, b, mic)
    if separation < 1e-6:  # the same site: nothing to watch
        return None
    return (SiteWatch("initial", li, a, b, separation, mic),
            SiteWatch("final", li, b, a, separation, mic))


class EndpointNotMinimum(Exception):
    """An endpoint relaxation at the barrier's level was stopped by its :class:`SiteWatch`.

    ``reason`` is the watch's text; ``path`` the relaxation's first and last geometries with
    their results (the downhill path of the hopping Li towards the other site);
    ``separation`` the distance between the two sites (Angstrom); ``calls`` the reference
    force calls of the hop up to the stop, where the raiser counts them (else 0).
    """

    def __init__(self, reason: str, path: list[Atoms], separation: float,
                 calls: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.separation = separation
        self.calls = calls


def raise_if_left(stopped: str | None, watch: SiteWatch | None, trajectory: str | Path,
                  calls: int = 0) -> None:
    """Raise :class:`EndpointNotMinimum` (with ``calls``) when a relaxation was ``stopped`` by
    its site ``watch``, with the first and last frames of its ``trajectory`` (the runner's
    ``{label}.traj``)."""
    if not stopped or watch is None:
        return
    from ase.io import read

    path = [read(str(trajectory), index) for index in (0, -1)]  # not the frames between
    raise EndpointNotMinimum(stopped, path, watch.separation, calls)


def rearrangement(start: Atoms, relaxed: Atoms, name: str, mic: bool = True) -> str | None:
    """Why the relaxation of the ``name`` endpoint from ``start`` to ``relaxed`` changed more
    than the hopping Li's site, or None: a host atom (any atom but ``info['li_index']``) that
    moved farther than :data:`REARRANGED`, e.g. a neighbouring Li that filled the vacancy the
    hopping Li left. The relaxed endpoint is then a minimum, but of another configuration
    than the one built, and the band between the endpoints moves more than one atom."""
    d = displacements(start, relaxed, mic)
    if not len(d):
        return None
    li = start.info.get("li_index")
    if li is not None:
        d[int(li)] = 0.0
    k = int(np.argmax(d))
    if d[k] <= REARRANGED:
        return None
    return (f"the {name} state rearranged while it relaxed: {relaxed[k].symbol} {k} moved "
            f"{d[k]:.2f} A (more than {REARRANGED} A: it changed site); the relaxed endpoint is "
            "not the state as built, and the hop between the endpoints moves more than the "
            "hopping Li")


def watched_rearrangement(start: Atoms, relaxed: Atoms, watch: SiteWatch | None) -> str | None:
    """:func:`rearrangement` of a watched endpoint relaxation (None without a watch), logged
    as a warning; the caller keeps it with the result."""
    if watch is None:
        return None
    moved = rearrangement(start, relaxed, watch.name, watch.mic)
    if moved:
        log.warning(moved)
    return moved
