"""A certified barrier certified again at another level by re-converging its stationary points.

The sensitivity check (:mod:`interphase_dft.recipes.sensitivity`) gives the first-order change
of a barrier at fixed geometry; its forces say whether the geometries are still stationary. At
a level where they are not (the Li3P|LiCl crossing at a 2x2x1 k-mesh: 0.19-0.30 eV/A on its
Gamma-point minima and saddles), this recipe moves them: every minimum of the path is relaxed
and every saddle is searched again at the new level, starting from the stored geometries,
which is far cheaper than a new band (a band converges every image; here one relaxation per
minimum and one saddle search per hop). The result is a barrier document at the new level.

Energies in eV, forces in eV/Angstrom, lengths in Angstrom.

Rules
-----
- Only a **certified barrier** (status ``saddle``) is refined; its stationary images (ends of
  every hop and each hop's saddle) are those of
  :func:`~interphase_dft.recipes.sensitivity.stationary_images`. The new level is the stored
  settings with ``dft`` overrides (:func:`~interphase_dft.recipes.sensitivity.changed_settings`);
  the cells keep the document's electronic state
  (:func:`~interphase_dft.recipes.sensitivity.document_factory`).
- **Minima** (initial, the minima a joined path passes through, final) first, in path order:
  relaxed at the new level to ``relax.fmax`` within ``relax.steps`` from the stored geometry,
  with the surrogate's Hessian there as BFGS's starting curvature
  (:class:`~interphase_dft.calc.prior_bfgs.PriorBFGS`). A relaxation that carries the hopping
  Li more than :data:`BASIN_FRACTION` of its distance to the nearest adjacent minimum of the
  path (along the stored images, periodic images unwrapped) from its stored position is
  stopped, and two adjacent refined minima whose hopping Li end closer than
  :data:`BASIN_FRACTION` of their stored separation have merged: either way that state is not
  a minimum of this path at the new level (status ``no saddle: endpoint not a minimum``, no
  reaction energy, and the saddles are not searched).
- **Saddles**, after all minima held: a P-RFO search
  (:func:`~interphase_dft.calc.prfo.prfo_saddle`) from the stored saddle with the surrogate's
  Hessian there (eigenvalues below ``-HESSIAN_FLOOR`` kept), the stored band's tangent at the
  saddle followed first, to ``neb.fmax`` within ``neb.steps`` reference calls. It counts as
  the hop's saddle when it converged with exactly one negative eigenvalue and that mode (the
  lowest eigenvector of the search's final Hessian) lies along the path: the absolute cosine
  between it and the path's tangent at the search's start (the stored band's move from the
  image before the saddle to the image after it; free atoms, minimum image) is at least
  :data:`MODE_OVERLAP`.
- **A search that falls into a minimum.** At a new level the saddle can move far from the
  stored one, and a search started there can slide into one of its hop's refined minima (the
  Li3P|LiCl crossing's first hop at a 2x2x1 mesh: its Gamma saddle lies 0.2 A from the trap
  and the search ended 0.06 A from the refined trap, 0.007 eV above it). A search point
  whose hopping Li is closer to one of its hop's refined minima than :data:`FALLEN_FRACTION`
  of the hop's length (the Li's distance between them) and whose energy is less than
  :data:`FALLEN_ENERGY` above that minimum has fallen into it: that search stops (it is at
  the bottom of that basin; a saddle of the hop lies above its minima by the barrier, and a
  step past the top stays above by nearly as much). The number of negative eigenvalues of
  the search's Hessian is not asked: those that no reference step has tested are the
  surrogate's (the second hop of the same crossing kept two while its host relaxed). After
  every hop's
  search from its stored saddle, each hop whose search fell starts again from the highest of
  :data:`RESEED_IMAGES` interior points of the path interpolated between its refined minima
  (IDPP, periodic images unwrapped as stored; single points at the new level), following
  that path's tangent there, under the same rules. When no interior point lies above both
  minima, no search runs and no saddle of that hop was found at the new level. A point's
  ``calls`` count every reference call spent on it (both searches and the path's points).
- **Certification**: the refined stationary points form a path (initial, saddle, minimum,
  saddle, ..., final), certified by :func:`~interphase_dft.recipes.saddle.certify` like any
  band (endpoint forces, saddles above both ends of their hop, saddle forces); a saddle search
  that failed a rule above makes the document ``not converged`` with the reason (a failed
  search is no evidence that the hop has no saddle).
- **Cost**: every reference call is metered by the refinement's ledger
  (:class:`~interphase_dft.calc.budget.Ledger`, ceilings ``settings.budget.max_dft_calls`` and
  ``max_dft_hours``, summed over restarts) and recorded as a frame when a frame sink is given;
  at a ceiling the document is ``not certified: over budget`` with what was reached, and the
  same command with larger ceilings continues.
- The document: stage ``'dft-refined'``, the path of refined stationary points only (no
  images in between: ``spline`` is that raw profile), the hop's fields copied from the stored
  document except the work of adhesion (it was computed at the stored level), the calculator
  the new level applied, the warnings of every relaxation and search, and ``refinement``: the
  stored document's uid, the changes, the k-point mesh of the initial cell at both levels,
  per point the steps, calls, force, energy change at the new level and largest atom move
  from the stored geometry.
- Every relaxation, Hessian and saddle search is checkpointed under ``workdir/<label>``,
  labelled by the document and the changes: the same command resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.barrier_status import NO_SADDLE, NOT_A_MINIMUM, NOT_CONVERGED, SADDLE
from interphase_dft.builders.neb import interpolate_images
from interphase_dft.calc.budget import BudgetExceeded, Ledger, MeteredFactory
from interphase_dft.calc.checkpoint import info
from interphase_dft.calc.frames import FrameSink
from interphase_dft.calc.guard import CalcFactory, GuardedCalculator
from interphase_dft.calc.hessian import stored_hessian
from interphase_dft.calc.prfo import SaddleResult, Watch, prfo_saddle
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import InputError
from interphase_dft.geometry import displacements, mic_vectors
from interphase_dft.recipes.barrier_doc import HopRecord, over_budget_doc
from interphase_dft.recipes.neb_path import path_coordinate
from interphase_dft.recipes.saddle import certify, e_kra
from interphase_dft.recipes.saddle_search import HESSIAN_FLOOR, reference_level
from interphase_dft.recipes.sensitivity import (
    FactoryOf,
    Stationary,
    changed_settings,
    is_interface,
    mesh,
    stationary_images,
    stored_settings,
    tag,
)
from interphase_dft.schemas import BarrierDoc, NEBImageData, StructureData
from interphase_dft.span import span_barriers

log = logging.getLogger("interphase_dft.recipes")

#: smallest |cos| between a refined saddle's negative mode and its hop's direction
MODE_OVERLAP = 0.5
#: a minimum whose hopping Li moves more than this fraction of its distance to the nearest
#: adjacent minimum has left its site at the new level (and two adjacent minima closer than
#: this fraction of their stored separation have merged)
BASIN_FRACTION = 0.5
#: a saddle search point whose hopping Li comes closer to one of its hop's refined minima
#: than this fraction of the hop's length, less than FALLEN_ENERGY above it, has fallen into
#: that minimum
FALLEN_FRACTION = 0.15
#: eV: see FALLEN_FRACTION
FALLEN_ENERGY = 0.01
#: interior points of the path interpolated between a hop's refined minima, from the highest
#: of which a search that fell into a minimum starts again
RESEED_IMAGES = 3
#: the stage of a refined document (``BarrierDoc.stage``)
REFINED = "dft-refined"


@dataclass
class _Point:
    """One refined stationary point: its geometry (with the new level's energy and forces),
    and the record of how it was reached."""

    atoms: Atoms
    energy: float
    fmax: float
    record: dict[str, Any]
    search: SaddleResult | None = None
    tangent: np.ndarray | None = None


@dataclass
class _Refinement:
    """What one refinement works with: the stored document, the new level, its calculators,
    checkpoints and logs."""

    doc: BarrierDoc
    settings: CalcSettings
    changes: dict[str, list[Any]]
    stationary: Stationary
    images: list[Atoms]
    factory: CalcFactory
    hessian_factory: CalcFactory
    work: Path
    li: int
    run: RunLog
    description: dict[str, Any] = field(default_factory=dict)

    def stored(self, i: int) -> Atoms:
        """The stored geometry of image ``i`` (a copy)."""
        return self.images[i].copy()

    def separation(self, lo: int, hi: int, points: dict[int, _Point]) -> np.ndarray:
        """Every atom's move from the refined minimum of stored image ``lo`` to that of
        ``hi``: the stored travel between them plus each end's refined move (periodic
        images unwrapped as stored), shape (N, 3), Angstrom."""
        ends = [mic_vectors(self.images[k], points[k].atoms.positions
                            - self.images[k].positions) for k in (lo, hi)]
        return travel_vectors(self.images[lo:hi + 1]) + ends[1] - ends[0]


def hopping_li(doc: BarrierDoc, images: list[Atoms]) -> int:
    """Index of the hopping Li: ``interface_meta['li_index']``, else the atom that travels
    farthest along the stored ``images`` of ``doc`` (periodic images unwrapped: a hop into
    the next cell is a move, not a return)."""
    li = doc.interface_meta.get("li_index")
    if li is not None:
        return int(li)
    return int(np.argmax(np.linalg.norm(travel_vectors(images), axis=1)))


def travel_vectors(images: list[Atoms]) -> np.ndarray:
    """Every atom's move from the first to the last of ``images``: the sum of its
    minimum-image steps between neighbours, shape (N, 3), Angstrom."""
    total = np.zeros((len(images[0]), 3))
    for a, b in pairwise(images):
        total += mic_vectors(a, b.positions - a.positions)
    return total


def li_vector(images: list[Atoms], li: int) -> np.ndarray:
    """The hopping Li's move from the first to the last of ``images`` (:func:`travel_vectors`
    of that atom: a hop into the next periodic image keeps its length), Angstrom."""
    return travel_vectors(images)[li]


def li_travel(images: list[Atoms], li: int) -> float:
    """Length of :func:`li_vector`, Angstrom."""
    return float(np.linalg.norm(li_vector(images, li)))


def basin_limit(images: list[Atoms], minima: list[int], i: int, li: int) -> float:
    """How far the hopping Li of stored minimum ``i`` may move on relaxation:
    :data:`BASIN_FRACTION` of its travel along the stored ``images`` to the nearest adjacent
    minimum of ``minima`` (image indices in path order), Angstrom."""
    k = minima.index(i)
    spans = [(minima[j], minima[j + 1]) for j in (k - 1, k) if 0 <= j < len(minima) - 1]
    return BASIN_FRACTION * min(li_travel(images[lo:hi + 1], li) for lo, hi in spans)


def _leaves_site(start: Atoms, li: int, limit: float) -> Callable[[Atoms], str | None]:
    home = start.positions[li].copy()

    def watch(atoms: Atoms) -> str | None:
        moved = float(np.linalg.norm(mic_vectors(atoms, atoms.positions[li] - home)))
        if moved > limit:
            return (f"the hopping Li {li} moved {moved:.2f} A from its stored position (more "
                    f"than {limit:.2f} A, {BASIN_FRACTION:g} of its distance to the nearest "
                    "adjacent minimum): the state is not a minimum of this path at the new "
                    "level")
        return None

    return watch


def _minimum(r: _Refinement, i: int, limit: float) -> _Point:
    start = r.stored(i)
    wd = r.work / f"min{i}"
    hess = stored_hessian(start, r.hessian_factory, wd)
    res = relax(start, r.factory, wd, r.settings.relax, label="relax", hessian=hess,
                watch=_leaves_site(start, r.li, limit))
    r.run.add(f"minimum{i}", res)
    record = {"role": "minimum", "stored_image": i, "steps": res.steps,
              "calls": res.force_calls, "fmax": res.fmax, "converged": res.converged,
              "moved_A": float(displacements(start, res.atoms).max()),
              "basin_limit_A": limit, "stopped": res.stopped}
    return _Point(res.atoms, res.energy, res.fmax, record)


def _tangent(images: list[Atoms], i: int) -> np.ndarray:
    """The stored band's move from image ``i - 1`` to ``i + 1`` (minimum image), (N, 3)."""
    before, after = images[i - 1], images[i + 1]
    return mic_vectors(before, after.positions - before.positions)


