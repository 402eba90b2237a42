"""Hirshfeld partial charges from GPAW's all-electron density (charges in e, + = electrons lost).

Why not ``gpaw.analyse.hirshfeld.HirshfeldPartitioning``: it calls ``assert_legacy_gpaw`` and
refuses the calculators :mod:`interphase_dft.calc.factory` builds (GPAW >= 25 ``gpaw.GPAW`` is
the new code; "New-GPAW not supported"); reading a new-code ``.gpw`` file with
``legacy_gpaw=True`` fails on the stored mixer. Bader needs the external ``bader`` program,
which is not installed. So the partitioning is done here, on GPAW's own data, in PW, LCAO and
FD mode alike:

* the density is GPAW's all-electron density (``dft.densities().all_electron_densities``,
  grid refinement 2; core charge that the grid misses is put on the grid point nearest each
  nucleus by GPAW, so the grid integrates to the number of electrons);
* the free-atom (promolecule) density of each element is spherical, from the PAW setup the
  calculation used: core density ``nc_g / sqrt(4 pi)`` plus the occupied all-electron partial
  waves ``sum_j f_j phi_j(r)^2 / (4 pi)`` (neutral, spin-averaged atom);
* the Hirshfeld weight of atom a is rho_a^free / sum_b rho_b^free (periodic images included)
  and q_a = Z_a - integral(w_a n).

Only the grid points within ``cutoff`` (Angstrom) of the atoms asked for are integrated, so a
charge costs little next to the SCF. :func:`li_charge` runs one SCF on a relaxed geometry (the
relaxation's calculator is not kept by the runners) and caches the result in ``charge.json``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import Bohr

log = logging.getLogger("interphase_dft.calc")

#: radius (Angstrom) beyond which free-atom densities are dropped (< 1e-6 e/Bohr^3 for Li)
CUTOFF = 6.0
METHOD = "Hirshfeld (GPAW all-electron density, PAW-setup free atoms)"


def gpaw_of(calc: Any) -> Any | None:
    """The new-code GPAW calculator inside ``calc`` (a D3 SumCalculator is searched), or None."""
    if hasattr(calc, "dft"):
        return calc
    for inner in getattr(calc, "calcs", None) or getattr(getattr(calc, "mixer", None),
                                                         "calcs", None) or []:
        found = gpaw_of(inner)
        if found is not None:
            return found
    return None


def _free_atom_density(setup: Any) -> tuple[np.ndarray, np.ndarray]:
    """(r in Bohr, spherical free-atom all-electron density in e/Bohr^3) of a PAW setup."""
    data = setup.data
    r = np.asarray(data.rgd.r_g, float)
    n = np.asarray(data.nc_g, float) / np.sqrt(4 * np.pi)
    for f, phi in zip(data.f_j, data.phi_jg, strict=True):
        n = n + f * np.asarray(phi, float) ** 2 / (4 * np.pi)
    keep = r <= CUTOFF / Bohr
    return r[keep], np.clip(n[keep], 0.0, None)


def _grid_points(desc: Any) -> np.ndarray:
    """Cartesian coordinates (Bohr) of every point of the gathered grid, shape (n0, n1, n2, 3).

    Zero-boundary axes (non-periodic FD/LCAO grids) store points 1..size-1.
    """
    size = np.asarray(desc.size_c)
    offset = np.asarray(desc.zerobc_c, int)
    axes = [(np.arange(size[c] - offset[c]) + offset[c]) / size[c] for c in range(3)]
    frac = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return frac @ np.asarray(desc.cell_cv)


def _image_shifts(cell: np.ndarray, periodic: np.ndarray, reach: float) -> np.ndarray:
    """Cartesian lattice translations (Bohr) that can matter within ``reach`` Bohr."""
    width = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)  # plane spacings
    n = np.where(periodic, np.ceil(reach / width) + 1, 0).astype(int)
    grid = np.mgrid[-n[0]:n[0] + 1, -n[1]:n[1] + 1, -n[2]:n[2] + 1].reshape(3, -1).T
    return grid @ cell


def hirshfeld_charges(calc: Any, atoms: Atoms, indices: list[int] | None = None) -> np.ndarray:
    """Hirshfeld charges (e) of ``indices`` (default all) from a converged GPAW calculation.

    Parameters
    ----------
    calc
        The calculator that computed ``atoms`` (new-code GPAW, or a SumCalculator holding it).
    atoms
        The structure of that calculation.
    indices
        Atoms whose charges are wanted.
    """
    gpaw = gpaw_of(calc)
    if gpaw is None:
        raise TypeError(f"Hirshfeld charges need a GPAW calculator, got {type(calc).__name__}")
    dens = gpaw.dft.densities().all_electron_densities(grid_refinement=2)
    desc = dens.desc
    data = dens.gather(broadcast=True).data
    n_r = data[: min(len(data), 2)].sum(axis=0).ravel()  # spin-summed, e/Bohr^3
    free = {}
    for a, setup in enumerate(gpaw.dft.setups):
        free.setdefault(atoms[a].symbol, (*_free_atom_density(setup), float(setup.Z)))
    cell = np.asarray(desc.cell_cv)
    pos = atoms.get_scaled_positions(wrap=True) @ cell
    pts = _grid_points(desc).reshape(-1, 3)
    reach = CUTOFF / Bohr
    shifts = _image_shifts(cell, ~np.asarray(desc.zerobc_c, bool), 2 * reach)
    middle = cell.sum(axis=0) / 2  # every grid point lies within half_diag of it
    half_diag = max(np.linalg.norm(pts - middle, axis=1).max(), 0.0)
    out = []
    for a in (range(len(atoms)) if indices is None else indices):
        z_a = free[atoms[a].symbol][2]
        dmin = np.full(len(pts), np.inf)
        for t in shifts:
            if np.linalg.norm(pos[a] + t - middle) < reach + half_diag:
                dmin = np.minimum(dmin, np.linalg.norm(pts - pos[a] - t, axis=1))
        sel = dmin < reach
        p = pts[sel]
        own = np.zeros(len(p))
        total = np.zeros(len(p))
        for b in range(len(atoms)):
            r_b, n_b, _ = free[atoms[b].symbol]
            for t in shifts:
                centre = pos[b] + t
                if (np.linalg.norm(centre - pos[a]) > 2 * reach + 1e-9
                        or np.linalg.norm(centre - middle) > reach + half_diag):
                    continue
                rho = np.interp(np.linalg.norm(p - centre, axis=1), r_b, n_b, right=0.0)
                total += rho
                if b == a:
                    own += rho
        weight = np.divide(own, total, out=np.zeros_like(own), where=total > 1e-12)
        out.append(z_a - float((weight * n_r[sel]).sum() * desc.dv))
    return np.array(out)


def li_charge(atoms: Atoms, factory: Any, workdir: Path | str, *, index: int = -1,
              meter: Any = None) -> tuple[float | None, str]:
    """Hirshfeld charge (e) of atom ``index`` (the inserted Li) from one SCF at ``atoms``.

    Parameters
    ----------
    atoms
        Relaxed host + Li (initial magnetic moments as the site was computed).
    factory
        The site's GPAW factory (``factory(atoms) -> calculator``); anything else (the ML
        surrogate, test calculators) gives no charge.
    workdir
        Site directory; ``charge.json`` caches the charge for this geometry and factory. A
        failed SCF is not cached: a rerun tries again.
    meter
        Cost ledger of the run (``check()`` before the SCF, ``charge(seconds)`` after it,
        failed or not); None = unmetered. A cached charge costs nothing and is not checked.

    Returns
    -------
    (charge, note)
        charge None with the reason in ``note`` when it could not be computed.
    """

    from interphase_dft.schemas import settings_hash, structure_hash

    desc = getattr(factory, "description", None)
    if not isinstance(desc, dict) or desc.get("engine") != "gpaw":
        return None, "no charge: the site calculator is not GPAW"
    from interphase_dft.calc.checkpoint import write_json
    from interphase_dft.calc.factory import mesh_tag

    tag = mesh_tag(atoms, desc.get("dft"))
    key = f"{structure_hash(atoms)}:{settings_hash({**desc, **tag})}:{index}"
    path = Path(workdir) / "charge.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored.get("charge"), stored.get("note", METHOD)
    if meter is not None:
        meter.check()  # BudgetExceeded before the SCF, not after it
    work = atoms.copy()
    work.calc = factory(work, 0, "charge")  # its own GPAW log (label)
    t0 = time.perf_counter()
    try:
        work.get_potential_energy()
        charge: float | None = float(hirshfeld_charges(work.calc, work, [index % len(work)])[0])
        note = METHOD
    except Exception as exc:  # an SCF that fails here must not lose the site's energy
        charge, note = None, f"no charge: {type(exc).__name__}: {exc}"
        log.warning("Li charge of %s: %s", atoms.get_chemical_formula(), note)
    if meter is not None:
        meter.charge(time.perf_counter() - t0)
    if charge is not None:  # atomically on rank 0, all ranks synchronised
        write_json(path, {"key": key, "charge": charge, "note": note})
    return charge, note
