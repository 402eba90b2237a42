"""Rigid registry and gap scan of a migration cell, and the work of adhesion.

Energies in eV, lengths in Angstrom, W_ad in eV/Angstrom^2 and J/m^2.

Rules
-----
- Shifts: an n x n grid of rigid in-plane shifts of side B, (i/n, j/n) fractions of the
  in-plane cell vectors, counted from the as-built cell. Gaps at each shift: that shift's
  geometric contact gap (:func:`~interphase_dft.builders.contact.contact_gaps`) plus each of
  ``gap_offsets`` (or the absolute ``gaps`` when given).
- Every point is a single point of the rigid cell (no relaxation); the registry is the
  lowest-energy point. When it is the smallest or largest gap of its shift, points one gap
  step further out are added until it is interior (at most 4).
- Work of adhesion: W_ad = (E_A + E_B - E_AB) / area with E_A, E_B the energies of each side
  alone in the same cell (the other side's atoms removed) and E_AB the lowest scan energy.
  Positive W_ad = the sides bind. This is the ideal (rigid, unrelaxed) work of separation.
- DFT confirmation (:func:`confirm_scan`): the ``k`` lowest symmetry-distinct points of a
  surrogate scan (points whose surrogate energies differ by less than
  :data:`EQUIVALENT_ENERGY` are one registry seen from equivalent shifts; the first is kept)
  are recomputed with DFT single points of the same rigid cells. When the lowest DFT point
  is the narrowest or widest gap computed at its shift, a point one gap step further is added
  (at most :data:`MAX_GAP_STEPS`; the record says whether the gap ended bracketed). The
  registry is the lowest DFT point, and W_ad is recomputed with DFT at it, each side alone
  with the k-point mesh of the whole cell (``atoms.info['kpoint_atoms']``: a side of half
  the atoms would otherwise fall below ``dft.gamma_only_atoms`` and get another mesh). Every
  DFT energy is checkpointed as it is computed, so a killed confirmation resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.builders.migration import MigrationCell, migration_cell_for, set_registry
from interphase_dft.calc.checkpoint import read_json, write_json
from interphase_dft.calc.factory import same_mesh_as
from interphase_dft.errors import InputError

log = logging.getLogger("interphase_dft.recipes")

EV_PER_A2_TO_J_PER_M2 = 16.021766  # 1 eV/Angstrom^2 in J/m^2
#: surrogate energies (eV) closer than this are one registry seen from equivalent shifts
EQUIVALENT_ENERGY = 1e-3
#: DFT confirmation: most gap points added to bracket the lowest one; default step and
#: smallest gap, Angstrom
MAX_GAP_STEPS = 4
GAP_STEP = 0.2
MIN_GAP = 0.5
SCAN_RULE = ("n x n rigid in-plane shifts of B; at each, gaps = contact gap + offsets; "
             "single points of the rigid cell; registry = lowest energy")

Factory = Callable[[Atoms], Any]


@dataclass
class Adhesion:
    """A chosen registry with the energies of its work of adhesion (module rules)."""

    best_shift: tuple[float, float]
    best_gap: float
    energy_ab: float
    energy_a: float
    energy_b: float
    area: float

    @property
    def work_of_adhesion_eV_A2(self) -> float:
        return (self.energy_a + self.energy_b - self.energy_ab) / self.area

    @property
    def work_of_adhesion_J_m2(self) -> float:
        return self.work_of_adhesion_eV_A2 * EV_PER_A2_TO_J_PER_M2

    def adhesion_dict(self) -> dict[str, Any]:
        """JSON-safe registry, energies and work of adhesion."""
        return {
            "best_shift": list(self.best_shift), "best_gap_A": self.best_gap,
            "energy_ab_eV": self.energy_ab, "energy_a_eV": self.energy_a,
            "energy_b_eV": self.energy_b, "area_A2": self.area,
            "work_of_adhesion_eV_A2": self.work_of_adhesion_eV_A2,
            "work_of_adhesion_J_m2": self.work_of_adhesion_J_m2,
        }


@dataclass
class RegistryScan(Adhesion):
    """Result of :func:`registry_scan`.

    ``points`` are (shift_1, shift_2, gap in A, energy in eV) for every scanned cell; ``cell``
    is the migration cell at the best registry.
    """

    points: list[tuple[float, float, float, float]] = field(default_factory=list)
    cell: MigrationCell | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the recipe stores it in the barrier document)."""
        return {"points": [[round(v, 6) for v in p] for p in self.points],
                **self.adhesion_dict(), **self.meta}


