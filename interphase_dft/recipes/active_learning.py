"""Certified saddles at surrogate cost: the active-learning loop of one hop (issue 17, item 1).

:func:`active_learning_band` repeats, in ``workdir/round{k}/``:

1. the surrogate relaxes both endpoints (``initial-ml/``, ``final-ml/``) and converges the
   climbing-image band to ``neb.ml_fmax`` (``neb-ml/``; round 0 starts from IDPP, later rounds
   from the previous surrogate band);
2. reference ("DFT") single points on the images and endpoints, the climbing image first
   (``ref/``); every one goes to the frame store through the reference factory;
3. certified when the reference force on the climbing image is <= ``neb.fmax`` (its NEB force
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

After ``neb.al_max_rounds`` rounds, or when fine-tuning fails (a warning), the band is
finished by the reference: endpoints whose reference force exceeds ``relax.fmax`` are relaxed
(``final/initial``, ``final/final``; BFGS from the last surrogate's Hessian there) and a
reference CI-NEB runs from the current band (``final/neb``; its images' reference single
points are reused). Every reference call is
counted. Energies in eV, forces in eV/Angstrom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.parallel import broadcast, world

from interphase_dft.calc.checkpoint import same_geometry
from interphase_dft.calc.correction import CorrectedFactory, ForceCorrection, correction_at
from interphase_dft.calc.finetune import FineTuned, finetune, surrogate_errors
from interphase_dft.calc.frames import (
    Frame,
    FrameStore,
    RecordingFactory,
    element_key,
    frame_settings_hash,
)
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.hessian import stored_hessian
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.neb import run_neb
from interphase_dft.calc.reuse import ReusingFactory
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings, NEBSettings
from interphase_dft.parallel import on_rank0
from interphase_dft.recipes.neb_path import idpp_band, with_results
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
        Why the reference CI-NEB finished the band (None when the loop certified).
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

    @property
    def certified(self) -> bool:
        return self.stage == CERTIFIED


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


def _fmax(atoms: Atoms) -> float:
    f = atoms.get_forces(apply_constraint=True)
    return float(np.linalg.norm(f, axis=1).max()) if len(f) else 0.0


@dataclass
class _Loop:
    """State shared by the steps of one hop (see :func:`active_learning_band`)."""

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

    def surrogate_band(self, ends: list[Atoms], band: list[Atoms] | None,
                       ml: MLFactory, wd: Path,
                       corr: list[ForceCorrection] | None = None,
                       steps: list[float] | None = None,
                       climb: bool = True,
                       base: ForceCorrection | None = None,
                       fixed_ends: bool = False) -> tuple[list[Atoms], int, list[float]]:
        """Surrogate-relaxed endpoints and climbing band; returns it, the top image and the
        step fraction each point took (``steps`` cut by the trust radius; 1 without ``corr``).
        ``corr``: the reference corrections anchored at the last round's band (one per
        image, endpoints included), or None; ``base``: the correction of every point without
        one of ``corr`` (the host anchor's), or None; ``fixed_ends``: the endpoints are
        reference minima and stay where they are."""
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
            if fixed_ends:  # the band needs their (corrected) surrogate energies only
                new_ends.append(with_results(end, static(_bare(end), end_ml,
                                                         wd / f"{name}-ml",
                                                         label="fixed").atoms))
                continue
            r = relax(end, end_ml, wd / f"{name}-ml", rs, label="ml")
            step = trusted_fraction(end, r.atoms, steps[(0, -1)[k]], max_move)
            used[(0, -1)[k]] = step
            new = damped_step(end, r.atoms, step)
            if step < 1.0:  # the band needs its endpoints' (corrected) surrogate energies
                new = with_results(end, static(new, end_ml, wd / f"{name}-ml",
                                               label="damped").atoms)
            new_ends.append(new)
        if band is None:
            start = idpp_band(new_ends[0], new_ends[1], nset.n_images, mic=self.mic)
        else:
            start = [new_ends[0], *[_bare(im) for im in band[1:-1]], new_ends[1]]
        res = run_neb(start, band_ml, wd / "neb-ml", nset, label="neb", fmax=nset.ml_fmax,
                      climb=climb, describe=band_ml.description)
        if not res.converged:
            self.warnings.append(f"{wd.name}: surrogate band not converged "
                                 f"(fmax {res.fmax:.3f} eV/A); reference points taken on it")
        top = int(np.argmax(res.energies[1:-1])) + 1
        for i, (s0, im) in enumerate(zip(start[1:-1], res.images[1:-1], strict=True), 1):
            used[i] = trusted_fraction(s0, im, steps[i], max_move)
        images = [new_ends[0], *[damped_step(s0, im, b) for s0, im, b in
                                 zip(start[1:-1], res.images[1:-1], used[1:-1], strict=True)],
                  new_ends[1]]
        return _same_on_all_ranks([_bare(im) for im in images]), top, used

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
        """This hop's frames plus stored frames of the same elements and settings hash, as
        rank 0 reads them (every MPI rank fine-tunes on the same frames)."""
        return broadcast(self._training_frames() if world.rank == 0 else None, root=0)

    def _training_frames(self) -> list[Frame]:
        frames = list(self.hop.frames)
        store = self.hop.store
        if store is not None:
            seen = {f.id for f in frames}
            shash = frame_settings_hash(self.reference.description)
            for f in store.select(elements=self.elements, settings_hash=shash):
                if f.id not in seen:
                    frames.append(f)
                    seen.add(f.id)
        return frames

    def reference_minimum(self, end: Atoms, wd: Path, ml: CalcFactory | None) -> Atoms:
        """``end`` relaxed at the reference level in ``wd`` (BFGS from ``ml``'s Hessian there
        when given), with its reference results; known to :meth:`reference_points`."""
        use = (ml is not None and self.settings.relax.optimizer == "BFGS"
               and self.settings.neb.surrogate_hessian)
        hessian = stored_hessian(end, ml, wd) if use else None
        r = relax(end, self.reference, wd, self.settings.relax, label="relax", hessian=hessian)
        self.calls += r.force_calls
        if not r.converged:
            self.warnings.append(f"{wd.name}: reference relaxation not converged (fmax "
                                 f"{r.fmax:.3f} eV/A after {r.steps} steps)")
        self.known.append(r.atoms)
        return with_results(end, r.atoms)

    def finish(self, ref_band: list[Atoms], wd: Path,
               ml: CalcFactory | None = None) -> tuple[list[Atoms], bool]:
        """Relax endpoints with too large reference forces (BFGS from ``ml``'s Hessian at
        their geometry when given, :mod:`interphase_dft.calc.hessian`), then a reference
        CI-NEB from ``ref_band`` (its interior reference results are reused)."""
        ends = [self.reference_minimum(end, wd / name, ml)
                if _fmax(end) > self.settings.relax.fmax else end
                for name, end in (("initial", ref_band[0]), ("final", ref_band[-1]))]
        band = [ends[0], *ref_band[1:-1], ends[1]]
        res = run_neb(band, self.reference, wd / "neb", self.settings.neb, label="neb",
                      climb=True, describe=self.reference.description)
        self.calls += res.force_calls
        self.warnings.extend(res.warnings)
        return [with_results(im, im) for im in res.images], res.converged


def _host_tuned(loop: _Loop, surrogate: MLFactory, nset: NEBSettings,
                seconds: list[float]) -> tuple[MLFactory, FineTuned | None]:
    """The surrogate fine-tuned on the stored frames of these elements and settings (the
    host relaxation's), or the pretrained one (none stored, or fine-tuning failed: a
    warning)."""
    frames = loop.training_frames()
    if not frames:
        return surrogate, None
    tuned, failure = _tune_on_rank0(loop.tune, surrogate, frames, nset)
    if tuned is None:
        msg = f"active learning: fine-tuning on the host's frames failed ({failure})"
        log.warning(msg)
        loop.warnings.append(msg)
        return surrogate, None
    seconds.append(tuned.seconds)
    log.info("active learning: surrogate fine-tuned on %d stored frames before round 0",
             len(frames))
    return replace(surrogate, _model=tuned.model, weights=tuned.weights_hash), tuned


def _tune_on_rank0(tune: Callable[..., FineTuned], surrogate: MLFactory, frames: list[Frame],
                   nset: NEBSettings) -> tuple[FineTuned | None, str | None]:
    """(fine-tuned model, None) or (None, why it failed): trained on MPI rank 0 and sent to
    every rank, so all ranks run the same surrogate (same weights hash, hence the same
    checkpoint fingerprints of the surrogate steps)."""
    out: tuple[FineTuned | None, str | None] = (None, None)
    if world.rank == 0:
        try:
            out = (tune(surrogate.model, frames, epochs=nset.al_epochs,
                        learning_rate=nset.al_learning_rate), None)
        except Exception as exc:
            out = (None, f"{type(exc).__name__}: {exc}")
    return broadcast(out, root=0)


def _same_on_all_ranks(band: list[Atoms]) -> list[Atoms]:
    """``band`` with rank 0's positions on every MPI rank: each rank runs the surrogate itself
    (the same fine-tuned model, :func:`_tune_on_rank0`), and the reference code needs one
    geometry on all ranks."""
    positions = broadcast([im.positions for im in band], root=0)
    for im, pos in zip(band, positions, strict=True):
        im.positions = pos
    return band


def adapted_steps(before: list[Atoms], after: list[Atoms], steps: list[float],
                  floor: float) -> list[float]:
    """The next round's step fraction of each point of the band (endpoints included).

    Between two rounds a point moved by ``d`` (a fraction ``b`` of the corrected surrogate's
    quasi-Newton step); its reference force along ``d`` went from ``g0`` to ``g1``. On a
    quadratic surface ``g1 / g0 = 1 - b r``, with ``r`` the ratio of the reference's to the
    surrogate's curvature along ``d``, so ``r = (1 - g1 / g0) / b`` and the step that would
    land on the minimum along ``d`` is ``1 / r``. The new fraction is ``1 / r`` clipped to
    [``floor``, 1]; a point that did not move, or whose force was not along its step, keeps
    its fraction.
    """
    out = []
    for x0, x1, b in zip(before, after, steps, strict=True):
        d = (x1.positions - x0.positions).ravel()
        norm = float(np.linalg.norm(d))
        g0 = float(np.dot(x0.get_forces(apply_constraint=True).ravel(), d)) / max(norm, 1e-12)
        g1 = float(np.dot(x1.get_forces(apply_constraint=True).ravel(), d)) / max(norm, 1e-12)
        if norm < 1e-6 or g0 <= 1e-9:
            out.append(b)
            continue
        r = (1.0 - g1 / g0) / b
        out.append(float(np.clip(1.0 / r, floor, 1.0)) if r > 0 else 1.0)
    return out


def trusted_fraction(start: Atoms, end: Atoms, step: float, max_move: float | None) -> float:
    """``step``, cut so that no atom moves more than ``max_move`` (Angstrom) from ``start``
    towards ``end`` (the trust radius of the corrected step; None = no cut)."""
    if max_move is None:
        return step
    longest = float(np.linalg.norm(end.positions - start.positions, axis=1).max(initial=0.0))
    return step if longest * step <= max_move else max_move / longest


def damped_step(start: Atoms, end: Atoms, step: float) -> Atoms:
    """``start`` moved by ``step`` times the displacement to ``end`` (``end`` itself, with its
    results, when ``step`` is 1): the damped step of the corrected surrogate."""
    if step >= 1.0:
        return with_results(start, end)
    out = _bare(start)
    out.positions = start.positions + step * (end.positions - start.positions)
    return out


def _corrections(band: list[Atoms], ml: CalcFactory) -> list[ForceCorrection]:
    """The reference correction of ``ml`` anchored at each point of ``band``."""
    return [correction_at(im, ml) for im in band]


def _bare(atoms: Atoms) -> Atoms:
    out = atoms.copy()
    out.calc = None
    out.set_constraint([c.copy() for c in atoms.constraints])
    return out


def _barrier(band: list[Atoms]) -> float:
    e = [float(im.get_potential_energy()) for im in band]
    return max(e) - e[0]


def _check(settings: CalcSettings, band: list[Atoms], top: int,
           previous: float | None) -> str | None:
    """Why ``band`` (reference results) is not yet certified, or None.

    A band whose highest reference image is an endpoint (no interior maximum,
    :func:`~interphase_dft.recipes.saddle.hop_saddle`) between reference minima is finished:
    the barrier along the lowest path is at most the highest point of any path joining the
    minima, so this one bounds the forward barrier by max(0, E_final - E_initial), and the
    saddle rule reports it as ``no saddle: reaction energy``; there is no climbing image to
    converge."""
    ci = _fmax(band[top])
    ends = [_fmax(band[0]), _fmax(band[-1])]
    energies = [float(im.get_potential_energy()) for im in band]
    if hop_saddle(energies) is None:
        if max(ends) > settings.relax.fmax:
            return (f"no interior maximum; reference endpoint force {max(ends):.3f} > "
                    f"relax.fmax {settings.relax.fmax}")
        return None
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
                         anchor: HostAnchor | None = None) -> ALResult:
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
        so the run's time limit also
        bounds the surrogate work between reference calls; a rerun continues from the
        checkpoints).
    anchor
        The relaxed host of the hop's states (module docstring), or None.
    """
    wd = Path(workdir)
    halt = stop or (lambda: None)
    nset = settings.neb
    hop = HopFrames(frames)
    # one live reference calculator per band slot: each round's single points (and the final
    # CI-NEB) start from the SCF of the slot's previous geometry (calc.reuse)
    reusing = ReusingFactory(reference)
    loop = _Loop(settings, RecordingFactory(reusing, hop, work_key), surrogate, hop, wd, mic,
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
        ml, tuned = _host_tuned(loop, surrogate, nset, seconds)
    if nset.al_reference_endpoints:
        ends = [loop.reference_minimum(end, wd / "endpoints" / name, ml)
                for name, end in zip(("initial", "final"), ends, strict=True)]
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
        reason = _check(settings, ref_band, top, previous)
        # no interior maximum at the reference level: the next surrogate band relaxes to the
        # path without a climbing image (one would climb into an endpoint and never converge)
        climb = hop_saddle([im.get_potential_energy() for im in ref_band]) is not None
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
        tuned, failure = _tune_on_rank0(tune, surrogate, loop.training_frames(), nset)
        if tuned is None:
            fallback = f"fine-tuning failed ({failure})"
            msg = f"active learning: {fallback}; finishing with a reference CI-NEB"
            log.warning(msg)
            loop.warnings.append(msg)
            break
        seconds.append(tuned.seconds)
        ml = replace(surrogate, _model=tuned.model, weights=tuned.weights_hash)
        if nset.al_force_correction:  # anchored with the surrogate the next round uses
            if last is not None and len(last) == len(ref_band):
                steps = adapted_steps(last, ref_band, fractions, nset.al_correction_step)
                log.info("active learning: corrected step fractions %s",
                         ", ".join(f"{b:.2f}" for b in steps))
            corr = on_rank0(_corrections, ref_band, ml)
            last = ref_band
    assert band is not None
    final_band, converged = loop.finish(ref_band, wd / "final", ml)
    top = int(np.argmax([im.get_potential_energy() for im in final_band[1:-1]])) + 1
    stage = CERTIFIED if converged and _check_ends(settings, final_band) else (
        f"not certified: reference CI-NEB not converged after {fallback}")
    return _result(stage, final_band, top, rounds + 1, loop, seconds, before, after, tuned,
                   fallback)


def _check_ends(settings: CalcSettings, band: list[Atoms]) -> bool:
    return max(_fmax(band[0]), _fmax(band[-1])) <= settings.relax.fmax


def _result(stage: str, band: list[Atoms], top: int, rounds: int, loop: _Loop,
            seconds: list[float], before: dict[str, float], after: dict[str, float],
            tuned: FineTuned | None, fallback: str | None) -> ALResult:
    e = [float(im.get_potential_energy()) for im in band]
    return ALResult(
        stage=stage, images=band, energies=e, barrier_forward=max(e) - e[0],
        barrier_reverse=max(e) - e[-1], reaction_energy=e[-1] - e[0],
        ci_force=_fmax(band[top]), endpoint_forces=[_fmax(band[0]), _fmax(band[-1])],
        rounds=rounds, reference_calls=loop.calls, finetune_seconds=seconds,
        errors_before=before, errors_after=after,
        weights_hash=tuned.weights_hash if tuned else None,
        frame_ids=list(tuned.frame_ids) if tuned else [], fallback=fallback,
        warnings=list(loop.warnings))
