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
                    "results", "report", "campaign"):
        assert command in out, f"'{command}' missing from --help"


def test_no_command_prints_help_and_fails():
    assert main([]) == 2
    assert make_parser().prog == "interphase-dft"
