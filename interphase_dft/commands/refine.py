"""``interphase-dft refine``: a certified barrier certified again at another level, its minima
relaxed and its saddles searched again from the stored geometries
(:mod:`interphase_dft.recipes.refine`).

Examples::

    mpiexec -n 2 gpaw python -m interphase_dft.cli refine \\
        docs/results/Li3P-LiCl-vacancy-laptop.json --set structure.interface_density_mesh=true \\
        --workdir runs/refine-k221 --json Li3P-LiCl-vacancy-laptop-k221.json
    interphase-dft refine campaign-results.json --uid 3f2a --set dft.ecut=400

Rerunning the same command with the same ``--workdir`` resumes from the checkpoints.
"""

from __future__ import annotations

import argparse
from typing import Any

from interphase_dft.commands.stored_barrier import (
    add_arguments,
    read_barrier,
    workdir,
    write_result,
)
from interphase_dft.errors import CalculationError


def register(subparsers: Any) -> None:
    """Add the ``refine`` sub-command."""
    p = subparsers.add_parser(
        "refine", help="a certified barrier at changed DFT settings: its minima relaxed and "
        "its saddles searched again from the stored geometries")
    add_arguments(p, set_help="change one setting, e.g. --set dft.ecut=400 or --set "
                  "structure.interface_density_mesh=true (repeatable)",
                  json_help="write the refined barrier document to this JSON file ('-' = "
                  "print it)")
    p.set_defaults(func=run_refine)


def _surrogate(doc: Any, settings: Any) -> Any:
    """The surrogate whose Hessians start the relaxations and saddle searches."""
    from interphase_dft.calc.factory import surrogate_factory
    from interphase_dft.recipes.barrier import hop_options

    try:
        import chgnet.model  # noqa: F401
    except ImportError as exc:
        raise CalculationError("refine starts every relaxation and saddle search from the "
                               "CHGNet surrogate's Hessian, which is not importable: install "
                               "the ml extra (scripts/bootstrap.sh dev,ml)") from exc
    opts = hop_options(doc.phase_a, doc.phase_b, doc.mechanism)
    return surrogate_factory(settings, dispersion=opts.dispersion)


def run_refine(args: argparse.Namespace) -> int:
    from interphase_dft.commands.calc import parse_overrides, progress_logging
    from interphase_dft.recipes.refine import check_refinable, refine_barrier
    from interphase_dft.recipes.sensitivity import document_factory

    doc = read_barrier(args)
    overrides = parse_overrides(args.overrides)
    # bad input first: nothing is computed or written before these pass
    settings, _, _ = check_refinable(doc, overrides)
    work = workdir(args, "refine", doc.uid)
    factory_of = document_factory(doc, txt=str(work / "gpaw.txt"))
    hessian_factory = _surrogate(doc, settings)
    progress_logging(args)
    refined = refine_barrier(doc, overrides, factory_of, hessian_factory, work)
    return write_result(args, refined.model_dump(mode="json"), format_refined(doc, refined))


def format_refined(stored: Any, refined: Any) -> str:
    """Readable summary: status, the metrics at both levels, each point's record."""
    rec = refined.refinement or {}
    changes = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in rec.get("changes", {}).items())
    lines = [f"Refined {refined.interface} ({refined.mechanism}): {changes}",
             f"  status: {refined.saddle} ({refined.saddle_note})"]
    for key in ("barrier_forward", "barrier_reverse", "reaction_energy", "e_kra"):
        old, new = getattr(stored, key), getattr(refined, key)
        lines.append(f"  {key:<16} {_num(old)} -> {_num(new)} eV")
    for p in rec.get("points", []):
        lines.append(f"  image {p['stored_image']:>2} {p['role']:<8} force {p['fmax']:.3f} "
                     f"eV/A, {p['calls']} calls, moved {p['moved_A']:.3f} A, energy change "
                     f"{p['energy_change_eV']:+.4f} eV")
    lines += [f"  problem: {x}" for x in rec.get("problems", [])]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
