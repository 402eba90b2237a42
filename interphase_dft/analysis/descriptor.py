"""The binding-energy descriptor dE(A, B) = E_b(A) - E_b(B) and its consistency checks.

All energies in eV. ``E_b`` is the binding energy of Li at the lowest-energy site of a phase
(``BindingEnergyDoc.binding_energy_atom`` / ``binding_energy_bcc``). dE does not depend on
the Li reference when both documents were computed with the same settings, so it is computed
under both references and the two values are compared (:data:`AGREEMENT_TOL`). A mismatch
means the two documents used different settings (different reference energies).

Selection rule (:data:`SELECTION_RULE`): documents are grouped by ``(phase, mode)``. When a
preset is requested, only documents whose ``settings['preset']`` equals it are kept. Among
the remaining documents of one group the newest (largest ``created`` timestamp, ties broken
by ``uid``) is used; the others are listed as superseded.

Barrier selection rule (:data:`BARRIER_SELECTION_RULE`): one document per unordered interface
and mechanism (per phase for bulk hops), the newest among those with a finished answer (a
barrier, a reaction energy or a crossing without a barrier,
:data:`~interphase_dft.barrier_status.FINISHED_STATUSES`), else the newest: a later run that
stopped over budget or unconverged (a refinement still in progress) never hides a finished
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ValidationError

from interphase_dft.barrier_status import FINISHED_STATUSES
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc, doc_from_dict

AGREEMENT_TOL = 1e-6  # eV; dE(atom) vs dE(bcc), and E_b(atom) - E_b(bcc) vs -E_coh
SELECTION_RULE = (
    "per (phase, mode): keep documents whose settings['preset'] matches the requested preset "
    "(if one is requested), then take the newest by 'created' (ties: larger uid)"
)
BARRIER_SELECTION_RULE = (
    "per interface and mechanism (per phase for bulk hops): the newest document with a "
    "finished answer (saddle, reaction energy, or crossing without a barrier), else the newest; "
    "an unfinished later run never hides a finished one"
)
MODE_RULE = (
    "a barrier interface A|B is paired with dE(A, B) in 'surface' mode when both phases have "
    "surface-mode results, otherwise in 'bulk' mode when both have bulk-mode results"
)


#: keys of a settings-sensitivity check (interphase_dft.recipes.sensitivity) the report reads
CHECK_KEYS = ("uid", "interface", "mechanism", "check", "stored.metrics", "checked.metrics",
              "checked.fmax", "delta", "reproduced", "moved")


def _has(data: Mapping[str, Any], dotted: str) -> bool:
    """True when the nested key ``'a.b'`` exists in ``data`` (every level a mapping)."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


@dataclass
class LoadedDocs:
    """Documents split by kind; ``invalid`` holds a message per unreadable input.

    ``barriers`` are interface hops, ``bulk`` the bulk reference hops (barrier documents whose
    mechanism starts with ``bulk``).
    """

    binding: list[BindingEnergyDoc] = field(default_factory=list)
    barriers: list[BarrierDoc] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    skipped: int = 0  # documents of other kinds (references, analysis, ...)
    bulk: list[BarrierDoc] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # kind 'sensitivity'


