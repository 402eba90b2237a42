"""Typed calculation settings.

Everything that changes the physics is a field here and is stored with every result. The
named presets are in :mod:`interphase_dft.calc.presets`; override any field with
``preset("laptop").with_overrides({"dft": {"ecut": 400}})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interphase_dft.errors import InputError

PresetName = Literal["test", "screening", "laptop", "production"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DFTSettings(_Frozen):
    """GPAW settings (energies in eV, lengths in Angstrom)."""

    xc: str = "PBE"
    mode: Literal["pw", "lcao", "fd"] = "pw"
    ecut: float = Field(300.0, gt=0, description="plane-wave cutoff, eV (mode='pw')")
    basis: str = Field("dzp", description="LCAO basis (mode='lcao')")
    h: float = Field(0.2, gt=0, description="grid spacing, Angstrom (mode='fd'/'lcao')")
    kpt_density: float = Field(
        2.5, ge=0, description="k-points per reciprocal Angstrom (ASE kptdensity convention)"
    )
    gamma_only_atoms: int = Field(
        200, description="cells with at least this many atoms use the Gamma point only"
    )
    smearing_width: float = Field(0.1, ge=0, description="Fermi-Dirac width, eV (metals)")
    insulator_smearing: float = Field(0.01, ge=0, description="Fermi-Dirac width, eV (insulators)")
    li_insertion_smearing: float | None = Field(
        0.1, ge=0,
        description="Fermi-Dirac width, eV, at least applied to every cell of a Li insertion "
        "(binding energies: host and host+Li alike; NEB endpoints and images): one added Li "
        "puts an odd electron into the host's conduction band, whose SCF needs more than the "
        "insulator width; None = the phase's own width",
    )
    li_insertion_spin: bool = Field(
        True,
        description="spin-polarise the cells of a Li insertion into a non-metallic host "
        "(host + Li, interface-hop endpoints and images) with an initial moment of 1 mu_B on "
        "the inserted Li: on an insulator its odd electron stays localised, and a spin-paired "
        "calculation would put a half-filled level at the Fermi energy; the closed-shell host "
        "is computed without spin (same energy)",
    )
    spin_collapse_moment: float = Field(
        0.1, ge=0, description="a spin-polarised SCF of a Li insertion whose total moment "
        "stays below this (mu_B) for spin_collapse_window iterations, after at least twice "
        "that many, is stopped and the geometry recomputed spin-paired (the inserted Li's "
        "electron is delocalised, so the spin-paired state is the same state); 0 = never",
    )
    spin_collapse_window: int = Field(
        15, ge=1, description="iterations of the spin-collapse rule (spin_collapse_moment)")
    scf_energy: float = Field(1e-5, gt=0, description="SCF energy convergence, eV/valence electron")
    scf_density: float = Field(1e-4, gt=0)
    maxiter: int = Field(200, gt=0, description="SCF iterations allowed per DFT call")
    mixer_beta: float = 0.05
    mixer: Literal["msr1", "pulay"] = Field(
        "msr1", description="GPAW density-mixer backend of spin-paired runs (GPAW's default)")
    spin_mixer: Literal["msr1", "pulay"] = Field(
        "pulay", description="mixer backend of spin-polarised runs (the odd-electron cells "
        "of a Li insertion)",
    )
    dispersion: Literal["none", "d3"] = Field(
        "none", description="'d3' adds DFT-D3(BJ); where is set by dispersion_scope"
    )
    dispersion_scope: Literal["all", "phase"] = Field(
        "all", description="'all': D3 on every calculation (every phase, interface and Li "
        "reference), so that binding energies of different phases and their difference ΔE "
        "come from one Hamiltonian; 'phase': D3 only on phases that need it (P2S5) and their "
        "interfaces, which mixes PBE and PBE-D3 in a ΔE between P2S5 and another phase",
    )
    atom_box: float = Field(12.0, ge=8, description="vacuum box edge for the isolated Li atom, A")


class RelaxSettings(_Frozen):
    fmax: float = Field(0.05, gt=0, description="relaxation convergence: largest force, "
                        "eV/Angstrom")
    steps: int = Field(200, gt=0, description="optimizer steps allowed per relaxation")
    ml_steps: int | None = Field(
        None, gt=0, description="step budget of surrogate (ML) relaxations; None = steps. "
        "Surrogate steps cost a fraction of a second, and soft molecular hosts (P2S5) and "
        "interface endpoints need more of them than a DFT relaxation can afford",
    )
    optimizer: Literal["BFGS", "FIRE", "LBFGS", "BFGSLineSearch"] = "BFGS"
    relax_cell_bulk: bool = Field(False, description="relax the cell too (bulk hosts and "
                                  "references), not only the positions")
    ml_prerelax: bool = Field(
        False, description="pre-relax with the ML surrogate before each DFT relaxation "
        "(moves the starting geometry only; energies stay DFT)",
    )
    dft_relax: bool = Field(
        True, description="relax with DFT; False = one DFT single point at the "
        "surrogate-relaxed geometry (level 'PBE//CHGNet'; needs ml_prerelax)",
    )

    def for_surrogate(self) -> RelaxSettings:
        """These settings with the surrogate's step budget (``ml_steps``)."""
        return self if self.ml_steps is None else self.model_copy(update={"steps": self.ml_steps})

    @model_validator(mode="after")
    def _static_needs_surrogate(self) -> RelaxSettings:
        if not self.dft_relax and not self.ml_prerelax:
            raise ValueError("relax.dft_relax=false needs relax.ml_prerelax=true (the DFT "
                             "single point is taken at the surrogate-relaxed geometry)")
        return self


