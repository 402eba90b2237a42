"""What the commands that recompute a stored barrier share (``sensitivity``, ``refine``): the
document argument, ``--uid``, ``--set``, ``--workdir``, ``--json`` and ``-q``; the pick of one
barrier document; the output (the JSON result to a file or standard output, a summary)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from interphase_dft import validation as v
from interphase_dft.errors import InputError


def add_arguments(p: argparse.ArgumentParser, *, set_help: str, json_help: str) -> None:
    """The arguments every stored-barrier command takes (module docstring)."""
    p.add_argument("result", help="JSON file with the barrier document (a list of documents "
                   "needs --uid)")
    p.add_argument("--uid", default=None, help="the document's uid (or its first characters)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help=set_help)
    p.add_argument("--workdir", type=v.arg(v.output_directory, "work directory"), default=None,
                   help="checkpoint directory (default: runs/<command>-<uid>)")
    p.add_argument("--json", dest="json_file", type=v.arg(v.json_output), default=None,
                   help=json_help)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


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


def read_barrier(args: argparse.Namespace) -> Any:
    """The barrier document ``args.result`` (and ``args.uid``) names."""
    from interphase_dft.commands.report import read_json_docs

    return pick_barrier(read_json_docs([args.result]), args.uid)


def workdir(args: argparse.Namespace, command: str, uid: str) -> Path:
    """``--workdir``, else ``runs/<command>-<first 8 characters of uid>``."""
    return args.workdir or v.output_directory(Path("runs") / f"{command}-{uid[:8]}",
                                              "work directory")


def write_result(args: argparse.Namespace, payload: dict[str, Any], summary: str) -> int:
    """On MPI rank 0: ``payload`` as JSON to ``--json`` ('-': printed instead of the summary),
    then ``summary`` printed. Returns the exit code 0."""
    from ase.parallel import world

    if world.rank != 0:
        return 0
    text = json.dumps(payload, indent=1)
    if args.json_file is not None and str(args.json_file) == "-":
        print(text)
        return 0
    if args.json_file is not None:  # whole or not at all: written aside, then renamed
        out = Path(args.json_file)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    print(summary)
    return 0
