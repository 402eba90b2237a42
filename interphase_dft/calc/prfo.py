"""First-order saddle search by partitioned rational-function optimisation (P-RFO).

A climbing-image band converges all of its images; certifying one saddle needs only the
saddle. P-RFO (Banerjee, Adams, Simons and Shepard, J. Phys. Chem. 89, 52 (1985); Baker,
J. Comput. Chem. 7, 385 (1986)) walks uphill along one Hessian mode and downhill along all
others from a starting Hessian, here a surrogate's (``hessian.surrogate_hessian(...,
signed=True)``), updated with every reference force by Bofill's formula (Int. J. Quantum
Chem. 52, 1001 (1994)), which keeps negative curvature where BFGS would remove it. Each
step costs one reference call.

Rules
-----
- Coordinates: the Cartesian positions of the free atoms (``FixAtoms`` excluded), Angstrom;
  the gradient is minus the forces, eV/Angstrom; the Hessian eV/Angstrom^2.
- The followed mode: at each step the eigenvector of the current Hessian with the largest
  overlap with the previous step's followed mode (the first step: with ``mode``, e.g. the
  band tangent at the climbing image; without ``mode``, the lowest eigenvector).
- Step: along the followed mode the RFO maximisation where its curvature is negative, else
  a trust-radius step uphill along it (the gradient's sign; the followed direction where
  there is no slope: plain RFO would not move where the gradient vanishes); along the others
  the RFO minimisation (the lowest eigenvalue of the augmented Hessian of those modes);
  scaled so that no atom moves more than the trust radius. The trust radius (start
  ``trust``, between :data:`MIN_TRUST` and ``max_trust``) grows by 1.5 when the step's
  energy change agrees with the quadratic model (ratio 0.5-2) and the step was
  trust-limited, and halves when it
  does not (ratio below 0.25 or above 4).
- The search ends when the largest force on a free atom is at most ``fmax`` (or after
  ``steps`` calls, or when ``watch`` names a reason to stop); it converged when the updated
  Hessian then has exactly one eigenvalue below :data:`NEGATIVE` (a first-order saddle).
  The updated Hessian is the reference's only along the directions the steps took: at a
  stationary point, each further negative mode of the model is probed first with one
  reference call (a displacement of :data:`PROBE` along it, whose force change sets its
  curvature through the update), so a
  second negative eigenvalue that is the surrogate's and not the reference's is removed, and
  one that survives its probe is the reference's. The result records the number of negative
  eigenvalues, the followed mode and the negative mode (the eigenvector of the final updated
  Hessian with the lowest eigenvalue: the saddle's reaction coordinate, which the followed
  mode only approximates).
- Checkpoint (``checkpoint``, npz): positions, gradient, energy, Hessian, trust radius,
  followed mode, probed directions, step count and the start geometry after every
  reference call, written atomically; a rerun from the same start resumes from it without
  repeating a call, a rerun from another start (a new band) starts over, and another
  structure's checkpoint is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.parallel import world

from interphase_dft.calc.checkpoint import is_master
from interphase_dft.constraints import fixed_indices
from interphase_dft.errors import InputError

#: smallest trust radius, Angstrom
MIN_TRUST = 0.01
#: finite-difference probe of an untested negative mode (largest atom move), Angstrom
PROBE = 0.05
#: eigenvalues below this (eV/Angstrom^2) count as negative curvature (over 0.1 A such a
#: mode changes the energy by 0.25 meV: flatter is noise of the updated Hessian)
NEGATIVE = -0.05

Factory = Callable[..., Any]
#: ``watch(atoms, energy, negative_modes) -> reason to stop or None``
Watch = Callable[[Atoms, float, int], str | None]


@dataclass
class SaddleResult:
    """A P-RFO run: the last geometry (carrying its reference energy and forces, zero on
    fixed atoms), the number of negative Hessian eigenvalues there, the followed mode and the
    lowest eigenvector of the final Hessian (``negative_mode``; both (N, 3), unit norm over
    the free atoms, zero on fixed atoms)."""

    atoms: Atoms
    energy: float
    fmax: float
    steps: int
    converged: bool
    negative_modes: int
    mode: np.ndarray
    force_calls: int
    negative_mode: np.ndarray | None = None
    stopped: str | None = None


def _free(atoms: Atoms) -> np.ndarray:
    fixed = set(fixed_indices(atoms))
    return np.array([i for i in range(len(atoms)) if i not in fixed], dtype=int)


def _block(hessian: np.ndarray, free: np.ndarray) -> np.ndarray:
    idx = (3 * free[:, None] + np.arange(3)).ravel()
    return np.array(hessian, dtype=float)[np.ix_(idx, idx)]


def bofill(h: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bofill's update of the Hessian ``h`` by the step ``s`` and gradient change ``y``:
    phi x Murtagh-Sargent (symmetric rank one) + (1 - phi) x Powell-symmetric-Broyden."""
    xi = y - h @ s
    ss, xs, xx = float(s @ s), float(xi @ s), float(xi @ xi)
    if ss < 1e-16 or xx < 1e-20:
        return h
    psb = h + (np.outer(xi, s) + np.outer(s, xi)) / ss - xs * np.outer(s, s) / ss**2
    if abs(xs) < 1e-12:
        return psb
    phi = xs**2 / (xx * ss)
    return phi * (h + np.outer(xi, xi) / xs) + (1.0 - phi) * psb


