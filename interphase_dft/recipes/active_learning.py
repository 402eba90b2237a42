"""Certified saddles at surrogate cost: the active-learning loop of one hop (issue 17, item 1).

:func:`active_learning_band` repeats, in ``workdir/round{k}/``:

1. the surrogate relaxes both endpoints (``initial-ml/``, ``final-ml/``) and converges the
   band to ``neb.ml_fmax`` (``neb-ml/``; round 0 starts from IDPP, later rounds from the
   previous surrogate band), first without a climbing image, then with one if the relaxed
   band converged with an interior maximum
   (:meth:`~interphase_dft.recipes.al_steps.HopLoop.surrogate_band`);
2. reference ("DFT") single points on the images and endpoints, the climbing image first
   (``ref/``); every one goes to the frame store through the reference factory;
3. a band with an image more than ``neb_path.INTERMEDIATE_MINIMUM`` below its lower endpoint
   at the reference level passes through another minimum: the loop ends there, not
   certified, and the barrier recipe splits the band at that image (the finish's CI-NEB stops
   by the same rule);
   certified when the reference force on the climbing image is <= ``neb.fmax`` (its NEB force
   has the same norm: the climbing image feels no springs and only the tangential component
   is inverted), the reference forces on both endpoints are <= ``relax.fmax`` and the
   reference barrier changed by < ``neb.al_barrier_tol`` since the previous round;
4. else the pretrained surrogate is fine-tuned (:func:`interphase_dft.calc.finetune.finetune`)
   on every reference frame of this hop plus the stored frames of the same elements and
   settings hash, and the next round starts from the current band; with
   ``neb.al_force_correction`` each endpoint and image of the next round also carries the
   first-order reference correction anchored at its reference point
   (:mod:`interphase_dft.calc.correction`): the fine-tuned surrogate's energy and forces
   equal the reference there, so its relaxation and band are quasi-Newton steps on the
   reference surface.

With an ``anchor`` (the relaxed host of ``neb.relax_host``) every surrogate calculator of the
loop (pretrained or fine-tuned) also carries the first-order correction measured at the host
(:class:`~interphase_dft.recipes.host.HostAnchor`), so the surrogate's endpoints and band stay
at the reported level's host geometry instead of returning to the surrogate's own; a
correction anchored at an image (``neb.al_force_correction``) replaces it for that image.

Every reference relaxation of an endpoint (``neb.al_reference_endpoints`` and the finish)
watches the hopping Li (:mod:`interphase_dft.recipes.basin`): an endpoint that carries it
closer to the other endpoint's site than to its own is not a minimum, and the loop ends with
:class:`~interphase_dft.recipes.basin.EndpointNotMinimum`.

After ``neb.al_max_rounds`` rounds, or when fine-tuning fails (a warning), the band is
finished by the reference: endpoints whose reference force exceeds ``relax.fmax`` are relaxed
(``final/initial``, ``final/final``; BFGS from the last surrogate's Hessian there) and a
reference CI-NEB runs from the current band (``final/neb``; its images' reference single
points are reused), or with ``neb.al_finish = 'prfo'`` a reference saddle search from the
band's climbing image (``final/saddle``, :mod:`interphase_dft.recipes.saddle_search`; a band
without an interior maximum, or whose search does not certify, gets the CI-NEB after it).
Every reference call is counted. Energies in eV, forces in eV/Angstrom.

The steps themselves live in :mod:`interphase_dft.recipes.al_steps` (the surrogate band, the
reference points, fine-tuning, reference minima and the finish) and
:mod:`interphase_dft.recipes.al_moves` (trust radius and damping of the corrected step).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.correction import ForceCorrection
from interphase_dft.calc.finetune import FineTuned, finetune, surrogate_errors
from interphase_dft.calc.frames import FrameStore, RecordingFactory, element_key
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.reuse import ReusingFactory
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import max_force
from interphase_dft.parallel import on_rank0
from interphase_dft.recipes.al_moves import adapted_steps
from interphase_dft.recipes.al_steps import HopFrames, HopLoop, corrections
from interphase_dft.recipes.basin import site_watches
from interphase_dft.recipes.neb_path import intermediate_minimum, path_coordinate
from interphase_dft.recipes.saddle import hop_saddle

if TYPE_CHECKING:
    from interphase_dft.recipes.host import HostAnchor

log = logging.getLogger("interphase_dft.recipes")

CERTIFIED = "dft-certified"


@dataclass
class ALResult:
    """Outcome of :func:`active_learning_band`.

    Attributes
    ----------
    stage
        ``'dft-certified'`` or ``'not certified: <reason>'``.
    images, energies
        The final band with reference results (absolute energies, eV).
    barrier_forward, barrier_reverse, reaction_energy
        From the reference energies, eV.
    ci_force, endpoint_forces
        Largest reference force on the climbing image and on each endpoint, eV/Angstrom.
    rounds
        Rounds of the loop run (a final reference CI-NEB counts as one more).
    reference_calls
        Reference (DFT) force calls of the hop, endpoints and final CI-NEB included.
    finetune_seconds
        Wall time of each fine-tuning, s.
    errors_before, errors_after
        Errors of the pretrained and the fine-tuned surrogate on the reference frames of the
        last round that the fine-tuned surrogate was not trained on
        (:func:`~interphase_dft.calc.finetune.surrogate_errors`); empty before a fine-tuning.
    weights_hash, frame_ids
        SHA-256 of the last fine-tuned weights and the frames they were trained on.
    fallback
        Why the reference finished the band (None when the loop certified).
    saddle_search
        The record of the reference saddle search that finished the band
        (``neb.al_finish = 'prfo'``, :mod:`interphase_dft.recipes.saddle_search`), or None.
    """

    stage: str
    images: list[Atoms]
    energies: list[float]
    barrier_forward: float
    barrier_reverse: float
    reaction_energy: float
    ci_force: float
    endpoint_forces: list[float]
    rounds: int
    reference_calls: int
    finetune_seconds: list[float] = field(default_factory=list)
    errors_before: dict[str, float] = field(default_factory=dict)
    errors_after: dict[str, float] = field(default_factory=dict)
    weights_hash: str | None = None
    frame_ids: list[str] = field(default_factory=list)
    fallback: str | None = None
    warnings: list[str] = field(default_factory=list)
    saddle_search: dict[str, Any] | None = None

    @property
    def certified(self) -> bool:
        return self.stage == CERTIFIED


def _host_tuned(loop: HopLoop, seconds: list[float]) -> tuple[MLFactory, FineTuned | None]:
    """The surrogate fine-tuned on the stored frames of these elements and settings (the
    host relaxation's), or the pretrained one (none stored, or fine-tuning failed: a
    warning)."""
    ml, tuned, failure = loop.fine_tuned("host")
    if tuned is None:
        if failure is not None:
            msg = f"active learning: fine-tuning on the host's frames failed ({failure})"
            log.warning(msg)
            loop.warnings.append(msg)
        return ml, None
    seconds.append(tuned.seconds)
    log.info("active learning: surrogate fine-tuned on %d stored frames before round 0",
             len(tuned.frame_ids))
    return ml, tuned


def _saddle(band: list[Atoms]) -> int | None:
    """The interior maximum of ``band`` (reference energies) if it is a saddle candidate
    (:func:`~interphase_dft.recipes.saddle.hop_saddle` with the band's path length)."""
    return hop_saddle([float(im.get_potential_energy()) for im in band], path_coordinate(band))


def _barrier(band: list[Atoms]) -> float:
    e = [float(im.get_potential_energy()) for im in band]
    return max(e) - e[0]


def _check(settings: CalcSettings, band: list[Atoms], previous: float | None) -> str | None:
    """Why ``band`` (reference results) is not yet certified, or None.

    A band whose highest reference image is an endpoint, or lies within
    :data:`~interphase_dft.recipes.saddle.SEPARATION` of one (no interior maximum,
    :func:`~interphase_dft.recipes.saddle.hop_saddle`), between reference minima is finished:
    the barrier along the lowest path is at most the highest point of any path joining the
    minima, so this one bounds the forward barrier by max(0, E_final - E_initial), and the
    saddle rule reports it as ``no saddle: reaction energy``; there is no climbing image to
    converge. The climbing-image force is that of the reference maximum (the surrogate band's
    highest image can be another one: the reference energies decide, and a reference maximum
    with a force within ``neb.fmax`` is stationary wherever it sits)."""
    ends = [max_force(band[0]), max_force(band[-1])]
    saddle = _saddle(band)
    if saddle is None:
        if max(ends) > settings.relax.fmax:
            return (f"no interior maximum; reference endpoint force {max(ends):.3f} > "
                    f"relax.fmax {settings.relax.fmax}")
        return None
    ci = max_force(band[saddle])
    if ci > settings.neb.fmax:
        return f"reference force on the climbing image {ci:.3f} > neb.fmax {settings.neb.fmax}"
    if max(ends) > settings.relax.fmax:
        return f"reference endpoint force {max(ends):.3f} > relax.fmax {settings.relax.fmax}"
    if previous is None:
        return "no previous round to compare the barrier with"
    change = abs(_barrier(band) - previous)
    if change >= settings.neb.al_barrier_tol:
        return f"barrier changed by {change:.3f} eV >= neb.al_barrier_tol"
    return None


def active_learning_band(initial: Atoms, final: Atoms, reference: CalcFactory,
                         surrogate: MLFactory, settings: CalcSettings, workdir: Path | str,
                         *, frames: FrameStore | None = None, work_key: str | None = None,
                         mic: bool = True,
                         tune: Callable[..., FineTuned] = finetune,
                         stop: Callable[[], None] | None = None,
                         anchor: HostAnchor | None = None, watch_ends: bool = True) -> ALResult:
    """Certified reference saddle of the hop ``initial`` -> ``final`` (module docstring).

    Parameters
    ----------
    initial, final
        Endpoint guesses (constraints kept); relaxed here.
    reference
        Factory of the reference level (DFT; the frames and the certificate are its).
    surrogate
        The pretrained surrogate factory (D3 on top where DFT has it).
    settings
        ``neb`` (n_images, fmax, ml_fmax, al_*), ``relax`` (fmax, ml_steps).
    workdir
        Checkpoint directory of the hop; a rerun resumes every finished step.
    frames
        Frame store: the hop's reference frames go there and stored frames of the same
        elements and settings hash are used for fine-tuning (None: this hop's frames only).
    work_key
        Stored with the frames.
    mic
        Interpolate with the minimum-image convention.
    tune
        The fine-tuning function (:func:`~interphase_dft.calc.finetune.finetune`).
    stop
        Called after each round that does not end the loop, before its fine-tuning and the
        next round's surrogate band; raises to end the loop there (the barrier recipe passes
        :meth:`Ledger.check_time_limit <interphase_dft.calc.budget.Ledger.check_time_limit>`,
        so the run's time limit also bounds the surrogate work between reference calls; a
        rerun continues from the checkpoints).
    anchor
        The relaxed host of the hop's states (module docstring), or None.
    watch_ends
        Watch the endpoints' reference relaxations (:mod:`interphase_dft.recipes.basin`):
        True for a hop's own endpoints, False for the ends of a segment of a joined path.
    """
    wd = Path(workdir)
    halt = stop or (lambda: None)
    nset = settings.neb
    hop = HopFrames(frames)
    # one live reference calculator per band slot: each round's single points (and the final
    # CI-NEB) start from the SCF of the slot's previous geometry (calc.reuse)
    reusing = ReusingFactory(reference)
    loop = HopLoop(settings, RecordingFactory(reusing, hop, work_key), surrogate, hop, wd, mic,
                   tune, element_key(initial.get_chemical_symbols()))
    ml, ends, band = surrogate, [initial, final], None
    tuned: FineTuned | None = None
    seconds: list[float] = []
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    previous: float | None = None
    reason: str | None = None
    fallback: str | None = None
    rounds = 0
    corr: list[ForceCorrection] | None = None
    steps: list[float] | None = None
    climb = True
    last: list[Atoms] | None = None  # the reference band the corrections were anchored at
    fractions: list[float] = []  # the step fraction each point of the last round took
    if anchor is not None:  # start from a surrogate that has seen the relaxed host
        ml, tuned = _host_tuned(loop, seconds)
    # an endpoint must stay on its own site
    loop.watches = site_watches(initial, final, mic) if watch_ends else None
    if nset.al_reference_endpoints:
        ends = [loop.reference_minimum(end, wd / "endpoints" / name, ml, loop.watch(k))
                for k, (name, end) in enumerate(zip(("initial", "final"), ends, strict=True))]
    for k in range(nset.al_max_rounds):
        rwd = wd / f"round{k}"
        rounds = k + 1
        # rank 0's corrections on every rank (the surrogate steps' checkpoints hash them);
        # the host's only where no point carries its own
        base = None if anchor is None or corr else on_rank0(anchor.correction, ml)
        band, top, fractions = loop.surrogate_band(ends, band, ml, rwd, corr, steps, climb,
                                                   base, nset.al_reference_endpoints)
        n_old = len(hop.frames)
        ref_band = loop.reference_points(band, top, rwd)
        if tuned is not None:  # frames of this round: not in the training set
            held_out = [f.atoms for f in hop.frames[n_old:]] or ref_band
            before = surrogate_errors(surrogate, held_out, ref_band[0])
            after = surrogate_errors(ml, held_out, ref_band[0])
        jump = intermediate_minimum([float(im.get_potential_energy()) for im in ref_band])
        if jump is not None:  # not one hop: the barrier recipe splits the band there
            log.info("active learning round %d: %s", k, jump)
            loop.warnings.append(f"active learning round {k}: {jump}")
            return _result(f"not certified: {jump}", ref_band, top, rounds, loop, seconds,
                           before, after, tuned, None)
        reason = _check(settings, ref_band, previous)
        # no interior maximum at the reference level: the next surrogate band relaxes to the
        # path without a climbing image (one would climb into an endpoint and never converge)
        climb = _saddle(ref_band) is not None
        log.info("active learning round %d: reference barrier %.4f eV, %s", k,
                 _barrier(ref_band), reason or "certified")
        if reason is None:
            return _result(CERTIFIED, ref_band, top, rounds, loop, seconds, before, after,
                           tuned, None)
        previous = _barrier(ref_band)
        ends = [ref_band[0], ref_band[-1]]
        if k == nset.al_max_rounds - 1:
            fallback = f"not certified after {nset.al_max_rounds} rounds ({reason})"
            break
        halt()
        tuned_ml, tuned, failure = loop.fine_tuned(f"round{k}")
        if tuned is None:  # ml stays the last working surrogate (the finish's Hessian)
            fallback = f"fine-tuning failed ({failure or 'no reference frames'})"
            msg = f"active learning: {fallback}; finishing with a reference CI-NEB"
            log.warning(msg)
            loop.warnings.append(msg)
            break
        ml = tuned_ml
        seconds.append(tuned.seconds)
        if nset.al_force_correction:  # anchored with the surrogate the next round uses
            if last is not None and len(last) == len(ref_band):
                steps = adapted_steps(last, ref_band, fractions, nset.al_correction_step)
                log.info("active learning: corrected step fractions %s",
                         ", ".join(f"{b:.2f}" for b in steps))
            corr = on_rank0(corrections, ref_band, ml)
            last = ref_band
    assert band is not None
    searched, record = None, None
    if nset.al_finish == "prfo":  # the ends are finished once, for the search and a CI-NEB
        ends = loop.finished_ends(ref_band, wd / "final", ml)
        ref_band = [ends[0], *ref_band[1:-1], ends[1]]
        searched = loop.search(ref_band, wd / "final", ml)
        record = searched[2] if searched is not None else None
    if searched is not None and searched[1]:
        final_band, converged, _ = searched
        how = "reference saddle search"
    else:  # the CI-NEB finish: asked for, or the search had no start or did not certify
        if nset.al_finish == "prfo":
            loop.warnings.append(
                "saddle search: " + ("the band has no interior maximum to start from"
                                     if searched is None else str(record["why"]))
                + "; finished with a reference CI-NEB")
        final_band, converged = loop.finish(ref_band, wd / "final", ml,
                                            ends_done=nset.al_finish == "prfo")
        how = "reference CI-NEB"
    top = int(np.argmax([im.get_potential_energy() for im in final_band[1:-1]])) + 1
    ends_ok = _check_ends(settings, final_band)
    stage = CERTIFIED if converged and ends_ok else (
        f"not certified: {how} not converged after {fallback}" if not converged else
        f"not certified: endpoint forces above relax.fmax after the {how}")
    result = _result(stage, final_band, top, rounds + 1, loop, seconds, before, after, tuned,
                     fallback)
    result.saddle_search = record
    return result


def _check_ends(settings: CalcSettings, band: list[Atoms]) -> bool:
    return max(max_force(band[0]), max_force(band[-1])) <= settings.relax.fmax


def _result(stage: str, band: list[Atoms], top: int, rounds: int, loop: HopLoop,
            seconds: list[float], before: dict[str, float], after: dict[str, float],
            tuned: FineTuned | None, fallback: str | None) -> ALResult:
    e = [float(im.get_potential_energy()) for im in band]
    saddle = _saddle(band)  # the reference maximum when it is interior, else the given top
    return ALResult(
        stage=stage, images=band, energies=e, barrier_forward=max(e) - e[0],
        barrier_reverse=max(e) - e[-1], reaction_energy=e[-1] - e[0],
        ci_force=max_force(band[top if saddle is None else saddle]),
        endpoint_forces=[max_force(band[0]), max_force(band[-1])],
        rounds=rounds, reference_calls=loop.calls, finetune_seconds=seconds,
        errors_before=before, errors_after=after,
        weights_hash=tuned.weights_hash if tuned else None,
        frame_ids=list(tuned.frame_ids) if tuned else [], fallback=fallback,
        warnings=list(loop.warnings))
