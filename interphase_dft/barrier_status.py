"""The certification statuses of a barrier document (``BarrierDoc.saddle``), and which stored
results a larger budget continues (barriers and binding runs over budget).

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
#: an endpoint relaxed at the barrier's level left its site for the other endpoint's
#: (recipes.basin): that state is not a minimum and the Li crosses without a barrier
NOT_A_MINIMUM = "no saddle: endpoint not a minimum"
#: a document stored before the certification rule (schema version < 3)
LEGACY = "not certified: computed before the saddle rule"
SADDLE_STATUSES = (SADDLE, NO_SADDLE, NOT_A_MINIMUM, NOT_CONVERGED, OVER_BUDGET, UNRELAXED,
                   SURROGATE_ONLY, NOT_ONE_HOP, LEGACY)
#: a finished answer about the hop at its level: a barrier, a reaction energy, or a crossing
#: without a barrier; every other status is work left undone or doubtful
FINISHED_STATUSES = (SADDLE, NO_SADDLE, NOT_A_MINIMUM)


#: ``BindingEnergyDoc.status`` of a binding run a cost ceiling stopped (no binding energy)
BINDING_OVER_BUDGET = "not converged: over budget"

#: Mongo filter of the stored documents :func:`continuable` accepts
CONTINUABLE_QUERY: dict[str, Any] = {"$or": [
    {"saddle": OVER_BUDGET}, {"kind": "binding", "status": BINDING_OVER_BUDGET}]}


def _field(doc: Any, name: str) -> Any:
    return doc.get(name) if isinstance(doc, dict) else getattr(doc, name, None)


def continuable(doc: Any) -> bool:
    """True for a stored result a larger budget continues (a barrier or a binding run over
    budget): it does not count as finished work (dict or document)."""
    if _field(doc, "saddle") == OVER_BUDGET:
        return True
    return _field(doc, "kind") == "binding" and _field(doc, "status") == BINDING_OVER_BUDGET
