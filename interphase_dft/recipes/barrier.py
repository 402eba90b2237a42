"""Li migration barrier recipes: climbing-image NEB between relaxed minima, certified.

:func:`migration_barrier` computes the hop of a Li from phase A into phase B across their
interface by a mechanism (``vacancy`` or ``interstitial``; minima from
:mod:`interphase_dft.recipes.hop_setup`); :func:`bulk_reference_barrier` the bulk hop of one
phase with the same settings; :func:`neb_barrier` works on any pair of endpoints and
:func:`path_barrier` on a path through given minima, with the hop's calculator choices in a
:class:`HopOptions`. The procedure (:mod:`interphase_dft.recipes.band`):

1. the minima are relaxed in the same cell (fixed atoms stay fixed); with
   ``settings.relax.dft_relax = False`` the surrogate relaxes them and DFT gives one single
   point each;
2. each hop's band is interpolated with IDPP (``settings.neb.n_images`` intermediate images);
3. optional surrogate pre-stage (``settings.neb.ml_prestage``,
   :mod:`interphase_dft.recipes.surrogate_path`); a rejected path is replaced by the IDPP band
   and the reason is stored in ``ml_fallback_reason``;
4. DFT climbing-image NEB (climbing from the start, :mod:`interphase_dft.calc.neb`) to
   ``settings.neb.fmax``; or, with ``settings.neb.dft_refine = False`` and an accepted
   surrogate path, the DFT single points of step 3 are the result (stage ``'dft//ml'``);
   with ``settings.neb.active_learning`` steps 1-4 of a single hop are the active-learning
   loop (:mod:`interphase_dft.recipes.active_learning`: it relaxes the endpoints too; stage
   ``'dft-certified'``, its record in ``BarrierDoc.active_learning``);
5. a single hop through another minimum is split there (``HopOptions.split_minimum``);
6. the band is certified (:mod:`interphase_dft.recipes.saddle`) and the document assembled
   (:mod:`interphase_dft.recipes.barrier_doc`).

Every DFT call is charged to the work item's ledger (``<workdir>/budget.json``,
:mod:`interphase_dft.calc.budget`); at a ceiling of ``settings.budget`` the run ends with a
document of status ``'not certified: over budget'`` saying what was reached, and the same
call with a larger budget continues from the checkpoints.

Frames: every DFT single point goes to the frame store ``frames`` with the work key
``work_key`` (:mod:`interphase_dft.calc.frames`; passed by the FireTask or the CLI), where
the active-learning loop of later hops finds it.

Charge: the hopping species is Li+, and where the electron goes is fixed by the sides.
With a metal side the cell is neutral: the metal supplies the electron of a vacancy and takes
the electron of an added Li (``li_inserted``: insertion smearing, see :class:`HopOptions`).
Between insulators (and in the bulk of an insulator) the cell is charged with a compensating
background: the vacancy is V_Li^- (GPAW ``charge=-1``), the added Li is Li_i^+
(``charge=+1``), both closed-shell and spin-paired. A neutral Li atom there would put its
electron into a conduction band or a polaron and measure the hop of Li0, not of the ion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ase import Atoms

from interphase_dft.calc.budget import BudgetExceeded, Ledger, MeteredFactory
from interphase_dft.calc.dispersion import dispersion_applied
from interphase_dft.calc.factory import (
    factory_for,
    gamma_only_note,
    insertion_spin,
    scf_parameters,
    seed_moment,
    surrogate_factory,
)
from interphase_dft.calc.frames import FrameSink, recording
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import InputError
from interphase_dft.recipes.band import BandRunner
from interphase_dft.recipes.barrier_doc import (
    HopRecord,
    barrier_doc,
    not_a_minimum_doc,
    over_budget_doc,
)
from interphase_dft.recipes.basin import EndpointNotMinimum
from interphase_dft.recipes.hop_setup import MECHANISMS, HostPlan, check_mechanism
from interphase_dft.recipes.host import HOST_DIR, relaxed_host_states
from interphase_dft.recipes.neb_path import intermediate_minimum
from interphase_dft.schemas import BarrierDoc

__all__ = ["MECHANISMS", "HopOptions", "bulk_reference_barrier", "hop_options",
           "interface_hop", "interface_hop_options", "intermediate_minimum",
           "migration_barrier", "neb_barrier", "path_barrier"]

log = logging.getLogger("interphase_dft.recipes")


@dataclass(frozen=True)
class HopOptions:
    """Calculator and path choices of one hop (what :func:`neb_barrier` needs besides settings).

    Attributes
    ----------
    is_metal
        Metal smearing (``dft.smearing_width``) instead of the insulator width.
    dispersion
        The hop involves a phase that needs dispersion (P2S5); see
        :func:`interphase_dft.calc.dispersion.dispersion_applied`.
    li_inserted
        The hopping Li is an added (interstitial) Li: smearing at least
        ``dft.li_insertion_smearing``, and spin-polarised with 1 mu_B seeded on the hopping Li
        (``info['li_index']``, else the last atom) when neither side is a metal
        (:func:`interphase_dft.calc.factory.insertion_spin`); a vacancy hop stays as it is.
        :func:`hop_options` sets it only for an added Li with a metal side (an added Li
        between insulators is Li_i^+, ``calc_extra={'charge': 1}``, closed-shell).
    mic
        Interpolate with the minimum-image convention (False: raw position difference, for a
        hop into the next cell).
    calc_extra
        Extra GPAW keywords, e.g. ``{'charge': -1}`` for a charged Li vacancy (stored in the
        document's ``calculator`` field).
    relax_endpoints
        Relax the minima first (positions, cell fixed).
    split_minimum
        When the converged band of one hop passes through another minimum (an image more than
        ``INTERMEDIATE_MINIMUM`` eV below the lower endpoint), relax that image at the
        endpoints' level and converge the hops initial -> minimum -> final separately (work
        directories ``intermediate/``, ``seg1/``, ``seg2/``).
    charge_note
        How the charge of the cell is treated (stored in ``calculator['charge']``).
    interface
        A hop across an interface A|B (not a bulk hop): its DFT cells take the
        ``dft.kpt_density`` mesh at every size when ``structure.interface_density_mesh``
        (:func:`density_mesh_for`).
    """

    is_metal: bool = False
    dispersion: bool = False
    li_inserted: bool = False
    mic: bool = True
    calc_extra: Mapping[str, Any] | None = None
    relax_endpoints: bool = True
    split_minimum: bool = True
    charge_note: str = "neutral cell"
    interface: bool = False


def neb_barrier(initial: Atoms, final: Atoms, settings: CalcSettings, workdir: Path | str,
                options: HopOptions | None = None, **kw: Any) -> BarrierDoc:
    """Certified climbing-image NEB barrier between ``initial`` and ``final`` (same atoms).

    :func:`path_barrier` of the two endpoints; keywords as there.
    """
    return path_barrier([initial, final], settings, workdir, options, **kw)


def path_barrier(states: list[Atoms], settings: CalcSettings, workdir: Path | str,
                 options: HopOptions | None = None, *, label: str = "neb",
                 phase_a: str | None = None, phase_b: str | None = None,
                 mechanism: str = "unspecified", interface_meta: dict[str, Any] | None = None,
                 work_of_adhesion: float | None = None,
                 calc_factory: CalcFactory | None = None, frames: FrameSink | None = None,
                 work_key: str | None = None, host: HostPlan | None = None) -> BarrierDoc:
    """Certified barrier of the path through ``states`` (>= 2 minima, same atom order).

    Parameters
    ----------
    states
        Minima of the path with identical symbol order, cell and constraints (not modified):
        the two endpoints of one hop, or e.g. A -> interface -> B.
    settings
        Calculation settings (``neb`` for the bands, ``relax`` for the minima, ``budget``).
    workdir
        Checkpoint directory (``initial/``, ``final/``, ``minimum{k}/``, ``neb/`` or
        ``hop{k}/``, ``budget.json``; see :mod:`interphase_dft.recipes.band`).
    options
        Calculator and path choices of the hop (default :class:`HopOptions` ()).
    label
        Name used in logs and warnings.
    phase_a, phase_b
        Stored in the document; default the formula of the first state (``phase_b``:
        ``phase_a``).
    mechanism
        Stored as ``BarrierDoc.mechanism``.
    interface_meta
        Stored as ``BarrierDoc.interface_meta`` (its thickness and strain keys also as
        document fields).
    work_of_adhesion
        J/m^2 at the reported level, when computed.
    calc_factory
        Use this factory for the reported level instead of the one built from ``settings``
        (tests, other codes); it is metered like DFT.
    frames, work_key
        Frame store of the DFT single points and the work key stored with them (None: not
        stored).
    host
        The full host the two endpoints were cut from; with ``settings.neb.relax_host`` it is
        relaxed at the reported level first and the endpoints start from it
        (:mod:`interphase_dft.recipes.host`; recorded in ``interface_meta['host_relaxation']``).
    """
    opts = options or HopOptions()
    if len(states) < 2:
        raise InputError(f"{label}: a path needs at least two minima, got {len(states)}")
    if any(s.get_chemical_symbols() != states[0].get_chemical_symbols() for s in states):
        raise InputError(f"NEB endpoints of {label} differ in atom order or composition; "
                         "build both from the same host and move only the hopping Li")
    workdir = Path(workdir)
    # an added Li hopping through non-metals: spin-polarised, 1 mu_B seeded on the hopping Li
    spin = opts.li_inserted and insertion_spin(settings, is_metal=opts.is_metal)
    if spin:
        li = int(states[0].info.get("li_index", len(states[0]) - 1))
        states = [seed_moment(s, li) for s in states]
    ledger = Ledger.open(workdir, settings.budget) if settings.engine != "ml" else None
    runner = _band_runner(settings, opts, workdir, calc_factory, spin=spin, label=label,
                          ledger=ledger, run=RunLog(frames=frames, work_key=work_key))
    pa = phase_a or states[0].get_chemical_formula()
    hop = HopRecord(pa, phase_b or pa, mechanism, dict(interface_meta or {}),
                    _description(runner, opts, settings, custom=calc_factory is not None,
                                 spin=spin), states[0], work_of_adhesion)
    sampling = gamma_only_note(states[0], settings, is_metal=opts.is_metal)
    if sampling and settings.engine == "gpaw" and calc_factory is None \
            and not density_mesh_for(settings, opts):
        runner.run.warn(sampling)
    try:
        if host is not None and len(states) == 2 and settings.neb.relax_host \
                and settings.engine != "ml":
            runner.at("host relaxation")
            relaxed = relaxed_host_states(
                host, states, settings=settings, workdir=workdir, run=runner.run,
                factory=_reported_factory(settings, opts, workdir / HOST_DIR, calc_factory,
                                          runner.run, ledger, neutral=True),
                surrogate=runner.path_ml or runner.geometry_ml)
            states, hop.interface_meta["host_relaxation"] = relaxed.states, relaxed.record
            runner.anchor = relaxed.anchor
        if len(states) == 2 and _loop_relaxes_endpoints(settings, opts):
            ends, unconverged = list(states), []  # the active-learning loop relaxes them
        else:
            ends, unconverged = runner.relax_states(states, workdir,
                                                    relax_it=opts.relax_endpoints)
        if len(ends) == 2:
            band = runner.converge(ends, workdir)
            if opts.split_minimum and intermediate_minimum(band.res.energies):
                band = runner.split_at_minimum(band, workdir) or band
        else:
            band = runner.converge_path(ends, workdir)
    except BudgetExceeded as exc:
        if ledger is None:  # raised by a caller's factory, not by this run's ledger
            raise
        log.warning("%s: %s", label, exc)
        return over_budget_doc(exc, ledger, settings, runner.run, hop)
    except EndpointNotMinimum as exc:
        log.warning("%s: %s", label, exc)
        return not_a_minimum_doc(exc, settings, runner.run, hop, ledger=ledger)
    if unconverged:
        band.res.converged = False
        runner.run.warn(f"endpoint relaxation not converged ({', '.join(unconverged)}); the "
                        "certificate rests on the endpoint forces at the barrier's level "
                        "(endpoint_fmax against relax.fmax); raise relax.steps (relax.ml_steps "
                        "for surrogate relaxations)")
    return barrier_doc(band, settings, runner.run, hop, ledger=ledger)


def _loop_relaxes_endpoints(settings: CalcSettings, opts: HopOptions) -> bool:
    """True when the active-learning loop relaxes a hop's endpoints (no separate relaxation)."""
    return settings.active_learning_level and opts.relax_endpoints


