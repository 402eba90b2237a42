"""interphase-dft: Li binding energies and migration barriers at the Al-anode/LPSC interphase.

Data flows one way: campaign spec -> builders (:mod:`interphase_dft.phases`,
:mod:`interphase_dft.builders`) -> recipes (:mod:`interphase_dft.recipes`) -> documents
(:mod:`interphase_dft.schemas`) -> store -> analysis/report (:mod:`interphase_dft.analysis`).
Only :mod:`interphase_dft.fw` imports FireWorks.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
