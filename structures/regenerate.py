"""Rewrite the reference structures in this folder: ``python structures/regenerate.py``."""

from __future__ import annotations

from pathlib import Path

from interphase_dft.builders.reference import write_reference_structures

if __name__ == "__main__":
    for path in write_reference_structures(Path(__file__).resolve().parent):
        print(path.name)
