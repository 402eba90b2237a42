"""A calculator wrapper that counts force calls, checks results and retries a failed SCF.

:class:`GuardedCalculator` sits between ASE (optimizers, NEB) and the real calculator built by a
factory ``factory(atoms, attempt, label)``. It

* refuses geometries with two atoms closer than ``min_distance`` (collapsed structures) or
  an atom at the cell boundary along a non-periodic axis (:func:`edge_distance`),
* raises :class:`CalculationError` for NaN/inf energies or forces and for forces above
  ``max_force`` (eV/Angstrom), naming the formula and the setting,
* turns a missing PAW setup into a :class:`CalculationError`,
* on an SCF ``ConvergenceError`` rebuilds the calculator with ``attempt + 1`` (safer mixing,
  longer iteration limit, same smearing; see :func:`interphase_dft.calc.factory.scf_parameters`)
  and records a warning,
* when a spin-polarised SCF's moment collapses (:class:`interphase_dft.calc.spin.SpinCollapsed`)
  switches to the factory's spin-paired variant (``factory.paired()``) for this and every later
  geometry, records a warning and sets ``spin_collapsed``,
* adds the total magnetic moment of spin-polarised runs to the results (``magmom``),
* serves a stored result (``seed``) for the geometry a resumed run starts from, so a restart
  does not recompute the last checkpointed step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from interphase_dft.calc.checkpoint import same_geometry
from interphase_dft.calc.spin import SpinCollapsed, total_moment
from interphase_dft.errors import CalculationError

log = logging.getLogger("interphase_dft.calc")

CalcFactory = Callable[..., Calculator]
#: the warning text that marks a geometry recomputed spin-paired after a collapsed moment
COLLAPSE_NOTE = "recomputed spin-paired (dft.spin_collapse_moment)"
#: SCF attempts per geometry (the first one and its safer retries) before CalculationError
MAX_SCF_ATTEMPTS = 3


def min_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance (minimum image), Angstrom; inf for one atom."""
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    d[np.diag_indices_from(d)] = np.inf
    return float(d.min())


#: atoms closer than this to the cell boundary along a non-periodic axis are refused, Angstrom
EDGE_MARGIN = 1.0


def edge_distance(atoms: Atoms) -> tuple[float, int, int]:
    """(distance, atom, axis): the atom closest to the cell boundary along a non-periodic axis
    with a cell vector (slab vacuum, boxed atom), in Angstrom; (inf, -1, -1) when none.

    Negative when the atom lies outside the cell along that axis.
    """
    best = (float("inf"), -1, -1)
    cell = atoms.cell
    for axis in range(3):
        if atoms.pbc[axis] or cell.lengths()[axis] == 0 or not len(atoms):
            continue
        # height of the cell along this axis: volume / area of the other two vectors
        others = [cell[i] for i in range(3) if i != axis]
        height = abs(float(np.linalg.det(cell[:]))) / float(np.linalg.norm(np.cross(*others)))
        frac = cell.scaled_positions(atoms.positions)[:, axis]
        dist = np.minimum(frac, 1.0 - frac) * height
        i = int(np.argmin(dist))
        if dist[i] < best[0]:
            best = (float(dist[i]), i, axis)
    return best


def check_geometry(atoms: Atoms, min_dist: float = 0.5, what: str = "") -> None:
    """Raise :class:`CalculationError` for a collapsed structure (two atoms closer than
    ``min_dist`` Angstrom) or an atom within ``EDGE_MARGIN`` of the cell boundary along a
    non-periodic axis (a molecule that left a slab; GPAW's zero boundary would cut it)."""
    edge, i, axis = edge_distance(atoms)
    if edge < EDGE_MARGIN:
        raise CalculationError(
            f"{what or 'structure'} {atoms.get_chemical_formula()}: atom {i} "
            f"({atoms[i].symbol}) is {edge:.2f} A from the cell boundary along the "
            f"non-periodic axis {axis} (< {EDGE_MARGIN} A): an atom or molecule left the "
            "slab (a surrogate relaxation without the dispersion the phase needs?) or the "
            "vacuum is too thin; check the geometry or raise structure.slab_vacuum"
        )
    dmin = min_distance(atoms)
    if dmin < min_dist:
        raise CalculationError(
            f"{what or 'structure'} {atoms.get_chemical_formula()}: atoms collapsed "
            f"(shortest distance {dmin:.3f} A < {min_dist} A); check the starting geometry "
            "(overlapping Li site or interface gap) or lower relax.fmax step sizes"
        )


def check_results(atoms: Atoms, energy: float, forces: np.ndarray, max_force: float,
                  setting: str = "") -> None:
    """Raise :class:`CalculationError` for NaN/inf results or forces above ``max_force``."""
    formula = atoms.get_chemical_formula()
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise CalculationError(
            f"{formula}: NaN/inf energy or forces ({setting}); the SCF diverged or the "
            "geometry is unphysical: check the structure, raise dft.ecut or lower dft.mixer_beta"
        )
    fmax = float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
    if fmax > max_force:
        raise CalculationError(
            f"{formula}: force {fmax:.1f} eV/A exceeds {max_force} eV/A ({setting}); atoms "
            "nearly overlap or the SCF is wrong: check the starting geometry"
        )


