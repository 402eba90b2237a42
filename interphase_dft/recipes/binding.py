"""Li binding energy recipe: E_b = E(host + Li) - E(host) - E_ref, with both references.

``mode='bulk'`` (:mod:`interphase_dft.recipes.bulk_mode`): Li interstitial in a supercell of the
phase (every perpendicular width at least ``structure.bulk_min_length``), one calculation per
symmetry-distinct interstitial site; the Li vacancy formation energy of hosts with Li; the
Al/LiAl coexistence potential in the Al document.

``mode='surface'`` (:mod:`interphase_dft.recipes.surface_mode`): Li adsorbed on the
termination with the lowest DFT surface energy among the structurally ranked candidates, one Li
per at least ``structure.slab_min_area`` A^2, thickness converged
(:mod:`interphase_dft.recipes.slab_convergence`); one calculation per symmetry-distinct
adsorption site, the bottom ``slab_fixed_layers`` fixed, Li and the upper layers relaxed; slabs
are computed with ``pbc=(T, T, F)`` and a dipole-layer correction (the Li-covered slab is always
asymmetric, and the clean slab gets the same correction so both energies are computed alike).

Both modes use neutral cells; the document states the charge state and what it measures.

Every calculation of the recipe uses at least ``dft.li_insertion_smearing`` (host and host+Li
alike); on a non-metallic host, host+Li is spin-polarised with 1 mu_B seeded on the Li
(``dft.li_insertion_spin``; see :mod:`interphase_dft.calc.factory`).

The host is relaxed first (optionally pre-relaxed with the ML surrogate, which only moves the
starting geometry; every reported energy is DFT). Each site is relaxed in its own checkpointed
sub-directory of ``workdir``, so an interrupted recipe resumes site by site.

When ``settings.binding.max_dft_sites`` is set and there are more sites than that, every site
is first relaxed with the surrogate and only the lowest ones get DFT
(:mod:`interphase_dft.recipes.screening`); the surrogate energies are stored in
``doc.screening`` only, and a warning says how many sites were screened out.

Cost ceilings: every DFT call of the recipe (not the surrogate, not the Li references, which
are work of their own) is charged to the work item's ledger (``<workdir>/budget.json``,
:mod:`interphase_dft.calc.budget`, ceilings ``budget.binding_max_dft_calls`` and
``budget.binding_max_dft_hours``), the Li-charge SCF of each site included. At a ceiling the
document has the status ``'not converged: over budget'`` (:func:`over_budget_doc`): no binding
energy and no sites, what was reached in ``budget``; the same call with a larger budget and the
same ``workdir`` continues from the checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from ase import Atoms

from interphase_dft.barrier_status import BINDING_OVER_BUDGET
from interphase_dft.calc.budget import (
    Ledger,
    MeteredFactory,
    finished_runs,
    unfinished_runs,
)
from interphase_dft.calc.dispersion import dispersion_applied
from interphase_dft.calc.factory import (
    factory_for,
    insertion_spin,
    same_mesh_as,
    scf_parameters,
    seed_moment,
    surrogate_factory,
)
from interphase_dft.calc.guard import COLLAPSE_NOTE, CalcFactory
from interphase_dft.calc.reuse import ReusingFactory
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import RunResult, relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import copy_constraints
from interphase_dft.errors import InputError
from interphase_dft.geometry import mic_distance
from interphase_dft.recipes.reaction import check_site
from interphase_dft.recipes.references import li_references
from interphase_dft.recipes.screening import Screening, needs_screening, screen_sites
from interphase_dft.schemas import (
    BindingEnergyDoc,
    ReferenceEnergies,
    SiteResult,
    StructureData,
    site_order,
)

log = logging.getLogger("interphase_dft.recipes")

#: the run-log warning of a host relaxation that did not converge (spoils every site)
HOST_NOT_CONVERGED = "host relaxation not converged"


class SiteLike(Protocol):
    """What the recipe needs from a site (``interphase_dft.builders.sites.Site``)."""

    label: str
    kind: str
    position: Any


def geometry_level(settings: CalcSettings, ml: Any) -> str:
    """Where the geometries come from, stored in ``doc.calculator['geometry']``."""
    if settings.engine == "ml":
        return "surrogate-relaxed (surrogate energies)"
    if not settings.surrogate_geometry:
        return "DFT-relaxed" + (" (surrogate pre-relaxation)" if ml is not None else "")
    return f"{settings.ml.model}-relaxed, DFT single point ({settings.dft.xc}//{settings.ml.model})"


def with_li(host: Atoms, position: Sequence[float]) -> Atoms:
    """Copy of ``host`` with one Li appended at ``position`` (Angstrom); constraints kept; the
    k-point mesh of ``host`` (:func:`~interphase_dft.calc.factory.same_mesh_as`)."""
    atoms = host.copy()
    copy_constraints(atoms, host)
    atoms.append("Li")
    atoms.positions[-1] = np.asarray(position, float)
    return same_mesh_as(atoms, host)


@dataclass
class _Calculators:
    """The calculators of one binding recipe run.

    ``host``: host cells; ``site``: host + Li (spin-polarised when ``spin``); both metered by
    the ledger when there is one; ``ml``: the surrogate pre-relaxing host and sites
    (``relax.ml_prerelax``), else None; ``charge``: the site factory unwrapped (the Li charge
    needs the GPAW calculator itself; :func:`_check_site` charges its SCF to the ledger).
    """

    host: CalcFactory
    site: CalcFactory
    ml: CalcFactory | None
    spin: bool
    charge: CalcFactory | None = None
    ledger: Ledger | None = None


def binding_ledger(workdir: Path, settings: CalcSettings) -> Ledger | None:
    """The ledger of a binding work item (``<workdir>/budget.json``; None for engine 'ml')."""
    if settings.engine == "ml":
        return None
    return Ledger.open(workdir, settings.budget, kind="binding")


@dataclass
class BindingStart:
    """What every binding mode opens with: the phase facts, the run log, the Li references
    (computed in ``workdir/references`` unless given) and the work item's ledger."""

    info: Any
    run: RunLog
    refs: ReferenceEnergies
    ledger: Ledger | None


