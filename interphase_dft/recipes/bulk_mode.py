"""Bulk mode of the binding recipe: Li interstitial, Li vacancy and Al/LiAl coexistence.

Rules
-----
- Host: a supercell of the phase (cell-relaxed first when ``relax.relax_cell_bulk``, and always
  for a molecular crystal, P2S5) with every
  perpendicular width >= ``structure.bulk_min_length`` (10 Angstrom; the laptop preset uses
  8 Angstrom), built by :func:`interphase_dft.recipes.supercells.bulk_supercell`.
- Interstitial: every symmetry-distinct interstitial site of the conventional cell, placed in
  the supercell and relaxed (:func:`interphase_dft.recipes.binding.host_binding`); the lowest
  relaxed site gives E_b.
- Vacancy (hosts with Li): E_f = E(host - Li) + E_ref(Li) - E(host), eV, against both Li
  references, for every symmetry-distinct Li (surrogate-screened to
  ``binding.max_dft_vacancies``), same calculators and smearing as the host; the lowest is
  reported.
- Coexistence (Al only, a field of the Al bulk document): mu_Li = E(LiAl) - E(Al) - E(Li bcc)
  per Li, eV, from the conventional cells of the phase library (cell-relaxed when
  ``relax.relax_cell_bulk``, else static: their positions are fixed by symmetry) with metal
  smearing, as the bcc Li reference; the Al/LiAl plateau is at -mu_Li/e vs Li/Li+.
- Charge state: neutral cells (:data:`BULK_CHARGE_NOTE`).
- Cost: one ledger for the work item (``workdir/budget.json``, ``budget.binding_max_dft_*``)
  meters every DFT call (cell relaxation, host, sites, vacancies, coexistence); at a ceiling
  the document is ``'not converged: over budget'`` with what finished in
  ``budget['reached']`` (:func:`interphase_dft.recipes.binding.over_budget_doc`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.budget import BudgetExceeded, Ledger
from interphase_dft.calc.factory import factory_for, same_mesh_as, seed_moment, surrogate_factory
from interphase_dft.calc.guard import COLLAPSE_NOTE, CalcFactory
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import RunResult, relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.recipes.binding import (
    HOST_NOT_CONVERGED,
    _Calculators,
    _calculators,
    describe,
    host_binding,
    mark_stage,
    metered,
    over_budget_doc,
    start_binding,
)
from interphase_dft.recipes.relaxed_cells import cell_factory, starting_cell
from interphase_dft.recipes.screening import Screening, needs_screening, screen_sites
from interphase_dft.recipes.supercells import bulk_supercell, place_sites, place_vacancies
from interphase_dft.schemas import BindingEnergyDoc, ReferenceEnergies, StructureData

log = logging.getLogger("interphase_dft.recipes")

#: issue 15: bulk cells of at least 10 A per side; 8 A allowed for the laptop-level presets
REQUIRED_MIN_LENGTH = 10.0
LAPTOP_MIN_LENGTH = 8.0
LAPTOP_PRESETS = ("laptop", "screening")
#: experimental Al/LiAl two-phase plateau near room temperature, V vs Li/Li+
AL_LIAL_PLATEAU = (0.3, 0.4)

BULK_CHARGE_NOTE = (
    "neutral cells: the interstitial Li's electron stays in the supercell (an insulator's "
    "conduction band or a localised state; spin-polarised, 1 mu_B seeded on the Li) and a "
    "neutral Li vacancy leaves a hole (spin-polarised, 1 mu_B seeded on the nearest non-Li "
    "atom); in a metal both are screened by the conduction electrons. Metal-contact "
    "alternative, not computed: Li_i(+1) and V_Li(-1) in charged cells with the electron "
    "exchanged with the contacting metal's Fermi level, E_f(q) = E(defect, q) - E(host) "
    "-/+ mu_Li + q E_F + E_corr (finite-size correction)"
)


def vacancy_formation_energy(e_defect: float, e_host: float, e_ref: float) -> float:
    """E_f = E(host - Li) + E_ref(Li) - E(host), eV (all from the same settings)."""
    return e_defect + e_ref - e_host


def coexistence_potential(e_lial: float, n_li: int, n_al: int, e_al_per_atom: float,
                          e_li_bcc: float) -> float:
    """Li chemical potential at Al/LiAl coexistence, eV per Li (voltage = -value, V).

    mu_Li = [E(LiAl cell) - n_Al E(Al)/atom] / n_Li - E(Li bcc)/atom, i.e. the energy of
    Al + Li(bcc) -> LiAl per Li.
    """
    return (e_lial - n_al * e_al_per_atom) / n_li - e_li_bcc


def supercell_requirement(settings: CalcSettings) -> tuple[float, str]:
    """(required smallest width, Angstrom; statement) for the document."""
    if settings.preset in LAPTOP_PRESETS:
        return LAPTOP_MIN_LENGTH, (f"every width >= {LAPTOP_MIN_LENGTH} A ({settings.preset} "
                                   f"preset; {REQUIRED_MIN_LENGTH} A otherwise)")
    if settings.preset == "test":
        return settings.structure.bulk_min_length, "test preset: tiny cells, no requirement"
    return REQUIRED_MIN_LENGTH, f"every width >= {REQUIRED_MIN_LENGTH} A"


def _remove_li_at(host: Atoms, position: Sequence[float]) -> Atoms:
    """Copy of ``host`` without the Li nearest to ``position`` (minimum image), on the
    host's k-point mesh."""
    from ase.geometry import get_distances

    from interphase_dft.builders.sites import remove_atom

    li = [i for i, s in enumerate(host.get_chemical_symbols()) if s == "Li"]
    _, d = get_distances([position], host.positions[li], cell=host.cell, pbc=host.pbc)
    return same_mesh_as(remove_atom(host, li[int(np.argmin(d[0]))]), host)


