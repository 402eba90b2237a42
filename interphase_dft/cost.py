"""Cost model of a campaign's work items: wall seconds, core-hours and DFT calls.

:func:`estimate` turns one :class:`~interphase_dft.campaign.WorkItem` into a
:class:`CostEstimate`; FireWorks priorities (longest first), ``spec["cost"]`` and
``interphase-dft submit SPEC --dry-run`` read it. No FireWorks import here.

Model
-----
- One SCF iteration costs ``c * N_eff**2.3 * k * s * (ecut / 300 eV)**1.5`` core-seconds:
  ``N_eff`` = max(atoms, cell volume / :data:`VOLUME_PER_ATOM`, :data:`MIN_ATOMS`) (a nearly
  empty box such as the Li atom reference counts by its volume: plane waves fill the cell; a
  cell of a few atoms costs at least as much as :data:`MIN_ATOMS`: GPAW's per-k-point grids
  and Python overhead), ``k`` the k-points of
  the Gamma-centred mesh of :func:`interphase_dft.calc.factory.kpoint_mesh` left by time
  reversal, ``s`` = 2 for spin-polarised cells, else 1.
- A DFT call (one SCF with forces) from scratch takes :data:`SCF_ITERATIONS` (25) iterations;
  the later steps of a relaxation or NEB band reuse the wavefunctions and take
  :data:`RESTART_ITERATIONS` (10).
- ``c`` (:data:`DEFAULT_PREFACTOR`) is the geometric mean of two measurements on this
  project's 2-core machine (:data:`FACTS`, PW 300 eV): the 50-atom LPSC cell, 2x2x1 k-points,
  10.6 s per SCF iteration on one core (5.5 s on two ranks; benchmarks/results/
  gpaw_scaling.json), and the 76-atom Gamma-only LPSC slab + Li, spin-polarised, 312 s serial
  / 158 s on two ranks for 37 iterations (docs/history.md). The two agree within a factor 1.3
  of the mean. With stored results, :meth:`Calibration.fit` replaces ``c`` (least squares in
  log space of the stored wall seconds against the model's basis).
- Wall seconds on ``r`` MPI ranks = :data:`OVERHEAD_SECONDS` (start-up: imports, structure
  building) + core-seconds / r**0.9 (measured speed-up 1.86 on 2
  ranks; efficiency falls to 0.7 at 32 ranks); core-hours = wall seconds x r / 3600.
  ``r`` is :data:`PRESET_RANKS` of the settings' preset unless given.

DFT calls per kind (a relaxation: :data:`RELAX_CALLS` calls, at most ``relax.steps``; at the
PBE//surrogate level, ``relax.dft_relax`` false, one single point):

- ``references``: the Li atom in its box (spin-polarised) and bcc Li.
- ``binding`` bulk: the cell relaxation of the conventional cell where bulk mode does one
  (molecular crystals, or ``relax.relax_cell_bulk``; one call when a relaxed cell of the
  level is stored: :mod:`~interphase_dft.recipes.relaxed_cells`), host supercell (built:
  :func:`~interphase_dft.recipes.supercells.bulk_supercell`), every symmetry-distinct
  interstitial site (at most ``binding.max_dft_sites``, or ``max_window_sites`` when the
  surrogate cannot rank them: :func:`dft_sites`), every distinct Li vacancy (at most
  ``binding.max_dft_vacancies``), Al: the Al and LiAl cells of the coexistence potential.
- ``binding`` surface: the termination choice (bulk cell + ``surface_energy_candidates``
  clean slabs, on the density mesh whatever their size) and :data:`SLAB_THICKNESSES`
  thicknesses of host + :data:`SURFACE_SITES` sites (at most :func:`dft_sites`), every
  thickness on the thinnest slab's mesh. Both modes are capped by ``budget.binding_max_dft_calls``.
  The slab is **approximated**, not built (choosing the
  termination takes up to half a minute per phase): ``layers`` x the conventional cell's atoms
  x the cells needed for ``slab_min_area`` (cell face ``V**(2/3)``); within a factor 2 of the
  built slabs for the seven phases (exact for LiAl, Li2S, LiCl, P2S5).
- ``barrier``: the migration cell is **approximated** (the lattice match and registry take
  1-6 min per pair): area :data:`AREA_MATCH` x the larger cell face, each side
  max(``interface_min_thickness``, ``interface_min_planes`` planes of ``0.5 rho**(-1/3)``)
  x :data:`THICKNESS_MARGIN` thick at its bulk density, at most
  ``interface_migration_max_atoms``; within a factor 2.5 of the built cells measured. Hops: 1
  (vacancy) or 2 (interstitial: A -> interface -> B). Per hop: the active-learning loop
  (``neb.active_learning``) :data:`AL_ROUNDS` rounds of ``n_images + 2`` single points, the
  first of each band slot from scratch and the later ones restarted from it, and for an
  interface hop the DFT CI-NEB finish of ``n_images`` x
  :data:`NEB_STEPS` band calls (the loop certified the Li2S bulk hop, no interface hop; with
  ``neb.al_reference_endpoints`` two DFT relaxations before); the
  PBE//surrogate plan (``neb.dft_refine`` false) 2 + ``n_images`` single points; DFT CI-NEB
  2 endpoint relaxations + ``n_images`` x :data:`NEB_STEPS` (at most ``neb.steps``) band calls.
  Interstitial minima without a surrogate add 2 relaxations per region; ``neb.relax_host``
  adds one DFT relaxation of the cell (vacancy hops); with a surrogate,
  ``structure.interface_registry_confirm`` + :data:`REGISTRY_GAP_POINTS` + 2 single points
  confirm the registry and give the work of adhesion. Capped by ``budget.max_dft_calls``.
- ``bulk_barrier``: the same on the bulk hop cell (built:
  :func:`~interphase_dft.recipes.hop_setup.bulk_cell`), one hop.

Surrogate (CHGNet) time, one thread, added to the wall seconds without a parallel speed-up
(:func:`surrogate_seconds`): the bulk-mode screening of the sites and vacancies that
``binding.max_dft_sites`` / ``max_dft_vacancies`` cut, :data:`ML_SCREEN_STEPS` relaxation
steps of the host + Li at :data:`ML_ATOM_STEP_SECONDS` per atom and step (LPSC's 82 sites
took 27 min in the make-demo run at b28fc6b); and :data:`FINETUNE_SECONDS` per fine-tuning of
the active-learning loop (one fewer than its rounds, per hop, and one on the relaxed host
with ``neb.relax_host``). The surface-mode screening (a
few sites per slab), the registry scan of the migration cells, the surrogate bands and the
surrogate Hessians of the host relaxation (6 surrogate force calls per free atom) are not
counted. ``engine = 'ml'`` items
cost :data:`ML_SECONDS`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.settings import CalcSettings
from interphase_dft.campaign import WorkItem

#: per-SCF-iteration cost ~ N**SCF_EXPONENT per k-point and spin channel
SCF_EXPONENT = 2.3
#: SCF iterations of a DFT call from scratch, and of a later relaxation/NEB step
SCF_ITERATIONS = 25
RESTART_ITERATIONS = 10
#: cutoff of the measurements, eV; plane waves (and cost) ~ ecut**1.5
REFERENCE_ECUT = 300.0
#: Angstrom^3: a cell counts as at least volume / this many atoms (vacuum boxes)
VOLUME_PER_ATOM = 40.0
#: a cell counts as at least this many atoms (per-k-point overhead of small cells)
MIN_ATOMS = 20
#: wall seconds of a firework outside DFT (imports, structure building, storing)
OVERHEAD_SECONDS = 10.0
#: speed-up on r ranks = r**PARALLEL_EXPONENT (1.86 measured on 2 ranks)
PARALLEL_EXPONENT = 0.9
#: (atoms, k-points, spin factor, seconds per SCF iteration on one core), PW 300 eV
FACTS: tuple[tuple[int, int, int, float], ...] = ((50, 4, 1, 10.6), (76, 1, 2, 312.0 / 37))
DEFAULT_PREFACTOR = math.exp(float(np.mean([math.log(t / (n**SCF_EXPONENT * k * s))
                                            for n, k, s, t in FACTS])))
#: MPI ranks a firework of each preset runs on (laptop: one per worker, two workers)
PRESET_RANKS = {"test": 1, "screening": 1, "laptop": 1, "production": 32}
#: DFT calls of one DFT relaxation (at most relax.steps)
RELAX_CALLS = 25
#: band evaluations per image of a DFT CI-NEB (at most neb.steps)
NEB_STEPS = 100
#: DFT points the registry confirmation adds to bracket its gap (2 on Li3P|LiCl, at most
#: recipes.registry.MAX_GAP_STEPS)
REGISTRY_GAP_POINTS = 2
#: rounds of the active-learning loop: the one hop it certified took 4 rounds and a short DFT
#: finish (30 calls in all, Li2S bulk vacancy, docs/history.md). No interface hop
#: was certified by the loop: each needed the DFT CI-NEB finish (n_images x NEB_STEPS band
#: calls per hop in the model); the certified Li3P|LiCl crossing took 637 DFT calls in all
#: (two hops, 3 images; docs/history.md, session 17)
AL_ROUNDS = 6
#: Li sites of a slab that get DFT (top, bridge, two hollows; at most binding.max_dft_sites)
SURFACE_SITES = 4
#: slab thicknesses computed before E_b converges
SLAB_THICKNESSES = 2
#: migration cells: in-plane area / larger conventional-cell face; side thickness margin
AREA_MATCH = 2.0
THICKNESS_MARGIN = 1.2
#: wall seconds of a work item computed by the surrogate alone (engine 'ml')
ML_SECONDS = 60.0
#: surrogate relaxation, one thread: seconds per atom and step (make-demo run at b28fc6b,
#: beside a DFT worker: P2S5 29 atoms 0.0042, LPSC 51 atoms 0.0053)
ML_ATOM_STEP_SECONDS = 0.005
#: surrogate relaxation steps per screened site (73 on average over 153 sites of that run)
ML_SCREEN_STEPS = 75
#: wall seconds of one fine-tuning of the active-learning loop (52-88 s measured)
FINETUNE_SECONDS = 70.0


@dataclass(frozen=True)
class Cell:
    """A cell a work item computes: atoms, k-points (after time reversal), spin factor,
    volume (Angstrom^3) and whether it was built or approximated."""

    atoms: int
    kpts: int
    spin: int
    volume: float
    built: bool = True


@dataclass(frozen=True)
class Calcs:
    """``runs`` calculations on ``cell`` (each from scratch) with ``calls`` DFT calls in all."""

    cell: Cell
    runs: int
    calls: int

    def units(self, ecut: float) -> float:
        """Core-seconds of these calculations divided by the prefactor."""
        n = max(self.cell.atoms, self.cell.volume / VOLUME_PER_ATOM, MIN_ATOMS)
        iterations = SCF_ITERATIONS * self.runs + RESTART_ITERATIONS * (self.calls - self.runs)
        return (n**SCF_EXPONENT * self.cell.kpts * self.cell.spin
                * (ecut / REFERENCE_ECUT) ** 1.5 * iterations)


@dataclass(frozen=True)
class Calibration:
    """Prefactor ``c`` (core-seconds per SCF-iteration unit) and the start-up ``overhead``
    (wall seconds per firework) fitted to ``n_docs`` stored results."""

    prefactor: float
    n_docs: int
    overhead: float = OVERHEAD_SECONDS

    @classmethod
    def fit(cls, samples: Iterable[tuple[WorkItem, float]]) -> Calibration | None:
        """Fit the model ``seconds = overhead + c x units / speed-up`` to measured wall seconds.

        With two or more samples both ``overhead`` (>= 0) and ``c`` are fitted by
        non-negative least squares on the relative errors (a 5 s firework weighs as much as
        a 5 h one); with one sample ``c`` alone, the overhead :data:`OVERHEAD_SECONDS` taking at
        most half its seconds. None without usable samples.

        Each sample is a work item and the wall seconds its firework took (on the preset's
        ranks, :data:`PRESET_RANKS`); its :func:`surrogate_seconds` are taken off first.
        """
        from scipy.optimize import nnls

        rows = []
        for item, seconds in samples:
            units = sum(c.units(item.settings.dft.ecut) for c in plan(item))
            seconds = float(seconds) - surrogate_seconds(item)  # the DFT part is fitted
            if seconds > 0 and units > 0:
                rows.append((units / speedup(preset_ranks(item.settings)), seconds))
        if not rows:
            return None
        x, y = np.array(rows).T
        if len(rows) >= 2 and np.ptp(x) > 0:
            (overhead, c), _ = nnls(np.column_stack([1.0 / y, x / y]), np.ones_like(y))
            if c > 0:
                return cls(float(c), len(rows), float(overhead))
        compute = np.maximum(y - OVERHEAD_SECONDS, y / 2)
        return cls(float(np.exp(np.mean(np.log(compute / x)))), len(rows))


@dataclass(frozen=True)
class CostEstimate:
    """Estimated cost of one work item.

    ``seconds``: wall seconds on ``ranks`` MPI ranks; ``core_hours`` = seconds x ranks / 3600;
    ``atoms``, ``kpts``, ``spin``: the most expensive cell; ``basis``: how it was estimated;
    ``dft_calls``: what it spends within its DFT-call ceiling, ``needed_calls``: what finishing
    it takes (the same when the ceiling does not bind).
    """

    seconds: float
    core_hours: float
    dft_calls: int
    ranks: int
    atoms: int
    kpts: int
    spin: int
    basis: str
    needed_calls: int = 0

    @property
    def stops_early(self) -> bool:
        """True when the DFT-call ceiling stops the item before the calls finishing it take."""
        return self.needed_calls > self.dft_calls

    def spec(self) -> dict[str, Any]:
        """The firework's ``spec["cost"]`` (seconds, core_hours, dft_calls, basis)."""
        return {"seconds": float(self.seconds), "core_hours": float(self.core_hours),
                "dft_calls": int(self.dft_calls), "basis": self.basis}