class GuardedCalculator(Calculator):
    """Wrap a calculator factory; see the module docstring.

    Parameters
    ----------
    factory
        ``factory(atoms, attempt=0, label='') -> Calculator``.
    label
        Passed to the factory (e.g. NEB image name for separate GPAW logs).
    seed
        Optional ``(atoms_with_results)`` whose results are returned for the same geometry.
    setting
        Short description of the settings, used in error messages.
    max_force
        Forces above this (eV/Angstrom) raise :class:`CalculationError`.
    min_dist
        Geometries with a shorter interatomic distance (Angstrom) raise before computing.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, factory: CalcFactory, *, label: str = "", seed: Atoms | None = None,
                 setting: str = "", max_force: float = 500.0, min_dist: float = 0.5) -> None:
        super().__init__()
        self.factory = factory
        self.label = label
        self.seed = seed
        self.setting = setting or setting_text(factory)
        self.max_force = max_force
        self.min_dist = min_dist
        self.calls = 0
        self.attempt = 0
        self.spin_collapsed = False
        self.warnings: list[str] = []
        self._inner: Calculator | None = None

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self.seed is not None and same_geometry(atoms, self.seed):
            seed_results = dict(self.seed.calc.results)
            if "stress" not in properties or "stress" in seed_results:
                self.results = seed_results
                self.seed = None
                return
        self.seed = None
        check_geometry(atoms, self.min_dist, what=self.label)
        want_stress = "stress" in properties
        while True:
            if self._inner is None:
                self._inner = self._build(atoms)
            try:
                work = atoms.copy()
                work.calc = self._inner
                energy = float(work.get_potential_energy())
                forces = np.array(work.get_forces())
                results: dict[str, Any] = {"energy": energy, "forces": forces}
                try:
                    results["free_energy"] = float(work.get_potential_energy(force_consistent=True))
                except Exception:
                    results["free_energy"] = energy
                if want_stress:
                    results["stress"] = np.array(work.get_stress())
                moment = total_moment(self._inner)
                if moment is not None:
                    results["magmom"] = moment
                break
            except CalculationError:
                raise
            except SpinCollapsed as exc:
                self._switch_to_paired(atoms, exc)
                continue
            except Exception as exc:
                wrap_setup_errors(exc, atoms, self.setting)
                if not _is_convergence_error(exc):
                    raise
                self.attempt += 1
                msg = (f"{atoms.get_chemical_formula()} {self.label}: SCF not converged; "
                       f"retry {self.attempt} with safer mixing (beta/{2**self.attempt}, "
                       "longer history and iteration limit, same smearing)")
                if self.attempt >= MAX_SCF_ATTEMPTS:
                    raise CalculationError(
                        f"{atoms.get_chemical_formula()}: SCF did not converge after "
                        f"{MAX_SCF_ATTEMPTS} attempts ({self.setting}); raise dft.maxiter, lower "
                        "dft.mixer_beta or check the structure"
                    ) from exc
                log.warning(msg)
                self.warnings.append(msg)
                self._inner = None
        self.calls += 1
        check_results(atoms, results["energy"], results["forces"], self.max_force, self.setting)
        self.results = results

    def _switch_to_paired(self, atoms: Atoms, exc: SpinCollapsed) -> None:
        """Continue with the factory's spin-paired variant after a collapsed moment."""
        paired = getattr(self.factory, "paired", None)
        if paired is None:
            raise CalculationError(
                f"{atoms.get_chemical_formula()} {self.label}: {exc}, but the calculator "
                "factory has no spin-paired variant (paired()); set dft.spin_collapse_moment "
                "= 0 to keep spin-polarised SCFs running"
            ) from exc
        msg = f"{atoms.get_chemical_formula()} {self.label}: {exc}; {COLLAPSE_NOTE}"
        log.warning(msg)
        self.warnings.append(msg)
        self.factory = paired()
        self.spin_collapsed = True
        self.attempt = 0
        self._inner = None

    def _build(self, atoms: Atoms) -> Calculator:
        try:
            return self.factory(atoms, attempt=self.attempt, label=self.label)
        except FileNotFoundError as exc:
            wrap_setup_errors(exc, atoms, self.setting)
            raise


def setting_text(factory: CalcFactory) -> str:
    """Short description of the calculator settings of ``factory`` for error messages."""
    desc = getattr(factory, "description", None)
    if not isinstance(desc, dict):
        return getattr(factory, "__name__", type(factory).__name__)
    dft = desc.get("dft") or {}
    parts = [str(desc.get("engine", "calc"))]
    parts += [f"{k}={dft[k]}" for k in ("xc", "mode", "ecut", "kpt_density") if k in dft]
    parts += [f"{k}={v}" for k, v in (desc.get("extra") or {}).items()]
    if "model" in desc:
        parts.append(f"model={desc['model']}")
    return " ".join(parts)


def _is_convergence_error(exc: BaseException) -> bool:
    try:
        from gpaw import ConvergenceError
    except ImportError:  # pragma: no cover - GPAW is a hard dependency
        return False
    return isinstance(exc, ConvergenceError)


def wrap_setup_errors(exc: BaseException, atoms: Atoms, setting: str) -> None:
    """Re-raise a missing-PAW-setup ``FileNotFoundError`` as :class:`CalculationError`."""
    if isinstance(exc, FileNotFoundError) and ("PAW" in str(exc) or "setup" in str(exc)):
        raise CalculationError(
            f"{atoms.get_chemical_formula()}: missing PAW setup ({setting}): {exc}; install "
            "the datasets (gpaw-data) or set GPAW_SETUP_PATH"
        ) from exc