def _energy(atoms: Atoms, factory: Factory) -> float:
    """Single-point energy (eV) of ``atoms`` with ``factory(atoms)``."""
    work = atoms.copy()
    work.calc = factory(work)
    return float(work.get_potential_energy())


def side_alone(cell: MigrationCell, side: int) -> Atoms:
    """Side 0 (A) or 1 (B) of ``cell`` alone in the same cell (constraints kept)."""
    from ase.constraints import FixAtoms

    keep = cell.atoms.arrays["side"] == side
    out = cell.atoms[keep]
    new = np.cumsum(keep) - 1
    out.set_constraint(FixAtoms(indices=[int(new[i]) for i in cell.fixed if keep[i]]))
    return out


def scan_points(cell: MigrationCell, *, grid: int, gap_offsets: Sequence[float] = (0.0,),
                gaps: Sequence[float] | None = None) -> list[tuple[float, float, float]]:
    """(shift_1, shift_2, gap) of every scan point (module rules)."""
    from interphase_dft.builders.contact import contact_distances, contact_gaps
    from interphase_dft.phases import get_bulk

    shifts = np.array([(i / grid, j / grid) for i in range(grid) for j in range(grid)])
    if gaps is None:  # contact_gaps counts shifts from B's current position
        r_xy = contact_distances(get_bulk(cell.phase_a), get_bulk(cell.phase_b))
        contact, _ = contact_gaps(cell.atoms, shifts - np.asarray(cell.shift), r_xy)
        return [(float(s[0]), float(s[1]), round(float(g + off), 4))
                for s, g in zip(shifts, contact, strict=True) for off in gap_offsets]
    return [(float(s[0]), float(s[1]), float(g)) for s in shifts for g in gaps]


def _point(cell: MigrationCell, factory: Factory, s1: float, s2: float,
           gap: float) -> tuple[float, float, float, float]:
    """(shift_1, shift_2, gap, energy) of one registry."""
    trial = set_registry(cell, (s1, s2), gap)
    return float(s1), float(s2), float(gap), _energy(trial.atoms, factory)


def _extend_gap(cell: MigrationCell, factory: Factory,
                done: list[tuple[float, float, float, float]], max_extra: int = 4) -> None:
    """While the lowest point is the smallest or largest gap of its shift, add a point one
    gap step (the smallest spacing scanned, else 0.2 A) further out (at most ``max_extra``;
    never below 0.5 A)."""
    for _ in range(max_extra):
        s1, s2, g, _e = min(done, key=lambda p: p[3])
        gaps = sorted(p[2] for p in done if (p[0], p[1]) == (s1, s2))
        steps = np.diff(gaps)
        step = float(steps[steps > 1e-6].min()) if (steps > 1e-6).any() else 0.2
        if g == gaps[-1]:
            done.append(_point(cell, factory, s1, s2, round(g + step, 4)))
        elif g == gaps[0] and g - step >= 0.5:
            done.append(_point(cell, factory, s1, s2, round(g - step, 4)))
        else:
            return


