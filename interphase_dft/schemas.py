"""Pydantic documents: what is stored for every result.

Every document carries the settings it was computed with, package versions, input and final
structures, the structure hash of its input and the input hash (structure + settings), so
identical work is recognised. The recipes fill this common header with
:meth:`ResultDocBase.from_run`. Energies in eV, lengths in Angstrom. All documents round-trip
through JSON (``model_dump_json`` / ``model_validate_json``); :func:`doc_from_dict` also reads
documents stored by earlier schema versions.

Schema versions: 1 stored ``task_key`` (= ``input_hash``); 2 renamed it to ``input_hash`` and
added ``work_key``.
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

if TYPE_CHECKING:
    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.calc.settings import CalcSettings

SCHEMA_VERSION = 2


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
        fixed: list[int] = []
        for c in atoms.constraints:
            if isinstance(c, FixAtoms):
                fixed.extend(int(i) for i in c.get_indices())
        return cls(
            symbols=atoms.get_chemical_symbols(),
            positions=np.asarray(atoms.positions, float).round(8).tolist(),
            cell=np.asarray(atoms.cell[:], float).round(8).tolist(),
            pbc=[bool(p) for p in atoms.pbc],
            fixed=sorted(set(fixed)),
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
    settings_hash: str = Field("", description="settings_hash() of settings")
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
        s_hash = settings_hash(s_dump)
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


class BindingEnergyDoc(ResultDocBase):
    kind: Literal["binding"] = "binding"
    phase: str
    mode: Literal["surface", "bulk"]
    surface: dict[str, Any] | None = Field(
        None, description="miller, termination, rule that picked it (surface mode)"
    )
    host_energy: float
    host_structure: StructureData
    references: ReferenceEnergies
    sites: list[SiteResult]
    lowest_site: str
    binding_energy_atom: float = Field(description="lowest site, atom reference, eV")
    binding_energy_bcc: float = Field(description="lowest site, bcc reference, eV")
    screening: dict[str, Any] | None = Field(
        None,
        description="ML pre-screening of the sites when binding.max_dft_sites cut the list: "
        "method, model, n_sites, n_dft, ml_energies {label: E(host+Li) eV, surrogate only}, "
        "selected, merged {label: kept label}; None = every site got DFT",
    )


class NEBImageData(BaseModel):
    energy: float
    fmax: float
    structure: StructureData


class BarrierDoc(ResultDocBase):
    kind: Literal["barrier"] = "barrier"
    interface: str = Field(description="'A|B'")
    phase_a: str
    phase_b: str
    interface_meta: dict[str, Any] = Field(default_factory=dict)
    images: list[NEBImageData]
    energies: list[float] = Field(description="image energies relative to the initial state, eV")
    path_coordinate: list[float] = Field(description="cumulative path length, Angstrom")
    spline: dict[str, list[float]] = Field(description="{'x': [...], 'y': [...]} NEBTools-like fit")
    barrier_forward: float = Field(
        description="largest energy rise walking the path forward (energetic span): "
        "max(E) - E(initial) for one hop; for a path joined at an intermediate minimum the "
        "highest saddle above the lowest minimum before it")
    barrier_reverse: float = Field(description="the same, walking from the final state back")
    reaction_energy: float
    converged: bool
    fmax_final: float
    band_continuous: bool = Field(
        True, description="False when an intermediate image lies below both endpoints "
        "(the band passes through another minimum: not one hop)",
    )
    segments: list[dict[str, Any]] = Field(
        default_factory=list, description="hops of a path split at an intermediate minimum: "
        "image range in this path, per-hop barriers, stage, convergence; empty for one hop")
    climbing_image: int | None = None
    stage: Literal["dft", "ml+dft", "dft//ml", "ml"] = Field(
        description="how the final path was obtained: 'dft' DFT CI-NEB from IDPP, 'ml+dft' "
        "surrogate path refined by DFT CI-NEB, 'dft//ml' DFT single points on the "
        "surrogate-converged path (converged refers to the surrogate band; fmax_final is the "
        "largest DFT force on an intermediate image), 'ml' surrogate only")
    ml_barrier: float | None = Field(None, description="surrogate barrier; never a DFT number")
    ml_fallback_reason: str | None = None


ResultDoc = BindingEnergyDoc | BarrierDoc


def doc_from_dict(data: dict[str, Any]) -> BindingEnergyDoc | BarrierDoc:
    """Rebuild a document from its stored dict.

    Keys starting with ``_`` (store metadata such as ``_id``, ``_fw_id``) are dropped. The
    ``task_key`` of schema version 1 is read as ``input_hash`` (it held the same value).
    """
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    legacy = data.pop("task_key", None)
    if legacy is not None and "input_hash" not in data:
        data["input_hash"] = legacy
    if data.get("kind") == "barrier":
        return BarrierDoc.model_validate(data)
    return BindingEnergyDoc.model_validate(data)