def prfo_step(h: np.ndarray, g: np.ndarray, follow: np.ndarray,
              trust: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The P-RFO step (module rules) for Hessian ``h`` and gradient ``g``: (step, followed
    eigenvector oriented like ``follow``, predicted energy change)."""
    w, v = np.linalg.eigh(0.5 * (h + h.T))
    overlap = v.T @ follow
    t = int(np.argmax(np.abs(overlap)))
    sign = 1.0 if overlap[t] >= 0 else -1.0
    gb = v.T @ g
    b_t, g_t = w[t], gb[t]
    dx = np.zeros_like(gb)
    if b_t >= 0:  # not yet over the ridge along the mode: a trust step uphill along it
        uphill = np.sign(g_t) if abs(g_t) > 1e-3 else sign  # no slope: the followed direction
        dx[t] = uphill * trust
    else:
        dx[t] = g_t / (0.5 * (np.sqrt(b_t**2 + 4.0 * g_t**2) - b_t))  # RFO maximisation
    others = np.array([i for i in range(len(w)) if i != t], dtype=int)
    if len(others):
        aug = np.zeros((len(others) + 1, len(others) + 1))
        aug[np.arange(len(others)), np.arange(len(others))] = w[others]
        aug[:-1, -1] = aug[-1, :-1] = gb[others]
        lam_n = float(np.linalg.eigvalsh(aug)[0])
        den = w[others] - lam_n  # zero only along a mode without gradient: no step there
        safe = np.abs(den) > 1e-12
        dx[others[safe]] = -gb[others[safe]] / den[safe]
    step = v @ dx
    predicted = float(gb @ dx + 0.5 * dx @ (w * dx))
    return step, sign * v[:, t], predicted


def _limit(step: np.ndarray, trust: float) -> tuple[np.ndarray, bool]:
    longest = float(np.linalg.norm(step.reshape(-1, 3), axis=1).max()) if step.size else 0.0
    if longest > trust:
        return step * (trust / longest), True
    return step, False


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically on MPI rank 0 (every rank waits)."""
    if is_master():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **state)
        os.replace(tmp, path)
    world.barrier()


