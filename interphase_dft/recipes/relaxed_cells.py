"""DFT-relaxed conventional cells of the phase library, stored with the level that relaxed them.

Bulk mode relaxes the cell of a molecular crystal (P4S10) with DFT-D3 before it cuts the
supercell (:func:`interphase_dft.phases.relax_cell_in_bulk`). At the ``laptop`` level that
relaxation takes more than 25 single-rank DFT calls from the built cell, more than the main
job's time limit leaves it, and the surrogate gives no better start (CHGNet alone: +30 % in
volume; CHGNet + D3: -11 %; ``structures/README.md``). A relaxed cell is data: computed once
per level, it is stored here and every later relaxation at that level starts from it.

Rules
-----
- The **level** of a relaxed cell is the identity of the DFT calculator that relaxed it (its
  description and the cell's k-point mesh:
  :func:`~interphase_dft.recipes.saddle_search.reference_level`) and ``relax.fmax``; its
  tag is the first :data:`TAG_LENGTH` hex digits of that level's hash.
- A stored cell is ``interphase_dft/data/relaxed_cells/<phase>-<tag>.extxyz``; its ``info``
  carries the phase, the tag, ``relax_fmax``, the hash of the ``dft`` settings, the energy
  (eV), the largest force (eV/A) and the largest stress component (eV/A^3, when the result
  has a stress) at the end of its relaxation.
- The DFT calculator of a cell relaxation is :func:`cell_factory` (bulk mode and the cost
  model ask the same one).
- :func:`starting_cell` gives the stored cell of the level when there is one (same atoms as
  the built cell, in the same order), else the built cell; ``info['cell_start']`` says
  which. Bulk mode still relaxes from it to ``relax.fmax`` with stress: a stored cell is a
  starting point, never a result taken on trust (at its own level the relaxation converges
  at its first call).
- :func:`store_cell` writes a relaxed cell for its level (atomically; it refuses a cell whose
  atoms are not those of the built cell).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import InputError
from interphase_dft.schemas import settings_hash

#: hex digits of the level hash in a stored cell's file name
TAG_LENGTH = 12
#: where the stored cells live (package data)
DIRECTORY = Path(__file__).resolve().parent.parent / "data" / "relaxed_cells"


def cell_factory(name: str, settings: CalcSettings, txt: str | None = None) -> Any:
    """The DFT calculator factory that relaxes the conventional cell of phase ``name``."""
    from interphase_dft import phases
    from interphase_dft.calc.factory import factory_for

    info = phases.phase_info(name)
    return factory_for(settings, is_metal=info.is_metal, dispersion=info.needs_dispersion,
                       moving=True, txt=txt)


def has_stored_cell(name: str, settings: CalcSettings, directory: Path | None = None) -> bool:
    """True when a relaxed cell of ``name`` is stored for the level of ``settings``."""
    from interphase_dft import phases

    built = phases.get_bulk(name)
    tag = level_tag(cell_factory(name, settings), built, settings)
    return ((directory or DIRECTORY) / f"{name}-{tag}.extxyz").is_file()


def level_tag(factory: Any, atoms: Atoms, settings: CalcSettings) -> str:
    """The tag of the level at which ``factory`` relaxes ``atoms`` under ``settings``."""
    from interphase_dft.recipes.saddle_search import reference_level

    return settings_hash({"calculator": reference_level(factory, atoms),
                          "relax_fmax": settings.relax.fmax})[:TAG_LENGTH]


def _same_atoms(a: Atoms, b: Atoms) -> bool:
    return a.get_chemical_symbols() == b.get_chemical_symbols()


def starting_cell(name: str, built: Atoms, factory: Any, settings: CalcSettings,
                  directory: Path | None = None) -> Atoms:
    """The cell bulk mode relaxes for phase ``name``: the stored cell of this level, else
    ``built`` (a copy; ``info['cell_start']`` names the source)."""
    path = (directory or DIRECTORY) / f"{name}-{level_tag(factory, built, settings)}.extxyz"
    if path.is_file():
        stored = read(path)
        if not _same_atoms(stored, built):
            raise InputError(f"{path} does not hold the atoms of the built {name} cell; "
                             "remove it (bulk mode then relaxes the built cell)")
        stored.info = {**built.info, "cell_start": f"stored relaxed cell {path.name}"}
        stored.pbc = built.pbc
        return stored
    out = built.copy()
    out.info = {**built.info, "cell_start": "built cell"}
    return out


def store_cell(relaxed: Atoms, name: str, built: Atoms, factory: Any, settings: CalcSettings,
               directory: Path | None = None) -> Path:
    """Store ``relaxed`` (carrying its energy, forces and stress) as the relaxed cell of
    ``name`` at the level of ``factory`` and ``settings``; returns the file.

    Raises
    ------
    InputError : ``relaxed`` has other atoms than ``built`` or carries no results.
    """
    if not _same_atoms(relaxed, built):
        raise InputError(f"the relaxed {name} cell has other atoms than the built cell; store "
                         "the cell the bulk-mode relaxation of this phase returned")
    if relaxed.calc is None:
        raise InputError(f"the relaxed {name} cell carries no energy, forces or stress; store "
                         "the result of the relaxation (its last frame)")
    tag = level_tag(factory, built, settings)
    out = Atoms(relaxed.get_chemical_symbols(), positions=relaxed.positions,
                cell=relaxed.cell, pbc=relaxed.pbc)
    out.info = {"phase": name, "level_tag": tag, "relax_fmax": settings.relax.fmax,
                "dft_settings_hash": settings_hash(settings.dft.model_dump()),
                "energy_eV": float(relaxed.get_potential_energy()),
                "fmax_eV_A": float(np.linalg.norm(relaxed.get_forces(), axis=1).max())}
    if "stress" in relaxed.calc.results:
        out.info["stress_max_eV_A3"] = float(np.abs(relaxed.calc.results["stress"]).max())
    target = (directory or DIRECTORY)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}-{tag}.extxyz"
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, out, format="extxyz")
    os.replace(tmp, path)
    return path


__all__ = ["DIRECTORY", "TAG_LENGTH", "cell_factory", "has_stored_cell", "level_tag",
           "starting_cell", "store_cell"]