class NEBSettings(_Frozen):
    n_images: int = Field(5, ge=2, le=15, description="intermediate images")
    spring: float = Field(0.1, gt=0, description="spring constant, eV/Angstrom^2")
    fmax: float = Field(0.05, gt=0, description="eV/Angstrom, climbing-image convergence")
    steps: int = Field(300, gt=0, description="band optimizer steps allowed per NEB")
    climb: bool = True
    method: Literal["aseneb", "improvedtangent", "eb", "spline", "string"] = "improvedtangent"
    optimizer: Literal["ode", "FIRE", "BFGS", "MDMin"] = "ode"
    ml_prestage: bool = Field(True, description="converge the path with the ML surrogate first")
    ml_fmax: float = Field(0.03, gt=0)
    ml_max_barrier_gap: float = Field(
        1.0, gt=0, description="surrogate path rejected if its barrier differs by more (eV)"
    )
    dft_refine: bool = Field(
        True, description="refine the surrogate path with DFT climbing-image NEB; False = the "
        "barrier is DFT single points on the surrogate-converged path (stage 'dft//ml'; "
        "needs ml_prestage; a rejected surrogate path still falls back to DFT NEB)",
    )
    active_learning: bool = Field(
        False, description="converge each hop with the active-learning loop "
        "(recipes.active_learning): surrogate band, DFT single points (climbing image first), "
        "surrogate fine-tuned on them, repeated until the DFT force on the climbing image is "
        "<= fmax and on the endpoints <= relax.fmax (stage 'dft-certified'); it relaxes the "
        "endpoints of a single hop itself and replaces ml_prestage/dft_refine for the band")
    al_max_rounds: int = Field(
        4, ge=1, description="active-learning loop (recipes.active_learning): rounds of "
        "surrogate band + DFT single points + fine-tuning before the band is finished with a "
        "DFT climbing-image NEB")
    al_finish: Literal["ci-neb", "prfo"] = Field(
        "ci-neb", description="active-learning loop: how the reference finishes a band the "
        "rounds did not certify: 'ci-neb' (a reference climbing-image NEB of the whole band) "
        "or 'prfo' (a P-RFO saddle search from the band's climbing image with the "
        "surrogate's Hessian, one reference call per step, then surrogate descents from the "
        "saddle that must reach the two endpoints; recipes.saddle_search)")
    al_barrier_tol: float = Field(
        0.01, gt=0, description="active-learning loop: the DFT barrier may change by less "
        "than this between rounds to certify, eV")
    al_force_correction: bool = Field(
        False, description="active-learning loop: anchor a first-order reference correction "
        "(energy and force differences, calc.correction) at each endpoint and image of the "
        "last round, so the next surrogate relaxation and band are quasi-Newton steps on the "
        "DFT surface with the surrogate's curvature. Off by default: where the surrogate is "
        "softer than DFT by more than 2x the step overshoots (measured on the Li2S vacancy "
        "hop, docs/history.md)")
    al_correction_step: float = Field(
        0.25, gt=0, le=1, description="active-learning loop with al_force_correction: "
        "smallest fraction of the corrected surrogate's displacement a point (endpoint or "
        "image) takes per round. Each point starts with the full quasi-Newton step (1), which "
        "diverges along modes where DFT is more than 2x stiffer than the surrogate; from the "
        "second corrected round its fraction is 1/r, r the stiffness ratio measured from its "
        "reference forces before and after the step (recipes.al_moves.adapted_steps), "
        "clipped to [al_correction_step, 1]. A reference minimum or saddle stays a fixed point")
    al_max_move: float = Field(
        0.2, gt=0, description="active-learning loop with al_force_correction: trust radius "
        "of the corrected step, the largest displacement of any atom of an endpoint or image "
        "in one round, Angstrom (the linear correction holds near its anchor only)")
    surrogate_hessian: bool = Field(
        True, description="start the reference-level BFGS relaxations of the host "
        "(relax_host) and of the loop's endpoints from the surrogate's Hessian "
        "(calc.hessian: 6 surrogate force calls per free atom); off where the reference "
        "level is as cheap as the surrogate (tests with EMT)")
    al_reference_endpoints: bool = Field(
        False, description="active-learning loop: relax both endpoints at the reference "
        "level first (BFGS from the surrogate's Hessian there, calc.hessian) and keep them "
        "through the rounds, which then move the band only. For endpoints the surrogate "
        "cannot place (an interface it has not seen; docs/history.md, session 10)")
    al_epochs: int = Field(
        8, ge=1, description="active-learning loop: fine-tuning epochs per round")
    al_max_frames: int = Field(
        60, ge=1, description="active-learning loop: most reference frames one fine-tuning "
        "trains on. The hop's own frames first (the latest when they alone exceed it), the "
        "rest from the stored frames of the same elements and settings, evenly spread over "
        "the order they were stored in (recipes.al_steps). Fine-tuning time grows with the "
        "frames (about 3.5 s per 63-atom frame for 8 epochs on one core), and a finished "
        "DFT CI-NEB stores 3 near-identical frames per step")
    al_learning_rate: float = Field(
        1e-3, gt=0, description="active-learning loop: fine-tuning learning rate (Adam)")
    relax_host: bool = Field(
        False, description="interface vacancy hops: relax the migration cell's full host (every "
        "Li site occupied) at the reported level first, BFGS from the surrogate's Hessian, and "
        "cut both endpoints from it (recipes/host.py); engine 'ml' ignores it")

    @model_validator(mode="after")
    def _single_points_need_surrogate(self) -> NEBSettings:
        if not self.dft_refine and not self.ml_prestage:
            raise ValueError("neb.dft_refine=false needs neb.ml_prestage=true (the DFT "
                             "energies are taken on the surrogate-converged path)")
        return self


