"""The surrogate pre-stage of a band: converge the path with the ML surrogate, check it with
DFT single points (:func:`surrogate_path`).

Rules: the path is rejected when the surrogate NEB fails or does not converge, two atoms come
closer than ``ML_MIN_DISTANCE``, one image step exceeds ``ML_MAX_STEP_RATIO`` times the mean,
or the DFT barrier on the path differs from the surrogate barrier by more than
``neb.ml_max_barrier_gap`` eV. Energies in eV, lengths in Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.guard import CalcFactory, min_distance
from interphase_dft.calc.neb import NEBResult, run_neb
from interphase_dft.calc.runners import static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import copy_constraints
from interphase_dft.recipes.neb_path import path_steps, with_results

#: surrogate path rejected when any two atoms come closer than this, Angstrom
ML_MIN_DISTANCE = 0.7
#: surrogate path rejected when one image step exceeds this multiple of the mean step
ML_MAX_STEP_RATIO = 3.0


@dataclass
class SurrogatePath:
    """Outcome of :func:`surrogate_path`.

    Attributes
    ----------
    band
        DFT single points on the surrogate path when accepted, else the input band.
    ml_barrier
        Surrogate barrier max(E) - E(initial), eV (None when the surrogate NEB failed).
    fallback
        Why the path was rejected; None when accepted.
    dft_calls
        DFT force calls of the single points.
    converged
        The surrogate NEB converged.
    """

    band: list[Atoms]
    ml_barrier: float | None
    fallback: str | None
    dft_calls: int = 0
    converged: bool = False


def _band_problem(res: NEBResult) -> str | None:
    """Why a surrogate band cannot be used (not converged, collapsing, discontinuous) or None."""
    if not res.converged:
        return f"surrogate NEB not converged (fmax {res.fmax:.3f} eV/A after {res.steps} steps)"
    for i, im in enumerate(res.images):
        if min_distance(im) < ML_MIN_DISTANCE:
            return f"atoms collapsing in surrogate image {i} (< {ML_MIN_DISTANCE} A)"
    steps = path_steps(res.images)
    if max(steps) > ML_MAX_STEP_RATIO * float(np.mean(steps)):
        return (f"surrogate band discontinuous (largest image step {max(steps):.2f} A > "
                f"{ML_MAX_STEP_RATIO} x mean {np.mean(steps):.2f} A)")
    return None


def surrogate_path(band: list[Atoms], settings: CalcSettings, workdir: Path,
                   dft_factory: CalcFactory, ml: Any) -> SurrogatePath:
    """Converge ``band`` with the surrogate factory ``ml`` and check it with DFT single points.

    The surrogate NEB (climbing image as ``neb.climb``) runs to ``neb.ml_fmax`` in
    ``workdir/neb-ml`` from surrogate single points of the endpoints (``ml-endpoints/``); the
    DFT single points on the path are in ``ml-check/``. Rejection: module rules. A
    :class:`~interphase_dft.calc.budget.BudgetExceeded` of a DFT single point propagates.
    """
    nset = settings.neb
    ml_ends = []
    for name, im in (("initial", band[0]), ("final", band[-1])):
        r = static(im, ml, workdir / "ml-endpoints", label=name)
        ml_ends.append(with_results(im, r.atoms))
    ml_start = [ml_ends[0]] + [im.copy() for im in band[1:-1]] + [ml_ends[1]]
    for im, src in zip(ml_start[1:-1], band[1:-1], strict=True):
        copy_constraints(im, src)
    try:
        res = run_neb(ml_start, ml, workdir / "neb-ml", nset, label="neb", fmax=nset.ml_fmax,
                      describe=ml.description)
    except Exception as exc:  # the surrogate failing must not stop the DFT stage
        return SurrogatePath(band, None, f"surrogate NEB failed: {exc}")
    ml_barrier = max(res.energies) - res.energies[0]
    problem = _band_problem(res)
    if problem:
        return SurrogatePath(band, ml_barrier, problem, 0, res.converged)
    # DFT single points on the surrogate path: they are the first band of the DFT stage
    checked = [band[0]]
    calls = 0
    for i, im in enumerate(res.images[1:-1], start=1):
        geo = im.copy()
        copy_constraints(geo, band[i])
        r = static(geo, dft_factory, workdir / "ml-check", label=f"img{i}")
        calls += r.force_calls
        checked.append(with_results(geo, r.atoms))
    checked.append(band[-1])
    e = [im.get_potential_energy() for im in checked]
    dft_on_ml = max(e) - e[0]
    if abs(dft_on_ml - ml_barrier) > nset.ml_max_barrier_gap:
        return SurrogatePath(band, ml_barrier, (
            f"DFT barrier on the surrogate path {dft_on_ml:.3f} eV differs from the surrogate "
            f"barrier {ml_barrier:.3f} eV by more than {nset.ml_max_barrier_gap} eV"), calls,
            res.converged)
    return SurrogatePath(checked, ml_barrier, None, calls, res.converged)
