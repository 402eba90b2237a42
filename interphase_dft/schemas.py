"""Pydantic documents: what is stored for every result.

Every document carries the settings it was computed with, package versions, input and final
structures, the structure hash of its input and the input hash (structure + settings), so
identical work is recognised. The recipes fill this common header with
:meth:`ResultDocBase.from_run`. Energies in eV, lengths in Angstrom. All documents round-trip
through JSON (``model_dump_json`` / ``model_validate_json``); :func:`doc_from_dict` also reads
documents stored by earlier schema versions.

Schema versions: 1 stored ``task_key`` (= ``input_hash``); 2 renamed it to ``input_hash`` and
added ``work_key``; 3 added the barrier certification (``saddle``, ``mechanism``, ``e_kra``,
endpoint and saddle forces, ``budget``) and made the barriers of an uncertified band None.
"""

from __future__ import annotations

import hashlib
import json
import platform
import uuid
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from pydantic import BaseModel, ConfigDict, Field

from interphase_dft.barrier_status import LEGACY, SADDLE
from interphase_dft.constraints import fixed_indices

if TYPE_CHECKING:
    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.calc.settings import CalcSettings

SCHEMA_VERSION = 3

#: ``BindingEnergyDoc.status``: every planned calculation finished (binding energies given)
BINDING_COMPLETE = "complete"
#: ``BINDING_OVER_BUDGET`` (from barrier_status): a cost ceiling
#: (``budget.binding_max_dft_calls``/``_hours``) stopped the run: no binding energy; a rerun
#: with a larger budget in the same work directory continues it

