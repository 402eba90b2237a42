"""NEB bands between relaxed minima: path, convergence, split at a minimum, joined paths.

:class:`BandRunner` holds what every band of one hop shares (settings, calculators, run log)
and does the steps of :func:`interphase_dft.recipes.barrier.neb_barrier`:

1. :meth:`BandRunner.relax_minimum`: relax one minimum (an endpoint or an intermediate
   minimum); with a surrogate factory for geometries (PBE//surrogate level) the surrogate
   relaxes it and DFT gives one single point, at the active-learning level DFT finishes the
   relaxation (a minimum shared by two hops is one DFT minimum);
2. :meth:`BandRunner.converge`: IDPP band (:func:`~interphase_dft.recipes.neb_path.idpp_band`),
   the optional surrogate pre-stage
   (:func:`~interphase_dft.recipes.surrogate_path.surrogate_path`), then the DFT
   climbing-image NEB
   (:func:`interphase_dft.calc.neb.run_neb`) or, with ``neb.dft_refine`` False and an accepted
   surrogate path, the DFT single points on that path (stage ``'dft//ml'``); with
   ``neb.active_learning`` the hop is converged by the active-learning loop instead
   (:func:`~interphase_dft.recipes.active_learning.active_learning_band`, ``al/``; stage
   ``'dft-certified'`` when it certifies, else ``'ml+dft'``: its DFT CI-NEB finished the band);
3. :meth:`BandRunner.split_at_minimum`: a band that passes through another minimum
   (:func:`~interphase_dft.recipes.neb_path.intermediate_minimum`) is split there: the
   minimum is relaxed (with the reported forces at the active-learning level, whose loops
   stop at such a band) and the two hops are converged separately and joined; the barriers of
   a joined path are its energetic spans (:mod:`interphase_dft.span`);
4. :meth:`BandRunner.converge_path`: a path through given minima (an interstitial path
   A -> interface -> B) is converged hop by hop (``hop1/``, ``hop2/``, ...) and joined.

Every DFT call is charged to the work item's :class:`~interphase_dft.calc.budget.Ledger`
(``ledger``; its ``stage`` names the step running), which stops the run at a cost ceiling;
the active-learning loop's reference calls too (it gets the metered factory). The DFT single
points go to the run log's frame store (``run.frames``, wrapped by the recipe).

Work directories of one band (prefix ``''``, ``'seg1_'``, ``'seg2_'``, ``'hop1_'`` in the
run log): ``neb/`` (DFT NEB), ``ml-endpoints/``, ``neb-ml/`` and ``ml-check/`` (surrogate
pre-stage). Energies in eV, lengths in Angstrom.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.budget import Ledger
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.neb import NEBResult, run_neb
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import copy_constraints
from interphase_dft.errors import InputError
from interphase_dft.recipes.basin import (
    EndpointNotMinimum,
    SiteWatch,
    raise_if_left,
    site_watches,
    watched_rearrangement,
)
from interphase_dft.recipes.neb_path import (
    idpp_band,
    join_bands,
    max_displacement,
    single_point_band,
    with_results,
)
from interphase_dft.recipes.surrogate_path import surrogate_path

if TYPE_CHECKING:
    from interphase_dft.recipes.active_learning import ALResult
    from interphase_dft.recipes.host import HostAnchor

log = logging.getLogger("interphase_dft.recipes")

#: relaxed endpoints closer than this (largest atom displacement, Angstrom) are one minimum
SAME_MINIMUM = 0.3
#: path stages from the cheapest level to the most complete one (a joined path gets the lowest)
STAGE_RANK = ("ml", "dft//ml", "ml+dft", "dft-certified", "dft-refined", "dft")


@dataclass
class Band:
    """A converged band (or a path joined from several) and how it was obtained.

    Attributes
    ----------
    res
        The band: images, absolute energies (eV), forces.
    stage
        ``'dft'``, ``'dft-certified'``, ``'ml+dft'``, ``'dft//ml'`` or ``'ml'`` (see
        ``BarrierDoc.stage``).
    ml_barrier
        Surrogate barrier of the pre-stage, eV (None without one, or for a joined path).
    fallback
        Why the surrogate path was rejected (None when accepted or not tried).
    segments
        Hops of a joined path (:func:`segment_summary`); empty for one hop.
    active_learning
        The active-learning loop's record (:func:`al_record`), None without it.
    """

    res: NEBResult
    stage: str
    ml_barrier: float | None = None
    fallback: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    active_learning: dict[str, Any] | None = None


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
    ledger
        Cost ledger charged by ``factory`` (its ``stage`` is set here), or None.
    anchor
        The relaxed host the hop's states were cut from (``neb.relax_host``), or None: the
        active-learning loop corrects its surrogate there
        (:class:`~interphase_dft.recipes.host.HostAnchor`).
    """

    settings: CalcSettings
    factory: CalcFactory
    run: RunLog
    geometry_ml: CalcFactory | None = None
    path_ml: CalcFactory | None = None
    mic: bool = True
    label: str = "neb"
    ledger: Ledger | None = None
    anchor: HostAnchor | None = None

    def at(self, stage: str) -> None:
        """Name the stage now running (for the over-budget record)."""
        if self.ledger is not None:
            self.ledger.stage = stage

    def relax_minimum(self, atoms: Atoms, workdir: Path, *, relax_it: bool,
                      key: str, watch: SiteWatch | None = None,
                      reference: bool = False) -> tuple[Atoms, bool]:
        """Relax one minimum of the path (an endpoint or an intermediate minimum).

        With ``geometry_ml`` (and not ``reference``): surrogate relaxation, then one single
        point, or at the active-learning level a relaxation with ``factory`` (the minimum is
        an endpoint of the hops' loops, which must all start from the same reference
        minimum); else a relaxation with ``factory`` (``relax_it``) or a single point. Force
        calls go to the run log under ``key`` (and
        ``key + '_ml'``). A reported-level relaxation that ``watch`` stops (the endpoint's
        hopping Li left its site) raises
        :class:`~interphase_dft.recipes.basin.EndpointNotMinimum`.

        Returns
        -------
        (atoms, converged) : ``atoms``' constraints with the results of the final geometry.
        """
        start = atoms
        converged = True
        ml = None if reference else self.geometry_ml
        if ml is not None:
            m = relax(atoms, ml, workdir, self.settings.relax.for_surrogate(), label="ml")
            self.run.add(f"{key}_ml", m)
            start = m.atoms
            copy_constraints(start, atoms)
            converged = m.converged
        if relax_it and (ml is None or self.settings.active_learning_level):
            r = relax(start, self.factory, workdir, self.settings.relax, label="relax",
                      watch=watch)
            converged = converged and r.converged
        else:
            r = static(start, self.factory, workdir, label="static")
        self.run.add(key, r)
        raise_if_left(r.stopped, watch, workdir / "relax.traj")
        if moved := watched_rearrangement(atoms, r.atoms, watch):
            self.run.warn(moved)
        return with_results(atoms, r.atoms), converged

    def relax_endpoints(self, initial: Atoms, final: Atoms, workdir: Path, *,
                        relax_it: bool) -> tuple[list[Atoms], list[str]]:
        """Both endpoints relaxed in ``workdir/initial`` and ``workdir/final``."""
        return self.relax_states([initial, final], workdir, relax_it=relax_it)

    def relax_states(self, states: list[Atoms], workdir: Path, *,
                     relax_it: bool) -> tuple[list[Atoms], list[str]]:
        """Relax the minima of a path: ``initial/``, ``minimum{k}/`` ..., ``final/``.

        Returns the relaxed minima and the names of those that did not converge; two
        consecutive minima that relaxed into one (closer than ``SAME_MINIMUM``) get a warning.
        """
        names = ["initial", *[f"minimum{k}" for k in range(1, len(states) - 1)], "final"]
        ends, unconverged = [], []
        # the two endpoints of one hop must stay on their own sites (recipes.basin)
        watches = site_watches(states[0], states[1], self.mic) if len(states) == 2 else None
        with self.run.stage("endpoints"):
            for k, (name, atoms) in enumerate(zip(names, states, strict=True)):
                self.at(f"endpoint {name}")
                end, ok = self.relax_minimum(atoms, workdir / name, relax_it=relax_it,
                                             key=f"endpoint_{name}",
                                             watch=watches[k] if watches else None)
                ends.append(end)
                if not ok:
                    unconverged.append(name)
        for a, b in itertools.pairwise(ends):
            separation = max_displacement(a, b, mic=self.mic)
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
        if settings.active_learning_level:
            return self.converge_al(ends, workdir, prefix)
        band = idpp_band(ends[0], ends[1], nset.n_images, mic=self.mic)
        stage = "dft"
        ml_converged = False
        ml_barrier = None
        fallback: str | None = None
        if nset.ml_prestage and settings.engine != "ml":
            self.at(f"{prefix}ml_neb and DFT path check")
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
            self.at(f"{prefix}dft_neb")
            with self.run.stage(f"{prefix}dft_neb"):
                res = run_neb(band, self.factory, workdir / "neb", nset, label="neb",
                              describe=getattr(self.factory, "description", {}),
                              reopen=True)
            self.run.add(f"{prefix}dft_neb", res)
        if settings.engine == "ml":
            stage = "ml"
        return Band(res, stage, ml_barrier, fallback)

    def converge_al(self, ends: list[Atoms], workdir: Path, prefix: str = "") -> Band:
        """The hop converged by the active-learning loop in ``workdir/al`` (its reference
        calls go through ``factory``: metered, frames recorded).

        Run-log names: ``{prefix}al`` (time) and ``{prefix}al_dft`` (force calls). Only the
        hop's own endpoints (no ``prefix``) are watched (:mod:`interphase_dft.recipes.basin`),
        not the ends of a segment of a joined path. The band's images carry DFT results;
        ``converged`` is the loop's certificate and ``fmax`` the DFT force on the climbing
        image (the interior maximum).
        """
        from interphase_dft.recipes.active_learning import active_learning_band

        if self.path_ml is None:
            raise InputError("neb.active_learning needs the surrogate (engine gpaw, ml extra)")
        self.at(f"{prefix}active learning")
        with self.run.stage(f"{prefix}al"):
            try:
                al = active_learning_band(
                    ends[0], ends[1], self.factory, self.path_ml, self.settings, workdir / "al",
                    frames=self.run.frames, work_key=self.run.work_key, mic=self.mic,
                    stop=self.ledger.check_time_limit if self.ledger else None,
                    anchor=self.anchor, watch_ends=not prefix)
            except EndpointNotMinimum as exc:  # the loop's calls up to there, then the doc
                self.run.count(f"{prefix}al_dft", exc.calls)
                raise
        self.run.count(f"{prefix}al_dft", al.reference_calls)
        self.run.warnings.extend(al.warnings)
        res = single_point_band(al.images, al.certified)
        res.fmax, res.force_calls = al.ci_force, al.reference_calls
        stage = "dft-certified" if al.certified else "ml+dft"
        return Band(res, stage, None, al.fallback, active_learning=al_record(al))

    def split_at_minimum(self, band: Band, workdir: Path) -> Band | None:
        """Relax the lowest intermediate image of ``band`` and converge the two hops through it.

        Work directories ``intermediate/``, ``seg1/`` and ``seg2/``. Returns the joined path
        with its ``segments``, or None (with a warning) when the image relaxes back into an
        endpoint, so the band stays one (flagged) hop.
        """
        res = band.res
        i = int(np.argmin(res.energies[1:-1])) + 1
        guess = res.images[i].copy()
        copy_constraints(guess, res.images[0])
        self.at("intermediate minimum")
        # at the active-learning level the minimum is relaxed with the reported forces (it is
        # an endpoint of both segments; their loops then find it converged, one call each)
        mid, ok = self.relax_minimum(guess, workdir / "intermediate", relax_it=True,
                                     key="intermediate",
                                     reference=self.settings.active_learning_level)
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

    def converge_path(self, minima: list[Atoms], workdir: Path) -> Band:
        """The path through relaxed ``minima`` (>= 3): hop k converged in ``hop{k}/`` and
        the hops joined; its barriers are the energetic spans of the joined path."""
        bands = []
        for k in range(1, len(minima)):
            bands.append(self.converge([minima[k - 1], minima[k]], workdir / f"hop{k}",
                                       f"hop{k}_"))
        joined = bands[0].res
        segments = [segment_summary(bands[0], 0)]
        for k, band in enumerate(bands[1:], start=1):
            first = len(joined.images) - 1
            mid = minima[k]
            mid_fmax = float(np.linalg.norm(mid.get_forces(apply_constraint=True), axis=1).max())
            joined = join_bands(joined, band.res, mid_fmax)
            segments.append(segment_summary(band, first))
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
        "active_learning": band.active_learning,
    }


def al_record(al: ALResult) -> dict[str, Any]:
    """What a barrier document stores of an active-learning loop
    (``BarrierDoc.active_learning``)."""
    return {"stage": al.stage, "rounds": al.rounds, "reference_calls": al.reference_calls,
            "finetune_seconds": list(al.finetune_seconds),
            "errors_before": dict(al.errors_before), "errors_after": dict(al.errors_after),
            "weights_hash": al.weights_hash, "frame_ids": list(al.frame_ids),
            "fallback": al.fallback, "ci_force": al.ci_force,
            "endpoint_forces": list(al.endpoint_forces), "saddle_search": al.saddle_search}