def _falls_into(r: _Refinement, lo: int, hi: int, points: dict[int, _Point]) -> Watch:
    """The watch that stops a search of the hop between the refined minima of stored images
    ``lo`` and ``hi`` once it has fallen into one of them (module rules)."""
    radius = FALLEN_FRACTION * float(np.linalg.norm(r.separation(lo, hi, points)[r.li]))

    def watch(atoms: Atoms, energy: float, negative: int) -> str | None:
        for m in (lo, hi):
            near = points[m].atoms.positions[r.li]
            d = float(np.linalg.norm(mic_vectors(atoms, atoms.positions[r.li] - near)))
            above = energy - points[m].energy
            if d < radius and above < FALLEN_ENERGY:
                return (f"fell into the refined minimum of stored image {m}: the hopping Li "
                        f"is {d:.2f} A from it (less than {radius:.2f} A, {FALLEN_FRACTION:g} "
                        f"of the hop), {above:+.3f} eV from it ({negative} negative "
                        "eigenvalue(s) in the search's Hessian)")
        return None

    return watch


def _search(r: _Refinement, i: int, start: Atoms, tangent: np.ndarray, name: str,
            watch: Watch) -> _Point:
    """A P-RFO search for the saddle of stored image ``i`` from ``start`` along ``tangent``,
    checkpointed in ``work/<name>``; ``moved_A`` is measured from the stored image."""
    wd = r.work / name
    hess = stored_hessian(start, r.hessian_factory, wd, floor=HESSIAN_FLOOR, signed=True)
    guard = GuardedCalculator(r.factory, label=f"refine-{name}")
    res = prfo_saddle(start, lambda atoms, attempt=0, label="": guard, hessian=hess,
                      mode=tangent, fmax=r.settings.neb.fmax,
                      steps=r.settings.neb.steps, checkpoint=wd / "prfo.npz",
                      log=lambda line: log.info("refine %s: %s", name, line),
                      level=reference_level(r.factory, start), watch=watch)
    r.run.count(name, res.force_calls)
    r.run.warnings.extend(guard.warnings)
    record = {"role": "saddle", "stored_image": i, "search": name, "steps": res.steps,
              "calls": res.force_calls, "fmax": res.fmax, "converged": res.converged,
              "negative_modes": res.negative_modes, "stopped": res.stopped,
              "moved_A": float(displacements(r.images[i], res.atoms).max()),
              "warnings": list(guard.warnings)}
    if res.stopped:
        r.run.warn(f"refine: the saddle search {name} (stored image {i}) {res.stopped}")
    return _Point(res.atoms, res.energy, res.fmax, record, search=res, tangent=tangent)


