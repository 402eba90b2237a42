"""The reference bulk structures of ``structures/``, built by :mod:`interphase_dft.phases`.

``python structures/regenerate.py`` rewrites the files; ``tests/test_phases.py`` checks that
the committed files match a fresh build (drift).
"""

from __future__ import annotations

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
