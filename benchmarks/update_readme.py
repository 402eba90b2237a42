"""Write the benchmark table (from ``benchmarks/results/*.json``) into ``benchmarks/README.md``.

The table replaces whatever lies between the ``bench:start`` and ``bench:end`` HTML-comment
markers; nothing else in the file changes. ``benchmarks/README.md`` is the only file the
table is written into (``run_all.py`` calls :func:`update` for it); the top-level README
links there instead of carrying a copy.

Usage::

    python benchmarks/update_readme.py                     # benchmarks/README.md
    python benchmarks/update_readme.py --readme OTHER.md --results DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    RESULTS,
    load_results,
    markdown_table,
    notes_block,
    replace_block,
)


def render(results_dir: str | Path = RESULTS, *, notes: bool = True) -> str:
    """The Markdown block: the table and (optionally) every benchmark's notes."""
    results = load_results(results_dir)
    text = markdown_table(results)
    if notes and results:
        block = notes_block(results)
        if block:
            text += "\nNotes (limits, how to reproduce):\n\n" + block
    return text


#: the one file that carries the generated table
BENCH_README = BENCH_DIR / "README.md"


def update(readme: str | Path = BENCH_README, results_dir: str | Path = RESULTS, *,
           notes: bool = True) -> str:
    """Replace the marked block of ``readme`` with the table; return the block written.

    Raises
    ------
    FileNotFoundError
        ``readme`` does not exist.
    ValueError
        The markers are missing (the message says which to add).
    """
    path = Path(readme)
    block = render(results_dir, notes=notes)
    path.write_text(replace_block(path.read_text(), block))
    return block


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readme", default=str(BENCH_README),
                   help="Markdown file with the markers (default benchmarks/README.md)")
    p.add_argument("--results", default=str(RESULTS), help="directory of the result JSON")
    p.add_argument("--no-notes", action="store_true", help="table only")
    args = p.parse_args(argv)
    try:
        block = update(args.readme, args.results, notes=not args.no_notes)
    except (OSError, ValueError) as exc:
        print(f"update_readme: {args.readme} not updated: {exc}", file=sys.stderr)
        return 1
    print(block, end="")
    print(f"update_readme: table written into {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
