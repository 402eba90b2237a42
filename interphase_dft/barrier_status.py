"""The certification statuses of a barrier document (``BarrierDoc.saddle``).

The rule that assigns them is :func:`interphase_dft.recipes.saddle.certify`; only ``SADDLE``
documents carry barriers and enter the fit. No imports: documents, recipes, analysis and the
FireWorks layer share these names.
"""

from __future__ import annotations

from typing import Any

#: ``BarrierDoc.saddle``: the band's maximum is an interior climbing image converged at the
#: barrier's level, between endpoints that are minima at that level (a barrier)
SADDLE = "saddle"
#: the band's highest image is an endpoint: its numbers are a reaction energy, not a barrier
NO_SADDLE = "no saddle: reaction energy"
#: interior maximum whose force is above neb.fmax at the barrier's level
NOT_CONVERGED = "not converged"
#: a cost ceiling (settings.budget) stopped the run; rerun with a larger budget to continue
OVER_BUDGET = "not certified: over budget"
#: an endpoint force above relax.fmax at the barrier's level
UNRELAXED = "not certified: unrelaxed endpoints"
#: surrogate energies only (engine 'ml'): never a DFT barrier
SURROGATE_ONLY = "not certified: surrogate only"
#: the band passes through another minimum and was not split there
NOT_ONE_HOP = "not certified: not one hop"
#: a document stored before the certification rule (schema version < 3)
LEGACY = "not certified: computed before the saddle rule"
SADDLE_STATUSES = (SADDLE, NO_SADDLE, NOT_CONVERGED, OVER_BUDGET, UNRELAXED, SURROGATE_ONLY,
                   NOT_ONE_HOP, LEGACY)


#: Mongo filter of the stored documents :func:`continuable` accepts
CONTINUABLE_QUERY: dict[str, Any] = {"saddle": OVER_BUDGET}


def continuable(doc: Any) -> bool:
    """True for a stored result a larger budget continues (a barrier over budget): it does
    not count as finished work (dict or document)."""
    saddle = doc.get("saddle") if isinstance(doc, dict) else getattr(doc, "saddle", None)
    return saddle == OVER_BUDGET