def _hole_seed(atoms: Atoms, position: Sequence[float]) -> int:
    """Index of the non-Li atom nearest to ``position`` (where the hole's moment is seeded)."""
    from ase.geometry import get_distances

    other = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s != "Li"]
    _, d = get_distances([position], atoms.positions[other], cell=atoms.cell, pbc=atoms.pbc)
    return other[int(np.argmin(d[0]))]


def _relax_vacancy(site: Any, host_final: Atoms, settings: CalcSettings, vdir: Path,
                   calcs: _Calculators, screening: Screening | None) -> RunResult:
    """The host without the Li at ``site``, relaxed (or a single point at the surrogate
    minimum), as for the interstitial sites."""
    mark_stage(calcs.ledger, vdir)
    start = _remove_li_at(host_final, site.position)
    ml_converged = True
    if calcs.ml is not None and screening is not None:
        start = screening.relaxed[str(site.label)].copy()
        ml_converged = bool(screening.record["ml_converged"][str(site.label)])
    elif calcs.ml is not None:
        res = relax(start, calcs.ml, vdir, settings.relax.for_surrogate(), label="ml")
        start, ml_converged = res.atoms, res.converged
    if calcs.spin:
        start = seed_moment(start, _hole_seed(start, site.position))
    if not settings.surrogate_geometry:
        return relax(start, calcs.site, vdir, settings.relax, label="relax")
    res = static(start, calcs.site, vdir, label="static")
    res.converged = res.converged and ml_converged
    return res