def speedup(ranks: int) -> float:
    """Parallel speed-up on ``ranks`` MPI ranks (ranks**0.9)."""
    return float(max(1, ranks)) ** PARALLEL_EXPONENT


def preset_ranks(settings: CalcSettings) -> int:
    """MPI ranks of a firework of ``settings.preset`` (:data:`PRESET_RANKS`, else 1)."""
    return PRESET_RANKS.get(settings.preset, 1)


def estimate(item: WorkItem, calibration: Calibration | None = None,
             ranks: int | None = None) -> CostEstimate:
    """Cost of ``item`` (module docstring) on ``ranks`` (default :func:`preset_ranks`)."""
    r = ranks or preset_ranks(item.settings)
    calcs = plan(item)
    calls = sum(c.calls for c in calcs)
    c = calibration.prefactor if calibration else DEFAULT_PREFACTOR
    source = (f"calibrated from {calibration.n_docs} stored documents" if calibration
              else "prefactor from 2 measured single points")
    needed = sum(c.calls for c in plan(item, capped=False))
    if item.settings.engine == "ml":
        seconds, calls, needed = ML_SECONDS, 0, 0
    else:
        seconds = ((calibration.overhead if calibration else OVERHEAD_SECONDS)
                   + c * sum(x.units(item.settings.dft.ecut) for x in calcs) / speedup(r)
                   + surrogate_seconds(item))
    top = max(calcs, key=lambda x: x.units(item.settings.dft.ecut)).cell
    how = "built" if all(x.cell.built for x in calcs) else "approximate cell, see cost.py"
    basis = (f"{item.name}: {top.atoms} atoms ({how}), {top.kpts} k-points, spin "
             f"{top.spin}; {sum(x.runs for x in calcs)} calculations, {calls} DFT calls; "
             f"N^{SCF_EXPONENT} x k x spin, {r} ranks; {source}")
    return CostEstimate(seconds=seconds, core_hours=seconds * r / 3600.0, dft_calls=calls,
                        ranks=r, atoms=top.atoms, kpts=top.kpts, spin=top.spin, basis=basis,
                        needed_calls=needed)


