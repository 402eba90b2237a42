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


def energetic_span(energies: Sequence[float]) -> float:
    """Largest rise E[j] - E[i] with i <= j along ``energies`` (0 for a downhill path), eV."""
    e = np.asarray(energies, float)
    if e.size == 0:
        raise ValueError("energetic_span of an empty path")
    lowest_so_far = np.minimum.accumulate(e)
    return float(np.max(e - lowest_so_far))


def span_points(energies: Sequence[float]) -> tuple[int, int]:
    """Indices (low, high) of the energetic span: ``E[high] - E[low]`` is the largest rise."""
    e = np.asarray(energies, float)
    lowest_at = [int(np.argmin(e[: j + 1])) for j in range(e.size)]
    high = int(np.argmax([e[j] - e[lowest_at[j]] for j in range(e.size)]))
    return lowest_at[high], high


def span_barriers(energies: Sequence[float]) -> tuple[float, float]:
    """(forward, reverse) energetic spans of a path given from its initial to its final state."""
    e = list(energies)
    return energetic_span(e), energetic_span(e[::-1])
