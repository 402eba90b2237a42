"""The steps of one active-learning hop (:mod:`interphase_dft.recipes.active_learning`):
the surrogate band, the reference single points, the training frames, reference minima,
the fine-tuning of the surrogate and the reference finish.

Every step runs on every MPI rank with the same inputs: whatever only rank 0 computes
(fine-tuned weights, corrections, the frames read from the store) is broadcast, so the
reference code sees one geometry on all ranks. Energies in eV, forces in eV/Angstrom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.parallel import broadcast, world

from interphase_dft.calc.checkpoint import info, same_geometry
from interphase_dft.calc.correction import CorrectedFactory, ForceCorrection, correction_at
from interphase_dft.calc.finetune import FineTuned
from interphase_dft.calc.frames import Frame, FrameStore, RecordingFactory, frame_settings_hash
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.hessian import start_hessian
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.neb import run_neb
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings, NEBSettings
from interphase_dft.calc.tuned_weights import (
    TUNED_DIR,
    Untuned,
    load_tuned,
    save_tuned,
    save_untuned,
    tuned_fingerprint,
)
from interphase_dft.constraints import bare_copy, max_force
from interphase_dft.parallel import on_rank0
from interphase_dft.recipes.al_moves import damped_step, trusted_fraction
from interphase_dft.recipes.basin import SiteWatch, raise_if_left, watched_rearrangement
from interphase_dft.recipes.neb_path import idpp_band, intermediate_minimum, with_results
from interphase_dft.recipes.saddle import hop_saddle

log = logging.getLogger("interphase_dft.recipes")


class HopFrames:
    """Sink of the hop's reference frames: kept in memory (in order) and passed on to
    ``store`` (the frame store, or None); a frame not stored gets the id ``'hop:<n>'``."""

    def __init__(self, store: FrameStore | None) -> None:
        self.store = store
        self.frames: list[Frame] = []

    def add(self, frame: Frame) -> str:
        key = frame.frame_key
        known = next((f for f in self.frames if f.frame_key == key), None)
        if known is not None and self.store is None:
            return str(known.id)
        fid = self.store.add(frame) if self.store is not None else f"hop:{len(self.frames)}"
        if known is None:
            self.frames.append(replace(frame, id=fid))
        return fid


@dataclass
class HopLoop:
    """State shared by the steps of one hop: the settings, the recording reference factory,
    the pretrained surrogate (``base``), the hop's frames, the work directory, the
    interpolation's minimum-image convention, the fine-tuning function and the hop's element
    key; it counts the reference calls and collects warnings and the reference points already
    computed (``known``). ``watches``: the basin rule of the hop's two endpoints
    (:mod:`interphase_dft.recipes.basin`), or None; ``fixed``: the endpoints (0, 1) that are
    reference minima and stay where they are."""

    settings: CalcSettings
    reference: RecordingFactory
    base: MLFactory
    hop: HopFrames
    workdir: Path
    mic: bool
    tune: Callable[..., FineTuned]
    elements: str
    calls: int = 0
    warnings: list[str] = field(default_factory=list)
    known: list[Atoms] = field(default_factory=list)
    watches: tuple[SiteWatch, SiteWatch] | None = None
    fixed: set[int] = field(default_factory=set)

    def watch(self, k: int) -> SiteWatch | None:
        """The basin rule of endpoint ``k`` (0 initial, 1 final), or None."""
        return self.watches[k] if self.watches else None

    def surrogate_band(self, ends: list[Atoms], band: list[Atoms] | None,
                       ml: MLFactory, wd: Path,
                       corr: list[ForceCorrection] | None = None,
                       steps: list[float] | None = None,
                       climb: bool = True,
                       base: ForceCorrection | None = None,
                       fixed_ends: bool = False) -> tuple[list[Atoms], int, list[float]]:
        """Surrogate-relaxed endpoints and band; returns it, the top image and the step
        fraction each point took (``steps`` cut by the trust radius; 1 without ``corr``).
        The band is relaxed without a climbing image first (``neb-ml/neb``); with ``climb``
        its highest image then climbs (``neb-ml/ci``) only if the relaxed band converged and
        that image is an interior maximum: on a band that falls from an endpoint the
        climbing image would climb into that endpoint, where its force vanishes only as it
        arrives, and on an unconverged band the highest image need not be near a saddle.
        ``corr``: the reference corrections anchored at the last round's band (one per
        image, endpoints included), or None; ``base``: the correction of every point without
        one of ``corr`` (the host anchor's), or None; ``fixed_ends``: the endpoints are
        reference minima and stay where they are (the band still needs their energies with
        this round's surrogate), as is every endpoint in ``fixed``.

        An endpoint whose surrogate step carries the hopping Li to the other endpoint's site
        (its watch) is not taken: the reference relaxes it from where it was
        (:meth:`reference_minimum` in ``endpoints/<name>``, watched, so a reference that
        agrees ends the hop with
        :class:`~interphase_dft.recipes.basin.EndpointNotMinimum`), and it stays fixed."""
        rs = self.settings.relax.for_surrogate()
        nset = self.settings.neb
        band_ml = CorrectedFactory(ml, dict(enumerate(corr or [])), base)
        n = (len(band) if band is not None else nset.n_images + 2)
        steps = steps if corr and steps else [1.0] * n
        used = list(steps)  # the fractions taken (the trust radius may cut them)
        # a first-order correction holds near its anchor only: trust radius
        max_move = nset.al_max_move if corr or base is not None else None
        new_ends = []
        for k, (name, end) in enumerate(zip(("initial", "final"), ends, strict=True)):
            end_ml = band_ml.at_endpoint(corr[(0, -1)[k]] if corr else base)
            if fixed_ends or k in self.fixed:
                new_ends.append(_with_surrogate(end, end_ml, wd / f"{name}-ml"))
                continue
            r = relax(end, end_ml, wd / f"{name}-ml", rs, label="ml")
            step = trusted_fraction(end, r.atoms, steps[(0, -1)[k]], max_move)
            used[(0, -1)[k]] = step
            new = damped_step(end, r.atoms, step)
            watch = self.watch(k)
            if watch is not None and watch(end) is None and watch(new):
                self.warnings.append(f"{wd.name}: the surrogate moved the {name} state's Li "
                                     "to the other site; relaxed with the reference instead")
                ref = self.reference_minimum(end, self.workdir / "endpoints" / name, ml, watch)
                self.fixed.add(k)
                used[(0, -1)[k]] = 1.0
                new_ends.append(_with_surrogate(ref, end_ml, wd / f"{name}-ml"))
                continue
            if step < 1.0:  # the band needs its endpoints' (corrected) surrogate energies
                new = with_results(end, static(new, end_ml, wd / f"{name}-ml",
                                               label="damped").atoms)
            new_ends.append(new)
        if band is None:
            start = idpp_band(new_ends[0], new_ends[1], nset.n_images, mic=self.mic)
        else:
            start = [new_ends[0], *[bare_copy(im) for im in band[1:-1]], new_ends[1]]
        res = run_neb(start, band_ml, wd / "neb-ml", nset, label="neb", fmax=nset.ml_fmax,
                      climb=False, describe=band_ml.description)
        if climb and res.converged and hop_saddle(res.energies) is not None:
            res = run_neb(res.images, band_ml, wd / "neb-ml", nset, label="ci",
                          fmax=nset.ml_fmax, climb=True, describe=band_ml.description)
        if not res.converged:
            self.warnings.append(f"{wd.name}: surrogate band not converged "
                                 f"(fmax {res.fmax:.3f} eV/A); reference points taken on it")
        top = int(np.argmax(res.energies[1:-1])) + 1
        for i, (s0, im) in enumerate(zip(start[1:-1], res.images[1:-1], strict=True), 1):
            used[i] = trusted_fraction(s0, im, steps[i], max_move)
        images = [new_ends[0], *[damped_step(s0, im, b) for s0, im, b in
                                 zip(start[1:-1], res.images[1:-1], used[1:-1], strict=True)],
                  new_ends[1]]
        return same_on_all_ranks([bare_copy(im) for im in images]), top, used

    def reference_points(self, band: list[Atoms], top: int, wd: Path) -> list[Atoms]:
        """Reference single points: climbing image first, then endpoints, then the rest."""
        n = len(band)
        order = [top, 0, n - 1, *[i for i in range(1, n - 1) if i != top]]
        out: list[Atoms | None] = [None] * n
        for i in order:
            known = next((a for a in self.known if same_geometry(a, band[i])), None)
            if known is not None:  # e.g. an endpoint the surrogate did not move: no new call
                out[i] = with_results(band[i], known)
                continue
            r = static(band[i], self.reference, wd / "ref", label=f"img{i}")
            self.calls += r.force_calls
            if r.resumed:  # a rerun: the stored single point is a frame of this hop too
                self.reference.store(r.atoms, r.atoms.calc.results)
            out[i] = with_results(band[i], r.atoms)
            self.known.append(r.atoms)
        return [a for a in out if a is not None]

    def training_frames(self) -> list[Frame]:
        """This hop's frames plus stored frames of the same elements and settings hash, at
        most ``neb.al_max_frames`` (:func:`capped_frames`), as rank 0 reads them (every MPI
        rank fine-tunes on the same frames)."""
        return broadcast(self._training_frames() if world.rank == 0 else None, root=0)

    def _training_frames(self) -> list[Frame]:
        frames = list(self.hop.frames)
        stored: list[Frame] = []
        store = self.hop.store
        if store is not None:
            seen = {f.id for f in frames}
            shash = frame_settings_hash(self.reference.description)
            stored = [f for f in store.select(elements=self.elements, settings_hash=shash)
                      if f.id not in seen]
        return capped_frames(frames, stored, self.settings.neb.al_max_frames)

    def fine_tuned(self, stage: str) -> tuple[MLFactory, FineTuned | None, str | None]:
        """The pretrained surrogate fine-tuned on :meth:`training_frames` (fine-tuning
        ``stage`` of this hop: ``'host'`` before round 0, ``'round<k>'`` after round k):
        (surrogate, its fine-tuning, None); (the pretrained surrogate, None, the error) when
        the fine-tuning failed, or (the pretrained surrogate, None, None) when there is no
        frame to train on. The caller decides what either means. A fine-tuning stored in the
        work directory by an earlier run of this hop is read back, not trained again, and so
        is a stage that ran without one (:mod:`interphase_dft.calc.tuned_weights`)."""
        nset = self.settings.neb
        key = tuned_fingerprint(self.base.description, epochs=nset.al_epochs,
                                learning_rate=nset.al_learning_rate)
        stored = on_rank0(load_tuned, self.base.model, self.workdir, stage, key)
        if isinstance(stored, Untuned):
            info(log, "active learning: stage %s ran with the pretrained surrogate before (%s); "
                 "so does this run", stage, stored.failure or "no frame to train on")
            return self.base, None, stored.failure
        if stored is not None:
            info(log, "active learning: fine-tuning %s read from %s (%d frames)", stage,
                 self.workdir / TUNED_DIR, len(stored.frame_ids))
            return self._with(stored), stored, None
        frames = self.training_frames()
        if not frames:
            on_rank0(save_untuned, self.workdir, stage, key, None)
            return self.base, None, None
        tuned, failure = _tune_on_rank0(self.tune, self.base, frames, nset, self.workdir,
                                        stage, key)
        if tuned is None:
            on_rank0(save_untuned, self.workdir, stage, key, failure)
            return self.base, None, failure
        return self._with(tuned), tuned, None

    def _with(self, tuned: FineTuned) -> MLFactory:
        return replace(self.base, _model=tuned.model, weights=tuned.weights_hash)

    def reference_minimum(self, end: Atoms, wd: Path, ml: CalcFactory | None,
                          watch: SiteWatch | None = None) -> Atoms:
        """``end`` relaxed at the reference level in ``wd`` (curvature from
        :func:`~interphase_dft.calc.hessian.start_hessian` of ``ml``), with its reference
        results; known to :meth:`reference_points`. Raises
        :class:`~interphase_dft.recipes.basin.EndpointNotMinimum` when ``watch`` sees the
        hopping Li leave its site."""
        hessian = start_hessian(end, ml, wd, self.settings)
        r = relax(end, self.reference, wd, self.settings.relax, label="relax", hessian=hessian,
                  watch=watch)
        self.calls += r.force_calls
        raise_if_left(r.stopped, watch, wd / "relax.traj", self.calls)
        if moved := watched_rearrangement(end, r.atoms, watch):
            self.warnings.append(moved)
        if not r.converged:
            self.warnings.append(f"{wd.name}: reference relaxation not converged (fmax "
                                 f"{r.fmax:.3f} eV/A after {r.steps} steps)")
        self.known.append(r.atoms)
        return with_results(end, r.atoms)

    def finished_ends(self, ref_band: list[Atoms], wd: Path,
                      ml: CalcFactory | None = None) -> list[Atoms]:
        """The two ends of ``ref_band``, each relaxed at the reference level in ``wd``
        (:meth:`reference_minimum`, watched) when its reference force exceeds
        ``relax.fmax``."""
        return [self.reference_minimum(end, wd / name, ml, self.watch(k))
                if max_force(end) > self.settings.relax.fmax else end
                for k, (name, end) in enumerate((("initial", ref_band[0]),
                                                 ("final", ref_band[-1])))]

    def search(self, band: list[Atoms], wd: Path,
               ml: CalcFactory) -> tuple[list[Atoms], bool, dict[str, Any]] | None:
        """The finish by a saddle search (:mod:`interphase_dft.recipes.saddle_search`) from
        ``band`` (its ends already finished, :meth:`finished_ends`): (band, certified,
        record), or None when the band has no interior maximum to start from."""
        from interphase_dft.recipes.saddle_search import search_saddle

        found = search_saddle([band[0], band[-1]], band, self.reference, ml, self.settings,
                              wd / "saddle", self.mic)
        if found is None:
            return None
        self.calls += int(found.record["reference_calls"])
        self.warnings.extend(found.record["warnings"])
        return found.band, found.converged, found.record

    def finish(self, ref_band: list[Atoms], wd: Path, ml: CalcFactory | None = None,
               ends_done: bool = False) -> tuple[list[Atoms], bool]:
        """Relax endpoints with too large reference forces (:meth:`reference_minimum`,
        watched; not when ``ends_done``: :meth:`finished_ends` gave them), then a reference
        CI-NEB from ``ref_band`` (its interior reference results are reused), stopped when an
        image falls into another minimum
        (:func:`~interphase_dft.recipes.neb_path.intermediate_minimum`)."""
        ends = ([ref_band[0], ref_band[-1]] if ends_done
                else self.finished_ends(ref_band, wd, ml))
        band = [ends[0], *ref_band[1:-1], ends[1]]
        # a band that falls into another minimum is split there by the barrier recipe:
        # converging its climbing image first would cost reference calls for nothing
        res = run_neb(band, self.reference, wd / "neb", self.settings.neb, label="neb",
                      climb=True, describe=self.reference.description,
                      stop_at=intermediate_minimum, reopen=True)
        self.calls += res.force_calls
        self.warnings.extend(res.warnings)
        return [with_results(im, im) for im in res.images], res.converged


def _with_surrogate(end: Atoms, end_ml: CalcFactory, wd: Path) -> Atoms:
    """``end`` where it is, with the (corrected) surrogate's energy and forces there (the
    band's fixed endpoint)."""
    return with_results(end, static(bare_copy(end), end_ml, wd, label="fixed").atoms)


def _tune_on_rank0(tune: Callable[..., FineTuned], surrogate: MLFactory, frames: list[Frame],
                   nset: NEBSettings, workdir: Path, stage: str,
                   key: str) -> tuple[FineTuned | None, str | None]:
    """(fine-tuned model, None) or (None, why it failed): trained on MPI rank 0, stored as
    ``stage`` in ``workdir`` (:func:`~interphase_dft.calc.tuned_weights.save_tuned`) and sent
    to every rank, so all ranks run the same surrogate (same weights hash, hence the same
    checkpoint fingerprints of the surrogate steps). A training failure is returned; a
    failure to store the weights is raised on every rank
    (:func:`~interphase_dft.parallel.on_rank0`), so no rank waits for a broadcast that never
    comes."""

    def train_and_store() -> tuple[FineTuned | None, str | None]:
        try:
            tuned = tune(surrogate.model, frames, epochs=nset.al_epochs,
                         learning_rate=nset.al_learning_rate)
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        save_tuned(tuned, workdir, stage, key)
        return tuned, None

    return on_rank0(train_and_store)


def capped_frames(own: list[Frame], stored: list[Frame], cap: int) -> list[Frame]:
    """At most ``cap`` training frames: ``own`` (the hop's, in order; the latest ``cap`` of
    them when they alone exceed it), then ``stored`` (without duplicates of ``own``) evenly
    spread over their order to fill the rest."""
    if len(own) >= cap:
        return own[len(own) - cap:]
    room = cap - len(own)
    if len(stored) <= room:
        return own + stored
    picks = np.unique(np.linspace(0, len(stored) - 1, room).round().astype(int))
    return own + [stored[int(i)] for i in picks]


def same_on_all_ranks(band: list[Atoms]) -> list[Atoms]:
    """``band`` with rank 0's positions on every MPI rank: each rank runs the surrogate itself
    (the same fine-tuned model, :meth:`HopLoop.fine_tuned`), and the reference code needs one
    geometry on all ranks."""
    positions = broadcast([im.positions for im in band], root=0)
    for im, pos in zip(band, positions, strict=True):
        im.positions = pos
    return band


def corrections(band: list[Atoms], ml: CalcFactory) -> list[ForceCorrection]:
    """The reference correction of ``ml`` anchored at each point of ``band``."""
    return [correction_at(im, ml) for im in band]