def surrogate_seconds(item: WorkItem) -> float:
    """Wall seconds of ``item``'s surrogate work that the model counts (module docstring)."""
    s, p = item.settings, item.params
    if s.engine == "ml":
        return 0.0
    if item.kind == "binding" and p["mode"] == "bulk":
        atoms = len(_supercell(p["phase"], s.structure.bulk_min_length,
                               s.structure.bulk_supercell))
        atom_steps = 0
        for n, cap, cell in zip(_site_counts(p["phase"]),
                                (s.binding.max_dft_sites, s.binding.max_dft_vacancies),
                                (atoms + 1, atoms - 1), strict=True):
            if cap is not None and cap < n and s.binding.screen_with_ml:
                atom_steps += n * cell
        return atom_steps * ML_SCREEN_STEPS * ML_ATOM_STEP_SECONDS
    if item.kind in ("barrier", "bulk_barrier") and s.neb.active_learning:
        hops = 2 if p.get("mechanism") == "interstitial" else 1
        host = item.kind == "barrier" and s.neb.relax_host and hops == 1  # tuned on the host
        return (hops * (min(AL_ROUNDS, s.neb.al_max_rounds) - 1) + host) * FINETUNE_SECONDS
    return 0.0


def plan(item: WorkItem, *, capped: bool = True) -> list[Calcs]:
    """The calculations of ``item`` (module docstring); ``capped``: scaled down to the
    item's DFT-call ceiling (what a run spends before it stops over budget), else all that
    finishing the item takes."""
    s, p = item.settings, item.params
    if item.kind == "references":
        return _references(s)
    if item.kind == "binding":
        calcs = _bulk_binding(p["phase"], s) if p["mode"] == "bulk" else _surface(p["phase"], s)
        cap = s.budget.binding_max_dft_calls
    elif item.kind == "barrier":
        calcs, cap = _barrier(p["phase_a"], p["phase_b"], p["mechanism"], s), s.budget.max_dft_calls
    else:
        calcs, cap = _bulk_barrier(p["phase"], s), s.budget.max_dft_calls
    return _capped(calcs, cap if capped else None)