def _reported_factory(settings: CalcSettings, opts: HopOptions, workdir: Path,
                      calc_factory: CalcFactory | None, run: RunLog, ledger: Ledger | None,
                      *, spin: bool = False, neutral: bool = False) -> CalcFactory:
    """The reported level of a hop (``calc_factory`` or GPAW from ``settings``, its text output
    in ``workdir``): frames recorded, metered by ``ledger``. ``neutral``: without the hop's
    ``charge`` (the full host of a vacancy hop has no vacancy)."""
    extra = dict(opts.calc_extra or {})
    if neutral:
        extra.pop("charge", None)
    factory = calc_factory or factory_for(
        settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
        txt=str(workdir / "gpaw.txt"), extra=extra,
        li_inserted=opts.li_inserted and not neutral, spin=spin,
        density_mesh=density_mesh_for(settings, opts))
    if settings.engine != "ml":  # surrogate energies are never frames
        factory = run.recorded(factory)
    return MeteredFactory(factory, ledger) if ledger is not None else factory


def _band_runner(settings: CalcSettings, opts: HopOptions, workdir: Path,
                 calc_factory: CalcFactory | None, *, spin: bool, label: str,
                 ledger: Ledger | None, run: RunLog) -> BandRunner:
    """The calculators of a hop: the reported level (frames recorded, metered), the surrogate
    for geometries and path."""
    factory = _reported_factory(settings, opts, workdir, calc_factory, run, ledger, spin=spin)
    # relax.dft_relax=false: endpoints relaxed by the surrogate, then one DFT single point
    geometry_ml = None
    if opts.relax_endpoints and settings.surrogate_geometry:
        geometry_ml = surrogate_factory(settings, dispersion=opts.dispersion)
    path_ml = geometry_ml  # one surrogate (one loaded model) for geometries and path
    needs_ml = settings.neb.ml_prestage or settings.neb.active_learning
    if path_ml is None and needs_ml and settings.engine != "ml":
        path_ml = surrogate_factory(settings, dispersion=opts.dispersion)
    return BandRunner(settings, factory, run, geometry_ml=geometry_ml, path_ml=path_ml,
                      mic=opts.mic, label=label, ledger=ledger)