def _saddle(r: _Refinement, hop: tuple[int, int, int], points: dict[int, _Point]) -> _Point:
    """The search from the stored saddle of ``hop`` (stored images lo, saddle, hi)."""
    lo, i, hi = hop
    return _search(r, i, r.stored(i), _tangent(r.images, i), f"saddle{i}",
                   _falls_into(r, lo, hi, points))


def _reseeded(r: _Refinement, hop: tuple[int, int, int], points: dict[int, _Point],
              fallen: _Point) -> _Point:
    """The search of ``hop`` started again from the highest interior point of the path
    interpolated between its refined minima (module rules); ``fallen`` with the reason when
    no interior point lies above both minima."""
    lo, i, hi = hop
    first, last = points[lo].atoms, points[hi].atoms.copy()
    last.positions = first.positions + r.separation(lo, hi, points)
    method = "idpp" if len(first) > 1 else "linear"  # IDPP needs pair distances
    path = interpolate_images(first, last, RESEED_IMAGES, method, mic=False)
    energies, calls = [], 0
    for k in range(1, len(path) - 1):
        res = static(path[k], r.factory, r.work / f"reseed{i}",
                     label=f"point{k}-of-{RESEED_IMAGES}")
        r.run.add(f"reseed{i}-point{k}", res)
        energies.append(res.energy)
        calls += res.force_calls
    upper = max(points[lo].energy, points[hi].energy)
    top = int(np.argmax(energies)) + 1
    seed = {"first_search": fallen.record, "interpolation": method, "point_calls": calls,
            "points_eV": [float(e - points[lo].energy) for e in energies], "start_point": top}
    spent = fallen.record["calls"] + calls
    if energies[top - 1] <= upper:
        why = (f"no point of the path interpolated between the refined minima of stored images "
               f"{lo} and {hi} lies above both (the highest is "
               f"{energies[top - 1] - upper:+.3f} eV from the higher): no saddle of this hop "
               "was found at the new level")
        return replace(fallen, record={**fallen.record, "calls": spent,
                                       "reseed": {**seed, "problem": why}})
    tangent = path[top + 1].positions - path[top - 1].positions
    point = _search(r, i, path[top].copy(), tangent, f"reseed{i}",
                    _falls_into(r, lo, hi, points))
    point.record["reseed"] = seed
    point.record["calls"] += spent
    return point