# ---- cells ---------------------------------------------------------------------------------

def _kpts(atoms: Atoms, n_atoms: int, s: CalcSettings, mesh_atoms: int | None = None) -> int:
    """k-points left by time reversal of the mesh :func:`kpoint_mesh` gives ``atoms``
    (``mesh_atoms``: the atom count the Gamma-only rule reads, as
    :data:`~interphase_dft.calc.factory.KPOINT_ATOMS` sets it; None = ``n_atoms``)."""
    from interphase_dft.calc.factory import kpoint_mesh

    if (n_atoms if mesh_atoms is None else mesh_atoms) >= s.dft.gamma_only_atoms:
        return 1
    mesh = kpoint_mesh(atoms, s.dft.kpt_density, s.dft.gamma_only_atoms)
    total, invariant = math.prod(mesh), math.prod(2 if n % 2 == 0 else 1 for n in mesh)
    return (total + invariant) // 2


def _cell(atoms: Atoms, s: CalcSettings, *, spin: int = 1, extra: int = 0,
          built: bool = True) -> Cell:
    n = len(atoms) + extra
    return Cell(n, _kpts(atoms, n, s), spin, float(abs(atoms.cell.volume)), built)


def _box(n_atoms: int, lengths: Sequence[float], pbc: Sequence[bool], s: CalcSettings,
         spin: int, mesh_atoms: int | None = None) -> Cell:
    """An approximated orthorhombic cell of ``n_atoms`` atoms."""
    box = Atoms(cell=list(lengths), pbc=list(pbc))
    return Cell(n_atoms, _kpts(box, n_atoms, s, mesh_atoms), spin, float(np.prod(lengths)),
                built=False)


