"""Result tables as rows of plain values, rendered to Markdown, HTML, CSV and JSON.

Energies in eV (``*_eV`` columns), forces in eV/Angstrom. Rows are lists of dicts with the
same keys, so every renderer shows the same columns.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from interphase_dft.analysis.descriptor import (
    DescriptorPair,
    barrier_label,
    doc_preset,
    excess_barrier,
)
from interphase_dft.analysis.records import reactive_text
from interphase_dft.analysis.stats import BarrierPoint
from interphase_dft.calc.settings import flatten
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc, settings_hash

Row = dict[str, Any]


def _surface_text(doc: BindingEnergyDoc) -> str:
    if doc.mode != "surface" or not doc.surface:
        return "-"
    miller = doc.surface.get("miller")
    hkl = "".join(str(i) for i in miller) if isinstance(miller, list | tuple) else str(miller)
    term = doc.surface.get("termination")
    return f"({hkl})" + (f" term. {term}" if term is not None else "")


def _settings_hash(doc: BindingEnergyDoc | BarrierDoc) -> str:
    return (doc.settings_hash or settings_hash(doc.settings))[:12]


def _spin_text(doc: BindingEnergyDoc | BarrierDoc) -> str:
    """'polarised' or 'paired' from ``calculator.spin`` (a text, or a flag in old documents)."""
    v = doc.calculator.get("spin")
    return ("polarised" if "polarised" in v else "paired") if isinstance(v, str) else (
        "polarised" if v else "paired")


def _smearing_width(doc: BindingEnergyDoc | BarrierDoc) -> float | None:
    smearing = doc.calculator.get("smearing")
    return smearing.get("width") if isinstance(smearing, dict) else None


def screening_text(doc: BindingEnergyDoc) -> str:
    """How the DFT sites were chosen: '-' (every site got DFT), 'k of n' (surrogate ranking),
    with 'upper bound: m ties without DFT' when the surrogate placed more sites within
    ``binding.screen_window`` of its lowest than got DFT."""
    rec = doc.screening
    if not rec:
        return "-"
    text = f"{rec.get('n_dft', '?')} of {rec.get('n_sites', '?')}"
    untested = rec.get("untested_ties") or 0
    if untested:
        text += (f"; upper bound: {untested} of {len(rec.get('window_sites') or [])} "
                 f"surrogate ties within {rec.get('window_eV')} eV without DFT")
    return text


def binding_rows(docs: Iterable[BindingEnergyDoc]) -> list[Row]:
    """One row per chosen binding document (lowest site under both references; 'screening':
    :func:`screening_text`)."""
    return [
        {
            "phase": d.phase, "mode": d.mode, "surface": _surface_text(d),
            "lowest_site": d.lowest_site, "E_b_atom_eV": d.binding_energy_atom,
            "E_b_bcc_eV": d.binding_energy_bcc, "n_sites": len(d.sites),
            "screening": screening_text(d),
            "converged": all(s.converged for s in d.sites), "preset": doc_preset(d) or "-",
            "geometry": d.calculator.get("geometry", "-"), "spin": _spin_text(d),
            "smearing_eV": _smearing_width(d),
            "settings_hash": _settings_hash(d), "uid": d.uid,
        }
        for d in sorted(docs, key=lambda d: (d.mode, d.phase))
    ]


def site_rows(docs: Iterable[BindingEnergyDoc]) -> list[Row]:
    """Every site of every chosen document, with the reactive flag ('REACTIVE': a reaction
    energy, left out of the descriptor; '-': not checked), the Li partial charge (e) and the
    magnetic moment on the Li (mu_B)."""
    return [
        {
            "phase": d.phase, "mode": d.mode, "site": s.label, "site_kind": s.site_kind,
            "E_b_atom_eV": s.binding_energy_atom, "E_b_bcc_eV": s.binding_energy_bcc,
            "li_displacement_A": s.li_displacement, "spin": s.spin,
            "magmom_muB": s.magnetic_moment, "reactive": reactive_text(s),
            "li_charge_e": s.li_charge, "li_moment_muB": s.li_magnetic_moment,
            "converged": s.converged, "lowest": "*" if s.label == d.lowest_site else "",
            "reaction_note": s.reaction_note or "-",
        }
        for d in sorted(docs, key=lambda d: (d.mode, d.phase))
        for s in d.sites
    ]


def pair_rows(pairs: Iterable[DescriptorPair]) -> list[Row]:
    """dE(A, B) under both references and their agreement."""
    return [
        {
            "phase_a": p.phase_a, "phase_b": p.phase_b, "mode": p.mode,
            "dE_atom_eV": p.delta_e_atom, "dE_bcc_eV": p.delta_e_bcc,
            "abs_dE_eV": p.abs_delta_e, "references_agree": p.agree,
        }
        for p in pairs
    ]


def matrix_rows(pairs: Sequence[DescriptorPair], mode: str = "surface") -> list[Row]:
    """Signed dE(row, column) in eV for one mode (atom reference; see ``pair_rows`` for bcc)."""
    chosen = [p for p in pairs if p.mode == mode]
    phases = sorted({p.phase_a for p in chosen} | {p.phase_b for p in chosen})
    value = {(p.phase_a, p.phase_b): p.delta_e_atom for p in chosen}
    value.update({(p.phase_b, p.phase_a): -p.delta_e_atom for p in chosen})
    return [{"dE(row, col) eV": a, **{b: (0.0 if a == b else value.get((a, b))) for b in phases}}
            for a in phases]


def dft_force_calls(doc: BarrierDoc) -> int | None:
    """DFT force calls of a barrier (endpoints, path check, NEB); surrogate calls end in _ml."""
    if doc.stage == "ml":
        return None
    return sum(v for k, v in doc.force_calls.items() if not k.endswith("_ml"))


def _largest(values: Mapping[str, float]) -> float | None:
    return max(values.values()) if values else None


def barrier_rows(
    docs: Iterable[BarrierDoc], points: Sequence[BarrierPoint] = (),
    bulk: Mapping[str, BarrierDoc] | None = None,
) -> list[Row]:
    """One row per chosen barrier document: its status, the barriers (certified only), the
    reaction energy (every band), the bulk barrier of the phase the Li leaves and the excess,
    |dE| and fit usage where paired."""
    by_hop = {(p.interface, p.mechanism): p for p in points}
    bulk = bulk or {}
    rows = []
    for d in docs:
        p = by_hop.get((d.interface, d.mechanism))
        ref = bulk.get(d.phase_a)
        rows.append({
            "interface": d.interface, "mechanism": d.mechanism, "saddle": d.saddle,
            "barrier_forward_eV": d.barrier_forward, "barrier_reverse_eV": d.barrier_reverse,
            "e_kra_eV": d.e_kra, "reaction_energy_eV": d.reaction_energy,
            "bulk_barrier_eV": ref.barrier_forward if ref is not None else None,
            "excess_barrier_eV": excess_barrier(d, bulk),
            "hop_distance_A": d.hop_distance, "endpoint_fmax_eV_A": _largest(d.endpoint_fmax),
            "saddle_fmax_eV_A": d.saddle_fmax, "stage": d.stage,
            "thickness_a_A": d.thickness_a, "thickness_b_A": d.thickness_b, "strain": d.strain,
            "work_of_adhesion_J_m2": d.work_of_adhesion,
            "dft_force_calls": dft_force_calls(d), "spin": _spin_text(d),
            "hops": max(1, len(d.segments)), "ml_barrier_eV": d.ml_barrier,
            "dE_eV": p.delta_e if p else None, "abs_dE_eV": p.abs_delta_e if p else None,
            "used_in_fit": p.used if p else False,
            "note": p.note if p else "no descriptor (binding energies missing)",
            "preset": doc_preset(d) or "-", "settings_hash": _settings_hash(d),
        })
    return rows


def bulk_rows(docs: Iterable[BarrierDoc]) -> list[Row]:
    """One row per bulk reference hop: status, barrier (certified only), cell."""
    return [
        {
            "phase": d.phase_a, "mechanism": d.mechanism, "saddle": d.saddle,
            "barrier_eV": d.barrier_forward, "e_kra_eV": d.e_kra,
            "reaction_energy_eV": d.reaction_energy, "hop_distance_A": d.hop_distance,
            "n_atoms": d.interface_meta.get("n_atoms"),
            "endpoint_fmax_eV_A": _largest(d.endpoint_fmax),
            "saddle_fmax_eV_A": d.saddle_fmax, "stage": d.stage,
            "dft_force_calls": dft_force_calls(d), "preset": doc_preset(d) or "-",
        }
        for d in sorted(docs, key=lambda d: d.phase_a)
    ]


def status_rows(docs: Iterable[BarrierDoc]) -> list[Row]:
    """Hops without a barrier: their status, why, and the budget used."""
    return [
        {"hop": barrier_label(d), "saddle": d.saddle, "why": d.saddle_note,
         "dft_calls": d.budget.get("dft_calls"), "max_dft_calls": d.budget.get("max_dft_calls"),
         "dft_hours": d.budget.get("dft_hours")}
        for d in docs if not d.certified
    ]


def settings_rows(docs: Iterable[BindingEnergyDoc | BarrierDoc]) -> list[Row]:
    """Distinct settings (flattened ``a.b`` keys), one column per settings hash."""
    distinct: dict[str, dict[str, Any]] = {}
    for d in docs:
        distinct.setdefault(_settings_hash(d), flatten(d.settings))
    keys = sorted({k for s in distinct.values() for k in s})
    return [{"setting": k, **{h: s.get(k, "-") for h, s in distinct.items()}} for k in keys]


def version_rows(docs: Iterable[BindingEnergyDoc | BarrierDoc]) -> list[Row]:
    """Package versions found in the documents; ``same_in_all`` is False (shown as a red
    'NO') when several versions mean mixed environments."""
    seen: dict[str, set[str]] = {}
    for d in docs:
        for pkg, ver in d.versions.items():
            seen.setdefault(pkg, set()).add(str(ver))
    return [{"package": k, "versions": ", ".join(sorted(v)), "same_in_all": len(v) == 1}
            for k, v in sorted(seen.items())]


def fmt(value: Any) -> str:
    """A table cell's text ('-' for None, 'yes'/'NO', 4 decimals, lists joined)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _columns(rows: Sequence[Row]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    return cols