def start_binding(name: str, settings: CalcSettings, workdir: Path,
                  references: ReferenceEnergies | None) -> BindingStart:
    """Open the binding work item of phase ``name`` (bulk and surface mode alike)."""
    from interphase_dft import phases

    info = phases.phase_info(name)
    run = RunLog()
    with run.stage("references"):
        refs = references or li_references(settings, workdir / "references",
                                           dispersion=info.needs_dispersion)
    return BindingStart(info, run, refs, binding_ledger(workdir, settings))


def metered(factory: CalcFactory, ledger: Ledger | None) -> CalcFactory:
    """``factory`` charging ``ledger`` (unchanged without a ledger)."""
    return factory if ledger is None else MeteredFactory(factory, ledger)


def mark_stage(ledger: Ledger | None, directory: Path) -> None:
    """Name the running stage in ``ledger``: ``directory`` relative to the work item's."""
    if ledger is None:
        return
    try:
        ledger.stage = str(Path(directory).relative_to(ledger.path.parent))
    except ValueError:
        ledger.stage = Path(directory).name


def _calculators(settings: CalcSettings, workdir: Path, *, is_metal: bool, dispersion: bool,
                 calc_factory: CalcFactory | None,
                 ledger: Ledger | None = None) -> _Calculators:
    factory = calc_factory or factory_for(settings, is_metal=is_metal, dispersion=dispersion,
                                          moving=True, txt=str(workdir / "gpaw.txt"),
                                          li_inserted=True)
    # host + Li of a non-metal: spin-polarised, 1 mu_B seeded on the Li (the host stays
    # closed-shell and spin-paired); calc_factory replaces both factories
    spin = insertion_spin(settings, is_metal=is_metal)
    site_factory = factory
    if spin and calc_factory is None:
        site_factory = replace(factory, spin=True)  # the host's GPAWFactory, spin-polarised
    # the Li charge is read from the site's own converged SCF when it ran in this process
    # (calc.reuse: exact geometry only); a resumed site computes it with one SCF
    site_factory = ReusingFactory(site_factory, move=False)
    ml = None
    # settings.relax.ml_prerelax: the host and each host+Li are pre-relaxed with the surrogate;
    # it only moves the DFT starting geometry, every reported energy is DFT
    if settings.relax.ml_prerelax and settings.engine != "ml":
        ml = surrogate_factory(settings, dispersion=dispersion)
    return _Calculators(metered(factory, ledger), metered(site_factory, ledger), ml, spin,
                        charge=site_factory, ledger=ledger)


