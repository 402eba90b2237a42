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
- **Minima** (initial, the minima a joined path passes through, final): relaxed at the new
  level to ``relax.fmax`` within ``relax.steps`` from the stored geometry, with the
  surrogate's Hessian there as BFGS's starting curvature
  (:class:`~interphase_dft.calc.prior_bfgs.PriorBFGS`). A relaxation that carries the hopping
  Li more than :data:`BASIN_FRACTION` of the hop distance from its stored position is stopped:
  that state is not a minimum of this hop at the new level (status ``no saddle: endpoint not a
  minimum``).
- **Saddles**: a P-RFO search (:func:`~interphase_dft.calc.prfo.prfo_saddle`) from the stored
  saddle with the surrogate's Hessian there (eigenvalues below ``-HESSIAN_FLOOR`` kept), the
  stored band's tangent at the saddle followed first, to ``neb.fmax`` within ``neb.steps``
  reference calls. It counts as the hop's saddle when it converged with exactly one negative
  eigenvalue and that mode lies along the path: the absolute cosine between the mode and the
  stored band's tangent at the saddle (the move from the image before it to the image after
  it; free atoms, minimum image) is at least :data:`MODE_OVERLAP`.
- **Certification**: the refined stationary points form a path (initial, saddle, minimum,
  saddle, ..., final), certified by :func:`~interphase_dft.recipes.saddle.certify` like any
  band (endpoint forces, saddles above both ends of their hop, saddle forces); a saddle search
  that failed a rule above makes the document ``not converged`` with the reason.
- The document: stage ``'dft-refined'``, the path of refined stationary points only (no
  images in between: ``spline`` is that raw profile), the hop's fields copied from the stored
  document except the work of adhesion (it was computed at the stored level), and
  ``refinement``: the stored document's uid, the changes, per point the steps, calls, force,
  energy change at the new level and largest atom move from the stored geometry.
- Every relaxation, Hessian and saddle search is checkpointed under ``workdir``, labelled by
  the document and the changes: the same command resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.barrier_status import NOT_A_MINIMUM, NOT_CONVERGED, SADDLE
from interphase_dft.calc.checkpoint import info
from interphase_dft.calc.guard import CalcFactory, GuardedCalculator
from interphase_dft.calc.hessian import stored_hessian
from interphase_dft.calc.prfo import SaddleResult, prfo_saddle
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import RunResult, relax
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import InputError
from interphase_dft.geometry import displacements, mic_vectors
from interphase_dft.recipes.neb_path import path_coordinate
from interphase_dft.recipes.saddle import certify, e_kra
from interphase_dft.recipes.saddle_search import HESSIAN_FLOOR, reference_level
from interphase_dft.recipes.sensitivity import (
    FactoryOf,
    Stationary,
    changed_settings,
    stationary_images,
    stored_settings,
    tag,
)
from interphase_dft.schemas import BarrierDoc, NEBImageData, StructureData
from interphase_dft.span import span_barriers

log = logging.getLogger("interphase_dft.recipes")

#: smallest |cos| between a refined saddle's negative mode and its hop's direction
MODE_OVERLAP = 0.5
#: a minimum whose hopping Li moves more than this fraction of the hop distance on relaxation
#: has left its site at the new level
BASIN_FRACTION = 0.5
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


def hopping_li(doc: BarrierDoc) -> int:
    """Index of the hopping Li: ``interface_meta['li_index']``, else the atom that moves most
    between the stored endpoints."""
    li = doc.interface_meta.get("li_index")
    if li is not None:
        return int(li)
    first, last = (doc.images[k].structure.to_atoms() for k in (0, -1))
    return int(np.argmax(displacements(first, last)))


def _leaves_site(start: Atoms, li: int, limit: float) -> Callable[[Atoms], str | None]:
    home = start.positions[li].copy()

    def watch(atoms: Atoms) -> str | None:
        moved = float(np.linalg.norm(mic_vectors(atoms, atoms.positions[li] - home)))
        if moved > limit:
            return (f"the hopping Li {li} moved {moved:.2f} A from its stored position (more "
                    f"than {limit:.2f} A, {BASIN_FRACTION:g} of the hop): the state is not a "
                    "minimum of this hop at the new level")
        return None

    return watch


def _minimum(doc: BarrierDoc, i: int, settings: CalcSettings, factory: CalcFactory,
             hessian_factory: CalcFactory, work: Path, label: str, li: int) -> _Point:
    start = doc.images[i].structure.to_atoms()
    wd = work / f"{label}-min{i}"
    hess = stored_hessian(start, hessian_factory, wd)
    limit = BASIN_FRACTION * float(doc.hop_distance or li_travel(
        [im.structure.to_atoms() for im in doc.images], li))
    res: RunResult = relax(start, factory, wd, settings.relax, label="relax", hessian=hess,
                           watch=_leaves_site(start, li, limit))
    record = {"role": "minimum", "stored_image": i, "steps": res.steps,
              "calls": res.force_calls, "fmax": res.fmax, "converged": res.converged,
              "moved_A": float(displacements(start, res.atoms).max()),
              "stopped": res.stopped}
    return _Point(res.atoms, res.energy, res.fmax, record)