@functools.cache
def _bulk(phase: str) -> Atoms:
    from interphase_dft.phases import get_bulk

    return get_bulk(phase)


@functools.cache
def _supercell(phase: str, min_length: float, rule: str) -> Atoms:
    from interphase_dft.recipes.supercells import bulk_supercell

    return bulk_supercell(_bulk(phase), min_length, rule)[0]


@functools.cache
def _site_counts(phase: str) -> tuple[int, int]:
    """(distinct interstitial sites, distinct Li vacancies) of the conventional cell."""
    from interphase_dft.builders.sites import interstitial_sites, vacancy_sites

    bulk = _bulk(phase)
    n_vac = len(vacancy_sites(bulk, "Li")) if "Li" in bulk.get_chemical_symbols() else 0
    return len(interstitial_sites(bulk)), n_vac


@functools.cache
def _hop_cell(phase: str, min_length: float) -> Atoms:
    from interphase_dft.recipes.hop_setup import bulk_cell

    return bulk_cell(phase, min_length)


def _density(phase: str) -> tuple[int, float, float]:
    """(atoms, volume A^3, face A^2 = volume**(2/3)) of the conventional cell."""
    bulk = _bulk(phase)
    v = float(abs(bulk.cell.volume))
    return len(bulk), v, v ** (2.0 / 3.0)


