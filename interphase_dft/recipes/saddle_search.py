"""The reference finish of a hop by a saddle search from its band (``neb.al_finish = 'prfo'``).

A reference climbing-image NEB converges every image of the band to certify one of them;
the Li3P|LiCl crossing's first segment took 356 DFT calls that way. Here only the saddle is
converged: a P-RFO search (:mod:`interphase_dft.calc.prfo`) starts from the band's climbing
image with the active-learning surrogate's Hessian there and follows the mode along the
band's tangent, one reference call per step.

Rules
-----
- The start is the interior maximum of the band's reference energies
  (:func:`~interphase_dft.recipes.saddle.hop_saddle`); a band without one is not searched
  (:func:`search_saddle` returns None and the caller finishes with a CI-NEB).
- Starting Hessian: the surrogate's at the start (finite differences; eigenvalues below
  ``-HESSIAN_FLOOR`` kept, the others raised to at least :data:`HESSIAN_FLOOR`), computed on
  MPI rank 0, kept in ``hessian.npz``
  (:func:`~interphase_dft.calc.hessian.stored_hessian`). Followed direction: the band
  tangent at the start (the move from the image before it to the image after it, minimum
  image).
- The search converges at ``neb.fmax`` with exactly one negative Hessian eigenvalue, within
  ``neb.steps`` reference calls (``prfo.npz`` checkpoints every call).
- Connection: from the converged saddle, a displacement along each sign of its negative
  mode (the lowest eigenvector of the search's final Hessian;
  :data:`DESCENT_STEP` doubled up to three times until the surrogate's largest force exceeds
  the descent's ``fmax``; largest atom move) is relaxed with the surrogate to the smaller of
  ``neb.ml_fmax`` and ``relax.fmax`` (at least :data:`DESCENT_STEPS` steps); each descent
  must converge and end within half the endpoints' separation (largest atom distance) of one
  endpoint, and the two at different endpoints. A
  saddle that does not connect the endpoints is reported as such and the band is not
  certified.
- The band returned is the reference band with the saddle in the climbing image's place;
  the search certifies only when the saddle lies at or above every other image's reference
  energy (the others keep their last single points), and the saddle certificate
  (:mod:`interphase_dft.recipes.saddle`) then judges the band like any other. The climbing
  image's stored single point is the search's first step (``reference_calls`` counts the
  new ones).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.guard import CalcFactory, GuardedCalculator
from interphase_dft.calc.hessian import stored_hessian
from interphase_dft.calc.prfo import SaddleResult, prfo_saddle
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import CalcSettings, RelaxSettings
from interphase_dft.constraints import bare_copy
from interphase_dft.geometry import displacements, mic_vectors
from interphase_dft.recipes.neb_path import path_coordinate
from interphase_dft.recipes.saddle import hop_saddle

log = logging.getLogger("interphase_dft.recipes")

#: first displacement from the saddle that starts each descent (largest atom move), Angstrom
DESCENT_STEP = 0.1
#: most surrogate steps of each descent
DESCENT_STEPS = 300
#: eigenvalues of the starting Hessian below minus this keep their (negative) value, the
#: others are raised to at least this, eV/Angstrom^2
HESSIAN_FLOOR = 0.2


@dataclass
class SaddleSearch:
    """A finished (or stopped) search: the band with the saddle in place, whether it
    certifies, and the record for the document (``BarrierDoc.active_learning``)."""

    band: list[Atoms]
    converged: bool
    record: dict[str, Any] = field(default_factory=dict)


def _tangent(band: list[Atoms], top: int, mic: bool) -> np.ndarray:
    before, after = band[top - 1], band[top + 1]
    return mic_vectors(before, after.positions - before.positions, mic)


def reference_level(reference: Any, atoms: Atoms) -> str:
    """The identity of the reference level a search's checkpoint belongs to: the settings
    hash of the calculator's description and the k-point mesh tag of the cell."""
    from interphase_dft.calc.factory import mesh_tag
    from interphase_dft.schemas import settings_hash

    desc = getattr(reference, "description", None)
    desc = desc if isinstance(desc, dict) else {}
    return settings_hash({**desc, **mesh_tag(atoms, desc.get("dft"))})


