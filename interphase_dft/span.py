"""Energetic span of a 1D energy profile (a NEB path), used by the recipes and the analysis.

The barrier of a path of more than one hop is its energetic span: the largest energy rise met
when walking the path in one direction, i.e. the highest saddle measured from the lowest
minimum *before* it (the 1D form of the energetic span model, Kozuch and Shaik, Acc. Chem.
Res. 44, 101 (2011)). For one hop whose lowest point before the saddle is the initial state
this is max(E) - E(initial), the usual NEB barrier. Energies in eV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def span_points(energies: Sequence[float]) -> tuple[int, int]:
    """Indices (low, high) of the energetic span: ``E[high] - E[low]`` is the largest rise."""
    e = np.asarray(energies, float)
    if e.size == 0:
        raise ValueError("energetic_span of an empty path")
    high = int(np.argmax(e - np.minimum.accumulate(e)))
    return int(np.argmin(e[: high + 1])), high


def energetic_span(energies: Sequence[float]) -> float:
    """Largest rise E[j] - E[i] with i <= j along ``energies`` (0 for a downhill path), eV."""
    low, high = span_points(energies)
    return float(energies[high] - energies[low])


def span_barriers(energies: Sequence[float]) -> tuple[float, float]:
    """(forward, reverse) energetic spans of a path given from its initial to its final state."""
    e = list(energies)
    return energetic_span(e), energetic_span(e[::-1])