def mode_overlap(mode: np.ndarray, direction: np.ndarray, atoms: Atoms) -> float:
    """|cos| between a saddle's mode and a path direction (both (N, 3)) over the free atoms
    of ``atoms``; 0 when either vanishes."""
    free = np.setdiff1d(np.arange(len(atoms)), fixed_indices(atoms))
    d = np.asarray(direction, float).reshape(len(atoms), 3)[free].ravel()
    m = np.asarray(mode, float).reshape(len(atoms), 3)[free].ravel()
    norm = float(np.linalg.norm(d) * np.linalg.norm(m))
    return abs(float(d @ m)) / norm if norm > 0 else 0.0


def _search_problem(doc: BarrierDoc, point: _Point) -> str | None:
    """Why a refined saddle search is not the hop's saddle (module rules), None if it is."""
    res, rec = point.search, point.record
    assert res is not None and point.tangent is not None
    image = rec["stored_image"]
    negative = res.mode if res.negative_mode is None else res.negative_mode
    overlap = mode_overlap(negative, point.tangent, point.atoms)
    rec["mode_overlap"] = overlap
    problem = rec.get("reseed", {}).get("problem")
    if problem:
        return problem
    if res.stopped:
        again = " again from the path between its minima" if "reseed" in rec else ""
        return f"the saddle search from stored image {image}{again} {res.stopped}"
    if not res.converged:
        return (f"the saddle search from stored image {image} did not converge in "
                f"{res.steps} steps (force {res.fmax:.3f} eV/A)")
    if res.negative_modes != 1:
        return (f"the saddle search from stored image {image} ended with "
                f"{res.negative_modes} negative Hessian eigenvalues, not 1")
    if overlap < MODE_OVERLAP:
        return (f"the saddle from stored image {image} has its negative mode at |cos| "
                f"{overlap:.2f} < {MODE_OVERLAP} to the stored path there: it is another "
                "saddle")
    return None


