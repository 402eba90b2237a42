"""Moved to :mod:`interphase_dft.recipes.references` (the Li references are a recipe).

This alias keeps ``from interphase_dft.calc.references import li_references`` working until
its last callers (``interphase_dft/fw/tasks.py``, ``benchmarks/bench_accuracy.py``) import
from the new module; delete it then.
"""

from __future__ import annotations

from interphase_dft.recipes.references import li_atom_box, li_bcc, li_references, references_key

__all__ = ["li_atom_box", "li_bcc", "li_references", "references_key"]
