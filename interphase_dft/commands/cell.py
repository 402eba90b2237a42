"""``interphase-dft cell``: the DFT cell relaxation bulk mode does for a phase, and storing
its result as the relaxed cell of the level (:mod:`interphase_dft.recipes.relaxed_cells`).

Examples::

    mpiexec -n 2 gpaw python -m interphase_dft.cli cell P2S5 --preset laptop \\
        --workdir runs/cell-P2S5-laptop --store
    interphase-dft cell Al --preset test --set relax.fmax=0.02

Rerunning the same command with the same ``--workdir`` resumes from the checkpoints. The
relaxation is bulk mode's own (``recipes.bulk_mode.bulk_host``: the same calculator, the same
start, and for a phase bulk mode cell-relaxes anyway the same settings and so the same
checkpoints), so a stored cell is exactly what bulk mode at that level would reach.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from interphase_dft import validation as v


def register(subparsers: Any) -> None:
    """Add the ``cell`` sub-command."""
    from interphase_dft.commands.calc import add_common

    p = subparsers.add_parser(
        "cell", help="relax a phase's conventional cell with DFT as bulk mode does (and store "
        "it as the relaxed cell of the level)")
    p.add_argument("phase", type=v.arg(v.host_phase))
    add_common(p, json=False)
    p.add_argument("--store", action="store_true",
                   help="store the relaxed cell for this level in "
                   "interphase_dft/data/relaxed_cells/ (bulk mode then starts from it)")
    p.set_defaults(func=run_cell)


def run_cell(args: argparse.Namespace) -> int:
    from ase.parallel import world

    from interphase_dft.commands.calc import progress_logging, settings_of
    from interphase_dft.phases import get_bulk, relax_cell_in_bulk, resolve_phase
    from interphase_dft.recipes.bulk_mode import bulk_host
    from interphase_dft.recipes.relaxed_cells import cell_factory, store_cell

    phase = resolve_phase(args.phase)
    settings = settings_of(args)
    if not relax_cell_in_bulk(phase, settings.relax.relax_cell_bulk):  # as bulk mode would
        settings = settings.with_overrides({"relax": {"relax_cell_bulk": True}})
    progress_logging(args)
    workdir = args.workdir or v.output_directory(
        Path("runs") / f"cell-{phase}-{settings.preset}", "work directory")
    relaxed = bulk_host(phase, settings, workdir, None)
    stored = None
    if args.store and world.rank == 0:
        stored = store_cell(relaxed, phase, get_bulk(phase), cell_factory(phase, settings),
                            settings)
    if world.rank == 0:
        print(format_cell(phase, relaxed, stored))
    return 0


def format_cell(phase: str, atoms: Any, stored: Path | None) -> str:
    """Readable summary: start, cell, volume, energy, largest force and stress."""
    from interphase_dft.phases import get_bulk

    built = get_bulk(phase)
    a, b, c, al, be, ga = atoms.cell.cellpar()
    forces = atoms.get_forces()
    lines = [f"Relaxed cell of {phase} (started from the {atoms.info.get('cell_start')}, "
             f"BFGS from the {atoms.info.get('cell_curvature')})",
             f"  a, b, c = {a:.4f}, {b:.4f}, {c:.4f} A; alpha, beta, gamma = {al:.3f}, "
             f"{be:.3f}, {ga:.3f} deg",
             f"  volume {atoms.get_volume():.2f} A^3 (built cell {built.get_volume():.2f}, "
             f"{100 * (atoms.get_volume() / built.get_volume() - 1):+.1f} %)",
             f"  energy {atoms.get_potential_energy():.6f} eV, largest force "
             f"{np.linalg.norm(forces, axis=1).max():.4f} eV/A"]
    if "stress" in atoms.calc.results:
        lines.append(f"  largest stress component "
                     f"{np.abs(atoms.calc.results['stress']).max() * 160.2177:.3f} GPa")
    if stored is not None:
        lines.append(f"  stored as {stored}")
    return "\n".join(lines)