def _description(runner: BandRunner, opts: HopOptions, settings: CalcSettings, *,
                 custom: bool, spin: bool) -> dict[str, Any]:
    """What the calculators of the hop applied (``BarrierDoc.calculator``)."""
    nset = settings.neb
    desc = dict(getattr(runner.factory, "description", {}))
    desc.pop("dft", None)
    desc["smearing"] = scf_parameters(settings, is_metal=opts.is_metal,
                                      li_inserted=opts.li_inserted)["occupations"]
    desc["dispersion"] = (dispersion_applied(settings, opts.dispersion)
                          if settings.engine == "gpaw" and not custom else "none")
    if opts.calc_extra:
        desc["extra"] = dict(opts.calc_extra)
    desc["charge"] = opts.charge_note
    desc["spin"] = "spin-polarised (1 mu_B seeded on the hopping Li)" if spin else "spin-paired"
    desc["geometry"] = ("endpoints relaxed by the active-learning loop, DFT-verified"
                        if _loop_relaxes_endpoints(settings, opts)
                        else "surrogate-relaxed endpoints, DFT single points"
                        if runner.geometry_ml is not None
                        else "DFT-relaxed endpoints" if opts.relax_endpoints
                        else "endpoints as given")
    desc["neb"] = {"climb": "from the start" if nset.climb else "off",
                   "method": nset.method, "optimizer": nset.optimizer,
                   "spring_eV_per_A2": nset.spring, "interpolation": "idpp",
                   "active_learning": nset.active_learning}
    return desc