def prfo_saddle(atoms: Atoms, factory: Factory, *, hessian: np.ndarray, fmax: float,
                steps: int, mode: np.ndarray | None = None, trust: float = 0.1,
                max_trust: float = 0.3, checkpoint: Path | str | None = None,
                log: Callable[[str], None] | None = None, level: str = "",
                watch: Watch | None = None) -> SaddleResult:
    """Search a first-order saddle from ``atoms`` with reference forces from ``factory``
    (module rules).

    Parameters
    ----------
    atoms
        Start geometry (constraints kept; not modified).
    factory
        ``factory(atoms) -> calculator`` of the reference level.
    hessian
        (3N, 3N) starting Hessian, eV/Angstrom^2 (e.g. the surrogate's, ``signed=True``).
    fmax
        Convergence: largest force on a free atom, eV/Angstrom.
    steps
        Most reference calls of this run (a resumed run counts its stored ones).
    mode
        (N, 3) or (3N,) direction to follow first (e.g. the band tangent), or None.
    trust, max_trust
        Starting and largest trust radius (largest atom displacement per step), Angstrom.
    checkpoint
        npz file of the run's state (module rules), or None.
    log
        Called with one progress line per step.
    level
        Identity of the reference level (e.g. the settings hash of its calculator): a
        checkpoint stored at another level starts over instead of resuming.
    watch
        Called at every evaluated point (a resumed one included) with the geometry, its
        reference energy and the number of negative eigenvalues of the current Hessian;
        a returned reason stops the search there (not converged, ``stopped`` = the reason).
    """
    n3 = 3 * len(atoms)
    if np.shape(hessian) != (n3, n3):
        raise InputError(f"prfo_saddle: Hessian of shape {np.shape(hessian)} for {len(atoms)} "
                         f"atoms; pass the ({n3}, {n3}) matrix of this structure")
    if fmax <= 0 or steps < 1 or not MIN_TRUST <= trust <= max_trust:
        raise InputError(f"prfo_saddle: fmax {fmax} must be > 0, steps {steps} >= 1 and "
                         f"{MIN_TRUST} <= trust {trust} <= max_trust {max_trust}")
    free = _free(atoms)
    work = atoms.copy()
    work.calc = factory(work)
    h = _block(hessian, free)
    follow = (np.asarray(mode, dtype=float).reshape(-1, 3)[free].ravel()
              if mode is not None else np.linalg.eigh(h)[1][:, 0])
    follow = follow / max(float(np.linalg.norm(follow)), 1e-12)
    start = atoms.positions.copy()
    state = _resume(Path(checkpoint), work, start, level) if checkpoint else None
    probed: list[np.ndarray] = []
    if state is not None:
        work.positions = state["positions"]
        h, follow, trust = state["hessian"], state["follow"], float(state["trust"])
        g, energy, done = state["gradient"], float(state["energy"]), int(state["steps"])
        probed = list(state.get("probed", np.zeros((0, len(g)))))
    else:
        energy, g = _evaluate(work, free)
        done = 1
        if checkpoint:
            _save(Path(checkpoint),
                  _state(work, g, energy, h, trust, follow, done, probed, start, level))
    while True:
        forces = g.reshape(-1, 3)
        f_now = float(np.linalg.norm(forces, axis=1).max()) if forces.size else 0.0
        negative = int((np.linalg.eigvalsh(h) < NEGATIVE).sum())
        if log:
            log(f"P-RFO step {done}: E = {energy:.6f} eV, fmax = {f_now:.4f} eV/A, "
                f"{negative} negative mode(s), trust {trust:.3f} A")
        stopped = watch(work, energy, negative) if watch else None
        if stopped:
            if log:
                log(f"P-RFO stopped: {stopped}")
            return _result(work, energy, g, free, h, follow, f_now, done, negative,
                           converged=False, stopped=stopped)
        extra = (_untested_negative(h, follow, probed)
                 if f_now <= fmax and done < steps else None)
        if extra is not None:  # a negative mode no reference force has tested: probe it
            here = work.positions.copy()
            probe = PROBE * extra / float(np.linalg.norm(extra.reshape(-1, 3), axis=1).max())
            work.positions = here + _full(probe, free, len(atoms))
            _, g_probe = _evaluate(work, free)
            work.positions = here
            h = bofill(h, probe, g_probe - g)
            probed.append(extra)
            done += 1
            if log:
                log(f"P-RFO step {done}: probed a mode of the model Hessian at the "
                    "stationary point")
            if checkpoint:
                _save(Path(checkpoint),
                      _state(work, g, energy, h, trust, follow, done, probed, start, level))
            continue
        if f_now <= fmax or done >= steps:  # stationary: first order or not, it ends here
            return _result(work, energy, g, free, h, follow, f_now, done, negative,
                           converged=f_now <= fmax and negative == 1)
        step, follow, predicted = prfo_step(h, g, follow, trust)
        step, limited = _limit(step, trust)
        if limited:
            predicted = float(g @ step + 0.5 * step @ h @ step)
        pos = work.positions.copy()
        pos[free] += step.reshape(-1, 3)
        work.positions = pos
        e_new, g_new = _evaluate(work, free)
        ratio = (e_new - energy) / predicted if abs(predicted) > 1e-8 else 1.0
        if 0.5 <= ratio <= 2.0 and limited:
            trust = min(max_trust, 1.5 * trust)
        elif ratio < 0.25 or ratio > 4.0:
            trust = max(MIN_TRUST, 0.5 * trust)
        h = bofill(h, step, g_new - g)
        energy, g, done = e_new, g_new, done + 1
        if checkpoint:
            _save(Path(checkpoint),
                  _state(work, g, energy, h, trust, follow, done, probed, start, level))