def li_vacancies(doc: BindingEnergyDoc, sites: Sequence[Any], settings: CalcSettings, *,
                 workdir: Path, calcs: _Calculators, dispersion: bool,
                 run: RunLog) -> dict[str, Any]:
    """Li vacancy formation energies (eV) in the relaxed host of ``doc``.

    Runs go to ``workdir/vacancy-<label>`` (surrogate screening in
    ``workdir/vacancies/ml_screen``).
    """
    host_final = doc.host_structure.to_atoms()
    refs = doc.references
    host_converged = all(HOST_NOT_CONVERGED not in w for w in doc.warnings)
    screening = None
    if needs_screening(len(sites), settings, "max_dft_vacancies"):
        ml = calcs.ml or surrogate_factory(settings, dispersion=dispersion)
        screening = screen_sites(host_final, sites, settings, workdir=workdir / "vacancies",
                                 with_li=_remove_li_at, ml_factory=ml,
                                 cap_name="max_dft_vacancies", merge=False,
                                 what="Li vacancies",
                                 stop=calcs.ledger.check if calcs.ledger is not None else None)
        run.merge(screening.run)
        sites = screening.selected
    out = []
    for site in sites:
        name = f"vacancy-{site.label}"
        with run.stage(name):
            res = _relax_vacancy(site, host_final, settings, workdir / name, calcs, screening)
        run.add(name, res)
        collapsed = calcs.spin and any(COLLAPSE_NOTE in w for w in res.warnings)
        moment = res.atoms.calc.results.get("magmom") if res.atoms.calc is not None else None
        out.append({
            "label": str(site.label), "index": int(site.index),
            "multiplicity": int(site.multiplicity),
            "position": [float(x) for x in site.position], "energy": res.energy,
            "formation_energy_atom": vacancy_formation_energy(res.energy, doc.host_energy,
                                                              refs.li_atom),
            "formation_energy_bcc": vacancy_formation_energy(res.energy, doc.host_energy,
                                                             refs.li_bcc_per_atom),
            "converged": bool(res.converged and host_converged),
            "spin": ("paired (moment collapsed)" if collapsed else
                     "polarised" if calcs.spin else "paired"),
            "magnetic_moment": None if moment is None else float(moment),
            "final_structure": StructureData.from_atoms(res.atoms).model_dump(),
        })
        log.info("%s vacancy %s: E_f(bcc) = %.3f eV", doc.phase, site.label,
                 out[-1]["formation_energy_bcc"])
    lowest = min(out, key=lambda v: v["energy"])
    return {
        "definition": "E(host - Li) + E_ref(Li) - E(host), eV; neutral cells",
        "lowest": lowest["label"],
        "formation_energy_atom": lowest["formation_energy_atom"],
        "formation_energy_bcc": lowest["formation_energy_bcc"],
        "n_sites": len(out) if screening is None else screening.record["n_sites"],
        "sites": out, "screening": screening.record if screening is not None else None,
    }


def al_lial_coexistence(settings: CalcSettings, refs: ReferenceEnergies, *, workdir: Path,
                        run: RunLog, calc_factory: CalcFactory | None = None,
                        ledger: Ledger | None = None) -> dict[str, Any]:
    """Li chemical potential at Al/LiAl coexistence (eV per Li) and the plateau voltage (V).

    Runs go to ``workdir/coexistence``; the Li reference is ``refs.li_bcc_per_atom``; DFT
    calls are charged to ``ledger`` (None = unmetered).
    """
    from interphase_dft import phases

    energies: dict[str, float] = {}
    counts: dict[str, dict[str, int]] = {}
    cells: dict[str, list[list[float]]] = {}
    cell_relax = settings.relax.relax_cell_bulk
    for name in ("Al", "LiAl"):
        atoms = phases.get_bulk(name)
        factory = metered(calc_factory or factory_for(
            settings, is_metal=True, dispersion=phases.phase_info(name).needs_dispersion,
            moving=cell_relax, txt=str(workdir / "coexistence" / f"{name}.txt")), ledger)
        mark_stage(ledger, workdir / "coexistence" / name)
        with run.stage(f"coexistence-{name}"):
            if cell_relax:
                res = relax(atoms, factory, workdir / "coexistence", settings.relax, cell=True,
                            label=name)
            else:
                res = static(atoms, factory, workdir / "coexistence", label=name)
        run.add(f"coexistence-{name}", res)
        energies[name] = res.energy
        symbols = res.atoms.get_chemical_symbols()
        counts[name] = {el: symbols.count(el) for el in ("Li", "Al")}
        cells[name] = np.asarray(res.atoms.cell[:]).round(6).tolist()
    e_al = energies["Al"] / counts["Al"]["Al"]
    mu = coexistence_potential(energies["LiAl"], counts["LiAl"]["Li"], counts["LiAl"]["Al"],
                               e_al, refs.li_bcc_per_atom)
    return {
        "definition": "mu_Li = E(LiAl) - E(Al) - E(Li bcc) per Li (Al + Li -> LiAl), eV; "
                      "voltage = -mu_Li/e vs Li/Li+",
        "mu_li": mu, "voltage": -mu,
        "e_lial_cell": energies["LiAl"], "n_li_lial": counts["LiAl"]["Li"],
        "n_al_lial": counts["LiAl"]["Al"], "e_al_per_atom": e_al,
        "e_li_bcc_per_atom": refs.li_bcc_per_atom, "cells": cells,
        "geometry": "cell-relaxed" if cell_relax else "phase-library lattice, static "
                    "(positions fixed by symmetry)",
        "experiment_voltage": list(AL_LIAL_PLATEAU),
        "experiment": "Al/LiAl two-phase plateau, about 0.3-0.4 V vs Li/Li+ near room "
                      "temperature (compare in docs/validation.md)",
    }