def _relax_host(host: Atoms, settings: CalcSettings, workdir: Path, calcs: _Calculators,
                run: RunLog, *, relax_host: bool, phase: str) -> RunResult:
    """Host relaxation (or single point) in ``workdir/host``; result atoms keep constraints."""
    mark_stage(calcs.ledger, workdir / "host")
    with run.stage("host"):
        start = host
        ml_converged = True
        if calcs.ml is not None and relax_host:
            ml_res = relax(host, calcs.ml, workdir / "host", settings.relax.for_surrogate(),
                           label="host-ml")
            start = copy_constraints(ml_res.atoms, host)
            run.count("host_ml", ml_res.force_calls)
            ml_converged = ml_res.converged
        if relax_host and not settings.surrogate_geometry:
            res = relax(start, calcs.host, workdir / "host", settings.relax, label="host")
        else:
            res = static(start, calcs.host, workdir / "host", label="host")
            res.converged = res.converged and ml_converged
    run.add("host", res)
    if not res.converged:
        run.warn(f"{phase} {HOST_NOT_CONVERGED}: every site is marked not "
                 "converged (raise relax.steps, or relax.ml_steps for surrogate relaxations)")
    copy_constraints(res.atoms, host)
    return res


def _relax_site(site: SiteLike, host: Atoms, host_final: Atoms, settings: CalcSettings,
                workdir: Path, calcs: _Calculators, screening: Screening | None) -> RunResult:
    """Host + Li at ``site`` relaxed (or a single point at the surrogate minimum)."""
    label = str(site.label)
    start = with_li(host_final, site.position)
    sdir = workdir / f"site-{label}"
    mark_stage(calcs.ledger, sdir)
    ml_converged = True
    if calcs.ml is not None and screening is not None:
        start = copy_constraints(screening.relaxed[label].copy(), host)  # the same relaxation
        ml_converged = bool(screening.record["ml_converged"][label])
    elif calcs.ml is not None:
        ml_res = relax(start, calcs.ml, sdir, settings.relax.for_surrogate(), label="ml")
        start, ml_converged = copy_constraints(ml_res.atoms, host), ml_res.converged
    if calcs.spin:
        start = seed_moment(start, len(start) - 1)
    if not settings.surrogate_geometry:
        return relax(start, calcs.site, sdir, settings.relax, label="relax")
    res = static(start, calcs.site, sdir, label="static")  # PBE//surrogate: one single point
    res.converged = res.converged and ml_converged
    return res


def _site_result(site: SiteLike, res: RunResult, host_res: RunResult, host_final: Atoms,
                 refs: ReferenceEnergies, spin: bool) -> SiteResult:
    """The stored result of one site (binding energies against both references, eV)."""
    collapsed = spin and any(COLLAPSE_NOTE in w for w in res.warnings)
    moment = res.atoms.calc.results.get("magmom") if res.atoms.calc is not None else None
    return SiteResult(
        label=str(site.label), site_kind=str(getattr(site, "kind", "")),
        position=[float(x) for x in np.asarray(site.position, float)],
        energy=res.energy, binding_energy_atom=res.energy - host_res.energy - refs.li_atom,
        binding_energy_bcc=res.energy - host_res.energy - refs.li_bcc_per_atom,
        # E_b needs both minima: a host that did not converge spoils every site
        converged=res.converged and host_res.converged,
        final_structure=StructureData.from_atoms(res.atoms),
        li_displacement=mic_distance(host_final, site.position, res.atoms.positions[-1]),
        spin="paired (moment collapsed)" if collapsed else "polarised" if spin else "paired",
        magnetic_moment=None if moment is None else float(moment),
    )