def load_docs(docs: Iterable[Mapping[str, Any] | BaseModel]) -> LoadedDocs:
    """Validate stored dicts/documents into schema objects, never raising.

    Parameters
    ----------
    docs
        Dicts as returned by the results store, or already-built pydantic documents.

    Returns
    -------
    LoadedDocs
        Binding and barrier documents; inputs that fail validation are described in
        ``invalid`` (so a report can list them instead of crashing). Documents of other
        kinds (``references``, ``analysis``, ...) are counted in ``skipped``; a dict without
        ``kind`` is read as a binding document.
    """
    out = LoadedDocs()
    for i, raw in enumerate(docs):
        kind = raw.get("kind") if isinstance(raw, Mapping) else getattr(raw, "kind", None)
        if kind == "sensitivity" and isinstance(raw, Mapping):
            lacking = [k for k in CHECK_KEYS if not _has(raw, k)]
            if lacking:
                out.invalid.append(f"document #{i} (sensitivity check) is not valid: it lacks "
                                   f"{', '.join(lacking)}; write it with interphase-dft "
                                   "sensitivity --json")
            else:
                out.checks.append(dict(raw))
            continue
        if kind not in (None, "binding", "barrier"):
            out.skipped += 1
            continue
        try:
            if isinstance(raw, BindingEnergyDoc | BarrierDoc):
                doc = raw
            elif isinstance(raw, BaseModel):
                doc = doc_from_dict(raw.model_dump())
            else:
                doc = doc_from_dict(dict(raw))
        except (ValidationError, TypeError, ValueError) as exc:
            name = raw.get("phase") or raw.get("interface") if isinstance(raw, Mapping) else None
            first = str(exc).splitlines()[0]
            out.invalid.append(f"document #{i} ({name or 'unknown'}) is not valid: {first}")
            continue
        if isinstance(doc, BarrierDoc):
            (out.bulk if is_bulk_hop(doc) else out.barriers).append(doc)
        else:
            out.binding.append(doc)
    return out


def is_bulk_hop(doc: BarrierDoc) -> bool:
    """True for a bulk reference hop (mechanism ``bulk-vacancy``/``bulk-interstitial``)."""
    return doc.mechanism.startswith("bulk")


def barrier_label(doc: BarrierDoc) -> str:
    """``'A|B (mechanism)'``: one hop of an interface."""
    return f"{doc.interface} ({doc.mechanism})"


def doc_preset(doc: BindingEnergyDoc | BarrierDoc) -> str | None:
    """The preset name stored in the document's settings (None if absent)."""
    value = doc.settings.get("preset")
    return str(value) if value is not None else None


def _newest(docs: list[Any]) -> tuple[Any, list[Any]]:
    ordered = sorted(docs, key=lambda d: (d.created, d.uid), reverse=True)
    return ordered[0], ordered[1:]


def _newest_finished(docs: list[BarrierDoc]) -> tuple[BarrierDoc, list[BarrierDoc]]:
    """:data:`BARRIER_SELECTION_RULE` within one group."""
    finished = [d for d in docs if d.saddle in FINISHED_STATUSES]
    best = _newest(finished or docs)[0]
    head, rest = _newest(docs)
    return best, [d for d in (head, *rest) if d is not best]


@dataclass
class Selection:
    """Chosen binding documents per ``(phase, mode)`` and the ones left out (``partial``: runs
    a cost ceiling stopped, which carry no binding energy)."""

    chosen: dict[tuple[str, str], BindingEnergyDoc]
    superseded: list[BindingEnergyDoc] = field(default_factory=list)
    other_preset: list[BindingEnergyDoc] = field(default_factory=list)
    partial: list[BindingEnergyDoc] = field(default_factory=list)
    rule: str = SELECTION_RULE


def select_binding(docs: Iterable[BindingEnergyDoc], preset: str | None = None) -> Selection:
    """Pick one binding document per ``(phase, mode)`` following :data:`SELECTION_RULE`.

    Parameters
    ----------
    docs
        Binding-energy documents (any phases, modes and presets).
    preset
        Keep only documents computed with this preset; ``None`` keeps all.
    """
    groups: dict[tuple[str, str], list[BindingEnergyDoc]] = {}
    other: list[BindingEnergyDoc] = []
    partial: list[BindingEnergyDoc] = []
    for doc in docs:
        if preset is not None and doc_preset(doc) != preset:
            other.append(doc)
            continue
        if not doc.complete:  # over budget: no binding energy to choose
            partial.append(doc)
            continue
        groups.setdefault((doc.phase, doc.mode), []).append(doc)
    sel = Selection(chosen={}, other_preset=other, partial=partial)
    for key, group in sorted(groups.items()):
        best, rest = _newest(group)
        sel.chosen[key] = best
        sel.superseded.extend(rest)
    return sel


