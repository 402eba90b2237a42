"""Slab thickness convergence: add layers until the lowest site's E_b stops changing.

Rules
-----
- Thicknesses (d_hkl units of the conventional cell): ``structure.slab_layers``, then steps of
  ``structure.slab_layers_step`` up to ``structure.slab_max_layers``.
- A thickness that builds the same slab as the last one (same atom count and ``n_layers``:
  pymatgen rounds up to whole oriented cells) is skipped and listed under ``skipped``.
- A thicker slab with more than ``structure.slab_max_atoms`` atoms is not computed (the first
  thickness always is): ``stop_reason`` 'max_atoms'.
- Converged when |E_b(n) - E_b(previous computed thickness)| < ``structure.slab_convergence_tol``
  (eV; lowest site, bcc reference; the atom reference gives the same difference):
  ``stop_reason`` 'converged'. Otherwise the loop ends at the limit ('max_layers') unconverged.
- The reported result is the last computed thickness.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from ase import Atoms

T = TypeVar("T")

CONVERGENCE_RULE = (
    "from structure.slab_layers in steps of structure.slab_layers_step to "
    "structure.slab_max_layers (d_hkl units; a thickness giving the same slab is skipped, a "
    "slab over structure.slab_max_atoms atoms is not computed); converged when the lowest "
    "site's E_b changes by less than structure.slab_convergence_tol between consecutive "
    "computed thicknesses; the last computed thickness is reported"
)


@dataclass(frozen=True)
class ThicknessPoint:
    """One computed thickness: ``thickness`` in Angstrom, ``binding_energy`` in eV."""

    layers: int
    n_layers: int
    n_atoms: int
    thickness: float
    binding_energy: float
    lowest_site: str


@dataclass
class Convergence(Generic[T]):
    """Outcome of :func:`converge_thickness`: the stored record and the reported result."""

    record: dict[str, Any]
    result: T


def _slab_key(atoms: Atoms) -> tuple[int, Any]:
    return len(atoms), atoms.info.get("n_layers", round(float(np.ptp(atoms.positions[:, 2])), 3))


def converge_thickness(
    build: Callable[[int], Atoms],
    compute: Callable[[int, Atoms], tuple[float, str, T]],
    *,
    start: int,
    stop: int,
    step: int = 1,
    tol: float = 0.05,
    max_atoms: int | None = None,
) -> Convergence[T]:
    """Run the thickness loop of the module rules.

    Parameters
    ----------
    build
        ``build(layers) -> slab`` (cheap; ``info['n_layers']`` when known).
    compute
        ``compute(layers, slab) -> (E_b of the lowest site in eV, its label, result)``.
    start, stop, step
        First thickness, last thickness tried and increment, d_hkl units.
    tol
        Convergence threshold on |Delta E_b|, eV.
    max_atoms
        Thicker slabs with more atoms are not computed; None = no limit.

    Returns
    -------
    Convergence
        ``record`` (layers, n_layers, n_atoms, thickness, binding_energy_bcc, lowest_site,
        delta per computed thickness; skipped; converged; stop_reason; reported_layers) and
        the result of the last computed thickness.
    """
    points: list[ThicknessPoint] = []
    skipped: list[int] = []
    result: T | None = None
    last_key: tuple[int, Any] | None = None
    stop_reason = "max_layers"
    converged = False
    for layers in range(start, max(start, stop) + 1, step):
        slab = build(layers)
        key = _slab_key(slab)
        if key == last_key:
            skipped.append(layers)
            continue
        if points and max_atoms is not None and len(slab) > max_atoms:
            stop_reason = "max_atoms"
            break
        last_key = key
        e_b, label, result = compute(layers, slab)
        points.append(ThicknessPoint(layers, int(slab.info.get("n_layers", layers)), len(slab),
                                     float(np.ptp(slab.positions[:, 2])), float(e_b), label))
        if len(points) > 1 and abs(points[-1].binding_energy - points[-2].binding_energy) < tol:
            converged, stop_reason = True, "converged"
            break
    assert result is not None  # the first thickness is always computed
    energies = [p.binding_energy for p in points]
    rows = [asdict(p) for p in points]
    record = {
        "rule": CONVERGENCE_RULE, "tol": tol, "step": step, "max_layers": stop,
        "max_atoms": max_atoms,
        "layers": [r["layers"] for r in rows], "n_layers": [r["n_layers"] for r in rows],
        "n_atoms": [r["n_atoms"] for r in rows],
        "thickness": [round(r["thickness"], 4) for r in rows],
        "binding_energy_bcc": energies, "lowest_site": [r["lowest_site"] for r in rows],
        "delta": [None] + [b - a for a, b in itertools.pairwise(energies)],
        "skipped": skipped, "converged": converged, "stop_reason": stop_reason,
        "reported_layers": points[-1].layers,
    }
    return Convergence(record=record, result=result)