def _check_site(result: SiteResult, res: RunResult, host_final: Atoms, calcs: _Calculators,
                sdir: Path) -> SiteResult:
    """:func:`~interphase_dft.recipes.reaction.check_site` with the Li-charge SCF (GPAW only;
    cached in ``sdir/charge.json``) checked against and charged to the ledger when it runs."""
    meter = None
    if calcs.ledger is not None:
        meter = _StageMeter(calcs.ledger, sdir / "charge")
    return check_site(result, res.atoms, host_final, factory=calcs.charge or calcs.site,
                      workdir=sdir, meter=meter)


class _StageMeter:
    """The ledger, with its stage named when the charge SCF is about to run."""

    def __init__(self, ledger: Ledger, stage: Path) -> None:
        self.ledger, self.stage = ledger, stage

    def check(self) -> None:
        mark_stage(self.ledger, self.stage)
        self.ledger.check()

    def charge(self, seconds: float) -> None:
        self.ledger.charge(seconds)


def _description(settings: CalcSettings, calcs: _Calculators, *, is_metal: bool,
                 dispersion: bool, custom: bool) -> dict[str, Any]:
    """What the calculators applied (``BindingEnergyDoc.calculator``)."""
    desc = dict(getattr(calcs.host, "description", {}))
    desc.pop("dft", None)
    desc["smearing"] = scf_parameters(settings, is_metal=is_metal,
                                      li_inserted=True)["occupations"]
    desc["dispersion"] = (dispersion_applied(settings, dispersion)
                          if settings.engine == "gpaw" and not custom else "none")
    desc["spin"] = ("host + Li spin-polarised (1 mu_B seeded on Li), host spin-paired; a site "
                    "whose moment collapsed is recomputed spin-paired (sites[].spin)"
                    if calcs.spin else "spin-paired")
    desc["ml_prerelax"] = calcs.ml is not None
    if calcs.ml is not None:
        desc["surrogate"] = calcs.ml.description
    desc["geometry"] = geometry_level(settings, calcs.ml)
    return desc