def _result(work: Atoms, energy: float, g: np.ndarray, free: np.ndarray, h: np.ndarray,
            follow: np.ndarray, f_now: float, done: int, negative: int, *, converged: bool,
            stopped: str | None = None) -> SaddleResult:
    n = len(work)
    return SaddleResult(atoms=_with_results(work, energy, g, free), energy=energy, fmax=f_now,
                        steps=done, converged=converged, negative_modes=negative,
                        mode=_full(follow, free, n), force_calls=done,
                        negative_mode=_full(_lowest(h, follow), free, n), stopped=stopped)


def _lowest(h: np.ndarray, follow: np.ndarray) -> np.ndarray:
    """The eigenvector of ``h`` with the lowest eigenvalue, unit norm, oriented like
    ``follow``."""
    v = np.linalg.eigh(0.5 * (h + h.T))[1][:, 0]
    return v if float(v @ follow) >= 0 else -v


def _evaluate(atoms: Atoms, free: np.ndarray) -> tuple[float, np.ndarray]:
    energy = float(atoms.get_potential_energy())
    return energy, -atoms.get_forces(apply_constraint=False)[free].ravel()


def _with_results(atoms: Atoms, energy: float, g: np.ndarray, free: np.ndarray) -> Atoms:
    """A copy of ``atoms`` carrying ``energy`` and the forces ``-g`` (zero on fixed atoms)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=energy, forces=-_full(g, free, len(atoms)))
    return out


def _full(vec: np.ndarray, free: np.ndarray, n_atoms: int) -> np.ndarray:
    out = np.zeros((n_atoms, 3))
    out[free] = vec.reshape(-1, 3)
    return out


def _state(atoms: Atoms, g: np.ndarray, energy: float, h: np.ndarray, trust: float,
           follow: np.ndarray, steps: int, probed: list[np.ndarray],
           start: np.ndarray, level: str) -> dict[str, Any]:
    return {"positions": atoms.positions, "gradient": g, "energy": energy, "hessian": h,
            "trust": trust, "follow": follow, "steps": steps,
            "probed": np.array(probed).reshape(len(probed), len(g)), "start": start,
            "numbers": atoms.numbers, "cell": np.array(atoms.cell), "level": np.str_(level)}


def _untested_negative(h: np.ndarray, follow: np.ndarray,
                       probed: list[np.ndarray]) -> np.ndarray | None:
    """The direction to probe at a stationary point, or None: the followed mode (the
    eigenvector along ``follow``) when its eigenvalue is not below :data:`NEGATIVE`, else
    the most negative other eigenvector below it; only directions no earlier probe tested
    (overlap < 0.9 with every probed direction)."""
    w, v = np.linalg.eigh(0.5 * (h + h.T))
    t = int(np.argmax(np.abs(v.T @ follow)))

    def untested(i: int) -> bool:
        return all(abs(float(v[:, i] @ p)) / float(np.linalg.norm(p)) < 0.9 for p in probed)

    if w[t] >= NEGATIVE and untested(t):  # the followed mode itself looks flat or convex
        return v[:, t]
    for i in np.argsort(w):
        if w[i] >= NEGATIVE:
            return None
        if i != t and untested(i):
            return v[:, i]
    return None


def _resume(path: Path, atoms: Atoms, start: np.ndarray, level: str) -> dict[str, Any] | None:
    """The stored state of a search from ``start`` at reference ``level``; None when there is
    none, it began elsewhere (a new band's climbing image: that search starts over) or at
    another level (other settings: its energies are not this level's); another structure's
    state is refused."""
    if not path.is_file():
        return None
    with np.load(path) as data:
        state = {k: data[k] for k in data.files}
    if (state["numbers"].tolist() != atoms.numbers.tolist()
            or not np.allclose(state["cell"], np.array(atoms.cell))):
        raise InputError(f"{path} belongs to another structure; remove it or use a new "
                         "work directory")
    if "start" not in state or not np.allclose(state["start"], start, atol=1e-6):
        return None
    if str(state.get("level", "")) != level:
        return None
    return state
