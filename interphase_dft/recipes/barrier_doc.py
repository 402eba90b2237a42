"""The :class:`~interphase_dft.schemas.BarrierDoc` of a finished band, or of a run stopped by
its cost ceiling.

Barriers are taken from the images (the climbing image is the saddle point): forward =
max(E) - E(initial), reverse = max(E) - E(final); for a joined path the energetic spans
(:mod:`interphase_dft.span`). They are stored only when the band is certified
(:func:`interphase_dft.recipes.saddle.certify` gives ``'saddle'``). The spline is ASE's
force-curve fit (:func:`ase.utils.forcecurve.fit_images`), stored for plots only. Energies in
eV relative to the initial state, forces in eV/Angstrom, lengths in Angstrom.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.barrier_status import (
    NOT_A_MINIMUM,
    NOT_CONVERGED,
    OVER_BUDGET,
    SADDLE,
    SURROGATE_ONLY,
)
from interphase_dft.calc.budget import BudgetExceeded, Ledger, finished_runs, unfinished_runs
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import max_force
from interphase_dft.geometry import displacements
from interphase_dft.recipes.band import Band
from interphase_dft.recipes.basin import EndpointNotMinimum
from interphase_dft.recipes.neb_path import intermediate_minimum, path_coordinate
from interphase_dft.recipes.saddle import certify, e_kra, hop_saddle
from interphase_dft.schemas import BarrierDoc, NEBImageData, StructureData
from interphase_dft.span import span_barriers

__all__ = ["HopRecord", "barrier_doc", "over_budget_doc"]

log = logging.getLogger("interphase_dft.recipes")

#: interface_meta keys copied into the document's own fields
_META_FIELDS = {"thickness_a": "thickness_a_A", "thickness_b": "thickness_b_A",
                "strain": "strain", "strained_side": "strained_side"}


@dataclass(frozen=True)
class HopRecord:
    """What a barrier document says about the hop besides its band.

    ``work_of_adhesion`` (J/m^2) only when computed at the reported level.
    """

    phase_a: str
    phase_b: str
    mechanism: str
    interface_meta: dict[str, Any]
    calculator: dict[str, Any]
    input_structure: Atoms
    work_of_adhesion: float | None = None

    def fields(self) -> dict[str, Any]:
        """The document fields of the hop (interface, phases, mechanism, cell geometry)."""
        meta = self.interface_meta
        out: dict[str, Any] = {
            "interface": f"{self.phase_a}|{self.phase_b}", "phase_a": self.phase_a,
            "phase_b": self.phase_b, "mechanism": self.mechanism, "interface_meta": meta,
            "work_of_adhesion": self.work_of_adhesion}
        out.update({k: meta.get(v) for k, v in _META_FIELDS.items()})
        return out


def hop_distance(initial: Atoms, final: Atoms) -> float:
    """Displacement of the hopping Li (``info['li_index']``, else the atom that moves most)
    between two endpoints, minimum image along periodic directions, Angstrom."""
    norms = displacements(initial, final)
    li = initial.info.get("li_index")
    return float(norms[int(li)] if li is not None else norms.max())


def _profile(res: Any, e: np.ndarray, run: RunLog) -> tuple[list[float], dict[str, list[float]]]:
    """(path coordinate, spline) of a band; the raw profile when the fit fails."""
    from ase.utils.forcecurve import fit_images

    try:
        fit = fit_images(res.images)
        return ([float(x) for x in fit.path],
                {"x": [float(x) for x in fit.fit_path],
                 "y": [float(y) for y in fit.fit_energies]})  # relative to image 0
    except np.linalg.LinAlgError:  # coinciding images: no cubic fit, keep the raw profile
        path = path_coordinate(res.images)
        run.warn("force-curve fit failed (coinciding images); raw profile stored")
        return path, {"x": path, "y": [float(x) for x in e]}


def barrier_doc(band: Band, settings: CalcSettings, run: RunLog, hop: HopRecord, *,
                ledger: Ledger | None = None) -> BarrierDoc:
    """Assemble and certify the :class:`BarrierDoc` of a finished band.

    With ``band.segments`` (a path joined at intermediate minima) the barriers are the
    energetic spans of the joined path over its stationary images (each hop's ends and
    highest interior image; an interior image a little below its hop's end is not a
    minimum) and each hop is certified on its own. The minima of the path are its endpoints
    and every segment boundary (a split at a minimum found on the band as well as given
    minima); their largest forces go to ``endpoint_fmax`` and must meet ``relax.fmax``. The
    force on each hop's highest image is its own force (with ``neb.climb`` off the band's
    forces are spring-projected).
    """
    res = band.res
    e = np.array(res.energies) - res.energies[0]
    path, spline = _profile(res, e, run)
    segments = list(band.segments)
    bounds = [tuple(sg["images"]) for sg in segments]
    hops = bounds or [(0, len(e) - 1)]
    if segments:
        jumps = [intermediate_minimum(e[lo:hi + 1]) for lo, hi in bounds]
        jump = next((j for j in jumps if j), None)
        # the stationary images: every hop's ends and its highest interior image
        tops = [lo + 1 + int(np.argmax(e[lo + 1:hi])) for lo, hi in bounds if hi - lo > 1]
        stationary = sorted({0, len(e) - 1, *tops, *(hi for _, hi in bounds)})
        forward, reverse = span_barriers(e[stationary])
    else:
        jump = intermediate_minimum(e)
        forward, reverse = float(e.max()), float(e.max() - e[-1])
    if jump:
        log.warning(jump)
        run.warn(jump)
    image_fmax = [max_force(res.images[0]), *res.image_fmax, max_force(res.images[-1])]
    for lo, hi in hops:  # a saddle's own force, not a spring-projected one
        top = hop_saddle(e[lo:hi + 1], path[lo:hi + 1])
        if top is not None:  # a monotonic hop's highest interior image is not stationary
            image_fmax[lo + top] = max(image_fmax[lo + top], max_force(res.images[lo + top]))
    minima = {"initial": image_fmax[0], "final": image_fmax[-1]}
    for k, (_, hi) in enumerate(bounds[:-1], start=1):  # every minimum the path joins at
        minima[f"minimum{k}"] = image_fmax[hi]  # join_bands: the seam's own largest force
    cert = certify(e, image_fmax, neb_fmax=settings.neb.fmax, relax_fmax=settings.relax.fmax,
                   endpoint_fmax=minima, segments=bounds, stage=band.stage,
                   continuous=jump is None, path=path)
    if cert.status == SADDLE and res.seam_mismatch:
        cert = replace(cert, status=NOT_CONVERGED, note=res.seam_mismatch)
    ok = cert.status == SADDLE
    return BarrierDoc.from_run(
        settings, run, calculator=hop.calculator, input_structure=hop.input_structure,
        **hop.fields(), saddle=cert.status, saddle_note=cert.note,
        images=[NEBImageData(energy=float(im.get_potential_energy()), fmax=fm,
                             structure=StructureData.from_atoms(im))
                for im, fm in zip(res.images, image_fmax, strict=True)],
        energies=[float(x) for x in e], path_coordinate=path, spline=spline,
        barrier_forward=forward if ok else None, barrier_reverse=reverse if ok else None,
        reaction_energy=float(e[-1]), e_kra=e_kra(e) if ok else None,
        hop_distance=hop_distance(res.images[0], res.images[-1]),
        endpoint_fmax={k: float(v) for k, v in minima.items()},
        saddle_fmax=cert.saddle_fmax, segments=segments, converged=res.converged,
        fmax_final=res.fmax, band_continuous=jump is None, climbing_image=res.climbing_image,
        stage=band.stage, ml_barrier=band.ml_barrier, ml_fallback_reason=band.fallback,
        active_learning=band.active_learning,
        budget=ledger.summary() if ledger is not None else {},
    )


def planned_stage(settings: CalcSettings) -> str:
    """The stage a band of ``settings`` is computed at when nothing is rejected."""
    if settings.engine == "ml":
        return "ml"
    if settings.neb.active_learning:
        return "dft-certified"
    if settings.neb.ml_prestage:
        return "ml+dft" if settings.neb.dft_refine else "dft//ml"
    return "dft"


def over_budget_doc(exc: BudgetExceeded, ledger: Ledger, settings: CalcSettings, run: RunLog,
                    hop: HopRecord) -> BarrierDoc:
    """The document of a run stopped by its cost ceiling: no barrier, what was reached.

    ``budget`` holds the ceilings, the DFT calls and hours used, the stage that was running
    and every unfinished run (steps, fmax; the last band's energies for a NEB); ``energies``
    are the last band's (relative to its first image) when a NEB was running.
    """
    unfinished = unfinished_runs(ledger.path.parent)
    bands = [u for u in unfinished.values() if u["kind"] == "neb" and u.get("energies")]
    energies: list[float] = []
    fmax = None
    if bands:
        last = [float(x) for x in bands[-1]["energies"]]
        energies = [x - last[0] for x in last]
        fmax = bands[-1].get("fmax")
    reached = "; ".join(f"{name}: {u['kind']} {u['steps']} steps, fmax "
                        f"{u['fmax'] if u['fmax'] is None else round(float(u['fmax']), 3)} eV/A"
                        for name, u in unfinished.items()) or between_runs(ledger)
    note = (f"stopped in stage {ledger.stage or '?'} after {ledger.calls} DFT calls "
            f"({ledger.seconds / 3600:.2f} h): {exc}; reached: {reached}")
    run.warn(note)
    return BarrierDoc.from_run(
        settings, run, calculator=hop.calculator, input_structure=hop.input_structure,
        **hop.fields(), saddle=OVER_BUDGET, saddle_note=note, images=[], energies=energies,
        path_coordinate=[], spline={"x": [], "y": []}, barrier_forward=None, barrier_reverse=None,
        reaction_energy=energies[-1] if energies else None, converged=False,
        fmax_final=None if fmax is None else float(fmax), stage=planned_stage(settings),
        budget={**ledger.summary(), "stage": ledger.stage, "unfinished": unfinished},
    )


def between_runs(ledger: Ledger) -> str:
    """What a stop between two runs reached: the finished runs kept for a continuation."""
    done = finished_runs(ledger.path.parent)
    if not done:
        return "no run started"
    shown = ", ".join(done[:3]) + (", ..." if len(done) > 3 else "")
    return (f"no unfinished run checkpointed; {len(done)} finished runs kept for a "
            f"continuation ({shown})")


def not_a_minimum_doc(exc: EndpointNotMinimum, settings: CalcSettings, run: RunLog,
                      hop: HopRecord, *, ledger: Ledger | None = None) -> BarrierDoc:
    """The document of a hop whose endpoint left its site while relaxing at the reported
    level (:mod:`interphase_dft.recipes.basin`): no barrier and no reaction energy (one of the
    two states does not exist at this level); ``images`` are that relaxation's first and last
    geometries, ``energies`` the drop between them, ``hop_distance`` the separation of the two
    sites and ``stage`` the level of that relaxation (``'dft'``; engine ml: ``'ml'``, status
    ``not certified: surrogate only``)."""
    first, last = exc.path
    e = [0.0, float(last.get_potential_energy() - first.get_potential_energy())]
    fmax = [max_force(first), max_force(last)]
    note = (f"{exc.reason}; the energy fell by {-e[1]:.3f} eV along that relaxation (largest "
            f"force {fmax[1]:.3f} eV/A where it stopped): the crossing has no barrier in this "
            "direction")
    surrogate = settings.engine == "ml"  # a surrogate's verdict is never a DFT status
    run.warn(note)
    return BarrierDoc.from_run(
        settings, run, calculator=hop.calculator, input_structure=hop.input_structure,
        **hop.fields(), saddle=SURROGATE_ONLY if surrogate else NOT_A_MINIMUM,
        saddle_note=note,
        images=[NEBImageData(energy=float(im.get_potential_energy()), fmax=f,
                             structure=StructureData.from_atoms(im))
                for im, f in zip(exc.path, fmax, strict=True)],
        energies=e, path_coordinate=path_coordinate(exc.path),
        spline={"x": [], "y": []}, barrier_forward=None, barrier_reverse=None,
        reaction_energy=None, hop_distance=exc.separation, converged=False, fmax_final=None,
        stage="ml" if surrogate else "dft",
        budget=ledger.summary() if ledger is not None else {},
    )