def _slab(phase: str, layers: int, s: CalcSettings, spin: int, extra: int = 0,
          mesh_atoms: int | None = None) -> Cell:
    n_conv, v, face = _density(phase)
    repeat = max(1, math.ceil(s.structure.slab_min_area / face))
    side = math.sqrt(repeat * face)
    thickness = layers * v ** (1.0 / 3.0)
    return _box(layers * n_conv * repeat + extra,
                (side, side, thickness + 2 * s.structure.slab_vacuum), (True, True, False),
                s, spin, mesh_atoms)


def _migration(a: str, b: str, s: CalcSettings, spin: int, extra: int) -> Cell:
    st = s.structure
    area = AREA_MATCH * max(_density(a)[2], _density(b)[2])
    n, height = 0.0, st.interface_gap + st.interface_migration_vacuum
    for phase in (a, b):
        n_conv, v, _ = _density(phase)
        rho = n_conv / v
        t = THICKNESS_MARGIN * max(st.interface_min_thickness,
                                   st.interface_min_planes * 0.5 * rho ** (-1.0 / 3.0))
        n += rho * area * t
        height += t
    atoms = min(round(n), st.interface_migration_max_atoms) + extra
    side = math.sqrt(area)
    mesh = 0 if st.interface_density_mesh else None  # 0: the density mesh at every size
    return _box(atoms, (side, side, height), (True, True, False), s, spin, mesh)


# ---- calculations per kind -----------------------------------------------------------------

def _relax_calls(s: CalcSettings) -> int:
    return 1 if s.surrogate_geometry else min(s.relax.steps, RELAX_CALLS)


def _relaxations(cell: Cell, n: int, s: CalcSettings) -> Calcs:
    return Calcs(cell, n, n * _relax_calls(s))


def _insertion_spin(s: CalcSettings, *metal: bool) -> int:
    from interphase_dft.calc.factory import insertion_spin

    return 2 if insertion_spin(s, is_metal=any(metal)) else 1


def _references(s: CalcSettings) -> list[Calcs]:
    from interphase_dft.recipes.references import li_bcc

    atom = Cell(1, 1, 2, s.dft.atom_box**3)
    bcc = _cell(li_bcc(), s)
    bcc_calls = _relax_calls(s) if s.relax.relax_cell_bulk else 1
    return [Calcs(atom, 1, 1), Calcs(bcc, 1, bcc_calls)]


