"""The full host of a migration cell relaxed at the barrier's level, before the hop's endpoints
are cut from it (``neb.relax_host``).

Why: on the LiAl|LiCl migration cell the largest DFT forces of every endpoint and image
(0.5-0.6 eV/Angstrom) were a uniform field across the ionic film that all of them share, and
the active-learning loop relaxed it at most ``neb.al_max_move`` per round on five structures
at a time (docs/history.md). Relaxing the shared host once leaves the endpoints only the
relaxation around the hop.

Rules
-----
- The host: the migration cell with every Li lattice site occupied
  (:class:`~interphase_dft.recipes.hop_setup.HostPlan`), neutral, pbc (T, T, F) with the
  dipole-layer correction, the endpoints' fixed atoms fixed.
- Level: the barrier's reported level. The surrogate relaxes it first (when there is one);
  then BFGS with the reported forces to ``relax.fmax`` within ``relax.steps``, starting from
  the surrogate's Hessian at that geometry (:mod:`interphase_dft.calc.hessian`; BFGS only).
  Work directory ``host/`` (checkpointed: a rerun continues it), every call charged to the
  barrier's ledger (stage ``host relaxation``) and stored as a frame.
- The endpoints take the relaxed host's positions
  (:meth:`~interphase_dft.recipes.hop_setup.HostPlan.states_from`). An unconverged host
  relaxation is recorded and warned about; the endpoints still start from its last geometry
  (they are relaxed and certified at the barrier's level afterwards either way).
- The record (``interface_meta['host_relaxation']``): converged, fmax, steps, reported-level
  calls, energy, how it started.
- The anchor (:class:`HostAnchor`): the relaxed host's reported energy and forces. The
  active-learning loop corrects its surrogate with them to first order
  (:mod:`interphase_dft.calc.correction`: the surrogate's error at the host, reported minus
  surrogate force on every atom, added to the surrogate wherever the hop's atoms are; zero on
  the hopping Li, whose surroundings change). The host was relaxed neutral; a hop computed
  with a charge (a vacancy in an insulator) takes the neutral host's error as its first-order
  estimate, and the loop certifies with the reported level either way. Without it the loop's
  first surrogate relaxation of the endpoints would pull the whole host back to the
  surrogate's own minimum (0.6 eV/Angstrom of reported force on LiAl|LiCl) and undo the
  relaxation. Surrogate relaxations outside the loop (the PBE//surrogate levels) do not
  use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.correction import ForceCorrection, correction_at
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.hessian import start_hessian
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import fixed_indices
from interphase_dft.recipes.hop_setup import HostPlan

HOST_DIR = "host"


@dataclass(frozen=True)
class HostAnchor:
    """The relaxed host with its reported energy and forces (``host``, a SinglePoint result)
    and the plan the hop's states were cut from (module rules)."""

    host: Atoms
    plan: HostPlan

    def correction(self, surrogate: CalcFactory) -> ForceCorrection:
        """The first-order correction of ``surrogate`` measured at the host, on the hop's
        atoms (the host without ``site_final``): the force correction of each atom, none on
        the hopping Li (``plan.li_index``, numbered in the states) and on fixed atoms (they
        do not move). No energy offset: the host's energy error, measured with one atom
        more, says nothing about the states' energies (and a constant cancels in the band)."""
        c = correction_at(self.host, surrogate)
        dforce = c.dforce.copy()
        dforce[fixed_indices(self.host)] = 0.0
        keep = np.arange(len(self.host)) != self.plan.site_final
        dforce = dforce[keep]
        dforce[self.plan.li_index] = 0.0
        return ForceCorrection(c.positions[keep], 0.0, dforce)


@dataclass(frozen=True)
class RelaxedHost:
    """The hop's ``states`` cut from the relaxed host, its ``record`` and its ``anchor``."""

    states: list[Atoms]
    record: dict[str, Any]
    anchor: HostAnchor


def relaxed_host_states(plan: HostPlan, states: list[Atoms], *, factory: CalcFactory,
                        surrogate: CalcFactory | None, settings: CalcSettings,
                        workdir: Path, run: RunLog) -> RelaxedHost:
    """``states`` (initial, final) cut from the host of ``plan`` relaxed with ``factory``
    (module rules), the record of that relaxation and its anchor."""
    wd = Path(workdir) / HOST_DIR
    start = plan.atoms
    if surrogate is not None:
        m = relax(start, surrogate, wd, settings.relax.for_surrogate(), label="ml")
        run.add("host_ml", m)
        start = plan.atoms.copy()
        start.positions = m.atoms.positions
    hessian = start_hessian(start, surrogate, wd, settings)
    with run.stage("host"):
        r = relax(start, factory, wd, settings.relax, label="dft", hessian=hessian)
    run.add("host", r)
    if not r.converged:
        run.warn(f"host relaxation not converged (fmax {r.fmax:.3f} > {settings.relax.fmax} "
                 f"eV/A after {r.steps} steps): the endpoints start from its last geometry; "
                 "raise relax.steps")
    record = {"converged": bool(r.converged), "fmax_eV_A": round(float(r.fmax), 4),
              "steps": int(r.steps), "calls": int(r.force_calls),
              "energy_eV": round(float(r.energy), 6), "n_atoms": len(plan.atoms),
              "start": "surrogate-relaxed" if surrogate is not None else "as built",
              "curvature": ("surrogate Hessian" if hessian is not None
                            else f"{settings.relax.optimizer} default")}
    return RelaxedHost(plan.states_from(r.atoms, states), record, HostAnchor(r.atoms, plan))