def bulk_host(name: str, settings: CalcSettings, workdir: Path,
              calc_factory: CalcFactory | None, ledger: Ledger | None = None,
              surrogate: CalcFactory | None = None) -> Atoms:
    """Conventional cell of ``name``, cell-relaxed with DFT when ``relax.relax_cell_bulk`` or
    the phase is a molecular crystal (:func:`interphase_dft.phases.relax_cell_in_bulk`: the
    built P4S10 cell is the least certain part of that model), from the stored relaxed cell
    of the level when there is one (:mod:`interphase_dft.recipes.relaxed_cells`), DFT calls
    charged to ``ledger``; ``info['cell_start']`` says where the relaxation started and
    ``info['cell_curvature']`` what its BFGS started from.

    From the built cell, BFGS starts from the surrogate's Hessian of the atoms and the cell
    (:func:`~interphase_dft.calc.hessian.start_hessian` with ``cell=True``): ``surrogate``,
    or with the settings-built calculators (``calc_factory`` None, engine GPAW) the phase's
    surrogate with the phase's dispersion. A stored cell converges at its first call and
    needs none."""
    from interphase_dft import phases
    from interphase_dft.calc.hessian import start_hessian

    bulk = phases.get_bulk(name)
    if phases.relax_cell_in_bulk(name, settings.relax.relax_cell_bulk):
        dft = calc_factory or cell_factory(name, settings, txt=str(workdir / "gpaw.txt"))
        start = starting_cell(name, bulk, dft, settings)
        if surrogate is None and calc_factory is None and settings.engine != "ml":
            surrogate = surrogate_factory(
                settings, dispersion=phases.phase_info(name).needs_dispersion)
        wd = workdir / "bulk-cell"
        hessian = (start_hessian(start, surrogate, wd, settings, cell=True)
                   if start.info["cell_start"] == "built cell" else None)
        mark_stage(ledger, wd)
        relaxed = relax(start, metered(dft, ledger), wd, settings.relax, cell=True,
                        label="bulk-cell", hessian=hessian).atoms
        relaxed.info = {**start.info, "cell_curvature": (
            "surrogate Hessian of atoms and cell" if hessian is not None
            else f"{settings.relax.optimizer} default")}
        return relaxed
    bulk.info["cell_start"] = "built cell"
    return bulk


def bulk_binding(name: str, settings: CalcSettings, *, workdir: Path,
                 calc_factory: CalcFactory | None = None,
                 references: ReferenceEnergies | None = None) -> BindingEnergyDoc:
    """Bulk-mode document of phase ``name`` (canonical name; rules in the module docstring).

    Parameters
    ----------
    name, settings, workdir
        As for :func:`interphase_dft.recipes.binding.binding_energy`.
    calc_factory, references
        Replace the settings-built calculators and Li references (tests, other codes).

    Returns
    -------
    BindingEnergyDoc
        Interstitial sites and E_b (eV) of the lowest; ``supercell``, ``vacancy`` (hosts with
        Li), ``coexistence`` (Al), ``charge_state``, ``charge_note`` and ``budget``. At a
        cost ceiling: status ``'not converged: over budget'``, no E_b.
    """
    from interphase_dft import phases

    start = start_binding(name, settings, workdir, references)
    info, run, refs, ledger = start.info, start.run, start.refs, start.ledger
    reached: dict[str, Any] = {}
    try:
        return _bulk_doc(name, settings, workdir, run, refs, ledger, reached, calc_factory)
    except BudgetExceeded:
        if ledger is None:  # raised by a caller's factory, not by this run's ledger
            raise
        parts = [f"interstitial E_b(bcc) {reached['interstitial']['binding_energy_bcc']:.3f} "
                 f"eV (site {reached['interstitial']['lowest_site']}; not a result)"
                 if "interstitial" in reached else "interstitial sites not finished"]
        if reached.get("vacancies_planned"):
            parts.append("Li vacancies not finished")
        return over_budget_doc(
            ledger, settings, run, phase=name, mode="bulk",
            input_structure=reached.get("host", phases.get_bulk(name)), references=refs,
            calculator=describe(settings, workdir, is_metal=info.is_metal,
                                dispersion=info.needs_dispersion, calc_factory=calc_factory),
            reached={k: v for k, v in reached.items() if k != "host"},
            reached_note="; ".join(parts), supercell=reached.get("supercell"),
            charge_state="neutral", charge_note=_charge_note(info.is_metal))


