"""Analysis layer: the dE descriptor, statistics, figures, tables and the report.

Data flow: stored documents -> :mod:`.descriptor` (selection, dE, consistency checks) ->
:mod:`.stats` (barrier pairing), :mod:`.fits` (per-mode fits, :mod:`.power`) and
:mod:`.conclusion` (the report's only conclusion) -> :mod:`.plots` / :mod:`.tables` /
:mod:`.records` -> :mod:`.report`
(:func:`interphase_dft.analysis.report.write_report`; sections in :mod:`.sections`, the
missing list in :mod:`.missing`, Markdown/HTML rendering in :mod:`.blocks`).
Matplotlib is imported only by :mod:`.plots` (Agg backend, no pyplot state), which the
report imports when it draws the figures.
"""

from __future__ import annotations

from interphase_dft.analysis.descriptor import (
    ConsistencyIssue,
    DescriptorPair,
    consistency_check,
    delta_e,
    descriptor_pairs,
    excess_barrier,
    load_docs,
    lookup_pair,
    select_barriers,
    select_binding,
    select_bulk,
)
from interphase_dft.analysis.stats import (
    BarrierPoint,
    CorrelationResult,
    correlate,
    correlate_points,
    pair_barriers,
)

__all__ = [
    "BarrierPoint",
    "ConsistencyIssue",
    "CorrelationResult",
    "DescriptorPair",
    "consistency_check",
    "correlate",
    "correlate_points",
    "delta_e",
    "descriptor_pairs",
    "excess_barrier",
    "load_docs",
    "lookup_pair",
    "pair_barriers",
    "select_barriers",
    "select_binding",
    "select_bulk",
]