def scan_cell(cell: MigrationCell, factory: Factory, *, grid: int = 3,
              gap_offsets: Sequence[float] = (-0.2, 0.0, 0.2, 0.4),
              gaps: Sequence[float] | None = None,
              points: Sequence[tuple[float, float, float]] | None = None) -> RegistryScan:
    """Scan the registry of ``cell`` with ``factory`` (module rules).

    Parameters
    ----------
    cell : migration cell (:func:`~interphase_dft.builders.migration.migration_cell`)
    factory : ``factory(atoms) -> ase Calculator`` (the surrogate first, DFT to confirm)
    grid : n of the n x n shift grid
    gap_offsets : added to each shift's contact gap, Angstrom
    gaps : absolute gaps instead, Angstrom
    points : explicit (shift_1, shift_2, gap) to evaluate instead of the grid, e.g. the
        lowest surrogate points confirmed with DFT
    """
    todo = points if points is not None else scan_points(cell, grid=grid,
                                                         gap_offsets=gap_offsets, gaps=gaps)
    done = [_point(cell, factory, s1, s2, g) for s1, s2, g in todo]
    if points is None:
        _extend_gap(cell, factory, done)
    k = int(np.argmin([p[3] for p in done]))
    s1, s2, g, e_ab = done[k]
    best = set_registry(cell, (s1, s2), g, rule=f"lowest energy of the registry scan: {SCAN_RULE}")
    e_a, e_b = _energy(side_alone(cell, 0), factory), _energy(side_alone(cell, 1), factory)
    meta = {"scan_rule": SCAN_RULE if points is None else "given points",
            "grid": grid, "gap_offsets_A": list(gap_offsets),
            "gaps_A": None if gaps is None else list(gaps), "n_points": len(done)}
    scan = RegistryScan(best_shift=(s1, s2), best_gap=g, energy_ab=e_ab, energy_a=e_a,
                        energy_b=e_b, area=best.area, points=done, cell=best, meta=meta)
    best.info["work_of_adhesion_J_m2"] = round(scan.work_of_adhesion_J_m2, 6)
    best.atoms.info["work_of_adhesion_J_m2"] = best.info["work_of_adhesion_J_m2"]
    return scan


def registry_scan(phase_a: str, phase_b: str, settings: Any, factory: Factory,
                  **cell_kw: Any) -> RegistryScan:
    """Build the migration cell of ``settings.structure`` and scan its registry.

    ``settings`` supplies the cell limits and ``interface_registry_grid`` /
    ``interface_gap_offsets``; ``cell_kw`` overrides cell arguments
    (:func:`~interphase_dft.builders.migration.migration_cell_for`).
    """
    st = getattr(settings, "structure", settings)
    cell = migration_cell_for(phase_a, phase_b, settings, **cell_kw)
    return scan_cell(cell, factory, grid=st.interface_registry_grid,
                     gap_offsets=st.interface_gap_offsets)


