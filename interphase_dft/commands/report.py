"""``interphase-dft report``: write the analysis report from stored results.

Documents come from the results store in the LaunchPad database (default), or from JSON
files written with ``model_dump_json`` / exported from the store (``--from-json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from interphase_dft import validation as v
from interphase_dft.errors import InputError, StoreError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write the report (Markdown + HTML, figures, tables) from stored results",
        description=(
            "Collect binding-energy and barrier documents, compute the dE descriptor and its "
            "correlation with the barriers, and write a self-contained report directory."
        ),
    )
    p.add_argument("-o", "--outdir", default="report",
                   type=v.arg(v.output_directory, "report directory"),
                   help="report directory (default: report; made if missing, must be writable)")
    p.add_argument("--launchpad", default=None,
                   help="LaunchPad YAML (default: $INTERPHASE_LAUNCHPAD, else the embedded "
                        "store in ./.interphase)")
    p.add_argument("--campaign", default=None,
                   help="campaign spec YAML: its results without a stored document (by work "
                        "key) are listed as missing; its preset is the default")
    p.add_argument("--from-json", nargs="+", default=None, metavar="FILE",
                   help="read documents from JSON files (one document, a list, or JSON lines) "
                        "instead of the LaunchPad")
    p.add_argument("--preset", default=None,
                   help="only use results of this preset (default: the campaign's, else all)")
    p.add_argument("--barrier", choices=("forward", "max"), default="forward",
                   help="barrier correlated with |dE|: forward or max(forward, reverse)")
    p.add_argument("--title", default=None, help="report title")
    p.set_defaults(func=handler)


def read_json_docs(paths: list[str]) -> list[dict[str, Any]]:
    """Documents from JSON files: a single object, a list of objects, or one object per line."""
    docs: list[dict[str, Any]] = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"document file {path} does not exist; check the path")
        text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            try:
                data = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path} is neither JSON nor JSON lines ({exc}); export documents with "
                    "model_dump_json() or the store"
                ) from exc
        items = data if isinstance(data, list) else [data]
        bad = [i for i, d in enumerate(items) if not isinstance(d, dict)]
        if bad:
            raise InputError(f"{path}: entries {bad} are not JSON objects; each document must "
                             "be an object with a 'kind' field")
        docs.extend(items)
    return docs


def store_docs(launchpad: str | None) -> list[dict[str, Any]]:
    """All result documents in the results store of the LaunchPad database.

    ``launchpad`` is a ``my_launchpad.yaml``; ``None`` follows
    :func:`interphase_dft.fw.launchpad.resolve_launchpad` (``$INTERPHASE_LAUNCHPAD``, else the
    embedded store of the project).
    """
    from interphase_dft.fw.launchpad import lp_session, open_launchpad, resolve_launchpad
    from interphase_dft.store import ResultStore

    v.default_store(launchpad)
    config = resolve_launchpad(launchpad)
    if config.store_file is not None:
        v.store_directory(config.store_file.parent)
    lp = open_launchpad(config)
    try:
        with lp_session(lp) as session:
            return ResultStore(session.db).find()
    except StoreError:
        raise
    except Exception as exc:  # pymongo/mongomock errors
        raise StoreError(
            f"could not read results from the LaunchPad ({type(exc).__name__}); check "
            "--launchpad FILE or use --from-json FILE..."
        ) from exc


def handler(args: argparse.Namespace) -> int:
    from interphase_dft.analysis.report import DEFAULT_TITLE, write_report
    from interphase_dft.campaign import load_spec

    docs = read_json_docs(args.from_json) if args.from_json else store_docs(args.launchpad)
    campaign = load_spec(args.campaign) if args.campaign else None
    index = write_report(
        docs, Path(args.outdir), campaign=campaign, title=args.title or DEFAULT_TITLE,
        preset=args.preset, barrier=args.barrier,
    )
    print(f"report written: {index} (and {index.with_suffix('.md')}) from {len(docs)} document(s)")
    return 0
