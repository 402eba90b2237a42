from __future__ import annotations

import subprocess
import sys

from interphase_dft import __version__
from interphase_dft.cli import main, make_parser


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "interphase_dft.cli", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout
    for command in ("build", "binding", "barrier", "submit", "run", "status", "qlaunch",
                    "results", "report", "campaign", "sensitivity"):
        assert command in out, f"'{command}' missing from --help"


def test_no_command_prints_help_and_fails():
    assert main([]) == 2
    assert make_parser().prog == "interphase-dft"


OUTPUT_DESTS = {"output", "outdir", "launch_dir", "runs_dir", "report", "json_file", "workdir"}


def _actions(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, action


def test_every_output_path_is_checked_while_parsing():
    """Issue 16 item 5: output paths are validated by ``type=`` (interphase_dft.validation)
    before any work; ``binding``/``barrier``/``bulk-barrier`` are handed over (calc.py)."""
    unchecked = [(" ".join(path), action.dest) for path, action in _actions(make_parser())
                 if action.dest in OUTPUT_DESTS and action.type is None
                 and path[0] not in ("binding", "barrier", "bulk-barrier")]
    assert unchecked == []
