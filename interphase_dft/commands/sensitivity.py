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
import json
from pathlib import Path
from typing import Any

from interphase_dft import validation as v
from interphase_dft.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``sensitivity`` sub-command."""
    p = subparsers.add_parser(
        "sensitivity", help="a stored barrier's stationary images with changed DFT settings "
        "(single points at the stored geometries)")
    p.add_argument("result", help="JSON file with the barrier document (a list of documents "
                   "needs --uid)")
    p.add_argument("--uid", default=None, help="the document's uid (or its first characters)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="change one dft setting, e.g. --set dft.ecut=400 (repeatable)")
    p.add_argument("--vacuum", type=v.arg(v.non_negative, "--vacuum"), default=0.0,
                   help="Angstrom added to the cell along z (slab cells; default 0)")
    p.add_argument("--reproduce", default="auto", metavar="I,J",
                   help="images also recomputed with the stored settings (default 'auto': "
                   "the initial image and the highest saddle; '' none)")
    p.add_argument("--workdir", type=v.arg(v.output_directory, "work directory"), default=None,
                   help="checkpoint directory (default: runs/sensitivity-<uid>)")
    p.add_argument("--json", dest="json_file", type=v.arg(v.json_output), default=None,
                   help="write the check to this JSON file ('-' = print it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_sensitivity)


def pick_barrier(docs: list[dict[str, Any]], uid: str | None) -> Any:
    """The one barrier document of ``docs`` (with ``uid`` as a prefix of its uid)."""
    from interphase_dft.schemas import doc_from_dict

    found = [d for d in docs if d.get("kind") == "barrier"
             and (uid is None or str(d.get("uid", "")).startswith(uid))]
    if len(found) != 1:
        names = ", ".join(f"{d.get('interface')} {d.get('mechanism')} uid {d.get('uid')}"
                          for d in docs if d.get("kind") == "barrier") or "none"
        raise InputError(f"{len(found)} barrier documents match{f' uid {uid}' if uid else ''} "
                         f"(barrier documents in the file: {names}); pick one with --uid")
    return doc_from_dict(found[0])


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
    from ase.parallel import world

    from interphase_dft.commands.calc import parse_overrides, progress_logging
    from interphase_dft.commands.report import read_json_docs
    from interphase_dft.recipes.sensitivity import (
        changed_settings,
        check_vacuum,
        document_factory,
        format_sensitivity,
        settings_sensitivity,
        stationary_images,
        stored_settings,
    )

    doc = pick_barrier(read_json_docs([args.result]), args.uid)
    overrides, reproduce = parse_overrides(args.overrides), _images(args.reproduce)
    # bad input first: nothing is computed or written before these pass
    changed_settings(stored_settings(doc), overrides)
    check_vacuum(doc, args.vacuum)
    stationary_images(doc)
    workdir = args.workdir or v.output_directory(Path("runs") / f"sensitivity-{doc.uid[:8]}",
                                                 "work directory")
    factory_of = document_factory(doc, txt=str(workdir / "gpaw.txt"))
    progress_logging(args)
    result = settings_sensitivity(doc, overrides, factory_of, workdir, vacuum=args.vacuum,
                                  reproduce=reproduce)
    if world.rank == 0:
        text = json.dumps(result.to_dict(), indent=1)
        if args.json_file is not None and str(args.json_file) == "-":
            print(text)
            return 0
        if args.json_file is not None:
            Path(args.json_file).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json_file).write_text(text)
        print(format_sensitivity(result))
    return 0