def _merged(r: _Refinement, minima: list[int], points: dict[int, _Point]) -> str | None:
    """Why two adjacent refined minima are one (module rules), None when all are distinct."""
    for lo, hi in pairwise(minima):
        travel = li_vector(r.images[lo:hi + 1], r.li)
        now = float(np.linalg.norm(r.separation(lo, hi, points)[r.li]))
        if now < BASIN_FRACTION * float(np.linalg.norm(travel)):
            return (f"the refined minima of stored images {lo} and {hi} have merged: their "
                    f"hopping Li are {now:.2f} A apart (stored {np.linalg.norm(travel):.2f} "
                    "A): one of them is not a minimum of this path at the new level")
    return None


def check_refinable(doc: BarrierDoc, overrides: dict[str, Any]) -> tuple[CalcSettings,
                                                                          dict[str, list[Any]],
                                                                          Stationary]:
    """The new settings, the changes and the stationary images; raises before any work.

    Raises
    ------
    InputError : not a certified barrier, unreadable settings, an override outside ``dft``
        (and the k-mesh rule), or nothing changed.
    """
    settings, changes = changed_settings(stored_settings(doc), overrides,
                                         interface=is_interface(doc))
    if not changes:
        raise InputError("nothing to refine: the overrides equal the stored settings or do "
                         "not change its cells; give the new level with --set "
                         "dft.KEY=VALUE (e.g. structure.interface_density_mesh=true for the "
                         "density k-mesh of an interface hop)")
    return settings, changes, stationary_images(doc)


