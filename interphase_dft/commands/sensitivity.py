"""``interphase-dft sensitivity``: a stored barrier's stationary images recomputed with changed
electronic settings or a wider vacuum (:mod:`interphase_dft.recipes.sensitivity`).

Examples::

    mpiexec -n 2 gpaw python -m interphase_dft.cli sensitivity result.json \\
        --set dft.ecut=400 --workdir runs/ecut400 --json ecut400.json
    mpiexec -n 2 gpaw python -m interphase_dft.cli sensitivity \\
        docs/results/Li3P-LiCl-vacancy-laptop.json --vacuum 5
    interphase-dft sensitivity campaign-results.json --uid 3f2a --set dft.kpt_density=3

Rerunning the same command with the same ``--workdir`` resumes from the checkpoints.
"""

from __future__ import annotations

import argparse
from typing import Any

from interphase_dft import validation as v
from interphase_dft.commands.stored_barrier import (
    add_arguments,
    read_barrier,
    workdir,
    write_result,
)
from interphase_dft.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``sensitivity`` sub-command."""
    p = subparsers.add_parser(
        "sensitivity", help="a stored barrier's stationary images with changed DFT settings "
        "(single points at the stored geometries)")
    add_arguments(p, set_help="change one dft setting, e.g. --set dft.ecut=400 (repeatable)",
                  json_help="write the check to this JSON file ('-' = print it)")
    p.add_argument("--vacuum", type=v.arg(v.non_negative, "--vacuum"), default=0.0,
                   help="Angstrom added to the cell along z (slab cells; default 0)")
    p.add_argument("--reproduce", default="auto", metavar="I,J",
                   help="images also recomputed with the stored settings (default 'auto': "
                   "the initial image and the highest saddle; '' none)")
    p.set_defaults(func=run_sensitivity)


def _images(text: str) -> list[int] | None:
    """``--reproduce``: 'auto' (None), '' (none) or comma-separated image indices."""
    if text.strip() == "auto":
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--reproduce {text!r}: give image indices separated by commas "
                         "(e.g. 0,4), 'auto' or ''") from None


def run_sensitivity(args: argparse.Namespace) -> int:
    from interphase_dft.commands.calc import parse_overrides, progress_logging
    from interphase_dft.recipes.sensitivity import (
        changed_settings,
        check_vacuum,
        document_factory,
        format_sensitivity,
        is_interface,
        settings_sensitivity,
        stationary_images,
        stored_settings,
    )

    doc = read_barrier(args)
    overrides, reproduce = parse_overrides(args.overrides), _images(args.reproduce)
    # bad input first: nothing is computed or written before these pass
    changed_settings(stored_settings(doc), overrides, interface=is_interface(doc))
    check_vacuum(doc, args.vacuum)
    stationary_images(doc)
    work = workdir(args, "sensitivity", doc.uid)
    factory_of = document_factory(doc, txt=str(work / "gpaw.txt"))
    progress_logging(args)
    result = settings_sensitivity(doc, overrides, factory_of, work, vacuum=args.vacuum,
                                  reproduce=reproduce)
    return write_result(args, result.to_dict(), format_sensitivity(result))