class BudgetSettings(_Frozen):
    """Cost ceilings of one work item. Not physics: they are left out of the work key and of
    the settings hash (:meth:`CalcSettings.physics`), so a rerun with a larger budget
    continues the same work from its checkpoints.

    Counted over all restarts of the work item (``budget.json`` in its work directory): the
    calls of the reported level (DFT; not the surrogate). A call is refused when a ceiling is
    reached; a call that starts below the ceiling finishes.

    - ``max_dft_*`` bound one barrier (endpoints, path checks and NEB bands); the run then
      ends with the status ``'not certified: over budget'``.
    - ``binding_max_dft_*`` bound one binding energy (surface: termination choice, every slab
      thickness, hosts, sites and their Li charges; bulk: host, sites, vacancies, Al/LiAl
      coexistence); the document then has the status ``'not converged: over budget'`` and
      no binding energy. The Li references are work of their own and are not counted.

    The ``build_*`` ceilings bound the structure builders (slabs, interfaces, migration cells)
    and the limits users give them (``--max-atoms``, ``--max-area``, ``--max-strain``): a build
    whose estimated size is above a ceiling is refused before it starts
    (:mod:`interphase_dft.validation`).
    """

    max_dft_calls: int | None = Field(
        None, ge=1, description="DFT force calls (one SCF with forces each) of one barrier, "
        "summed over restarts; None = no ceiling")
    max_dft_hours: float | None = Field(
        None, gt=0, description="wall-clock hours spent in DFT calls of one barrier, summed "
        "over restarts; None = no ceiling")
    binding_max_dft_calls: int | None = Field(
        None, ge=1, description="DFT calls (one SCF with forces each) of one binding energy, "
        "summed over restarts; None = no ceiling")
    binding_max_dft_hours: float | None = Field(
        None, gt=0, description="wall-clock hours spent in DFT calls of one binding energy, "
        "summed over restarts; None = no ceiling")
    build_max_atoms: int = Field(
        1000, ge=2, description="largest cell a builder may be asked for (max_atoms of "
        "interfaces and migration cells) or make (a slab, estimated from its oriented cell "
        "before it is cut)")
    build_max_area: float = Field(
        3000.0, gt=0, description="largest in-plane area an interface search may be given "
        "(max_area), Angstrom^2")
    build_max_strain: float = Field(
        0.15, gt=0, lt=0.5, description="largest max_strain of a lattice-match search: beyond "
        "it the strained side is no longer its phase and the ZSL matches multiply")
    build_max_search: int = Field(
        100_000_000, ge=1, description="largest lattice-match search, in ZSL supercell-pair "
        "comparisons summed over the plane pairs, estimated before the search (its time is "
        "proportional, builders.lattice_match.SECONDS_PER_COMPARISON)")