def select_barriers(
    docs: Iterable[BarrierDoc], preset: str | None = None
) -> tuple[dict[str, BarrierDoc], list[BarrierDoc]]:
    """One barrier document per unordered interface and mechanism
    (:data:`BARRIER_SELECTION_RULE`).

    Returns
    -------
    (chosen, superseded)
        ``chosen`` maps :func:`barrier_label` of the chosen document to it.
    """
    groups: dict[tuple[frozenset[str], str], list[BarrierDoc]] = {}
    for doc in docs:
        if preset is not None and doc_preset(doc) != preset:
            continue
        groups.setdefault((frozenset((doc.phase_a, doc.phase_b)), doc.mechanism),
                          []).append(doc)
    chosen: dict[str, BarrierDoc] = {}
    superseded: list[BarrierDoc] = []
    for group in groups.values():
        best, rest = _newest_finished(group)
        chosen[barrier_label(best)] = best
        superseded.extend(rest)
    return dict(sorted(chosen.items())), superseded


def select_bulk(docs: Iterable[BarrierDoc], preset: str | None = None) -> dict[str, BarrierDoc]:
    """The bulk reference hop per phase (of ``preset`` when given;
    :data:`BARRIER_SELECTION_RULE`)."""
    groups: dict[str, list[BarrierDoc]] = {}
    for doc in docs:
        if preset is None or doc_preset(doc) == preset:
            groups.setdefault(doc.phase_a, []).append(doc)
    return {phase: _newest_finished(group)[0] for phase, group in sorted(groups.items())}


def excess_barrier(doc: BarrierDoc, bulk: Mapping[str, BarrierDoc]) -> float | None:
    """Interface barrier minus the bulk barrier of the phase the Li leaves (``phase_a``), eV;
    None unless both are certified."""
    ref = bulk.get(doc.phase_a)
    if not doc.certified or ref is None or not ref.certified:
        return None
    return doc.certified_barrier() - ref.certified_barrier("max")


@dataclass(frozen=True)
class DescriptorPair:
    """dE(A, B) = E_b(A) - E_b(B) in eV for the lowest sites, under both Li references."""

    phase_a: str
    phase_b: str
    mode: str
    delta_e_atom: float
    delta_e_bcc: float

    @property
    def delta_e(self) -> float:
        """Signed dE(A, B), eV (atom-reference value; equal to the bcc one when consistent)."""
        return self.delta_e_atom

    @property
    def abs_delta_e(self) -> float:
        """|dE|, eV: the quantity correlated with barriers (interfaces are unordered)."""
        return abs(self.delta_e_atom)

    @property
    def reference_gap(self) -> float:
        """dE(atom) - dE(bcc), eV; non-zero means mixed settings/references."""
        return self.delta_e_atom - self.delta_e_bcc

    @property
    def agree(self) -> bool:
        return abs(self.reference_gap) <= AGREEMENT_TOL

    def reversed(self) -> DescriptorPair:
        return DescriptorPair(
            self.phase_b, self.phase_a, self.mode, -self.delta_e_atom, -self.delta_e_bcc
        )


def delta_e(doc_a: BindingEnergyDoc, doc_b: BindingEnergyDoc) -> DescriptorPair:
    """dE(A, B) of two binding documents (same mode expected), eV."""
    return DescriptorPair(
        phase_a=doc_a.phase,
        phase_b=doc_b.phase,
        mode=doc_a.mode if doc_a.mode == doc_b.mode else f"{doc_a.mode}/{doc_b.mode}",
        delta_e_atom=doc_a.binding_energy_atom - doc_b.binding_energy_atom,
        delta_e_bcc=doc_a.binding_energy_bcc - doc_b.binding_energy_bcc,
    )