def host_binding(
    host: Atoms,
    sites: Sequence[SiteLike],
    settings: CalcSettings,
    *,
    workdir: Path | str,
    phase: str,
    mode: Literal["surface", "bulk"],
    is_metal: bool,
    dispersion: bool = False,
    surface: dict[str, Any] | None = None,
    relax_host: bool = True,
    calc_factory: CalcFactory | None = None,
    references: ReferenceEnergies | None = None,
    ledger: Ledger | None = None,
) -> BindingEnergyDoc:
    """Binding energies of Li on the given ``sites`` of ``host`` (the core of the recipe).

    Parameters
    ----------
    host
        Supercell (bulk mode) or slab (surface mode), with FixAtoms where wanted.
    sites
        Objects with ``label``, ``kind`` and Cartesian ``position`` (Angstrom).
    settings
        Calculation settings (stored in the document).
    workdir
        Checkpoint directory; sub-directories ``references``, ``host``, ``site-<label>``.
    phase, mode
        Stored in the document.
    is_metal, dispersion
        Smearing and DFT-D3 choice of the host (references get the same dispersion).
    surface
        Stored as ``doc.surface`` (surface mode).
    relax_host
        Relax the host before inserting Li (positions only; cell fixed).
    calc_factory, references
        Replace the settings-built calculator and the computed Li references (tests, other
        codes); both must come from the same level of theory.
    ledger
        The work item's cost ledger: every DFT call is charged to it (None = unmetered).

    Returns
    -------
    BindingEnergyDoc
        Binding energies (eV) of every computed site and of the lowest one.

    Raises
    ------
    BudgetExceeded
        A ceiling of ``ledger`` was reached (the caller writes the over-budget document).

    Notes
    -----
    With ``settings.binding.max_dft_sites`` smaller than ``len(sites)`` the sites are
    screened with the surrogate first (see :func:`interphase_dft.recipes.screening.screen_sites`);
    ``doc.sites`` then holds the DFT results of the selected sites only.
    """
    if not sites:
        raise InputError(f"no Li sites for {phase} ({mode}); check the site finder")
    screen = needs_screening(len(sites), settings)  # fails before any expensive work
    workdir = Path(workdir)
    run = RunLog()
    with run.stage("references"):
        refs = references or li_references(settings, workdir / "references",
                                           dispersion=dispersion)
    calcs = _calculators(settings, workdir, is_metal=is_metal, dispersion=dispersion,
                         calc_factory=calc_factory, ledger=ledger)
    host_res = _relax_host(host, settings, workdir, calcs, run, relax_host=relax_host,
                           phase=phase)
    host_final = host_res.atoms
    screening = None
    if screen:
        screening = screen_sites(host_final, sites, settings, workdir=workdir, with_li=with_li,
                                 ml_factory=calcs.ml or surrogate_factory(settings,
                                                                          dispersion=dispersion),
                                 stop=ledger.check if ledger is not None else None)
        run.merge(screening.run)
        sites = screening.selected
    results: list[SiteResult] = []
    for site in sites:
        with run.stage(f"site-{site.label}"):
            res = _relax_site(site, host, host_final, settings, workdir, calcs, screening)
        run.add(f"site-{site.label}", res)
        results.append(_check_site(  # reactive flag, Li charge and moment (recipes.reaction)
            _site_result(site, res, host_res, host_final, refs, calcs.spin), res,
            host_final, calcs, workdir / f"site-{site.label}"))
        log.info("%s %s site %s: E_b(atom) = %.3f eV, E_b(bcc) = %.3f eV", phase, mode,
                 site.label, results[-1].binding_energy_atom, results[-1].binding_energy_bcc)
    lowest = headline_site(results)
    if lowest.reactive or not lowest.converged:
        run.warn(f"{phase} {mode}: no site is both non-reactive and converged; the headline "
                 f"E_b is site {lowest.label} "
                 + ("(reactive: a reaction energy, not a binding energy)" if lowest.reactive
                    else "(geometry not converged)"))
    return BindingEnergyDoc.from_run(
        settings, run, input_structure=host,
        calculator=_description(settings, calcs, is_metal=is_metal, dispersion=dispersion,
                                custom=calc_factory is not None),
        phase=phase, mode=mode, surface=surface, host_energy=host_res.energy,
        host_structure=StructureData.from_atoms(host_final), references=refs, sites=results,
        lowest_site=lowest.label, binding_energy_atom=lowest.binding_energy_atom,
        binding_energy_bcc=lowest.binding_energy_bcc,
        screening=screening.record if screening is not None else None,
        budget=ledger.summary() if ledger is not None else {},
    )


def headline_site(results: Sequence[SiteResult]) -> SiteResult:
    """The site whose E_b heads the document (and that slab-thickness convergence follows):
    the first in :func:`interphase_dft.schemas.site_order`, i.e. the lowest non-reactive
    site with a converged geometry; only when there is none, the lowest non-reactive one,
    then the lowest of all (the document then warns). A reactive site's number is a reaction
    energy, so it never heads a document that has another."""
    return min(results, key=site_order)


def describe(settings: CalcSettings, workdir: Path, *, is_metal: bool, dispersion: bool,
             calc_factory: CalcFactory | None) -> dict[str, Any]:
    """``BindingEnergyDoc.calculator`` of a run that built no calculators of its own (an
    over-budget document)."""
    calcs = _calculators(settings, workdir, is_metal=is_metal, dispersion=dispersion,
                         calc_factory=calc_factory)
    return _description(settings, calcs, is_metal=is_metal, dispersion=dispersion,
                        custom=calc_factory is not None)


def _dft_run(name: str) -> bool:
    """True for the checkpoint of a DFT run (not the surrogate's: ``ml``, ``*-ml``,
    ``ml_screen/``)."""
    parts = Path(name).parts
    return not (parts[-1] == "ml" or parts[-1].endswith("-ml") or "ml_screen" in parts)