@dataclass
class Confirmation(Adhesion):
    """DFT check of a surrogate registry scan (:func:`confirm_scan`).

    ``points`` are (shift_1, shift_2, gap in A, surrogate energy, DFT energy) of the
    recomputed registries, lowest surrogate energy first; ``cell`` is the migration cell at the
    lowest DFT point.
    """

    points: list[tuple[float, float, float, float | None, float]] = field(default_factory=list)
    cell: MigrationCell | None = None
    gap_bracketed: bool = True

    @property
    def surrogate_choice_kept(self) -> bool:
        """True when DFT's lowest point is the surrogate's lowest."""
        return min(self.points, key=lambda p: p[4]) is self.points[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (stored in the registry record as ``dft``)."""
        return {
            "points": [[None if v is None else round(v, 6) for v in p] for p in self.points],
            "point_columns": ["shift_1", "shift_2", "gap_A", "surrogate_eV", "dft_eV"],
            **self.adhesion_dict(), "surrogate_choice_kept": self.surrogate_choice_kept,
            "gap_bracketed": self.gap_bracketed,
            "rule": ("the lowest symmetry-distinct surrogate points recomputed with DFT single "
                     "points of the rigid cell, the gap of the lowest extended one step at a "
                     f"time until bracketed (at most {MAX_GAP_STEPS} steps); registry = lowest "
                     "DFT energy; work of adhesion from DFT single points of each side alone"),
        }


def distinct_lowest(points: Sequence[tuple[float, float, float, float]],
                    k: int) -> list[tuple[float, float, float, float]]:
    """The ``k`` lowest points of a scan whose energies differ pairwise by at least
    :data:`EQUIVALENT_ENERGY` (lowest first; of equivalent points the first scanned)."""
    out: list[tuple[float, float, float, float]] = []
    for p in sorted(points, key=lambda p: p[3]):
        if len(out) == k:
            break
        if all(abs(p[3] - q[3]) >= EQUIVALENT_ENERGY for q in out):
            out.append(p)
    return out


def confirm_scan(cell: MigrationCell, points: Sequence[tuple[float, float, float, float]],
                 factory: Factory, *, k: int, checkpoint: Path) -> Confirmation:
    """Recompute the ``k`` lowest distinct surrogate ``points`` of ``cell`` with ``factory``
    (DFT) and choose the registry and W_ad from those energies (module rules).

    ``checkpoint`` (JSON) keeps every DFT energy as it is computed; a checkpoint written for
    another cell or other points is refused with :class:`InputError`.
    """
    if k < 1:
        raise InputError(f"confirm_scan: k = {k}; confirm at least one registry point "
                         "(structure.interface_registry_confirm >= 1)")
    chosen = distinct_lowest(points, k)
    key = {"formula": cell.atoms.get_chemical_formula(), "area_A2": round(cell.area, 6),
           "points": [[round(v, 6) for v in p[:3]] for p in chosen]}
    state = read_json(checkpoint) or {"key": key, "energies": {}}
    if state.get("key") != key:
        raise InputError(f"{checkpoint} belongs to another cell or scan; remove it or use a new "
                         "work directory")

    def energy(name: str, atoms: Atoms) -> float:
        if name not in state["energies"]:
            log.info("registry confirmation: %s (single point %d; %d registries, gap "
                     "bracketing, 2 sides)", name, len(state["energies"]) + 1, len(chosen))
            atoms = atoms.copy()
            atoms.pbc = (True, True, False)  # vacuum along z: dipole correction, as the hops
            state["energies"][name] = _energy(atoms, factory)
            write_json(checkpoint, state)
        return float(state["energies"][name])

    done = []
    for i, (s1, s2, g, e_ml) in enumerate(chosen):
        e = energy(f"ab{i}", set_registry(cell, (s1, s2), g).atoms)
        done.append((float(s1), float(s2), float(g), float(e_ml), e))
    bracketed = False
    for _ in range(MAX_GAP_STEPS + 1):
        s1, s2, g, _, _ = min(done, key=lambda p: p[4])
        missing = _gap_neighbours(done, points, (s1, s2), g)
        if not missing:
            bracketed = True
            break
        if len(done) >= len(chosen) + MAX_GAP_STEPS or min(missing) < MIN_GAP:
            break  # out of steps, or the narrowest gap allowed is the lowest: not bracketed
        for gap in missing:
            name = f"ab-{s1:.4f}-{s2:.4f}-{gap:.4f}"
            e = energy(name, set_registry(cell, (s1, s2), gap).atoms)
            done.append((float(s1), float(s2), gap, _scanned(points, (s1, s2), gap), e))
    s1, s2, g, _, e_ab = min(done, key=lambda p: p[4])
    best = set_registry(cell, (s1, s2), g, rule="lowest DFT energy of the lowest surrogate "
                        f"registry points, gap bracketed at that shift: {SCAN_RULE}")
    e_a = energy("a", same_mesh_as(side_alone(best, 0), best.atoms))
    e_b = energy("b", same_mesh_as(side_alone(best, 1), best.atoms))
    return Confirmation(best_shift=(s1, s2), best_gap=g, energy_ab=e_ab, energy_a=e_a,
                        energy_b=e_b, area=best.area, points=done, cell=best,
                        gap_bracketed=bracketed)


def _same_shift(p: Sequence[float], shift: tuple[float, float]) -> bool:
    return abs(p[0] - shift[0]) < 1e-6 and abs(p[1] - shift[1]) < 1e-6


def _gap_neighbours(done: Sequence[Sequence[float]], scan: Sequence[Sequence[float]],
                    shift: tuple[float, float], gap: float) -> list[float]:
    """Gaps one step (the scan's smallest gap spacing at that shift, else
    :data:`GAP_STEP`) beyond ``gap`` on each side where no DFT point at ``shift`` lies: empty
    when ``gap`` is bracketed (the caller computes none below :data:`MIN_GAP`)."""
    gaps = sorted({round(p[2], 4) for p in scan if _same_shift(p, shift)})
    steps = np.diff(gaps)
    step = float(steps[steps > 1e-6].min()) if (steps > 1e-6).any() else GAP_STEP
    mine = [p[2] for p in done if _same_shift(p, shift)]
    out = []
    if not any(q < gap - 1e-6 for q in mine):
        out.append(round(gap - step, 4))
    if not any(q > gap + 1e-6 for q in mine):
        out.append(round(gap + step, 4))
    return out


def _scanned(scan: Sequence[Sequence[float]], shift: tuple[float, float],
             gap: float) -> float | None:
    """The surrogate energy of the scan at ``shift`` and ``gap``, or None (not scanned)."""
    return next((float(p[3]) for p in scan if _same_shift(p, shift) and abs(p[2] - gap) < 1e-4),
                None)