def refine_barrier(doc: BarrierDoc, overrides: dict[str, Any], factory_of: FactoryOf,
                   hessian_factory: CalcFactory, workdir: Path | str, *,
                   frames: FrameSink | None = None, work_key: str | None = None) -> BarrierDoc:
    """The certified barrier ``doc`` certified again at the stored settings changed by
    ``overrides`` (module rules).

    Parameters
    ----------
    doc : a certified barrier document
    overrides : nested overrides, e.g. ``{'dft': {'ecut': 400}}``
    factory_of : the document's calculator factory for given settings
    hessian_factory : the surrogate whose finite-difference Hessian starts every relaxation and
        saddle search (e.g. CHGNet; its energies are never reported)
    workdir : checkpoint directory (created)
    frames, work_key : where the reference single points go (None: not stored)

    Raises
    ------
    InputError : as :func:`check_refinable`, before any calculation.
    """
    settings, changes, st = check_refinable(doc, overrides)
    label = tag(doc.uid, changes, 0.0)
    work = Path(workdir) / label
    run = RunLog(frames=frames, work_key=work_key)
    ledger = Ledger.open(work, settings.budget)
    reference = factory_of(settings)
    images = [im.structure.to_atoms() for im in doc.images]
    r = _Refinement(doc, settings, changes, st, images,
                    MeteredFactory(run.recorded(reference), ledger), hessian_factory, work,
                    hopping_li(doc, images), run, dict(getattr(reference, "description", {})))
    minima = [i for i in st.indices if st.roles[i] != "saddle"]
    points: dict[int, _Point] = {}
    try:
        for k, i in enumerate(st.indices, start=1):
            role = st.roles[i]
            if role == "saddle":
                continue
            info(log, "refine %s: image %d (%s), %d of %d", label, i, role, k, len(st.indices))
            ledger.stage = f"{role} {i}"
            with run.stage(f"minimum{i}"):
                points[i] = _minimum(r, i, basin_limit(images, minima, i, r.li))
            if points[i].record["stopped"]:
                return _not_a_minimum(r, points, points[i].record["stopped"])
        merged = _merged(r, minima, points)
        if merged:
            return _not_a_minimum(r, points, merged)
        for hop in st.hops:
            i = hop[1]
            info(log, "refine %s: image %d (saddle), %d of %d", label, i,
                 st.indices.index(i) + 1, len(st.indices))
            ledger.stage = f"saddle {i}"
            with run.stage(f"saddle{i}"):
                points[i] = _saddle(r, hop, points)
        for hop in st.hops:
            i = hop[1]
            if points[i].search is None or not points[i].search.stopped:
                continue
            info(log, "refine %s: image %d (saddle) again from the path between its minima",
                 label, i)
            ledger.stage = f"saddle {i} again"
            with run.stage(f"reseed{i}"):
                points[i] = _reseeded(r, hop, points, points[i])
    except BudgetExceeded as exc:
        return _over_budget(r, exc, ledger)
    return _document(r, points)