def _charge_note(is_metal: bool) -> str:
    return (BULK_CHARGE_NOTE if not is_metal else
            "neutral cells; a metallic host screens the added Li (or the vacancy) with its "
            "conduction electrons, so the neutral cell is the contact state")


def _bulk_doc(name: str, settings: CalcSettings, workdir: Path, run: RunLog,
              refs: ReferenceEnergies, ledger: Ledger | None, reached: dict[str, Any],
              calc_factory: CalcFactory | None) -> BindingEnergyDoc:
    """The complete bulk document; ``reached`` collects what finished (for an over-budget
    document when a ceiling stops the run)."""
    from interphase_dft import phases
    from interphase_dft.builders.sites import interstitial_sites, vacancy_sites

    info = phases.phase_info(name)
    st = settings.structure
    bulk = bulk_host(name, settings, workdir, calc_factory, ledger)
    host, record = bulk_supercell(bulk, st.bulk_min_length, st.bulk_supercell)
    required, statement = supercell_requirement(settings)
    record["required_min_length"] = required
    record["requirement"] = statement
    record["meets_requirement"] = bool(min(record["widths"]) >= required - 1e-6)
    record["cell_relaxed"] = phases.relax_cell_in_bulk(name, settings.relax.relax_cell_bulk)
    record["cell_start"] = bulk.info.get("cell_start")
    record["cell_curvature"] = bulk.info.get("cell_curvature")
    record["conventional_cellpar"] = [round(float(v), 4) for v in bulk.cell.cellpar()]
    reached.update(host=host, supercell=record)
    vac_sites = []
    if "Li" in host.get_chemical_symbols():
        vac_sites = place_vacancies(vacancy_sites(bulk, "Li"), host)
        needs_screening(len(vac_sites), settings, "max_dft_vacancies")  # fail before work
        reached["vacancies_planned"] = True
    doc = host_binding(host, place_sites(interstitial_sites(bulk), host), settings,
                       workdir=workdir, phase=name, mode="bulk", is_metal=info.is_metal,
                       dispersion=info.needs_dispersion, calc_factory=calc_factory,
                       references=refs, ledger=ledger)
    reached["interstitial"] = {"lowest_site": doc.lowest_site,
                               "binding_energy_bcc": doc.binding_energy_bcc,
                               "binding_energy_atom": doc.binding_energy_atom}
    if not record["meets_requirement"]:
        run.warn(f"{name} bulk supercell: smallest width {min(record['widths']):.2f} A < "
                 f"{required} A ({statement})")
    vacancy = None
    if vac_sites:
        calcs = _calculators(settings, workdir, is_metal=info.is_metal,
                             dispersion=info.needs_dispersion, calc_factory=calc_factory,
                             ledger=ledger)
        vacancy = li_vacancies(doc, vac_sites, settings, workdir=workdir, calcs=calcs,
                               dispersion=info.needs_dispersion, run=run)
    coexistence = None
    if name == "Al":
        coexistence = al_lial_coexistence(settings, doc.references, workdir=workdir, run=run,
                                          calc_factory=calc_factory, ledger=ledger)
    return doc.model_copy(update={
        "supercell": record, "vacancy": vacancy, "coexistence": coexistence,
        "charge_state": "neutral", "charge_note": _charge_note(info.is_metal),
        "timings": {**doc.timings, **run.timings},
        "force_calls": {**doc.force_calls, **run.force_calls},
        "warnings": [*doc.warnings, *run.warnings],
        "budget": ledger.summary() if ledger is not None else {},
    })