def search_saddle(ends: list[Atoms], ref_band: list[Atoms], reference: CalcFactory,
                  surrogate: CalcFactory, settings: CalcSettings, wd: Path,
                  mic: bool = True) -> SaddleSearch | None:
    """The reference saddle of the hop ``ends[0]`` -> ``ends[1]`` from ``ref_band`` (module
    rules; reference results on every image), or None when the band has no interior maximum.

    ``reference`` is the reference factory (its calls are the search's cost); ``surrogate``
    the loop's last surrogate (Hessian and descents); ``wd`` the search's checkpoints;
    ``mic``: the hop's minimum-image convention (tangent and distances).
    """
    energies = [float(im.get_potential_energy()) for im in ref_band]
    top = hop_saddle(energies, path_coordinate(ref_band))
    if top is None:
        return None
    wd = Path(wd)
    start = bare_copy(ref_band[top])
    hess = stored_hessian(start, surrogate, wd, floor=HESSIAN_FLOOR, signed=True)
    nset = settings.neb
    # the image's slot: the reference calculator restarts from that image's last SCF; its
    # stored single point is the search's first step (no new call)
    guard = GuardedCalculator(reference, label=f"saddle-img{top}", seed=ref_band[top])
    res = prfo_saddle(start, lambda atoms, attempt=0, label="": guard, hessian=hess,
                      mode=_tangent(ref_band, top, mic), fmax=nset.fmax, steps=nset.steps,
                      checkpoint=wd / "prfo.npz",
                      log=lambda line: log.info("saddle search: %s", line),
                      level=reference_level(reference, start))
    others = [e for i, e in enumerate(energies[1:-1], 1) if i != top]
    record: dict[str, Any] = {
        "method": "P-RFO from the climbing image, surrogate Hessian, Bofill updates",
        "start_image": top, "steps": res.steps, "reference_calls": res.force_calls - 1,
        "fmax": res.fmax, "negative_modes": res.negative_modes, "converged": res.converged,
        "energy_change_eV": res.energy - energies[top], "warnings": list(guard.warnings)}
    connects = False
    if res.converged:
        descents = _descents(res, ends, surrogate, settings, wd, mic)
        record["descents"] = descents
        connects = descents["connects"]
    highest = not others or res.energy >= max(others)
    band = [ends[0], *ref_band[1:top], res.atoms, *ref_band[top + 1:-1], ends[1]]
    record["why"] = ("the search did not converge" if not res.converged else
                     "the saddle's descents do not reach the two endpoints" if not connects else
                     "an image of the band lies above the saddle" if not highest else
                     "first-order saddle connecting the endpoints")
    return SaddleSearch(band=band, converged=connects and highest, record=record)


def _descents(res: SaddleResult, ends: list[Atoms], surrogate: CalcFactory,
              settings: CalcSettings, wd: Path, mic: bool) -> dict[str, Any]:
    """Surrogate relaxations from the saddle along each sign of its mode (module rules)."""
    reaction = res.mode if res.negative_mode is None else res.negative_mode
    mode = reaction / max(float(np.linalg.norm(reaction, axis=1).max()), 1e-12)
    rs = RelaxSettings(fmax=min(settings.neb.ml_fmax, settings.relax.fmax),
                       steps=max(settings.relax.ml_steps or 0, DESCENT_STEPS),
                       optimizer=settings.relax.optimizer)
    separation = float(displacements(ends[0], ends[1], mic).max())
    out: dict[str, Any] = {"endpoint_separation_A": separation}
    nearest = []
    for sign, name in ((1.0, "plus"), (-1.0, "minus")):
        start = _off_the_top(res.atoms, sign * mode, surrogate, rs.fmax)
        down = relax(start, surrogate, wd / f"descent-{name}", rs, label="relax")
        dist = [float(displacements(down.atoms, e, mic).max()) for e in ends]
        out[name] = {"to_initial_A": dist[0], "to_final_A": dist[1],
                     "converged": down.converged, "steps": down.steps}
        k = int(np.argmin(dist))
        nearest.append(k if dist[k] <= 0.5 * separation and down.converged else -1)
    out["connects"] = sorted(nearest) == [0, 1]
    return out


def _off_the_top(saddle: Atoms, direction: np.ndarray, surrogate: CalcFactory,
                 fmax: float) -> Atoms:
    """``saddle`` moved along ``direction`` (largest atom component 1) by the first of
    :data:`DESCENT_STEP` x 1, 2, 4, 8 (Angstrom, largest atom move) at which the surrogate's
    largest force exceeds ``fmax``: a relaxation started nearer the top would stop there."""
    moved = bare_copy(saddle)
    for k in range(4):
        moved = bare_copy(saddle)
        moved.positions = saddle.positions + DESCENT_STEP * 2**k * direction
        moved.calc = surrogate(moved, attempt=0, label="descent")
        if float(np.linalg.norm(moved.get_forces(), axis=1).max()) > fmax:
            break
    moved.calc = None
    return moved