def hop_options(phase_a: str, phase_b: str, mechanism: str = "vacancy") -> HopOptions:
    """:class:`HopOptions` of an A|B hop or (``phase_a == phase_b``) a bulk hop.

    Metal smearing when either phase is a metal, D3 when either needs it; the charge
    treatment of the module docstring (``mechanism``: ``vacancy``/``bulk-vacancy`` or
    ``interstitial``/``bulk-interstitial``): an added Li is ``li_inserted`` only with a metal
    side (its electron in the metal); between insulators it is Li_i^+, closed-shell.
    """
    from interphase_dft import phases

    a, b = phases.resolve_phase(phase_a), phases.resolve_phase(phase_b)
    ia, ib = phases.phase_info(a), phases.phase_info(b)
    metal, disp = ia.is_metal or ib.is_metal, ia.needs_dispersion or ib.needs_dispersion
    interstitial = mechanism.endswith("interstitial")
    if not interstitial and not mechanism.endswith("vacancy"):
        raise InputError(f"unknown mechanism {mechanism!r}; use {' or '.join(MECHANISMS)}")
    opts = _hop_options(metal, disp, interstitial)
    return replace(opts, interface=a != b)


def _hop_options(metal: bool, disp: bool, interstitial: bool) -> HopOptions:
    """The charge and smearing treatment of :func:`hop_options`."""
    if interstitial and metal:
        return HopOptions(is_metal=True, dispersion=disp, li_inserted=True,
                          charge_note="neutral: an added Li atom, the metal takes its electron")
    if interstitial:
        return HopOptions(is_metal=False, dispersion=disp, calc_extra={"charge": 1},
                          charge_note="+1: Li_i^+ with a compensating background (no metal)")
    if metal:
        return HopOptions(is_metal=True, dispersion=disp,
                          charge_note="neutral: the metal supplies the electron of the vacancy")
    return HopOptions(is_metal=False, dispersion=disp, calc_extra={"charge": -1},
                      charge_note="-1: V_Li^- with a compensating background (no metal)")