def over_budget_doc(ledger: Ledger, settings: CalcSettings, run: RunLog, *, phase: str,
                    mode: Literal["surface", "bulk"], input_structure: Atoms,
                    references: ReferenceEnergies, calculator: dict[str, Any],
                    reached: dict[str, Any] | None = None, reached_note: str = "",
                    **fields: Any) -> BindingEnergyDoc:
    """The document of a binding run stopped by its cost ceiling: no binding energy.

    Parameters
    ----------
    ledger
        The work item's ledger (the ceiling it reached, the stage that was running).
    reached, reached_note
        Partial results of the mode (e.g. finished slab thicknesses) and one phrase on them.
    fields
        Records of the mode (``surface``, ``termination``, ``supercell``, ...).

    Returns
    -------
    BindingEnergyDoc
        Status ``'not converged: over budget'``; ``sites`` empty and every binding energy None;
        ``budget`` holds the ceilings, the DFT calls and hours used, the stage that was running,
        the finished and unfinished DFT runs (checkpoint paths) and ``reached``.
    """
    workdir = ledger.path.parent
    done = [r for r in finished_runs(workdir) if _dft_run(r)]
    unfinished = {k: v for k, v in unfinished_runs(workdir).items() if _dft_run(k)}
    note = (f"stopped in stage {ledger.stage or '?'} after {ledger.calls} DFT calls "
            f"({ledger.seconds / 3600:.2f} h): {ledger.reason() or 'ceiling reached'}; "
            + (f"{reached_note}; " if reached_note else "")
            + f"finished DFT runs: {', '.join(done) or 'none'}; "
            + ("the run's time limit stopped it: run the campaign again in the same work "
               "directory (finished runs are reused)" if ledger.timed_out else
               "continue with a larger budget.binding_max_dft_calls / "
               "budget.binding_max_dft_hours in the same work directory (finished runs are "
               "reused)"))
    run.warn(f"{phase} {mode}: {BINDING_OVER_BUDGET}: {note}")
    log.warning("%s %s: %s: %s", phase, mode, BINDING_OVER_BUDGET, note)
    return BindingEnergyDoc.from_run(
        settings, run, input_structure=input_structure, calculator=calculator, phase=phase,
        mode=mode, status=BINDING_OVER_BUDGET, status_note=note,
        budget={**ledger.summary(), "stage": ledger.stage, "finished": done,
                "unfinished": unfinished, "reached": reached or {}},
        host_energy=None, host_structure=None, references=references, sites=[],
        lowest_site=None, binding_energy_atom=None, binding_energy_bcc=None, **fields)


def binding_energy(phase: str, settings: CalcSettings, *,
                   mode: Literal["surface", "bulk"] = "surface",
                   workdir: Path | str, calc_factory: CalcFactory | None = None,
                   references: ReferenceEnergies | None = None) -> BindingEnergyDoc:
    """Li binding energy of ``phase`` (see the module docstring for the procedure).

    Parameters
    ----------
    phase
        Phase name (``Al``, ``LiAl``, ``LPSC``, ``Li2S``, ``Li3P``, ``LiCl``, ``P2S5``).
    settings
        Calculation settings (preset plus overrides).
    mode
        ``'surface'`` (adsorption on a converged slab) or ``'bulk'`` (interstitial, vacancy).
    workdir
        Checkpoint directory; rerunning with the same one resumes.
    calc_factory, references
        Replace every settings-built calculator and the computed Li references (tests, other
        codes); both must come from the same level of theory.

    Returns
    -------
    BindingEnergyDoc
        Every DFT site (all symmetry-distinct sites, or the surrogate-selected
        ``settings.binding.max_dft_sites`` of them, see ``doc.screening``), the lowest one,
        both references, and the records of the mode (bulk: ``supercell``, ``vacancy``,
        ``coexistence``; surface: ``surface``, ``coverage``, ``termination``,
        ``slab_convergence``; both: ``charge_state``, ``charge_note``).
    """
    from interphase_dft import phases

    name = phases.resolve_phase(phase)
    if mode not in ("surface", "bulk"):
        raise InputError(f"mode must be 'surface' or 'bulk', got {mode!r}")
    from interphase_dft.recipes.preflight import check_sites

    check_sites(name, settings, mode)  # bad settings fail here, before any calculation
    if mode == "bulk":
        from interphase_dft.recipes.bulk_mode import bulk_binding

        return bulk_binding(name, settings, workdir=Path(workdir), calc_factory=calc_factory,
                            references=references)
    from interphase_dft.recipes.surface_mode import surface_binding

    return surface_binding(name, settings, workdir=Path(workdir), calc_factory=calc_factory,
                           references=references)