def dft_sites(n_sites: int, s: CalcSettings) -> int:
    """The most Li sites of ``n_sites`` that get DFT: ``binding.max_dft_sites``, or up to
    ``binding.max_window_sites`` when the surrogate cannot rank them (every site counted as
    a tie: the estimate is an upper bound, see ``recipes.screening.window_count``)."""
    from interphase_dft.recipes.screening import window_count

    cap = s.binding.max_dft_sites
    if not cap or n_sites <= cap:
        return n_sites
    if s.binding.screen_window is None:
        return cap
    return min(n_sites, window_count(cap, n_sites, s.binding.max_window_sites))


def _bulk_binding(phase: str, s: CalcSettings) -> list[Calcs]:
    from interphase_dft.phases import is_metal, relax_cell_in_bulk
    from interphase_dft.recipes.relaxed_cells import has_stored_cell

    metal = is_metal(phase)
    host = _supercell(phase, s.structure.bulk_min_length, s.structure.bulk_supercell)
    n_sites, n_vac = _site_counts(phase)
    n_sites = dft_sites(n_sites, s)
    if s.binding.max_dft_vacancies:
        n_vac = min(n_vac, s.binding.max_dft_vacancies)
    out = [_relaxations(_cell(host, s), 1, s),
           _relaxations(_cell(host, s, spin=_insertion_spin(s, metal), extra=1), n_sites, s)]
    if relax_cell_in_bulk(phase, s.relax.relax_cell_bulk):  # always DFT, also at PBE//ML
        calls = 1 if has_stored_cell(phase, s) else min(s.relax.steps, RELAX_CALLS)
        out.insert(0, Calcs(_cell(_bulk(phase), s), 1, calls))
    if n_vac:
        out.append(_relaxations(_cell(host, s, spin=1 if metal else 2, extra=-1), n_vac, s))
    if phase == "Al":
        out += [_relaxations(_cell(_bulk(p), s), 1, s) for p in ("Al", "LiAl")]
    return out


def _surface(phase: str, s: CalcSettings) -> list[Calcs]:
    from interphase_dft.phases import is_metal

    st = s.structure
    spin = _insertion_spin(s, is_metal(phase))
    out = []
    if st.surface_energy_candidates > 1:  # the density mesh, the Gamma-only rule off
        out += [_relaxations(_cell(_bulk(phase), s), 1, s),
                _relaxations(_slab(phase, st.slab_layers, s, 1, mesh_atoms=0),
                             st.surface_energy_candidates, s)]
    sites = dft_sites(SURFACE_SITES, s)
    mesh = _slab(phase, st.slab_layers, s, 1).atoms  # every thickness: the thinnest's mesh
    for k in range(SLAB_THICKNESSES):
        layers = st.slab_layers + k * st.slab_layers_step
        host = _slab(phase, layers, s, 1, mesh_atoms=mesh)
        if k and (layers > st.slab_max_layers or host.atoms > st.slab_max_atoms):
            break
        out += [_relaxations(host, 1, s),
                _relaxations(_slab(phase, layers, s, spin, 1, mesh_atoms=mesh), sites, s)]
    return out


def _hop_calls(cell: Cell, hops: int, s: CalcSettings, *, finish: bool = False
               ) -> list[Calcs]:
    """DFT calls of ``hops`` hops in ``cell``; ``finish``: the active-learning loop is
    expected to leave the band to the DFT CI-NEB finish (interface hops: every one so far)."""
    n = s.neb.n_images
    if s.neb.active_learning:  # one SCF from scratch per band slot, then restarts (calc.reuse)
        out = [Calcs(cell, hops * (n + 2), hops * AL_ROUNDS * (n + 2))]
        if finish:
            out.append(Calcs(cell, hops * n, hops * n * min(s.neb.steps, NEB_STEPS)))
        if s.neb.al_reference_endpoints:  # two reference relaxations per hop first
            out.append(Calcs(cell, 2 * hops, 2 * hops * min(s.relax.steps, RELAX_CALLS)))
        return out
    if not s.neb.dft_refine:
        k = hops * (n + 2)
        return [Calcs(cell, k, k)]
    return [_relaxations(cell, 2 * hops, s),
            Calcs(cell, hops * n, hops * n * min(s.neb.steps, NEB_STEPS))]


