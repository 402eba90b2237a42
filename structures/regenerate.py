"""Rewrite the reference structures in this folder: ``python structures/regenerate.py``."""

from __future__ import annotations

from pathlib import Path

from ase.io import write

from interphase_dft.builders.reference import reference_structures


def write_reference_structures(directory: Path) -> list[Path]:
    """Write ``<stem>.extxyz`` for every reference structure into ``directory`` (atomically)."""
    paths = []
    for stem, atoms in reference_structures().items():
        path = directory / f"{stem}.extxyz"
        tmp = path.with_suffix(".extxyz.tmp")
        write(tmp, atoms, format="extxyz")
        tmp.replace(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_reference_structures(Path(__file__).resolve().parent):
        print(written.name)
