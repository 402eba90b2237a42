"""Command-line front end: ``interphase-dft COMMAND ...``.

Each command group lives in :mod:`interphase_dft.commands` and registers its own
sub-parsers; heavy imports (GPAW, pymatgen, FireWorks) happen inside the handlers so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from interphase_dft import __version__
from interphase_dft.errors import InterphaseError

COMMAND_MODULES = ("build", "calc", "cell", "fw", "frames", "refine", "report", "sensitivity",
                   "store")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interphase-dft",
        description=(
            "Li binding energies, the dE descriptor and Li migration barriers at the "
            "Al-anode / Li5.4PS4.4Cl1.6 interphase (GPAW + FireWorks)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"interphase-dft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"interphase_dft.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InterphaseError as exc:
        from interphase_dft.secrets import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.filename is None:  # not about a path: a real failure, keep its traceback
            raise
        # a path that changed after the arguments were checked (interphase_dft.validation)
        from interphase_dft.secrets import redact

        print(f"error: {redact(f'{exc.strerror or exc}: {exc.filename}')}; check the path "
              "and its permissions", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
