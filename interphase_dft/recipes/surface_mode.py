"""Surface mode of the binding recipe: Li adsorbed on a converged slab at a fixed coverage.

Rules
-----
- Candidates (:data:`TERMINATION_RULE`): every termination of the low-index planes of
  :func:`interphase_dft.builders.slabs.default_millers` at ``structure.slab_layers``, kept by the
  first non-empty filter of: non-polar + symmetric + stoichiometric, non-polar + symmetric,
  non-polar, polar + symmetric + stoichiometric, polar + symmetric, any; ranked as
  :func:`~interphase_dft.builders.slabs.choose_surface` ranks them (broken bonds per A^2, top
  atom density, Miller order, shift).
- Termination: the first ``structure.surface_energy_candidates`` of the ranking get a DFT
  surface energy gamma = (E_slab - N e_bulk) / 2A (eV/A^2; both surfaces relaxed, no atom
  fixed; e_bulk from the position-relaxed conventional cell the slabs are cut from; same
  calculator, smearing and k-point mesh density, the Gamma-only rule off for these cells).
  The lowest gamma is chosen (candidates within 1e-4 eV/A^2 of it tie -> ranking order);
  non-stoichiometric slabs get no gamma and are chosen only when no candidate has one. A
  single candidate gets no DFT comparison. For an asymmetric slab gamma is the mean of its
  two surfaces.
- Coverage: one Li per cell, the slab's in-plane supercell of the fewest surface cells that
  reach ``structure.slab_min_area`` A^2 with the Li at least 0.85 sqrt(min area) from its own
  images, non-diagonal supercells included
  (:func:`~interphase_dft.builders.slabs.repeat_to_area`), the same bound for every phase;
  the area per Li and the image distance are recorded.
- Thickness: converged by :func:`interphase_dft.recipes.slab_convergence.converge_thickness`,
  every thickness on the in-plane k-point mesh of the thinnest slab (recorded);
  every thickness is a full adsorption run (:func:`interphase_dft.recipes.binding.host_binding`,
  bottom ``slab_fixed_layers`` fixed) in ``workdir/layers-<n>``.
- Slabs are computed with ``pbc = (T, T, F)``, so the dipole-layer correction is on for every
  slab cell (:func:`interphase_dft.calc.factory.needs_dipole_correction`), the clean slab and
  the Li-covered (always asymmetric) one alike.
- Charge state: neutral slabs (:data:`SURFACE_CHARGE_NOTE`).
- Cost: one ledger for the work item (``workdir/budget.json``, ``budget.binding_max_dft_*``)
  meters the termination choice and every thickness; at a ceiling the document is
  ``'not converged: over budget'`` with the finished thicknesses (E_b of each, not a result)
  in ``budget['reached']`` (:func:`interphase_dft.recipes.binding.over_budget_doc`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.builders.slabs import IMAGE_DISTANCE_FACTOR, in_plane_supercell
from interphase_dft.calc.budget import BudgetExceeded, Ledger
from interphase_dft.calc.factory import (
    KPOINT_ATOMS,
    density_mesh,
    factory_for,
    kpoint_mesh,
    needs_dipole_correction,
    surrogate_factory,
)
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import RunResult, relax, static
from interphase_dft.calc.settings import CalcSettings, StructureSettings
from interphase_dft.errors import StructureError
from interphase_dft.recipes.binding import (
    describe,
    host_binding,
    mark_stage,
    metered,
    over_budget_doc,
    start_binding,
)
from interphase_dft.recipes.slab_convergence import converge_thickness
from interphase_dft.schemas import BindingEnergyDoc, ReferenceEnergies

log = logging.getLogger("interphase_dft.recipes")

#: eV/A^2 -> J/m^2
EV_PER_A2_TO_J_PER_M2 = 16.02176634
#: surface energies closer than this are a tie, eV/A^2
GAMMA_TIE = 1e-4

TERMINATION_RULE = (
    "candidates: terminations of default_millers at structure.slab_layers, first non-empty of "
    "[non-polar+symmetric+stoichiometric, non-polar+symmetric, non-polar, "
    "polar+symmetric+stoichiometric, polar+symmetric, any], ranked by broken bonds/A^2, top "
    "atom density, Miller order, shift; the first structure.surface_energy_candidates get a "
    "DFT surface energy (E_slab - N e_bulk)/2A, both surfaces relaxed; lowest chosen (ties "
    "within 1e-4 eV/A^2 -> ranking order; slabs without a surface energy last)"
)
SURFACE_CHARGE_NOTE = (
    "neutral slab: on an insulating slab the adsorbed Li's electron goes into the slab's "
    "conduction band or a surface state, so the number tracks the phase's electron affinity "
    "as well as the Li+ site; on a metal slab it joins the conduction electrons. "
    "Metal-contact alternative, not computed: Li+ at an interface with the electron in the "
    "metal (interface mode)"
)

_FILTERS = (
    lambda t: not t.is_polar and t.is_symmetric and t.stoichiometric,
    lambda t: not t.is_polar and t.is_symmetric,
    lambda t: not t.is_polar,
    lambda t: t.is_symmetric and t.stoichiometric,
    lambda t: t.is_symmetric,
    lambda t: True,
)


def surface_energy(e_slab: float, n_atoms: int, e_bulk_per_atom: float, area: float) -> float:
    """gamma = (E_slab - N e_bulk) / (2 A), eV/A^2 (mean of the slab's two surfaces)."""
    return (e_slab - n_atoms * e_bulk_per_atom) / (2.0 * area)


def termination_pool(bulk: Atoms, name: str, st: StructureSettings) -> tuple[int, list[Any]]:
    """(filter level, ranked candidate terminations) of the module rules."""
    from interphase_dft.builders.slabs import default_millers, make_slabs

    fixed = min(st.slab_fixed_layers, st.slab_layers - 1)
    terms = [(rank, t) for rank, hkl in enumerate(default_millers(bulk))
             for t in make_slabs(bulk, hkl, layers=st.slab_layers, vacuum=st.slab_vacuum,
                                 fixed_layers=fixed, phase=name)]
    for level, keep in enumerate(_FILTERS):
        pool = [(r, t) for r, t in terms if keep(t)]
        if pool:
            pool.sort(key=lambda rt: (round(rt[1].broken_bonds, 4),
                                      -rt[1].info["top_atom_density_per_A2"], rt[0],
                                      rt[1].shift))
            return level, [t for _, t in pool]
    raise StructureError(f"no slab termination of {name}")  # make_slabs never returns none


def _energy(atoms: Atoms, factory: CalcFactory, ml: CalcFactory | None,
            settings: CalcSettings, directory: Path, label: str, run: RunLog,
            ledger: Ledger | None = None) -> RunResult:
    """Positions relaxed as every host is (surrogate pre-relaxation, DFT relaxation or a DFT
    single point at the surrogate minimum); cell fixed. ``ledger`` names the stage."""
    start, ml_converged = atoms, True
    mark_stage(ledger, directory)
    with run.stage(label):
        if ml is not None:
            pre = relax(atoms, ml, directory, settings.relax.for_surrogate(), label="ml")
            start, ml_converged = pre.atoms, pre.converged
            run.count(f"{label}_ml", pre.force_calls)
        if not settings.surrogate_geometry:
            res = relax(start, factory, directory, settings.relax, label="relax")
        else:
            res = static(start, factory, directory, label="static")
            res.converged = res.converged and ml_converged
    run.add(label, res)
    return res


def _candidate_row(term: Any, gamma: float | None, energy: float | None) -> dict[str, Any]:
    return {
        "miller": list(term.miller), "shift": term.shift, "termination": term.termination,
        "is_symmetric": term.is_symmetric, "is_polar": term.is_polar,
        "stoichiometric": term.stoichiometric, "n_atoms": len(term.atoms),
        "area": term.area, "broken_bonds_per_A2": term.broken_bonds, "energy": energy,
        "surface_energy": gamma,
        "surface_energy_j_per_m2": None if gamma is None else gamma * EV_PER_A2_TO_J_PER_M2,
        "kind": ("symmetric slab: surface energy of the termination" if term.is_symmetric else
                 "asymmetric slab: mean of the top and bottom surfaces"),
    }


def choose_termination(name: str, bulk: Atoms, settings: CalcSettings, *, workdir: Path,
                       is_metal: bool, dispersion: bool, run: RunLog,
                       calc_factory: CalcFactory | None = None,
                       ledger: Ledger | None = None) -> tuple[Any, dict[str, Any]]:
    """The adsorption termination by DFT surface energy (rules in the module docstring).

    Returns the chosen :class:`~interphase_dft.builders.slabs.SlabTermination` and the
    ``termination`` record (rule, filter level, candidates with surface energies, chosen).
    Every DFT call is charged to ``ledger`` (None = unmetered).
    """
    st = settings.structure
    level, pool = termination_pool(bulk, name, st)
    cands = pool[:st.surface_energy_candidates]
    record: dict[str, Any] = {"rule": TERMINATION_RULE, "filter_level": level,
                              "n_pool": len(pool), "bulk_energy_per_atom": None}
    if len(cands) == 1:
        record["candidates"] = [_candidate_row(cands[0], None, None)]
        record["chosen"] = 0
        record["note"] = "one candidate: no DFT comparison"
        return cands[0], record
    tdir = workdir / "termination"
    factory = metered(calc_factory or factory_for(settings, is_metal=is_metal,
                                                  dispersion=dispersion, moving=True,
                                                  txt=str(tdir / "gpaw.txt")), ledger)
    ml = (surrogate_factory(settings, dispersion=dispersion)
          if settings.relax.ml_prerelax and settings.engine != "ml" else None)
    # one k-point density for the bulk and every candidate, the Gamma-only rule off: a
    # Gamma-only slab against a k-sampled bulk would bias gamma by candidate
    bulk_cell = density_mesh(bulk.copy())
    e_bulk = _energy(bulk_cell, factory, ml, settings, tdir / "bulk", "termination-bulk",
                     run, ledger).energy / len(bulk)
    d = settings.dft
    record["kpoints"] = {"bulk": list(kpoint_mesh(bulk_cell, d.kpt_density,
                                                  d.gamma_only_atoms)),
                         "rule": "dft.kpt_density for the bulk cell and every candidate "
                                 "(dft.gamma_only_atoms not applied)"}
    rows = []
    for k, term in enumerate(cands):
        slab = density_mesh(term.atoms.copy())
        slab.set_constraint()
        slab.pbc = (True, True, False)
        res = _energy(slab, factory, ml, settings, tdir / f"candidate-{k}",
                      f"termination-{k}", run, ledger)
        gamma = (surface_energy(res.energy, len(slab), e_bulk, term.area)
                 if term.stoichiometric else None)
        rows.append(_candidate_row(term, gamma, res.energy))
        rows[-1]["kpoints"] = list(kpoint_mesh(slab, d.kpt_density, d.gamma_only_atoms))
    ranked = rank_by_surface_energy([row["surface_energy"] for row in rows])
    record.update(bulk_energy_per_atom=e_bulk, candidates=rows, chosen=ranked[0])
    if ranked[0] != 0:
        run.warn(f"{name}: the DFT surface energy picks candidate {ranked[0]} "
                 f"({rows[ranked[0]]['miller']}, {rows[ranked[0]]['termination']}) over the "
                 "structural first choice")
    return cands[ranked[0]], record


def rank_by_surface_energy(gammas: list[float | None]) -> list[int]:
    """Candidate indices, best first: the lowest surface energy, those within
    :data:`GAMMA_TIE` of it in ranking order, then the rest by gamma; candidates without a
    surface energy (non-stoichiometric) last, in ranking order."""
    known = [g for g in gammas if g is not None]
    low = min(known) if known else 0.0

    def key(k: int) -> tuple[bool, float, int]:
        g = gammas[k]
        if g is None:
            return (True, 0.0, k)
        return (False, low if g - low < GAMMA_TIE else g, k)

    return sorted(range(len(gammas)), key=key)


def adsorption_slab(bulk: Atoms, term: Any, st: StructureSettings, layers: int,
                     name: str) -> Atoms:
    """The ``term`` termination ``layers`` d_hkl units thick, repeated to ``slab_min_area``,
    ``pbc = (T, T, F)``, the bottom ``slab_fixed_layers`` fixed."""
    from interphase_dft.builders.slabs import make_slabs, repeat_to_area

    slabs = make_slabs(bulk, term.miller, layers=layers, vacuum=st.slab_vacuum,
                       fixed_layers=min(st.slab_fixed_layers, layers - 1), phase=name)
    same = [t for t in slabs
            if abs(t.shift - term.shift) < 1e-4 and t.termination == term.termination]
    if not same:
        raise StructureError(f"{name} {term.miller}: no termination with shift {term.shift} "
                             f"({term.termination}) at {layers} layers")
    host = repeat_to_area(same[0].atoms, st.slab_min_area)
    host.pbc = (True, True, False)
    host.info["surface_repeat"] = host.info.get("surface_repeat", np.eye(3, dtype=int).tolist())
    return host


def _polar_treatment(term: Any) -> str:
    if not term.is_polar:
        return "non-polar termination"
    if term.is_symmetric:
        return "polar termination, symmetric slab (no net dipole across the slab)"
    return ("polar termination, asymmetric slab (no symmetric candidate): dipole-layer "
            f"correction; formal dipole density {term.dipole_density:.4f} e/A")


def _describe_surface(host: Atoms, term: Any, settings: CalcSettings, *, layers: int,
                      custom: bool) -> dict[str, Any]:
    """``BindingEnergyDoc.surface``: the termination, the reported thickness in layers and
    whether the dipole correction was applied (by this package's GPAW calculator only: a
    caller's ``calc_factory`` applies its own)."""
    return {
        "miller": list(term.miller), "termination": term.termination, "shift": term.shift,
        "is_symmetric": term.is_symmetric, "is_polar": term.is_polar,
        "dipole_density": term.dipole_density, "n_layers": layers,
        "area": term.area,
        "min_area": settings.structure.slab_min_area, "rule": TERMINATION_RULE,
        "dipole_correction": (settings.engine == "gpaw" and not custom
                              and needs_dipole_correction(host)),
        "polar_treatment": _polar_treatment(term),
    }


def surface_binding(name: str, settings: CalcSettings, *, workdir: Path,
                    calc_factory: CalcFactory | None = None,
                    references: ReferenceEnergies | None = None) -> BindingEnergyDoc:
    """Surface-mode document of phase ``name`` (canonical name; rules in the module docstring).

    Returns
    -------
    BindingEnergyDoc
        Adsorption sites and E_b (eV) of the lowest, at the reported thickness; ``surface``,
        ``coverage``, ``termination``, ``slab_convergence``, ``charge_state``, ``charge_note``,
        ``budget``. At a cost ceiling: status ``'not converged: over budget'``, no E_b.
    """
    from interphase_dft import phases
    from interphase_dft.builders.sites import adsorption_sites

    start = start_binding(name, settings, workdir, references)
    info, run, refs, ledger = start.info, start.run, start.refs, start.ledger
    st = settings.structure
    bulk = phases.get_bulk(name)
    docs: dict[int, BindingEnergyDoc] = {}
    termination: dict[str, Any] | None = None

    def compute(layers: int, host: Atoms) -> tuple[float, str, BindingEnergyDoc]:
        doc = host_binding(host, adsorption_sites(host), settings,
                           workdir=workdir / f"layers-{layers}", phase=name, mode="surface",
                           is_metal=info.is_metal, dispersion=info.needs_dispersion,
                           calc_factory=calc_factory, references=refs, ledger=ledger)
        docs[layers] = doc
        assert doc.binding_energy_bcc is not None and doc.lowest_site is not None
        return doc.binding_energy_bcc, doc.lowest_site, doc

    try:
        term, termination = choose_termination(
            name, bulk, settings, workdir=workdir, is_metal=info.is_metal,
            dispersion=info.needs_dispersion, run=run, calc_factory=calc_factory,
            ledger=ledger)
        # every thickness on one in-plane mesh, the thinnest slab's: the Gamma-only rule
        # must not switch between thicknesses (the change would read as a thickness effect)
        thinnest = adsorption_slab(bulk, term, st, st.slab_layers, name)
        mesh_atoms = len(thinnest)

        def build(n: int) -> Atoms:
            host = adsorption_slab(bulk, term, st, n, name)
            host.info[KPOINT_ATOMS] = mesh_atoms
            return host

        conv = converge_thickness(build, compute, start=st.slab_layers,
                                  stop=st.slab_max_layers, step=st.slab_layers_step,
                                  tol=st.slab_convergence_tol, max_atoms=st.slab_max_atoms)
        d = settings.dft
        conv.record["kpoints"] = list(kpoint_mesh(thinnest, d.kpt_density,
                                                  d.gamma_only_atoms))
        conv.record["kpoint_rule"] = ("one in-plane mesh for every thickness: that of the "
                                      f"thinnest slab ({mesh_atoms} atoms)")
    except BudgetExceeded:
        if ledger is None:  # raised by a caller's factory, not by this run's ledger
            raise
        return _over_budget(name, settings, workdir, run, ledger, bulk, refs, termination,
                            docs, calc_factory)
    return _surface_doc(name, settings, run, conv.result, conv.record, term, termination,
                        docs, ledger, custom=calc_factory is not None)


def _over_budget(name: str, settings: CalcSettings, workdir: Path, run: RunLog,
                 ledger: Ledger, bulk: Atoms, refs: ReferenceEnergies,
                 termination: dict[str, Any] | None, docs: dict[int, BindingEnergyDoc],
                 calc_factory: CalcFactory | None) -> BindingEnergyDoc:
    """The over-budget document: the finished thicknesses (E_b of each; no result) reached."""
    from interphase_dft import phases

    info = phases.phase_info(name)
    layers = [{"layers": n, "n_atoms": len(d.host_structure.symbols) if d.host_structure else None,
               "lowest_site": d.lowest_site, "binding_energy_bcc": d.binding_energy_bcc,
               "binding_energy_atom": d.binding_energy_atom} for n, d in sorted(docs.items())]
    phrase = ("termination chosen" if termination is not None
              else "termination not chosen yet")
    if layers:
        phrase += "; thicknesses finished (not converged, not a result): " + ", ".join(
            f"{row['layers']} layers E_b(bcc) {row['binding_energy_bcc']:.3f} eV "
            f"(site {row['lowest_site']})" for row in layers)
    else:
        phrase += "; no slab thickness finished"
    for n, d in docs.items():
        run.timings.update({f"layers-{n}/{k}": v for k, v in d.timings.items()})
        run.force_calls.update({f"layers-{n}/{k}": v for k, v in d.force_calls.items()})
    return over_budget_doc(
        ledger, settings, run, phase=name, mode="surface", input_structure=bulk,
        references=refs, calculator=describe(settings, workdir, is_metal=info.is_metal,
                                             dispersion=info.needs_dispersion,
                                             calc_factory=calc_factory),
        reached={"termination_chosen": termination is not None, "layers": layers},
        reached_note=phrase, termination=termination, charge_state="neutral",
        charge_note=SURFACE_CHARGE_NOTE)


def _surface_doc(name: str, settings: CalcSettings, run: RunLog, doc: BindingEnergyDoc,
                 record: dict[str, Any], term: Any, termination: dict[str, Any],
                 docs: dict[int, BindingEnergyDoc], ledger: Ledger | None, *,
                 custom: bool = False) -> BindingEnergyDoc:
    """The complete document: the reported thickness's with the surface records."""
    st = settings.structure
    if not record["converged"]:
        run.warn(f"{name} surface: E_b not converged with slab thickness "
                 f"({record['stop_reason']}; layers {record['layers']}, E_b(bcc) "
                 f"{[round(e, 3) for e in record['binding_energy_bcc']]} eV)")
    if record["n_atoms"][0] > st.slab_max_atoms:
        run.warn(f"{name} surface: the first slab has {record['n_atoms'][0]} atoms > "
                 f"structure.slab_max_atoms={st.slab_max_atoms}")
    if term.is_polar and not term.is_symmetric:
        run.warn(f"{name} surface: {_polar_treatment(term)}")
    assert doc.host_structure is not None
    host = doc.host_structure.to_atoms()
    area = float(np.linalg.norm(np.cross(host.cell[0], host.cell[1])))
    for layers, other in docs.items():
        if layers != record["reported_layers"]:
            run.timings.update({f"layers-{layers}/{k}": v for k, v in other.timings.items()})
            run.force_calls.update({f"layers-{layers}/{k}": v
                                    for k, v in other.force_calls.items()})
            run.warnings.extend(f"layers-{layers}: {w}" for w in other.warnings)
    return doc.model_copy(update={
        "surface": _describe_surface(host, term, settings, layers=record["reported_layers"],
                                     custom=custom),
        "coverage": {"li_per_cell": 1, "area_per_li": area,
                     "min_area_per_li": st.slab_min_area,
                     "surface_cells": round(area / term.area),
                     "li_image_distance": in_plane_supercell(np.asarray(host.cell[:2, :2]),
                                                             1)[1],
                     "rule": "the fewest surface cells reaching min_area_per_li with the Li "
                             f">= {IMAGE_DISTANCE_FACTOR} sqrt(min_area_per_li) from its "
                             "images (builders.slabs.repeat_to_area)"},
        "termination": termination, "slab_convergence": record,
        "charge_state": "neutral", "charge_note": SURFACE_CHARGE_NOTE,
        "timings": {**doc.timings, **run.timings},
        "force_calls": {**doc.force_calls, **run.force_calls},
        "warnings": [*doc.warnings, *run.warnings],
        "budget": ledger.summary() if ledger is not None else {},
    })
