"""The report's "Missing or not converged" list.

Expected results come from the campaign's own list of work items
(:meth:`interphase_dft.campaign.CampaignSpec.results`): an item is missing when no document
carries its ``work_key``. Nothing here re-derives the campaign's jobs. The other notes flag
results that exist but are not (fully) trustworthy: sites that did not converge and every
hop that is not a certified barrier (its ``saddle`` status: no saddle, not converged, over
budget with what was reached and how to continue, unrelaxed endpoints, ML-only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from interphase_dft.barrier_status import NO_SADDLE, OVER_BUDGET
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc

if TYPE_CHECKING:
    from interphase_dft.campaign import CampaignSpec


def doc_work_key(doc: Any) -> str | None:
    """The work key a result document belongs to (None if it has none).

    The top-level ``work_key`` field; documents stored before that field existed carry the
    key only as the store's ``_key``.
    """
    if isinstance(doc, Mapping):
        return doc.get("work_key") or doc.get("_key") or None
    return getattr(doc, "work_key", None) or None


def missing_results(campaign: CampaignSpec | None, docs: Iterable[Any]) -> list[str]:
    """One line per result work item of ``campaign`` whose key no document in ``docs`` has.

    The line starts with the item's name (``binding:Al:surface``,
    ``barrier:LiAl|LPSC:vacancy``, ``bulk_barrier:LiAl``) and gives the first 12 characters
    of its work key (the name of its run directory).
    """
    if campaign is None:
        return []
    have = {key for doc in docs if (key := doc_work_key(doc))}
    return [f"{item.name}: not computed (no result with work key {item.work_key[:12]})"
            for item in campaign.results() if item.work_key not in have]


def no_saddle_notes(doc: BarrierDoc) -> list[str]:
    """One line per hop whose highest image is one of its endpoints (no saddle on the band).

    A single hop is judged on the whole path. A path joined at an intermediate minimum is
    judged hop by hop (``doc.segments`` image ranges): its joined maximum may sit at an
    endpoint while each hop has its own saddle, or one hop may be monotonic.
    """
    e = list(doc.energies)
    if not e:
        return []
    if not doc.segments:
        if e.index(max(e)) not in (0, len(e) - 1):
            return []
        return [f"barrier {doc.interface}: the highest image is an endpoint, so the path has no "
                f"saddle; forward {max(e) - e[0]:.3f} eV and reverse "
                f"{max(e) - e[-1]:.3f} eV are endpoint energy differences (lower bounds "
                "of the hop's barriers)"]
    notes = []
    for k, seg in enumerate(doc.segments, 1):
        lo, hi = seg["images"]
        part = e[lo: hi + 1]
        if part.index(max(part)) in (0, len(part) - 1):
            notes.append(
                f"barrier {doc.interface}: hop {k} of {len(doc.segments)} (images {lo}-{hi}) "
                f"has no saddle (its highest image is an endpoint); its barriers "
                f"{seg['barrier_forward']:.3f} eV forward and {seg['barrier_reverse']:.3f} eV "
                "reverse are endpoint energy differences (lower bounds)")
    return notes


def status_note(doc: BarrierDoc) -> str | None:
    """One line for a hop that is not a certified barrier (None for a certified one)."""
    if doc.certified:
        return None
    what = f"{'bulk hop' if doc.phase_a == doc.phase_b else 'barrier'} {doc.interface} " \
        f"({doc.mechanism})"
    if doc.saddle == NO_SADDLE:
        energy = "-" if doc.reaction_energy is None else f"{doc.reaction_energy:+.3f} eV"
        return (f"{what}: {doc.saddle} ({energy}); a reaction energy, not a barrier: left out "
                "of the barrier fit")
    line = f"{what}: {doc.saddle}" + (f" - {doc.saddle_note}" if doc.saddle_note else "")
    if doc.saddle == OVER_BUDGET and (doc.budget or {}).get("time_limit"):
        line += ("; the run's time limit stopped it: run the campaign again (`make demo`, or "
                 "submit and run) and it continues from its checkpoints")
    elif doc.saddle == OVER_BUDGET:
        line += ("; to continue, raise budget.max_dft_calls / budget.max_dft_hours in the "
                 "spec's overrides and submit it again (same work key and run directory)")
    return line + "; left out of the barrier fit"


def quality_notes(binding: Sequence[BindingEnergyDoc], barriers: Sequence[BarrierDoc],
                  bulk: Sequence[BarrierDoc] = ()) -> list[str]:
    """Results that exist but are doubtful: binding runs stopped over budget, unconverged
    sites, hops that are not certified barriers, ML-only barriers."""
    notes: list[str] = []
    for d in binding:
        if not d.complete:
            notes.append(f"binding energy of {d.phase} ({d.mode}): {d.status} - "
                         f"{d.status_note}; left out of dE")
            continue
        bad = [s.label for s in d.sites if not s.converged]
        if bad:
            notes.append(f"binding energy of {d.phase} ({d.mode}): sites not converged: "
                         + ", ".join(bad))
    for d in [*barriers, *bulk]:
        note = status_note(d)
        if note:
            notes.append(note)
        if d.stage == "ml":
            notes.append(f"barrier {d.interface}: ML-only result, no DFT barrier yet")
        if d.saddle == NO_SADDLE and d.segments:  # which hop of a joined path has none
            notes += no_saddle_notes(d)
    return notes