class MLSettings(_Frozen):
    model: Literal["chgnet"] = "chgnet"
    device: str = "cpu"


class StructureSettings(_Frozen):
    """Sizes of the cells the recipes build."""

    slab_layers: int = Field(4, ge=2, description="slab thickness to start from, d_hkl units")
    slab_vacuum: float = Field(7.5, gt=0, description="vacuum on each side, Angstrom")
    slab_fixed_layers: int = Field(2, ge=0, description="bottom slab layers fixed at bulk "
                                   "positions")
    slab_min_area: float = Field(
        60.0, ge=0,
        description="surface cells are repeated in plane to at least this area, Angstrom^2 "
        "(sets the Li coverage: one Li per cell, the same bound for every phase)",
    )
    slab_max_layers: int = Field(
        8, ge=2, description="slab thickness convergence: thickest slab tried, d_hkl units "
        "(from slab_layers in steps of slab_layers_step)")
    slab_layers_step: int = Field(
        1, ge=1, description="slab thickness convergence: d_hkl units added per step")
    slab_max_atoms: int = Field(
        400, gt=0, description="slab thickness convergence: a thicker slab (repeated to "
        "slab_min_area) with more atoms is not computed (the first thickness always is)")
    slab_convergence_tol: float = Field(
        0.05, gt=0, description="slab thickness convergence: converged when the lowest "
        "site's E_b changes by less than this between consecutive thicknesses, eV")
    surface_energy_candidates: int = Field(
        3, ge=1, description="terminations, first in the structural ranking, that get a DFT "
        "surface energy; the adsorption slab is the one with the lowest")
    bulk_min_length: float = Field(
        10.0, gt=0, description="bulk supercells: smallest perpendicular width, Angstrom")
    bulk_supercell: Literal["compact", "diagonal"] = Field(
        "compact", description="bulk supercells: 'compact' = fewest atoms over all "
        "supercell lattices, 'diagonal' = repeats of the conventional cell")
    interface_max_strain: float = Field(0.05, gt=0, lt=0.5)
    interface_max_atoms: int = Field(120, gt=0, description="lattice-matched interface "
                                     "cells: largest cell kept")
    interface_layers: int = Field(2, ge=1, description="layers of each phase in interfaces")
    interface_gap: float = Field(2.2, gt=0, description="Angstrom")
    interface_vacuum: float = Field(0.0, ge=0, description="0 = periodic (two interfaces)")
    interface_min_thickness: float = Field(
        6.0, gt=0, description="migration cells: smallest extent along z of each side, Angstrom")
    interface_min_planes: int = Field(
        3, ge=3, description="migration cells: fewest atomic planes of each side")
    interface_migration_vacuum: float = Field(
        10.0, ge=10, description="migration cells: vacuum above the one interface, Angstrom "
        "(the DFT runs use a dipole correction)")
    interface_migration_max_atoms: int = Field(
        200, gt=0, description="migration cells: largest cell built")
    interface_fixed_fraction: float = Field(
        1.0 / 3.0, ge=0, lt=1, description="migration cells: outer fraction of each side's "
        "thickness fixed at bulk positions")
    interface_strained_side: Literal["a", "b"] = Field(
        "b", description="migration cells: the side strained to fit the other")
    interface_registry_grid: int = Field(
        3, ge=1, description="registry scan: n x n rigid in-plane shifts of side B")
    interface_gap_offsets: tuple[float, ...] = Field(
        (-0.2, 0.0, 0.2, 0.4), min_length=1, description="registry scan: gaps tried at each "
        "shift, Angstrom, added to that shift's contact gap")
    interface_registry_confirm: int = Field(
        3, ge=0, description="registry scan: the lowest symmetry-distinct surrogate points "
        "recomputed with DFT single points; the registry is the lowest of them and the work "
        "of adhesion is DFT's (0 = the surrogate's choice, no DFT work of adhesion)")
    interface_max_hop: float = Field(
        3.5, gt=0, description="vacancy crossing: longest Li hop between lattice sites, Angstrom")
    interface_density_mesh: bool = Field(
        False, description="every DFT cell of an interface hop (its states and band, the "
        "registry confirmation and the sides alone) takes the dft.kpt_density mesh whatever "
        "its size: dft.gamma_only_atoms does not apply to them (measured need: the Li3P|LiCl "
        "crossing at Gamma against 2x2x1, docs/physics.md); False = the Gamma-only rule, as "
        "for documents computed before this setting existed")


