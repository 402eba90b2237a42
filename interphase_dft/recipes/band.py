"""NEB bands between relaxed minima: path, convergence, split at a minimum, joined paths.

:class:`BandRunner` holds what every band of one hop shares (settings, calculators, run log)
and does the steps of :func:`interphase_dft.recipes.barrier.neb_barrier`:

1. :meth:`BandRunner.relax_minimum`: relax one minimum (an endpoint or an intermediate
   minimum); with a surrogate factory for geometries (PBE//surrogate level) the surrogate
   relaxes it and DFT gives one single point;
2. :meth:`BandRunner.converge`: IDPP band (:func:`~interphase_dft.recipes.neb_path.idpp_band`),
   the optional surrogate pre-stage (:func:`surrogate_path`), then the DFT climbing-image NEB
   (:func:`interphase_dft.calc.neb.run_neb`) or, with ``neb.dft_refine`` False and an accepted
   surrogate path, the DFT single points on that path (stage ``'dft//ml'``);
3. :meth:`BandRunner.split_at_minimum`: a band that passes through another minimum
   (:func:`~interphase_dft.recipes.neb_path.intermediate_minimum`) is split there: the
   minimum is relaxed and the two hops are converged separately and joined; the barriers of
   a joined path are its energetic spans (:mod:`interphase_dft.span`).

Work directories of one band (prefix ``''``, ``'seg1_'``, ``'seg2_'`` in the run log):
``neb/`` (DFT NEB), ``ml-endpoints/``, ``neb-ml/`` and ``ml-check/`` (surrogate pre-stage).
Energies in eV, lengths in Angstrom.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.guard import CalcFactory, min_distance
from interphase_dft.calc.neb import NEBResult, run_neb
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.recipes.neb_path import (
    idpp_band,
    join_bands,
    max_displacement,
    path_steps,
    single_point_band,
    with_results,
)

log = logging.getLogger("interphase_dft.recipes")

#: relaxed endpoints closer than this (largest atom displacement, Angstrom) are one minimum
SAME_MINIMUM = 0.3
#: surrogate path rejected when any two atoms come closer than this, Angstrom
ML_MIN_DISTANCE = 0.7
#: surrogate path rejected when one image step exceeds this multiple of the mean step
ML_MAX_STEP_RATIO = 3.0
#: path stages from the cheapest level to the most complete one (a joined path gets the lowest)
STAGE_RANK = ("ml", "dft//ml", "ml+dft", "dft")


@dataclass
class Band:
    """A converged band (or a path joined from several) and how it was obtained.

    Attributes
    ----------
    res
        The band: images, absolute energies (eV), forces.
    stage
        ``'dft'``, ``'ml+dft'``, ``'dft//ml'`` or ``'ml'`` (see ``BarrierDoc.stage``).
    ml_barrier
        Surrogate barrier of the pre-stage, eV (None without one, or for a joined path).
    fallback
        Why the surrogate path was rejected (None when accepted or not tried).
    segments
        Hops of a joined path (:func:`segment_summary`); empty for one hop.
    """

    res: NEBResult
    stage: str
    ml_barrier: float | None = None
    fallback: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BandRunner:
    """Relaxes minima and converges bands of one hop; bookkeeping goes to ``run``.

    Attributes
    ----------
    settings
        Calculation settings (``neb``, ``relax``, ``engine``).
    factory
        Calculator factory of the reported energies (DFT, or the surrogate for engine ``ml``).
    run
        The recipe's run log.
    geometry_ml
        Surrogate factory that relaxes the minima (PBE//surrogate level), else None.
    path_ml
        Surrogate factory of the path pre-stage (``neb.ml_prestage``), else None.
    mic
        Interpolate with the minimum-image convention
        (see :func:`interphase_dft.recipes.neb_path.idpp_band`).
    label
        Name of the hop in log messages and warnings.
    """

    settings: CalcSettings
    factory: CalcFactory
    run: RunLog
    geometry_ml: CalcFactory | None = None
    path_ml: CalcFactory | None = None
    mic: bool = True
    label: str = "neb"

    def relax_minimum(self, atoms: Atoms, workdir: Path, *, relax_it: bool,
                      key: str) -> tuple[Atoms, bool]:
        """Relax one minimum of the path (an endpoint or an intermediate minimum).

        With ``geometry_ml``: surrogate relaxation, then one single point; else a relaxation
        (``relax_it``) or a single point. Force calls go to the run log under ``key`` (and
        ``key + '_ml'``).

        Returns
        -------
        (atoms, converged) : ``atoms``' constraints with the results of the final geometry.
        """
        start = atoms
        converged = True
        if self.geometry_ml is not None:
            m = relax(atoms, self.geometry_ml, workdir, self.settings.relax.for_surrogate(),
                      label="ml")
            self.run.add(f"{key}_ml", m)
            start = m.atoms
            start.set_constraint([c.copy() for c in atoms.constraints])
            converged = m.converged
        if relax_it and self.geometry_ml is None:
            r = relax(start, self.factory, workdir, self.settings.relax, label="relax")
            converged = converged and r.converged
        else:
            r = static(start, self.factory, workdir, label="static")
        self.run.add(key, r)
        return with_results(atoms, r.atoms), converged

    def relax_endpoints(self, initial: Atoms, final: Atoms, workdir: Path, *,
                        relax_it: bool) -> tuple[list[Atoms], list[str]]:
        """Both endpoints relaxed in ``workdir/initial`` and ``workdir/final``.

        Returns the relaxed endpoints and the names of those that did not converge; a pair
        that relaxed into one minimum (closer than ``SAME_MINIMUM``) gets a warning.
        """
        ends, unconverged = [], []
        with self.run.stage("endpoints"):
            for name, atoms in (("initial", initial), ("final", final)):
                end, ok = self.relax_minimum(atoms, workdir / name, relax_it=relax_it,
                                             key=f"endpoint_{name}")
                ends.append(end)
                if not ok:
                    unconverged.append(name)
        separation = max_displacement(ends[0], ends[1], mic=self.mic)
        if separation < SAME_MINIMUM:
            msg = (f"{self.label}: the relaxed endpoints are the same minimum (largest atom "
                   f"displacement {separation:.2f} A < {SAME_MINIMUM} A); the barrier is "
                   "meaningless - use sites farther apart (thicker interface layers)")
            log.warning(msg)
            self.run.warn(msg)
        return ends, unconverged

    def converge(self, ends: list[Atoms], workdir: Path, prefix: str = "") -> Band:
        """IDPP band between two relaxed minima, then the surrogate pre-stage and DFT stage.

        Run-log names: ``{prefix}ml_neb`` (time), ``{prefix}dft_ml_path_check`` and
        ``{prefix}dft_neb`` (time and force calls).
        """
        settings, nset = self.settings, self.settings.neb
        band = idpp_band(ends[0], ends[1], nset.n_images, mic=self.mic)
        stage = "dft"
        ml_converged = False
        ml_barrier = None
        fallback: str | None = None
        if nset.ml_prestage and settings.engine != "ml":
            with self.run.stage(f"{prefix}ml_neb"):
                sp = surrogate_path(band, settings, workdir, self.factory, self.path_ml)
            self.run.count(f"{prefix}dft_ml_path_check", sp.dft_calls)
            ml_barrier, fallback, ml_converged = sp.ml_barrier, sp.fallback, sp.converged
            if fallback is None:
                band, stage = sp.band, "ml+dft"
            else:
                self.run.warn(f"ML pre-stage rejected: {fallback}; DFT NEB from the IDPP band")
                log.warning("%s: ML path rejected (%s)", self.label, fallback)
        if stage == "ml+dft" and not nset.dft_refine:
            # DFT single points on the surrogate-converged path are the result (no refinement)
            res = single_point_band(band, ml_converged)
            stage = "dft//ml"
        else:
            with self.run.stage(f"{prefix}dft_neb"):
                res = run_neb(band, self.factory, workdir / "neb", nset, label="neb",
                              describe=getattr(self.factory, "description", {}))
            self.run.add(f"{prefix}dft_neb", res)
        if settings.engine == "ml":
            stage = "ml"
        return Band(res, stage, ml_barrier, fallback)

    def split_at_minimum(self, band: Band, workdir: Path) -> Band | None:
        """Relax the lowest intermediate image of ``band`` and converge the two hops through it.

        Work directories ``intermediate/``, ``seg1/`` and ``seg2/``. Returns the joined path
        with its ``segments``, or None (with a warning) when the image relaxes back into an
        endpoint, so the band stays one (flagged) hop.
        """
        res = band.res
        i = int(np.argmin(res.energies[1:-1])) + 1
        guess = res.images[i].copy()
        guess.set_constraint([c.copy() for c in res.images[0].constraints])
        mid, ok = self.relax_minimum(guess, workdir / "intermediate", relax_it=True,
                                     key="intermediate")
        if not ok:
            self.run.warn("relaxation of the intermediate minimum not converged; raise "
                          "relax.steps (relax.ml_steps for surrogate relaxations)")
        closest = min(max_displacement(mid, end, mic=self.mic)
                      for end in (res.images[0], res.images[-1]))
        if closest < SAME_MINIMUM:
            msg = (f"{self.label}: image {i} relaxed back into an endpoint (largest "
                   f"displacement {closest:.2f} A); the band is kept as one hop")
            log.warning(msg)
            self.run.warn(msg)
            return None
        log.info("%s: band passes through a minimum at image %d; converging the two hops",
                 self.label, i)
        first = self.converge([res.images[0], mid], workdir / "seg1", "seg1_")
        second = self.converge([mid, res.images[-1]], workdir / "seg2", "seg2_")
        mid_fmax = float(np.linalg.norm(mid.get_forces(apply_constraint=True), axis=1).max())
        joined = join_bands(first.res, second.res, mid_fmax)
        joined.converged = joined.converged and ok
        segments = [segment_summary(first, 0),
                    segment_summary(second, len(first.res.images) - 1)]
        e0 = res.energies[0]
        self.run.warn(
            f"the first band passed through another minimum (image {i}, "
            f"{res.energies[i] - e0:+.3f} eV); it was relaxed "
            f"({mid.get_potential_energy() - e0:+.3f} eV) and the two hops were converged "
            "separately; the barriers are the energetic span of the joined path")
        fallback = "; ".join(str(sg["ml_fallback_reason"]) for sg in segments
                             if sg["ml_fallback_reason"]) or None
        stage = min((str(sg["stage"]) for sg in segments), key=STAGE_RANK.index)
        return Band(joined, stage, None, fallback, segments)


def segment_summary(band: Band, first: int) -> dict[str, Any]:
    """What one hop of a joined path stores (image indices refer to the joined path)."""
    res = band.res
    e = np.asarray(res.energies, float)
    return {
        "images": [first, first + len(res.images) - 1],
        "barrier_forward": float(e.max() - e[0]),
        "barrier_reverse": float(e.max() - e[-1]),
        "reaction_energy": float(e[-1] - e[0]),
        "converged": bool(res.converged),
        "fmax": float(res.fmax),
        "stage": band.stage,
        "ml_barrier": band.ml_barrier,
        "ml_fallback_reason": band.fallback,
    }


@dataclass
class SurrogatePath:
    """Outcome of :func:`surrogate_path`.

    Attributes
    ----------
    band
        DFT single points on the surrogate path when accepted, else the input band.
    ml_barrier
        Surrogate barrier max(E) - E(initial), eV (None when the surrogate NEB failed).
    fallback
        Why the path was rejected; None when accepted.
    dft_calls
        DFT force calls of the single points.
    converged
        The surrogate NEB converged.
    """

    band: list[Atoms]
    ml_barrier: float | None
    fallback: str | None
    dft_calls: int = 0
    converged: bool = False


def _band_problem(res: NEBResult) -> str | None:
    """Why a surrogate band cannot be used (not converged, collapsing, discontinuous) or None."""
    if not res.converged:
        return f"surrogate NEB not converged (fmax {res.fmax:.3f} eV/A after {res.steps} steps)"
    for i, im in enumerate(res.images):
        if min_distance(im) < ML_MIN_DISTANCE:
            return f"atoms collapsing in surrogate image {i} (< {ML_MIN_DISTANCE} A)"
    steps = path_steps(res.images)
    if max(steps) > ML_MAX_STEP_RATIO * float(np.mean(steps)):
        return (f"surrogate band discontinuous (largest image step {max(steps):.2f} A > "
                f"{ML_MAX_STEP_RATIO} x mean {np.mean(steps):.2f} A)")
    return None


def surrogate_path(band: list[Atoms], settings: CalcSettings, workdir: Path,
                   dft_factory: CalcFactory, ml: Any) -> SurrogatePath:
    """Converge ``band`` with the surrogate factory ``ml`` and check it with DFT single points.

    The surrogate NEB (climbing image as ``neb.climb``) runs to ``neb.ml_fmax`` in
    ``workdir/neb-ml`` from surrogate single points of the endpoints (``ml-endpoints/``). The
    path is rejected when the surrogate NEB fails or does not converge, two atoms come closer
    than ``ML_MIN_DISTANCE``, one image step exceeds ``ML_MAX_STEP_RATIO`` times the mean, or
    the DFT barrier on the path (single points in ``ml-check/``) differs from the surrogate
    barrier by more than ``neb.ml_max_barrier_gap`` eV.
    """
    nset = settings.neb
    ml_ends = []
    for name, im in (("initial", band[0]), ("final", band[-1])):
        r = static(im, ml, workdir / "ml-endpoints", label=name)
        ml_ends.append(with_results(im, r.atoms))
    ml_start = [ml_ends[0]] + [im.copy() for im in band[1:-1]] + [ml_ends[1]]
    for im, src in zip(ml_start[1:-1], band[1:-1], strict=True):
        im.set_constraint([c.copy() for c in src.constraints])
    try:
        res = run_neb(ml_start, ml, workdir / "neb-ml", nset, label="neb", fmax=nset.ml_fmax,
                      describe=ml.description)
    except Exception as exc:  # the surrogate failing must not stop the DFT stage
        return SurrogatePath(band, None, f"surrogate NEB failed: {exc}")
    ml_barrier = max(res.energies) - res.energies[0]
    problem = _band_problem(res)
    if problem:
        return SurrogatePath(band, ml_barrier, problem, 0, res.converged)
    # DFT single points on the surrogate path: they are the first band of the DFT stage
    checked = [band[0]]
    calls = 0
    for i, im in enumerate(res.images[1:-1], start=1):
        geo = im.copy()
        geo.set_constraint([c.copy() for c in band[i].constraints])
        r = static(geo, dft_factory, workdir / "ml-check", label=f"img{i}")
        calls += r.force_calls
        checked.append(with_results(geo, r.atoms))
    checked.append(band[-1])
    e = [im.get_potential_energy() for im in checked]
    dft_on_ml = max(e) - e[0]
    if abs(dft_on_ml - ml_barrier) > nset.ml_max_barrier_gap:
        return SurrogatePath(band, ml_barrier, (
            f"DFT barrier on the surrogate path {dft_on_ml:.3f} eV differs from the surrogate "
            f"barrier {ml_barrier:.3f} eV by more than {nset.ml_max_barrier_gap} eV"), calls,
            res.converged)
    return SurrogatePath(checked, ml_barrier, None, calls, res.converged)