def _record(r: _Refinement, points: dict[int, _Point], order: list[int]) -> dict[str, Any]:
    """The ``refinement`` field: where it came from, the changes and every point's record."""
    first = r.stored(0)
    interface = is_interface(r.doc)
    stored_stream = [r.doc.images[i].energy for i in order]
    return {
        "from_uid": r.doc.uid, "from_stage": r.doc.stage, "changes": r.changes,
        "kpoints": [list(mesh(first, stored_settings(r.doc), interface=interface)),
                    list(mesh(first, r.settings, interface=interface))],
        "rule": "minima relaxed and saddles searched again (P-RFO) at the new level from "
                "the stored stationary points; surrogate Hessians start both; a search that "
                "fell into a minimum searched again from the highest point of the path "
                "between its refined minima",
        "points": [{**points[i].record,
                    "energy_change_eV": float((points[i].energy - points[order[0]].energy)
                                              - (stored_stream[k] - stored_stream[0]))}
                   for k, i in enumerate(order)],
        "reference_calls": int(sum(points[i].record["calls"] for i in order)),
    }


def _header(r: _Refinement, images: list[Atoms]) -> dict[str, Any]:
    """The document fields a refinement takes from the stored hop and the new level."""
    doc = r.doc
    fields = {k: getattr(doc, k) for k in ("interface", "phase_a", "phase_b", "mechanism",
                                           "thickness_a", "thickness_b", "strain",
                                           "strained_side")}
    new = {k: v for k, v in r.description.items() if k != "dft"}
    calculator = {**doc.calculator, **new, "geometry": f"stationary points of a certified "
                  f"{doc.stage} barrier re-converged at this level (recipes.refine)"}
    return {"calculator": calculator, "input_structure": images[0], **fields,
            "interface_meta": {**doc.interface_meta, "refined_from": doc.uid},
            "stage": REFINED}


def _not_a_minimum(r: _Refinement, points: dict[int, _Point], why: str) -> BarrierDoc:
    """The document of a refinement stopped at a minimum that does not hold: the refined
    minima so far, no barrier and no reaction energy."""
    order = sorted(points)
    images = [points[i].atoms for i in order]
    absolute = np.array([points[i].energy for i in order])
    if not any(why in w for w in r.run.warnings):  # a stopped relaxation has said it
        r.run.warn(why)
    return BarrierDoc.from_run(
        r.settings, r.run, **_header(r, images), saddle=NOT_A_MINIMUM, saddle_note=why,
        images=[NEBImageData(energy=float(a), fmax=points[i].fmax,
                             structure=StructureData.from_atoms(points[i].atoms))
                for a, i in zip(absolute, order, strict=True)],
        energies=[float(x) for x in absolute - absolute[0]],
        path_coordinate=path_coordinate(images),
        spline={"x": [], "y": []}, barrier_forward=None, barrier_reverse=None,
        reaction_energy=None, e_kra=None, hop_distance=None,
        endpoint_fmax={f"image{i}": float(points[i].fmax) for i in order},
        converged=False, fmax_final=None, refinement=_record(r, points, order))


def _over_budget(r: _Refinement, exc: BudgetExceeded, ledger: Ledger) -> BarrierDoc:
    """The document of a refinement stopped by its cost ceiling (what was reached)."""
    doc = r.doc
    hop = HopRecord(doc.phase_a, doc.phase_b, doc.mechanism,
                    {**doc.interface_meta, "refined_from": doc.uid},
                    _header(r, [r.stored(0)])["calculator"], r.stored(0))
    out = over_budget_doc(exc, ledger, r.settings, r.run, hop)
    return out.model_copy(update={"stage": REFINED, "refinement": {
        "from_uid": doc.uid, "from_stage": doc.stage, "changes": r.changes}})


