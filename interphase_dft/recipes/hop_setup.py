"""The minima of a hop's path: an interface hop (vacancy or interstitial) or a bulk reference hop.

Structures come from the builders (:mod:`interphase_dft.builders.migration`,
:mod:`~interphase_dft.builders.hops`, :mod:`~interphase_dft.builders.interstitial`,
:mod:`interphase_dft.builders.sites`); energies from the surrogate (registry scan, interstitial
candidates) only choose geometries. Lengths in Angstrom, energies in eV.

Rules
-----
- Mechanisms across A|B: ``vacancy`` (a Li lattice site of A -> a vacant Li lattice site of
  B; needs Li in both phases) and ``interstitial`` (relaxed minima of A -> the interface ->
  B). The two phases must differ.
- Registry of the migration cell: with a surrogate (engine 'ml', ``relax.ml_prerelax`` or
  ``neb.ml_prestage``) the lowest-energy point of the surrogate registry scan
  (:func:`interphase_dft.recipes.registry.scan_cell`); without one the geometric contact
  registry. With a DFT ``reference`` and ``structure.interface_registry_confirm`` > 0 the
  lowest distinct surrogate points are recomputed with DFT and the lowest DFT point is the
  registry (:func:`interphase_dft.recipes.registry.confirm_scan`; the surrogate scan is kept
  in ``registry-scan.json``, the DFT energies in ``registry-dft.json`` as they come; the
  record keeps both, as ``surrogate`` and ``dft``), and the work of adhesion is DFT's. The
  choice is cached in ``<workdir>/registry.json`` once made, so a rerun builds the same cell
  (a record cached without the DFT step stays as it is: the states of a run depend on it).
  A DFT-confirmed choice belongs to its reference level (``reference_level``: the hash of the
  reference calculator's description, k-point rule included; a record stored without one
  was made before the rule): a rerun at another level (e.g. the interface density mesh after
  a Gamma-point run) confirms again, its DFT energies in ``registry-dft-<level>.json``.
- Interface cells are computed with ``pbc = (T, T, F)``: GPAW then applies the dipole-layer
  correction along z (:func:`interphase_dft.calc.factory.needs_dipole_correction`).
- Interstitial candidates are relaxed with the surrogate when there is one (at most
  ``ML_CANDIDATES`` per region), else at the reported level (at most ``DFT_CANDIDATES``).
- Bulk reference hop of a phase (:func:`bulk_states`): the smaller of the conventional and the
  primitive cell repeated to ``structure.bulk_min_length``; with Li a vacancy hop of the
  nearest Li into the vacancy at the first Li site (``bulk-vacancy``), without Li the
  largest-clearance interstitial void to its nearest equivalent void (``bulk-interstitial``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atom, Atoms

from interphase_dft.calc.checkpoint import read_json, write_json
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import InputError
from interphase_dft.geometry import mic_distance, nearest_image
from interphase_dft.validation import barrier_pair

MECHANISMS = ("vacancy", "interstitial")
ML_CANDIDATES = 6
DFT_CANDIDATES = 2
#: voids within this of the largest clearance are the same kind of site, Angstrom
SAME_VOID = 0.05
#: what an interstitial path records of each of its hops
_HOP_KEYS = ("hop", "region_initial", "region_final", "hop_distance_A", "energy_initial_eV",
             "energy_final_eV", "fmax_initial_eV_A", "fmax_final_eV_A", "li_host_initial_A",
             "li_host_final_A")


@dataclass(frozen=True)
class HostPlan:
    """The full host of a vacancy hop's migration cell and how the endpoints are cut from it.

    ``atoms``: every Li lattice site occupied (pbc (T, T, F), the endpoints' fixed atoms);
    ``site_final``: index in ``atoms`` of the vacant Li site the hop fills (absent from both
    endpoints); ``li_index``: the hopping Li in the endpoints.
    """

    atoms: Atoms
    site_final: int
    li_index: int

    def states_from(self, relaxed: Atoms, states: list[Atoms]) -> list[Atoms]:
        """``states`` (initial, final) with the positions of the ``relaxed`` host: the same
        atoms without ``site_final``; the hopping Li at its own relaxed site (initial) or at
        the relaxed ``site_final`` (final). Atom order, constraints and info are kept."""
        if len(relaxed) != len(self.atoms) or len(states) != 2:
            raise InputError(f"host of {len(relaxed)} atoms and {len(states)} states do not "
                             f"belong to this plan ({len(self.atoms)} atoms, 2 states)")
        keep = np.ones(len(relaxed), bool)
        keep[self.site_final] = False
        out = []
        for k, state in enumerate(states):
            new = state.copy()
            new.positions = relaxed.positions[keep]
            if k == 1:  # the image of site_final nearest to the Li's own site (short hop)
                new.positions[self.li_index] = nearest_image(
                    relaxed, new.positions[self.li_index], relaxed.positions[self.site_final])
            out.append(new)
        return out


@dataclass
class HopStates:
    """The minima of a path (same atoms and order; 2 for one hop) and what to record;
    ``host``: the full host the endpoints are cut from (vacancy hops), else None."""

    mechanism: str
    states: list[Atoms]
    meta: dict[str, Any] = field(default_factory=dict)
    work_of_adhesion: float | None = None
    host: HostPlan | None = None


def has_li(phase: str) -> bool:
    """True when the bulk of ``phase`` has Li lattice sites."""
    from interphase_dft.phases import get_bulk

    return "Li" in get_bulk(phase).get_chemical_symbols()


def check_mechanism(phase_a: str, phase_b: str, mechanism: str) -> None:
    """Raise :class:`InputError` naming the fix for an impossible interface hop."""
    if mechanism not in MECHANISMS:
        raise InputError(f"unknown mechanism {mechanism!r}; use {' or '.join(MECHANISMS)}")
    barrier_pair(phase_a, phase_b)  # two different host phases (interphase_dft.validation)
    if mechanism == "vacancy":
        for name in (phase_a, phase_b):
            if not has_li(name):
                raise InputError(f"{name} has no Li lattice sites, so {phase_a}|{phase_b} has "
                                 "no vacancy crossing: use mechanism interstitial")


def registry_cell(phase_a: str, phase_b: str, settings: CalcSettings, workdir: Path,
                  surrogate: CalcFactory | None,
                  reference: CalcFactory | None = None) -> tuple[Any, dict[str, Any]]:
    """The migration cell at its registry (module rules) and the registry record.

    ``reference``: the DFT factory of the clean cell (neutral, no added Li) that confirms the
    surrogate's choice, or None.
    """
    from interphase_dft.builders.migration import migration_cell_for, set_registry
    from interphase_dft.recipes.registry import confirm_scan, scan_cell
    from interphase_dft.recipes.saddle_search import reference_level

    cell = built = migration_cell_for(phase_a, phase_b, settings)  # shifts count from built
    st = settings.structure
    confirm = reference is not None and st.interface_registry_confirm > 0
    level = reference_level(reference, cell.atoms) if confirm else None
    cache = workdir / "registry.json"
    stored = read_json(cache)
    if stored and (level is None or "dft" not in stored
                   or stored.get("reference_level") == level):
        rule = stored.get("rule", "cached")
        return set_registry(cell, stored["best_shift"], stored["best_gap_A"], rule=rule), stored
    if surrogate is None:
        record = {"level": "geometric", "rule": cell.info["registry_rule"],
                  "best_shift": list(cell.shift), "best_gap_A": cell.gap}
    else:
        scan_file = workdir / "registry-scan.json"
        record = read_json(scan_file) or {}
        if not record:
            scan = scan_cell(cell, lambda atoms: surrogate(atoms),
                             grid=st.interface_registry_grid, gap_offsets=st.interface_gap_offsets)
            record = {"level": "surrogate", "rule": scan.cell.info["registry_rule"],
                      **scan.to_dict()}
            write_json(scan_file, record)
        cell = set_registry(built, record["best_shift"], record["best_gap_A"], rule=record["rule"])
        if confirm and level is not None:
            conf = confirm_scan(built, [tuple(p) for p in record["points"]], reference,
                                k=st.interface_registry_confirm,
                                checkpoint=workdir / f"registry-dft-{level[:12]}.json")
            cell = conf.cell
            record = {"level": "surrogate scan, DFT-confirmed", "rule": cell.info["registry_rule"],
                      "best_shift": list(conf.best_shift), "best_gap_A": conf.best_gap,
                      "reference_level": level, "surrogate": record, "dft": conf.to_dict()}
    write_json(cache, record)
    return cell, record


def _slab(atoms: Atoms) -> Atoms:
    out = atoms.copy()
    out.pbc = (True, True, False)  # vacuum along z: dipole-layer correction in GPAW
    return out


def interface_states(phase_a: str, phase_b: str, settings: CalcSettings, mechanism: str,
                     workdir: Path, *, surrogate: CalcFactory | None,
                     relaxer: CalcFactory,
                     reference: CalcFactory | None = None) -> HopStates:
    """The minima of the ``mechanism`` hop from A into B (module rules).

    ``relaxer`` relaxes the interstitial candidates when there is no ``surrogate``;
    ``reference`` (DFT, the clean cell) confirms the registry, or None.
    """
    from interphase_dft.builders.hops import vacancy_hop

    check_mechanism(phase_a, phase_b, mechanism)
    cell, registry = registry_cell(phase_a, phase_b, settings, workdir, surrogate, reference)
    w_ad = (registry.get("work_of_adhesion_J_m2") if settings.engine == "ml"
            else registry.get("dft", {}).get("work_of_adhesion_J_m2"))
    if mechanism == "vacancy":
        hop = vacancy_hop(cell, max_hop=settings.structure.interface_max_hop)
        meta = {**hop.meta, "registry": registry}
        plan = HostPlan(_slab(cell.atoms), int(hop.meta["site_final"]["cell_index"]),
                        int(hop.meta["li_index"]))
        return HopStates("vacancy", [_slab(hop.initial), _slab(hop.final)], meta, w_ad, plan)
    states, meta = _interstitial(cell, settings, workdir, surrogate, relaxer)
    return HopStates("interstitial", [_slab(s) for s in states],
                     {**meta, "registry": registry}, w_ad)


def _interstitial(cell: Any, settings: CalcSettings, workdir: Path,
                  surrogate: CalcFactory | None,
                  relaxer: CalcFactory) -> tuple[list[Atoms], dict[str, Any]]:
    """Relaxed interstitial minima A -> (interface ->) B and the path record."""
    from interphase_dft.builders.interstitial import interstitial_candidates
    from interphase_dft.calc.runners import relax
    from interphase_dft.recipes.interstitial import interstitial_path

    cands = interstitial_candidates(cell)
    factory = surrogate or relaxer
    rs = settings.relax.for_surrogate() if surrogate is not None else settings.relax

    def relax_one(atoms: Atoms) -> tuple[Atoms, float]:
        slab = _slab(atoms)
        r = relax(slab, factory, workdir / "candidates" / str(atoms.info["site_label"]), rs,
                  label="relax")
        out = r.atoms.copy()
        out.pbc = atoms.pbc
        out.calc = r.atoms.calc
        return out, r.energy

    per_region = ML_CANDIDATES if surrogate is not None else DFT_CANDIDATES
    path = interstitial_path(cands, relax_one, max_per_region=per_region)
    states = [hop.initial for hop in path.hops] + [path.hops[-1].final]
    hops = [{k: v for k, v in h.meta.items() if k in _HOP_KEYS} for h in path.hops]
    level = "surrogate" if surrogate is not None else "reported level"
    return states, {**path.hops[0].meta, "path": path.meta, "candidate_level": level,
                    "hops": hops}


def bulk_cell(phase: str, min_length: float) -> Atoms:
    """The smaller of the conventional and the primitive cell of ``phase`` repeated to
    ``min_length`` Angstrom (perpendicular widths)."""
    import spglib

    from interphase_dft.builders.sites import supercell_for
    from interphase_dft.phases import get_bulk

    bulk = get_bulk(phase)
    lattice, frac, numbers = spglib.standardize_cell(
        (bulk.cell[:], bulk.get_scaled_positions(), bulk.numbers), to_primitive=True,
        symprec=1e-3)
    prim = Atoms(numbers=numbers, cell=lattice, scaled_positions=frac, pbc=True)
    cells = [supercell_for(bulk, min_length), supercell_for(prim, min_length)]
    best = min(cells, key=len)
    best.info = {"phase": phase, "supercell": best.info.get("supercell"),
                 "primitive": best is cells[1]}
    return best


def bulk_states(phase: str, settings: CalcSettings) -> HopStates:
    """The bulk reference hop of ``phase`` (module rules)."""
    from interphase_dft.builders.neb import nearest_li_vacancy_hop
    from interphase_dft.builders.sites import void_points
    from interphase_dft.recipes.barrier_doc import hop_distance

    cell = bulk_cell(phase, settings.structure.bulk_min_length)
    meta: dict[str, Any] = {"phase": phase, "n_atoms_host": len(cell),
                            "supercell": cell.info["supercell"],
                            "primitive": cell.info["primitive"],
                            "cell_A": [round(float(x), 4) for x in cell.cell.lengths()]}
    if has_li(phase):
        initial, final = nearest_li_vacancy_hop(cell)
        for atoms in (initial, final):
            atoms.info["li_index"] = atoms.info["hop_index"]
        meta.update(rule="nearest Li hops into a vacancy at the first Li site")
        mechanism = "bulk-vacancy"
    else:
        voids = void_points(cell)
        clearance = [_clearance(cell, p) for p in voids]
        best = max(clearance)
        same = [p for p, c in zip(voids, clearance, strict=True) if c >= best - SAME_VOID]
        if len(same) < 2:
            raise InputError(f"{phase}: fewer than two equivalent interstitial voids in the "
                             "bulk cell; raise structure.bulk_min_length")
        start = same[0]
        d = [mic_distance(cell, start, p) for p in same[1:]]
        end = same[1 + int(np.argmin(d))]
        initial, final = cell.copy(), cell.copy()
        initial.append(Atom("Li", start))
        final.append(Atom("Li", nearest_image(cell, start, end)))
        for atoms in (initial, final):
            atoms.info = {**cell.info, "li_index": len(atoms) - 1}
        meta.update(rule="largest-clearance void to its nearest equivalent void",
                    clearance_A=round(best, 4))
        mechanism = "bulk-interstitial"
    meta.update(mechanism=mechanism, n_atoms=len(initial),
                hop_distance_A=round(hop_distance(initial, final), 4))
    return HopStates(mechanism, [initial, final], meta)


def _clearance(cell: Atoms, point: np.ndarray) -> float:
    from ase.geometry import get_distances

    _, d = get_distances([point], cell.positions, cell=cell.cell, pbc=cell.pbc)
    return float(d.min())