def descriptor_pairs(selection: Selection | Mapping[tuple[str, str], BindingEnergyDoc]) -> list[
    DescriptorPair
]:
    """dE for every unordered pair of phases within each mode (A before B alphabetically)."""
    chosen = selection.chosen if isinstance(selection, Selection) else selection
    by_mode: dict[str, list[BindingEnergyDoc]] = {}
    for (_, mode), doc in sorted(chosen.items()):
        by_mode.setdefault(mode, []).append(doc)
    pairs: list[DescriptorPair] = []
    for mode in sorted(by_mode):
        for a, b in combinations(by_mode[mode], 2):
            pairs.append(delta_e(a, b))
    return pairs


def lookup_pair(
    selection: Selection | Mapping[tuple[str, str], BindingEnergyDoc],
    phase_a: str,
    phase_b: str,
    mode: str | None = None,
) -> DescriptorPair | None:
    """Signed dE(phase_a, phase_b) following :data:`MODE_RULE` (None if a phase is missing)."""
    chosen = selection.chosen if isinstance(selection, Selection) else selection
    modes = [mode] if mode else ["surface", "bulk"]
    for m in modes:
        a, b = chosen.get((phase_a, m)), chosen.get((phase_b, m))
        if a is not None and b is not None:
            return delta_e(a, b)
    return None


@dataclass(frozen=True)
class ConsistencyIssue:
    """One failed check of a binding document; ``value`` and ``expected`` in eV."""

    phase: str
    mode: str
    uid: str
    item: str
    value: float
    expected: float | None

    @property
    def message(self) -> str:
        if self.expected is None:
            return (f"{self.phase} ({self.mode}, uid {self.uid[:8]}): {self.item}; recompute "
                    "or repair the document")
        return (
            f"{self.phase} ({self.mode}, uid {self.uid[:8]}): {self.item} = {self.value:.6f} eV "
            f"but expected {self.expected:.6f} eV (difference {self.value - self.expected:+.2e});"
            " recompute the document with one settings object for host, sites and references"
        )


def consistency_check(
    docs: Iterable[BindingEnergyDoc], tol: float = AGREEMENT_TOL
) -> list[ConsistencyIssue]:
    """Check the internal arithmetic of binding documents.

    For every site, E_b(atom) - E_b(bcc) must equal E(Li, bcc per atom) - E(Li atom)
    = -cohesive_energy (the atom reference lies higher by the cohesive energy, so E_b(atom)
    is more negative). Also checked: ``cohesive_energy == li_atom - li_bcc_per_atom`` and the
    document's lowest-site values equal those of the site named ``lowest_site``.

    Returns
    -------
    list[ConsistencyIssue]
        Empty when every document passes.
    """
    issues: list[ConsistencyIssue] = []
    for doc in docs:
        ref = doc.references

        def add(item: str, value: float, expected: float, doc: BindingEnergyDoc = doc) -> None:
            if not abs(value - expected) <= tol:  # NaN fails too
                issues.append(
                    ConsistencyIssue(doc.phase, doc.mode, doc.uid, item, value, expected)
                )

        add("cohesive_energy", ref.cohesive_energy, ref.li_atom - ref.li_bcc_per_atom)
        for site in doc.sites:
            add(
                f"site {site.label}: E_b(atom) - E_b(bcc)",
                site.binding_energy_atom - site.binding_energy_bcc,
                ref.li_bcc_per_atom - ref.li_atom,
            )
        lowest = [s for s in doc.sites if s.label == doc.lowest_site]
        if not lowest:
            item = f"lowest_site {doc.lowest_site!r} is not among the sites"
            issues.append(ConsistencyIssue(doc.phase, doc.mode, doc.uid, item,
                                           doc.binding_energy_atom, None))
        else:
            add("binding_energy_atom (lowest site)", doc.binding_energy_atom,
                lowest[0].binding_energy_atom)
            add("binding_energy_bcc (lowest site)", doc.binding_energy_bcc,
                lowest[0].binding_energy_bcc)
    return issues


def interface_phases(interface: str) -> tuple[str, str]:
    """Split ``'A|B'`` into ``('A', 'B')``."""
    parts = [p.strip() for p in interface.split("|")]
    if len(parts) != 2 or not all(parts):
        return (interface, "")
    return parts[0], parts[1]
