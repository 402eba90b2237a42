"""What the results' level leaves out against ``production``: the settings that differ, with
what each controls, and the barrier difference of every hop computed at both levels.

The rows are read from the stored documents and the presets (``calc/presets.py``); nothing
here is a hand-written verdict. Budgets are left out: they bound what a run may spend, not
the physics of a finished result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from interphase_dft.analysis.descriptor import doc_preset, select_barriers
from interphase_dft.analysis.tables import Row, fmt
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import CalcSettings, flatten
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc

#: the level the report compares with
REFERENCE = "production"
#: settings left out of the comparison (cost bounds, not physics)
EXCLUDED = ("budget.", "preset")


def meaning(key: str, model: type[BaseModel] = CalcSettings) -> str:
    """The description of the flattened setting ``key`` (``'structure.bulk_min_length'``)
    in the settings model, '' when it has none or is unknown."""
    *parents, last = key.split(".")
    for part in parents:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    field = model.model_fields.get(last)
    return (field.description or "") if field is not None else ""


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True,
                                                                     default=str)


def level_rows(docs: Iterable[BindingEnergyDoc | BarrierDoc],
               reference: str = REFERENCE) -> list[Row]:
    """One row per setting on which any of ``docs`` differs from the ``reference`` preset:
    the values of these results, the reference's, and what the setting controls."""
    ref = flatten(preset(reference).model_dump(mode="json"))
    seen: dict[str, set[str]] = {}
    for d in docs:
        if doc_preset(d) == reference:
            continue
        for key, value in flatten(d.settings).items():
            if key.startswith(EXCLUDED) or key not in ref or _same(value, ref[key]):
                continue
            seen.setdefault(key, set()).add(fmt(value))
    return [{"setting": k, "these_results": "; ".join(sorted(v)), reference: fmt(ref[k]),
             "controls": meaning(k)} for k, v in sorted(seen.items())]


def size_rows(barriers: Iterable[BarrierDoc], level: str | None,
              reference: str = REFERENCE) -> list[Row]:
    """Every hop (interface pair and mechanism, or bulk phase) with a document at ``level``
    (None: at any preset other than ``reference``) and at ``reference``: both forward
    barriers, their difference and both saddle statuses (a difference is a size-and-settings
    effect only when both are barriers with a saddle)."""
    docs = list(barriers)
    levels = ([level] if level is not None else
              sorted({p for d in docs if (p := doc_preset(d)) is not None}))
    there, _ = select_barriers(docs, reference)
    rows = []
    for name in levels:
        if name != reference:
            rows += _shifts(select_barriers(docs, name)[0], there, name, reference)
    return rows


def _shifts(here: dict[str, BarrierDoc], there: dict[str, BarrierDoc], level: str,
            reference: str) -> list[Row]:
    rows = []
    for label in sorted(set(here) & set(there)):
        a, b = here[label], there[label]
        diff = (b.barrier_forward - a.barrier_forward
                if a.barrier_forward is not None and b.barrier_forward is not None else None)
        rows.append({"hop": label, "level": level, "barrier_eV": a.barrier_forward,
                     f"barrier_{reference}_eV": b.barrier_forward,
                     "difference_eV": diff, "status": a.saddle,
                     f"status_{reference}": b.saddle,
                     "atoms": a.interface_meta.get("n_atoms"),
                     f"atoms_{reference}": b.interface_meta.get("n_atoms")})
    return rows


def sensitivity_rows(checks: Iterable[Mapping[str, Any]], chosen: Iterable[BarrierDoc]
                     ) -> list[Row]:
    """One row per settings-sensitivity check (:mod:`interphase_dft.recipes.sensitivity`):
    the hop, what changed, the forward barrier at both settings and the change of every
    metric, the force on the saddle image at the checked setting, the largest change of a
    reproduced energy relative to the initial image (the noise floor), whether every
    stationary image stayed stationary, and whether the checked document is one the report
    uses (``chosen``: the documents in its barrier tables)."""
    used = {d.uid for d in chosen}
    rows = []
    for c in checks:
        stored, checked, delta = c["stored"]["metrics"], c["checked"]["metrics"], c["delta"]
        saddle = checked.get("saddle_image")
        force = None if saddle is None else c["checked"]["fmax"].get(str(saddle))
        noise = [abs(r.get("relative_difference", r["difference"]))
                 for r in c["reproduced"].values()]
        rows.append({
            "hop": f"{c['interface']} ({c['mechanism']})", "check": c["check"],
            "barrier_eV": stored.get("barrier_forward"),
            "barrier_checked_eV": checked.get("barrier_forward"),
            "d_barrier_forward_eV": delta.get("barrier_forward"),
            "d_barrier_reverse_eV": delta.get("barrier_reverse"),
            "d_e_kra_eV": delta.get("e_kra"),
            "d_reaction_energy_eV": delta.get("reaction_energy"),
            "saddle_force_eV_A": force, "reproduced_within_eV": max(noise) if noise else None,
            "geometry_stationary": not c["moved"] and not checked.get("lost_saddles"),
            "document_in_report": c["uid"] in used})
    return rows