class StructureData(BaseModel):
    """A JSON-safe snapshot of an ASE ``Atoms`` (positions in Angstrom)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[str]
    positions: list[list[float]]
    cell: list[list[float]]
    pbc: list[bool]
    fixed: list[int] = Field(default_factory=list, description="indices under FixAtoms")
    info: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_atoms(cls, atoms: Atoms) -> StructureData:
        fixed = fixed_indices(atoms)
        return cls(
            symbols=atoms.get_chemical_symbols(),
            positions=np.asarray(atoms.positions, float).round(8).tolist(),
            cell=np.asarray(atoms.cell[:], float).round(8).tolist(),
            pbc=[bool(p) for p in atoms.pbc],
            fixed=fixed,
            info=_jsonable(atoms.info),
        )

    def to_atoms(self) -> Atoms:
        atoms = Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc)
        if self.fixed:
            atoms.set_constraint(FixAtoms(indices=self.fixed))
        atoms.info.update(self.info)
        return atoms

    @property
    def formula(self) -> str:
        return Atoms(self.symbols).get_chemical_formula(mode="metal")


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays (as found in ``Atoms.info``) into JSON-safe values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def structure_hash(atoms: Atoms, decimals: int = 4) -> str:
    """Stable SHA-256 of symbols, cell, pbc, rounded positions and fixed indices."""
    data = StructureData.from_atoms(atoms)
    payload = {
        "symbols": data.symbols,
        "positions": np.round(np.asarray(atoms.positions), decimals).tolist(),
        "cell": np.round(np.asarray(atoms.cell[:]), decimals).tolist(),
        "pbc": data.pbc,
        "fixed": data.fixed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def settings_hash(settings: dict[str, Any]) -> str:
    """Stable SHA-256 of a settings dict (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that influence a result."""
    out = {"python": platform.python_version()}
    for pkg in ("interphase-dft", "ase", "gpaw", "pymatgen", "numpy", "fireworks", "chgnet",
                "torch", "dftd3", "spglib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultDocBase(BaseModel):
    """Fields every result document carries (the common header)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    uid: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created: str = Field(default_factory=_now)
    settings: dict[str, Any] = Field(description="CalcSettings.model_dump() of the run")
    settings_hash: str = Field("", description="settings_hash() of the settings without the "
                               "cost ceilings (CalcSettings.physics())")
    versions: dict[str, str] = Field(default_factory=package_versions)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    force_calls: dict[str, int] = Field(default_factory=dict, description="calls per stage")
    warnings: list[str] = Field(default_factory=list)
    input_hash: str = Field(
        "", description="structure_hash + ':' + settings_hash: the same input structure "
        "computed with the same settings has the same input_hash (not the work key)")
    work_key: str = Field(
        "", description="key of the campaign work item that produced this document (set when "
        "run by a workflow); see interphase_dft.campaign")
    calculator: dict[str, Any] = Field(
        default_factory=dict,
        description="what the calculator applied (engine, dispersion, spin, symmetry, smearing)",
    )
    structure_hash: str = Field(description="structure_hash() of the input structure")

    @classmethod
    def from_run(cls, settings: CalcSettings, run: RunLog, *, calculator: dict[str, Any],
                 input_structure: Atoms, **fields: Any) -> Self:
        """A document whose header comes from the run and the remaining ``fields``.

        Parameters
        ----------
        settings
            Settings of the run (stored in full, with their hash).
        run
            The run's :class:`interphase_dft.calc.runlog.RunLog` (timings, force calls,
            warnings).
        calculator
            What the calculator applied (stored as ``calculator``).
        input_structure
            The structure the recipe started from (``structure_hash``, ``input_hash``).
        fields
            The document's own fields.
        """
        s_dump = settings.model_dump()
        s_hash = settings_hash(settings.physics())
        h = structure_hash(input_structure)
        return cls(
            settings=s_dump, settings_hash=s_hash, versions=package_versions(),
            timings=dict(run.timings), force_calls=dict(run.force_calls),
            warnings=list(run.warnings), input_hash=f"{h}:{s_hash}", calculator=calculator,
            structure_hash=h, **fields,
        )


class ReferenceEnergies(BaseModel):
    """Li chemical-potential references computed with the same settings as the host."""

    li_atom: float = Field(description="isolated spin-polarised Li atom, eV")
    li_bcc_per_atom: float = Field(description="bcc Li, eV per atom")
    cohesive_energy: float = Field(description="li_atom - li_bcc_per_atom, eV (> 0)")


class SiteResult(BaseModel):
    """One Li site of a host: energies in eV."""

    label: str
    site_kind: str = Field(description="e.g. octahedral, tetrahedral, top, bridge, hollow")
    position: list[float] = Field(description="initial Li position, Cartesian Angstrom")
    energy: float = Field(description="E(host + Li), eV")
    binding_energy_atom: float
    binding_energy_bcc: float
    converged: bool
    final_structure: StructureData
    li_displacement: float = Field(0.0, description="Li moved this far on relaxation, A")
    spin: Literal["paired", "polarised", "paired (moment collapsed)"] = Field(
        "paired", description="spin treatment of host + Li: 'polarised' (1 mu_B seeded on the "
        "Li), 'paired', or 'paired (moment collapsed)' when the spin-polarised SCF's moment "
        "collapsed and the site was recomputed spin-paired (dft.spin_collapse_moment)")
    magnetic_moment: float | None = Field(
        None, description="total magnetic moment of host + Li, mu_B (spin-polarised runs)")
    reactive: bool | None = Field(
        None, description="True when the Li broke a host bond or changed a host atom's "
        "coordination on relaxation (interphase_dft.recipes.reaction.REACTION_RULE): the "
        "number is a reaction energy, not a binding energy, and the fits leave it out; None = "
        "not checked")
    reaction_note: str = Field("", description="the host bonds and coordinations that changed")
    li_charge: float | None = Field(
        None, description="Hirshfeld charge of the inserted Li, e (+1 = fully ionised); see "
        "interphase_dft.calc.charges; None = not computed (li_charge_note says why)")
    li_charge_note: str = Field("", description="charge method, or why there is no charge")
    li_magnetic_moment: float | None = Field(
        None, description="magnetic moment in the Li augmentation sphere, mu_B (GPAW magmoms)")


def site_order(site: SiteResult, *, include_reactive: bool = False) -> tuple[bool, bool, float]:
    """The order in which a document's sites head it: non-reactive before reactive (a
    reactive site's number is a reaction energy; ``include_reactive`` drops that rule), a
    converged geometry before an unconverged one, then the lowest E(host + Li). The headline
    site of a binding document (``recipes.binding.headline_site``) and the descriptor site of
    the fits (``analysis.records.descriptor_site``) are both the first site in this order."""
    reactive = bool(site.reactive) and not include_reactive
    return (reactive, not site.converged, float(site.energy))


class BindingEnergyDoc(ResultDocBase):
    kind: Literal["binding"] = "binding"
    phase: str
    mode: Literal["surface", "bulk"]
    surface: dict[str, Any] | None = Field(
        None, description="miller, termination, rule that picked it (surface mode)"
    )
    status: str = Field(
        BINDING_COMPLETE, description="'complete', or 'not converged: over budget' (a cost "
        "ceiling stopped the run: no binding energy, sites empty, what was reached in "
        "budget['reached']; never enters dE)")
    status_note: str = Field("", description="why the document has its status, with what "
                             "was reached and how to continue")
    budget: dict[str, Any] = Field(
        default_factory=dict, description="cost ceilings in effect and what was used: "
        "max_dft_calls, max_dft_hours (the binding_max_dft_* settings), dft_calls, dft_hours "
        "(over all restarts); over budget also the stage, the finished and unfinished runs "
        "and the partial results reached")
    host_energy: float | None = Field(description="relaxed host, eV; None when over budget")
    host_structure: StructureData | None = Field(description="None when over budget")
    references: ReferenceEnergies
    sites: list[SiteResult]
    lowest_site: str | None = Field(
        description="the headline site: the lowest non-reactive site with a converged "
        "geometry (recipes.binding.headline_site; a warning says when there is none); None "
        "when over budget")
    binding_energy_atom: float | None = Field(
        description="headline site, atom reference, eV; None unless status is 'complete'")
    binding_energy_bcc: float | None = Field(
        description="headline site, bcc reference, eV; None unless status is 'complete'")
    screening: dict[str, Any] | None = Field(
        None,
        description="ML pre-screening of the sites when binding.max_dft_sites cut the list: "
        "method, model, n_sites, n_dft, ml_energies {label: E(host+Li) eV, surrogate only}, "
        "selected, merged {label: kept label}; None = every site got DFT",
    )
    charge_state: str | None = Field(
        None, description="charge of the cells: 'neutral' (the Li's electron, or the "
        "vacancy's hole, stays in the cell); None in documents before issue 15")
    charge_note: str | None = Field(
        None, description="which electronic state the neutral cell measures and the "
        "metal-contact alternative (not computed)")
    supercell: dict[str, Any] | None = Field(
        None, description="bulk mode: matrix (rows: supercell vectors in conventional-cell "
        "units), n_atoms, lengths and perpendicular widths (Angstrom), min_length, rule")
    vacancy: dict[str, Any] | None = Field(
        None, description="bulk mode, hosts with Li: Li vacancy formation energy "
        "E(host - Li) + E_ref(Li) - E(host), eV: formation_energy_atom, "
        "formation_energy_bcc (lowest vacancy), lowest, sites [per vacancy], screening")
    coexistence: dict[str, Any] | None = Field(
        None, description="bulk mode of Al: Li chemical potential at Al/LiAl coexistence "
        "mu_li = E(LiAl) - E(Al) - E(Li bcc) per Li, eV; voltage = -mu_li/e, V vs Li/Li+")
    coverage: dict[str, Any] | None = Field(
        None, description="surface mode: li_per_cell (1), area_per_li and min_area_per_li, "
        "Angstrom^2, repeat")
    termination: dict[str, Any] | None = Field(
        None, description="surface mode: rule, chosen, candidates [miller, shift, "
        "termination, surface_energy eV/A^2 and J/m^2, kind], bulk energy per atom")
    slab_convergence: dict[str, Any] | None = Field(
        None, description="surface mode: layers, n_atoms, thickness (A), "
        "binding_energy_bcc (eV) per thickness, delta, tol, converged, stop_reason")

    @property
    def complete(self) -> bool:
        """True when every planned calculation finished (``status == 'complete'``): only then
        are the binding energies given and may enter dE."""
        return self.status == BINDING_COMPLETE


class NEBImageData(BaseModel):
    energy: float
    fmax: float
    structure: StructureData


class BarrierDoc(ResultDocBase):
    """A Li hop computed by climbing-image NEB and its certification (``saddle``).

    Energies in eV relative to the initial state, forces in eV/Angstrom, lengths in Angstrom.
    The barriers are only given (not None) when ``saddle == 'saddle'``; the analysis fits
    only those documents.
    """

    kind: Literal["barrier"] = "barrier"
    interface: str = Field(description="'A|B' ('P|P' for a bulk hop in phase P)")
    phase_a: str
    phase_b: str
    mechanism: str = Field(
        "unspecified", description="'vacancy' or 'interstitial' (across an interface), "
        "'bulk-vacancy' or 'bulk-interstitial' (bulk reference hops), 'unspecified'")
    saddle: str = Field(
        description="certification: 'saddle' (a barrier), 'no saddle: reaction energy', "
        "'no saddle: endpoint not a minimum' (an endpoint's hopping Li left its site while "
        "relaxing: no barrier, no reaction energy; interphase_dft.recipes.basin), "
        "'not converged', or 'not certified: ...' (over budget, unrelaxed endpoints, surrogate "
        "only, not one hop); see interphase_dft.recipes.saddle")
    saddle_note: str = Field("", description="why the band got its status, with the numbers")
    interface_meta: dict[str, Any] = Field(default_factory=dict)
    images: list[NEBImageData]
    energies: list[float] = Field(description="image energies relative to the initial state, eV")
    path_coordinate: list[float] = Field(description="cumulative path length, Angstrom")
    spline: dict[str, list[float]] = Field(description="{'x': [...], 'y': [...]} NEBTools-like fit")
    barrier_forward: float | None = Field(
        description="largest energy rise walking the path forward (energetic span): "
        "max(E) - E(initial) for one hop; for a path joined at an intermediate minimum the "
        "highest saddle above the lowest minimum before it; None unless saddle == 'saddle'")
    barrier_reverse: float | None = Field(
        description="the same, walking from the final state back; None unless saddle")
    reaction_energy: float | None = Field(description="E(final) - E(initial); None without a band")
    e_kra: float | None = Field(
        None, description="kinetically resolved barrier E_saddle - (E_initial + E_final)/2, eV "
        "(Van der Ven et al., PRB 64, 184307 (2001)); None unless saddle")
    hop_distance: float | None = Field(
        None, description="displacement of the hopping Li between the relaxed endpoints, A")
    thickness_a: float | None = Field(None, description="side A along z, Angstrom (interface)")
    thickness_b: float | None = Field(None, description="side B along z, Angstrom (interface)")
    strain: float | None = Field(None, description="in-plane strain of the strained side")
    strained_side: str | None = Field(None, description="'a' or 'b': the side strained to fit")
    work_of_adhesion: float | None = Field(
        None, description="(E_A + E_B - E_AB) / area at the reported level, J/m^2, when "
        "computed (a surrogate value is only in interface_meta['registry'])")
    endpoint_fmax: dict[str, float] = Field(
        default_factory=dict, description="largest force on the free atoms of each endpoint "
        "('initial', 'final') at the barrier's level, eV/Angstrom")
    saddle_fmax: float | None = Field(
        None, description="force on the climbing image (the band's interior maximum) at the "
        "barrier's level, eV/Angstrom; for a joined path the largest over its hops")
    converged: bool
    fmax_final: float | None = Field(
        description="largest force on an intermediate image of the final band, eV/Angstrom "
        "(None when no band was reached)")
    band_continuous: bool = Field(
        True, description="False when an intermediate image lies below both endpoints "
        "(the band passes through another minimum: not one hop)",
    )
    segments: list[dict[str, Any]] = Field(
        default_factory=list, description="hops of a path split at an intermediate minimum "
        "or joined through one: image range in this path, per-hop barriers, saddle status, "
        "stage, convergence; empty for one hop")
    climbing_image: int | None = None
    stage: Literal["dft", "dft-certified", "dft-refined", "ml+dft", "dft//ml", "ml"] = Field(
        description="how the final path was obtained: 'dft' DFT CI-NEB from IDPP, "
        "'dft-certified' active-learning loop certified by DFT single points, 'ml+dft' "
        "surrogate path refined by DFT CI-NEB (or an active-learning band), 'dft//ml' DFT "
        "single points on the surrogate path (converged: the surrogate band's; fmax_final: "
        "the largest DFT force on an intermediate image), 'dft-refined' the stationary points "
        "of a certified barrier re-converged at this level (recipes.refine; the path holds "
        "those points only), 'ml' surrogate only")
    ml_barrier: float | None = Field(None, description="surrogate barrier; never a DFT number")
    ml_fallback_reason: str | None = None
    refinement: dict[str, Any] | None = Field(
        None, description="stage 'dft-refined': the certified document it was refined from "
        "(from_uid), the changed settings, and per stationary point the steps, reference "
        "calls, force, energy change and largest atom move (recipes.refine)")
    active_learning: dict[str, Any] | None = Field(
        None, description="active-learning loop of the hop (recipes.active_learning.ALResult "
        "fields: stage, rounds, reference_calls, errors, weights_hash, frame_ids, fallback)")
    budget: dict[str, Any] = Field(
        default_factory=dict, description="cost ceilings and what was used: max_dft_calls, "
        "max_dft_hours, dft_calls, dft_hours (over all restarts); over budget also the stage "
        "and the unfinished runs (steps, fmax) reached")

    @property
    def certified(self) -> bool:
        """True when the band is a barrier (``saddle == 'saddle'``)."""
        return self.saddle == SADDLE

    def certified_barrier(self, direction: Literal["forward", "reverse", "max"] = "forward"
                          ) -> float:
        """The barrier in eV; :class:`~interphase_dft.errors.CalculationError` unless certified.

        ``'max'`` is max(forward, reverse), the rate-limiting direction.
        """
        from interphase_dft.errors import CalculationError

        if not self.certified or self.barrier_forward is None or self.barrier_reverse is None:
            raise CalculationError(
                f"{self.interface} ({self.mechanism}) has no barrier: {self.saddle}"
                + (f" ({self.saddle_note})" if self.saddle_note else "")
                + "; only a band whose maximum is a converged interior climbing image between "
                "relaxed endpoints is a barrier")
        if direction == "forward":
            return self.barrier_forward
        if direction == "reverse":
            return self.barrier_reverse
        return max(self.barrier_forward, self.barrier_reverse)


ResultDoc = BindingEnergyDoc | BarrierDoc


def doc_from_dict(data: dict[str, Any]) -> BindingEnergyDoc | BarrierDoc:
    """Rebuild a document from its stored dict.

    Keys starting with ``_`` (store metadata such as ``_id``, ``_fw_id``) are dropped. The
    ``task_key`` of schema version 1 is read as ``input_hash`` (it held the same value); a
    barrier document without ``saddle`` (schema < 3) is read with the status ``LEGACY``, so
    the analysis never fits it.
    """
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    legacy = data.pop("task_key", None)
    if legacy is not None and "input_hash" not in data:
        data["input_hash"] = legacy
    if data.get("kind") == "barrier":
        if "saddle" not in data:  # schema < 3: stored before the certification rule
            data["saddle"] = LEGACY
        return BarrierDoc.model_validate(data)
    return BindingEnergyDoc.model_validate(data)