def _segment(e: np.ndarray, fmax: list[float], lo: int, hi: int, converged: bool
             ) -> dict[str, Any]:
    """One hop of a refined joined path (the fields of a band's segment)."""
    part = e[lo:hi + 1]
    return {"images": [lo, hi], "barrier_forward": float(part.max() - part[0]),
            "barrier_reverse": float(part.max() - part[-1]),
            "reaction_energy": float(part[-1] - part[0]), "converged": bool(converged),
            "fmax": float(fmax[lo + 1]), "stage": REFINED}


def _document(r: _Refinement, points: dict[int, _Point]) -> BarrierDoc:
    st, settings, doc = r.stationary, r.settings, r.doc
    order = st.indices
    images = [points[i].atoms for i in order]
    absolute = np.array([points[i].energy for i in order])
    e = absolute - absolute[0]
    fmax = [points[i].fmax for i in order]
    position = {i: k for k, i in enumerate(order)}
    bounds = [(position[lo], position[hi]) for lo, _, hi in st.hops]
    segments = bounds if len(bounds) > 1 else []
    minima = {"initial": fmax[0], "final": fmax[-1]}
    for k, (_, hi) in enumerate(bounds[:-1], start=1):
        minima[f"minimum{k}"] = fmax[hi]
    path = path_coordinate(images)
    problems = [p for _, s, _ in st.hops if (p := _search_problem(doc, points[s])) is not None]
    cert = certify(e, fmax, neb_fmax=settings.neb.fmax, relax_fmax=settings.relax.fmax,
                   endpoint_fmax=minima, segments=segments, stage=REFINED, path=path)
    if problems and cert.status in (SADDLE, NO_SADDLE):  # a failed search is no evidence
        cert = replace(cert, status=NOT_CONVERGED, note="; ".join(problems))  # of no saddle
    elif problems:  # a more basic failure (e.g. unrelaxed minima) comes first
        cert = replace(cert, note="; ".join([cert.note, *problems]))
    ok = cert.status == SADDLE
    forward, reverse = span_barriers(e) if ok else (None, None)
    tops = [position[s] for _, s, _ in st.hops]
    top = max(tops, key=lambda k: e[k])
    record = {**_record(r, points, order), "problems": problems}
    return BarrierDoc.from_run(
        settings, r.run, **_header(r, images), saddle=cert.status, saddle_note=cert.note,
        images=[NEBImageData(energy=float(a), fmax=float(f),
                             structure=StructureData.from_atoms(im))
                for a, f, im in zip(absolute, fmax, images, strict=True)],
        energies=[float(x) for x in e], path_coordinate=path,
        spline={"x": list(path), "y": [float(x) for x in e]},
        barrier_forward=forward, barrier_reverse=reverse, reaction_energy=float(e[-1]),
        e_kra=e_kra(e) if ok else None, hop_distance=li_travel(images, r.li),
        endpoint_fmax={k: float(v) for k, v in minima.items()}, saddle_fmax=cert.saddle_fmax,
        segments=[_segment(e, fmax, lo, hi, points[order[hi - 1]].record["converged"])
                  for lo, hi in segments],
        converged=ok, fmax_final=float(max(fmax[k] for k in tops)), band_continuous=True,
        climbing_image=top, refinement=record,
    )


__all__ = ["BASIN_FRACTION", "FALLEN_ENERGY", "FALLEN_FRACTION", "MODE_OVERLAP", "REFINED",
           "RESEED_IMAGES", "basin_limit", "check_refinable", "hopping_li", "li_travel",
           "li_vector", "mode_overlap", "refine_barrier"]
