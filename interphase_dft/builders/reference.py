"""Regenerate the reference bulk structures in ``structures/`` from :mod:`interphase_dft.phases`.

``python structures/regenerate.py`` (or :func:`write_reference_structures`) rewrites every
file; ``tests/test_phases.py`` checks that the committed files match a fresh build (drift).
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from interphase_dft.phases import PHASE_NAMES, get_bulk

#: file stem -> (phase, variant)
REFERENCE_FILES: dict[str, tuple[str, str | None]] = {
    **{name: (name, None) for name in PHASE_NAMES},
    "LPSC_conventional": ("LPSC", "conventional"),
    "Li6PS5Cl_tetragonal": ("Li6PS5Cl", "tetragonal"),
}


def reference_structures() -> dict[str, Atoms]:
    """Fresh builds of every reference structure, keyed by file stem."""
    return {stem: get_bulk(ph, variant=var) for stem, (ph, var) in REFERENCE_FILES.items()}


def write_reference_structures(directory: str | Path) -> list[Path]:
    """Write ``<stem>.extxyz`` for every reference structure into ``directory``."""
    from ase.io import write

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, atoms in reference_structures().items():
        path = out_dir / f"{stem}.extxyz"
        tmp = path.with_suffix(".extxyz.tmp")
        write(tmp, atoms, format="extxyz")
        tmp.replace(path)
        paths.append(path)
    return paths