#: the name :mod:`benchmarks` and earlier code use for :func:`hop_options`
interface_hop_options = hop_options


def density_mesh_for(settings: CalcSettings, opts: HopOptions) -> bool:
    """True when every DFT cell of the hop takes the ``dft.kpt_density`` mesh whatever its
    size: an interface hop with ``structure.interface_density_mesh``."""
    return opts.interface and settings.structure.interface_density_mesh


def _surrogate_for(settings: CalcSettings, opts: HopOptions) -> CalcFactory | None:
    """The surrogate that chooses geometries (registry, candidates), or None without one."""
    if settings.engine == "ml" or settings.relax.ml_prerelax or settings.neb.ml_prestage:
        return surrogate_factory(settings, dispersion=opts.dispersion)
    return None


def migration_barrier(phase_a: str, phase_b: str, settings: CalcSettings, *,
                      workdir: Path | str, mechanism: str = "vacancy",
                      calc_factory: CalcFactory | None = None, frames: FrameSink | None = None,
                      work_key: str | None = None) -> BarrierDoc:
    """Certified Li migration barrier from phase A into phase B across their interface.

    The migration cell, its registry and the minima of the ``mechanism`` hop
    (:func:`interphase_dft.recipes.hop_setup.interface_states`), options from
    :func:`hop_options`, then :func:`path_barrier` (one hop for ``vacancy``; A -> interface
    -> B for ``interstitial`` when an interface minimum exists). DFT single points go to
    ``frames`` with ``work_key`` (None: not stored).

    Raises
    ------
    InputError
        Unknown mechanism, the same phase twice, or ``vacancy`` with a Li-free phase.
    """
    from interphase_dft import phases
    from interphase_dft.recipes.hop_setup import interface_states

    a, b = phases.resolve_phase(phase_a), phases.resolve_phase(phase_b)
    check_mechanism(a, b, mechanism)
    workdir = Path(workdir)
    opts = hop_options(a, b, mechanism)
    mesh = density_mesh_for(settings, opts)
    relaxer = calc_factory or factory_for(
        settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
        li_inserted=opts.li_inserted, extra=dict(opts.calc_extra or {}),
        txt=str(workdir / "candidates" / "gpaw.txt"), density_mesh=mesh)
    reference, ledger = None, None  # reference: the clean cell that confirms the registry
    if settings.engine != "ml":
        ledger = Ledger.open(workdir, settings.budget)
        ledger.stage = "hop setup"
        relaxer = MeteredFactory(recording(relaxer, frames, work_key), ledger)
        reference = MeteredFactory(recording(calc_factory or factory_for(
            settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
            txt=str(workdir / "registry" / "gpaw.txt"), density_mesh=mesh), frames, work_key),
            ledger)
    try:
        hs = interface_states(a, b, settings, mechanism, workdir,
                              surrogate=_surrogate_for(settings, opts), relaxer=relaxer,
                              reference=reference)
    except BudgetExceeded as exc:
        if ledger is None:
            raise
        return _stopped_in_setup(exc, ledger, settings, opts, (a, b, mechanism))
    return path_barrier(hs.states, settings, workdir, opts, label=f"{a}|{b} {mechanism}",
                        phase_a=a, phase_b=b, mechanism=mechanism, interface_meta=hs.meta,
                        work_of_adhesion=hs.work_of_adhesion, calc_factory=calc_factory,
                        frames=frames, work_key=work_key, host=hs.host)