class BindingSettings(_Frozen):
    """How many Li sites of a host get a DFT relaxation (binding-energy recipe)."""

    max_dft_sites: int | None = Field(
        None, ge=1,
        description="DFT for at most this many sites, chosen by surrogate energy; "
        "None = every symmetry-distinct site gets DFT",
    )
    screen_with_ml: bool = Field(
        True,
        description="rank sites with the ML surrogate when max_dft_sites cuts the list; "
        "False with max_dft_sites set is an error (no blind truncation)",
    )
    max_dft_vacancies: int | None = Field(
        None, ge=1,
        description="bulk mode: DFT for at most this many symmetry-distinct Li vacancies, "
        "chosen by surrogate energy (screen_with_ml); None = every one gets DFT",
    )
    screen_window: float | None = Field(
        None, ge=0,
        description="eV: Li sites the surrogate places within this of its lowest site are a "
        "tie it cannot rank, and all of them get DFT even beyond max_dft_sites (up to "
        "max_window_sites); None = the max_dft_sites lowest only (the default, so documents "
        "stored before the window read as unwindowed; laptop: 0.1)",
    )
    max_window_sites: int | None = Field(
        None, ge=1,
        description="at most this many Li sites get DFT when the screen_window ties hold more "
        "than max_dft_sites; the document then says how many ties got no DFT and that its "
        "lowest E_b is an upper bound; None = every tie",
    )


class CalcSettings(_Frozen):
    """All settings of one calculation; stored with each result."""

    preset: str
    engine: Literal["gpaw", "ml"] = "gpaw"
    dft: DFTSettings = DFTSettings()
    relax: RelaxSettings = RelaxSettings()
    neb: NEBSettings = NEBSettings()
    ml: MLSettings = MLSettings()
    structure: StructureSettings = StructureSettings()
    binding: BindingSettings = BindingSettings()
    budget: BudgetSettings = BudgetSettings()

    def physics(self) -> dict[str, Any]:
        """The settings that change results (JSON-safe): everything except ``COST_FIELDS``.

        Work keys and document settings hashes are computed from this dict, so the cost
        ceilings (``budget``) never change which work an item is.
        """
        return self.model_dump(mode="json", exclude=set(COST_FIELDS))

    @property
    def surrogate_geometry(self) -> bool:
        """True at the PBE//surrogate level: geometries (relaxed structures, NEB endpoints) come
        from the surrogate and DFT gives single points (``relax.dft_relax`` False, engine GPAW).
        """
        return not self.relax.dft_relax and self.engine != "ml"

    @property
    def active_learning_level(self) -> bool:
        """True when barriers are converged by the active-learning loop
        (``neb.active_learning``, engine GPAW): its reference calls relax the hops' endpoints
        and certify the saddles."""
        return self.neb.active_learning and self.engine != "ml"

    def with_overrides(self, overrides: dict[str, Any] | None) -> CalcSettings:
        """Return a copy with nested ``overrides`` applied (unknown keys raise InputError)."""
        if not overrides:
            return self
        data = _deep_merge(self.model_dump(), overrides)
        try:
            return CalcSettings.model_validate(data)
        except Exception as exc:  # pydantic ValidationError names the field
            raise InputError(f"invalid settings override {overrides!r}: {exc}") from exc


#: settings groups that bound the cost of a run and never change its result
COST_FIELDS = ("budget",)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level of dotted keys (``{'dft': {'ecut': 300}}`` ->
    ``{'dft.ecut': 300}``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _deep_merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