def _capped(calcs: list[Calcs], cap: int | None) -> list[Calcs]:
    """``calcs`` scaled down to at most ``cap`` DFT calls in all (None = no ceiling)."""
    total = sum(c.calls for c in calcs)
    if cap is None or total <= cap:
        return calcs
    # proportional shares, rounded by largest remainder so that they add up to the cap
    shares = [c.calls * cap / total for c in calcs]
    calls = [math.floor(x) for x in shares]
    for i in sorted(range(len(calcs)), key=lambda i: calls[i] - shares[i])[:cap - sum(calls)]:
        calls[i] += 1
    return [Calcs(c.cell, min(c.runs, n), n) for c, n in zip(calcs, calls, strict=True) if n]


def _barrier(a: str, b: str, mechanism: str, s: CalcSettings) -> list[Calcs]:

    interstitial = mechanism == "interstitial"
    # spin-paired: the added Li gives its electron to a metal side or is Li_i^+ (hop_options)
    cell = _migration(a, b, s, 1, 1 if interstitial else 0)
    calcs = _hop_calls(cell, 2 if interstitial else 1, s, finish=True)
    if s.neb.relax_host and not interstitial and s.engine != "ml":  # recipes/host.py
        calcs.append(Calcs(cell, 1, min(s.relax.steps, RELAX_CALLS)))
    surrogate = s.engine == "ml" or s.relax.ml_prerelax or s.neb.ml_prestage
    if interstitial and not surrogate:
        calcs.append(_relaxations(cell, 2 * 3, s))
    if surrogate and s.engine != "ml" and s.structure.interface_registry_confirm:
        # DFT confirmation of the registry: the lowest surrogate points, the gap bracketing
        # and each side alone
        n = s.structure.interface_registry_confirm + REGISTRY_GAP_POINTS + 2
        calcs.append(Calcs(cell, n, n))
    return calcs


def _bulk_barrier(phase: str, s: CalcSettings) -> list[Calcs]:

    atoms = _hop_cell(phase, s.structure.bulk_min_length)
    li = "Li" in _bulk(phase).get_chemical_symbols()
    cell = _cell(atoms, s, spin=1, extra=-1 if li else 1)  # V_Li^-, Li_i^+ or metal: paired
    return _hop_calls(cell, 1, s)


def item_from_document(doc: dict[str, Any]) -> WorkItem | None:
    """The work item a stored result document computed (kind, parameters and the settings it
    stores; a barrier with ``phase_a == phase_b`` is a bulk reference hop); None for other
    kinds or documents without usable settings."""
    try:
        s = CalcSettings.model_validate(doc["settings"])
        kind = doc["kind"]
        if kind == "references":
            return WorkItem.create("references", s)
        if kind == "binding":
            return WorkItem.create("binding", s, phase=doc["phase"], mode=doc["mode"])
        if kind == "barrier" and doc["phase_a"] == doc["phase_b"]:
            return WorkItem.create("bulk_barrier", s, phase=doc["phase_a"])
        if kind == "barrier":
            return WorkItem.create("barrier", s, phase_a=doc["phase_a"],
                                   phase_b=doc["phase_b"], mechanism=doc["mechanism"])
    except (KeyError, TypeError, ValueError):
        return None
    return None


def campaign_plan(items: Iterable[WorkItem], calibration: Calibration | None = None,
                  ranks: int | None = None) -> list[tuple[WorkItem, CostEstimate]]:
    """Every item with its :func:`estimate`, longest first."""
    out = [(item, estimate(item, calibration, ranks)) for item in items]
    return sorted(out, key=lambda ie: -ie[1].seconds)