def _stopped_in_setup(exc: BudgetExceeded, ledger: Ledger, settings: CalcSettings,
                      opts: HopOptions, hop: tuple[str, str, str]) -> BarrierDoc:
    """The over-budget document of an interface hop stopped before its band: in the DFT
    confirmation of the registry or the DFT relaxation of interstitial candidates (the
    as-built cell stands for the structure; a rerun with a larger budget continues)."""
    from interphase_dft.builders.migration import migration_cell_for

    a, b, mechanism = hop
    run = RunLog()
    log.warning("%s|%s %s: %s", a, b, mechanism, exc)
    cell = migration_cell_for(a, b, settings)
    record = HopRecord(a, b, mechanism, dict(cell.info), {"charge": opts.charge_note},
                       cell.atoms)
    return over_budget_doc(exc, ledger, settings, run, record)


def bulk_reference_barrier(phase: str, settings: CalcSettings, *, workdir: Path | str,
                           calc_factory: CalcFactory | None = None,
                           frames: FrameSink | None = None,
                           work_key: str | None = None) -> BarrierDoc:
    """Certified bulk reference hop of ``phase`` with ``settings`` (``interface`` 'P|P').

    A vacancy hop where the phase has Li lattice sites, else an interstitial hop
    (:func:`interphase_dft.recipes.hop_setup.bulk_states`). DFT single points go to
    ``frames`` with ``work_key`` (None: not stored).
    """
    from interphase_dft import phases
    from interphase_dft.recipes.hop_setup import bulk_states

    p = phases.resolve_phase(phase)
    hs = bulk_states(p, settings)
    return path_barrier(hs.states, settings, workdir, hop_options(p, p, hs.mechanism),
                        label=f"{p} {hs.mechanism}", phase_a=p, phase_b=p,
                        mechanism=hs.mechanism, interface_meta=hs.meta,
                        calc_factory=calc_factory, frames=frames, work_key=work_key)


def interface_hop(phase_a: str, phase_b: str, settings: CalcSettings,
                  mechanism: str = "vacancy") -> tuple[Atoms, Atoms, dict[str, Any]]:
    """The endpoints of the first hop :func:`migration_barrier` computes, built without a
    surrogate (geometric registry; interstitial minima at the unrelaxed guess) and without a
    work directory. Returns (initial, final, meta)."""
    from interphase_dft import phases
    from interphase_dft.builders.hops import vacancy_hop
    from interphase_dft.builders.interstitial import guess_hop, interstitial_candidates
    from interphase_dft.builders.migration import migration_cell_for

    a, b = phases.resolve_phase(phase_a), phases.resolve_phase(phase_b)
    check_mechanism(a, b, mechanism)
    cell = migration_cell_for(a, b, settings)
    hop = (vacancy_hop(cell, max_hop=settings.structure.interface_max_hop)
           if mechanism == "vacancy" else guess_hop(interstitial_candidates(cell)))
    ends = []
    for atoms in (hop.initial, hop.final):
        atoms = atoms.copy()
        atoms.pbc = (True, True, False)
        ends.append(atoms)
    return ends[0], ends[1], dict(hop.meta)