def _tangent(doc: BarrierDoc, i: int) -> np.ndarray:
    before, after = (doc.images[k].structure.to_atoms() for k in (i - 1, i + 1))
    return mic_vectors(before, after.positions - before.positions)


def _saddle(doc: BarrierDoc, i: int, settings: CalcSettings, factory: CalcFactory,
            hessian_factory: CalcFactory, work: Path, label: str) -> _Point:
    start = doc.images[i].structure.to_atoms()
    wd = work / f"{label}-saddle{i}"
    hess = stored_hessian(start, hessian_factory, wd, floor=HESSIAN_FLOOR, signed=True)
    guard = GuardedCalculator(factory, label=f"refine-saddle{i}")
    res = prfo_saddle(start, lambda atoms, attempt=0, label="": guard, hessian=hess,
                      mode=_tangent(doc, i), fmax=settings.neb.fmax, steps=settings.neb.steps,
                      checkpoint=wd / "prfo.npz",
                      log=lambda line: log.info("refine saddle %d: %s", i, line),
                      level=reference_level(factory, start))
    record = {"role": "saddle", "stored_image": i, "steps": res.steps,
              "calls": res.force_calls, "fmax": res.fmax, "converged": res.converged,
              "negative_modes": res.negative_modes,
              "moved_A": float(displacements(start, res.atoms).max()),
              "warnings": list(guard.warnings)}
    return _Point(res.atoms, res.energy, res.fmax, record, search=res)


def mode_overlap(mode: np.ndarray, direction: np.ndarray, atoms: Atoms) -> float:
    """|cos| between a saddle's mode and a path direction (both (N, 3)) over the free atoms
    of ``atoms``; 0 when either vanishes."""
    free = np.setdiff1d(np.arange(len(atoms)), fixed_indices(atoms))
    d = np.asarray(direction, float).reshape(len(atoms), 3)[free].ravel()
    m = np.asarray(mode, float).reshape(len(atoms), 3)[free].ravel()
    norm = float(np.linalg.norm(d) * np.linalg.norm(m))
    return abs(float(d @ m)) / norm if norm > 0 else 0.0


def li_travel(images: list[Atoms], li: int) -> float:
    """Length of the hopping Li's move from the first to the last of ``images``: the sum of
    its minimum-image steps between neighbours as a vector (a hop into the next periodic
    image keeps its length), Angstrom."""
    total = np.zeros(3)
    for a, b in pairwise(images):
        total += mic_vectors(a, b.positions[li] - a.positions[li])
    return float(np.linalg.norm(total))


def _search_problem(doc: BarrierDoc, point: _Point) -> str | None:
    """Why a refined saddle search is not the hop's saddle (module rules), None if it is."""
    res, rec = point.search, point.record
    assert res is not None
    image = rec["stored_image"]
    overlap = mode_overlap(res.mode, _tangent(doc, image), point.atoms)
    rec["mode_overlap"] = overlap
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


def check_refinable(doc: BarrierDoc, overrides: dict[str, Any]) -> tuple[CalcSettings,
                                                                          dict[str, list[Any]],
                                                                          Stationary]:
    """The new settings, the changes and the stationary images; raises before any work.

    Raises
    ------
    InputError : not a certified barrier, unreadable settings, an override outside ``dft``,
        or nothing changed.
    """
    settings, changes = changed_settings(stored_settings(doc), overrides)
    if not changes:
        raise InputError("nothing to refine: the overrides equal the stored settings; give "
                         "the new level with --set dft.KEY=VALUE (e.g. "
                         "dft.gamma_only_atoms=1000 for the density k-mesh)")
    return settings, changes, stationary_images(doc)