def to_markdown(rows: Sequence[Row], empty: str = "(none)") -> str:
    """GitHub-flavoured Markdown table (floats to 4 decimals)."""
    if not rows:
        return f"_{empty}_\n"
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        cells = [fmt(row.get(c)).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_html(rows: Sequence[Row], empty: str = "(none)") -> str:
    """HTML ``<table>`` (floats to 4 decimals, cells escaped)."""
    if not rows:
        return f"<p><em>{html.escape(empty)}</em></p>\n"
    cols = _columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            text = fmt(row.get(c))
            cls = ' class="bad"' if text == "NO" or text.startswith("REACTIVE") else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + \
        "\n</tbody>\n</table>\n"


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    """CSV with full precision (empty file with no header when there are no rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=_columns(rows))
            writer.writeheader()
            writer.writerows(rows)
    return path


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, Mapping):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def write_json(data: Any, path: Path) -> Path:
    """Pretty, strict JSON: non-finite floats (a failed calculation's NaN) become ``null``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(data), indent=2, allow_nan=False, default=str))
    return path


def write_tables(tables: Mapping[str, Sequence[Row]], outdir: Path) -> dict[str, dict[str, Path]]:
    """Write each table as ``<name>.csv``, ``<name>.md`` and ``<name>.json`` in ``outdir``."""
    out: dict[str, dict[str, Path]] = {}
    for name, rows in tables.items():
        md = outdir / f"{name}.md"
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(to_markdown(rows))
        out[name] = {
            "csv": write_csv(rows, outdir / f"{name}.csv"),
            "md": md,
            "json": write_json(list(rows), outdir / f"{name}.json"),
        }
    return out