def refine_barrier(doc: BarrierDoc, overrides: dict[str, Any], factory_of: FactoryOf,
                   hessian_factory: CalcFactory, workdir: Path | str) -> BarrierDoc:
    """The certified barrier ``doc`` certified again at the stored settings changed by
    ``overrides`` (module rules).

    Parameters
    ----------
    doc : a certified barrier document
    overrides : nested ``dft`` overrides, e.g. ``{'dft': {'gamma_only_atoms': 1000}}``
    factory_of : the document's calculator factory for given settings
    hessian_factory : the surrogate whose finite-difference Hessian starts every relaxation and
        saddle search (e.g. CHGNet; its energies are never reported)
    workdir : checkpoint directory (created)

    Raises
    ------
    InputError : as :func:`check_refinable`, before any calculation.
    """
    settings, changes, st = check_refinable(doc, overrides)
    work, label = Path(workdir), tag(doc.uid, changes, 0.0)
    factory = factory_of(settings)
    li = hopping_li(doc)
    run = RunLog()
    points: dict[int, _Point] = {}
    for k, i in enumerate(st.indices, start=1):
        role = st.roles[i]
        info(log, "refine %s: image %d (%s), %d of %d", label, i, role, k, len(st.indices))
        with run.stage(f"{role}{i}"):
            points[i] = (_saddle(doc, i, settings, factory, hessian_factory, work, label)
                         if role == "saddle" else
                         _minimum(doc, i, settings, factory, hessian_factory, work, label, li))
        run.count(f"{role}{i}", int(points[i].record["calls"]))
    return _document(doc, settings, changes, st, points, run)


def _segment(e: np.ndarray, fmax: list[float], lo: int, hi: int, converged: bool
             ) -> dict[str, Any]:
    """One hop of a refined joined path (the fields of a band's segment)."""
    part = e[lo:hi + 1]
    return {"images": [lo, hi], "barrier_forward": float(part.max() - part[0]),
            "barrier_reverse": float(part.max() - part[-1]),
            "reaction_energy": float(part[-1] - part[0]), "converged": bool(converged),
            "fmax": float(fmax[lo + 1]), "stage": REFINED}


def _document(doc: BarrierDoc, settings: CalcSettings, changes: dict[str, list[Any]],
              st: Stationary, points: dict[int, _Point], run: RunLog) -> BarrierDoc:
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
    left = next((points[i].record["stopped"] for i in order
                 if points[i].record.get("stopped")), None)
    problems = [p for _, s, _ in st.hops if (p := _search_problem(doc, points[s])) is not None]
    cert = certify(e, fmax, neb_fmax=settings.neb.fmax, relax_fmax=settings.relax.fmax,
                   endpoint_fmax=minima, segments=segments, stage=REFINED, path=path)
    if left:
        cert = replace(cert, status=NOT_A_MINIMUM, note=left)
    elif cert.status == SADDLE and problems:
        cert = replace(cert, status=NOT_CONVERGED, note="; ".join(problems))
    elif problems:
        cert = replace(cert, note="; ".join([cert.note, *problems]))
    ok = cert.status == SADDLE
    forward, reverse = span_barriers(e) if ok else (None, None)
    stored = np.array([doc.images[i].energy for i in order])
    record = {
        "from_uid": doc.uid, "from_stage": doc.stage, "changes": changes,
        "rule": "minima relaxed and saddles searched again (P-RFO) at the new level from "
                "the stored stationary points; surrogate Hessians start both",
        "points": [{**points[i].record,
                    "energy_change_eV": float(e[k] - (stored[k] - stored[0]))}
                   for k, i in enumerate(order)],
        "reference_calls": int(sum(points[i].record["calls"] for i in order)),
        "problems": problems,
    }
    tops = [position[s] for _, s, _ in st.hops]
    top = max(tops, key=lambda k: e[k])
    fields = {k: getattr(doc, k) for k in ("interface", "phase_a", "phase_b", "mechanism",
                                           "thickness_a", "thickness_b", "strain",
                                           "strained_side")}
    calculator = {**doc.calculator, "geometry": f"stationary points of a certified "
                  f"{doc.stage} barrier re-converged at this level (recipes.refine)"}
    return BarrierDoc.from_run(
        settings, run, calculator=calculator, input_structure=images[0], **fields,
        interface_meta={**doc.interface_meta, "refined_from": doc.uid},
        saddle=cert.status, saddle_note=cert.note,
        images=[NEBImageData(energy=float(a), fmax=float(f),
                             structure=StructureData.from_atoms(im))
                for a, f, im in zip(absolute, fmax, images, strict=True)],
        energies=[float(x) for x in e], path_coordinate=path,
        spline={"x": list(path), "y": [float(x) for x in e]},
        barrier_forward=forward, barrier_reverse=reverse, reaction_energy=float(e[-1]),
        e_kra=e_kra(e) if ok else None,
        hop_distance=li_travel(images, hopping_li(doc)),
        endpoint_fmax={k: float(v) for k, v in minima.items()}, saddle_fmax=cert.saddle_fmax,
        segments=[_segment(e, fmax, lo, hi, points[order[hi - 1]].record["converged"])
                  for lo, hi in segments],
        converged=ok, fmax_final=float(max(fmax[k] for k in tops)), band_continuous=True,
        climbing_image=top, stage=REFINED, refinement=record,
    )


__all__ = ["BASIN_FRACTION", "MODE_OVERLAP", "REFINED", "check_refinable", "hopping_li",
           "mode_overlap", "refine_barrier"]
