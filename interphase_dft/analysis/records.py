"""Report tables of the descriptor modes and of what each binding document records.

* :func:`mode_rows`: the descriptor side by side, one row per phase, two columns per mode
  (``bulk``, ``surface``, ``interface`` where present): E_b(bcc) of the lowest non-reactive
  site (the value the fits use) and the reactive flag.
* :func:`record_rows`: per binding document the state it measures: slab convergence
  (layers, last change of E_b, converged), coverage, chosen termination with its surface
  energy, bulk supercell lengths, Li vacancy formation energy and charge state.
* :func:`coexistence_rows`: the Li chemical potential at Al/LiAl coexistence (bulk mode of
  Al) and the plateau voltage against experiment.

Energies in eV, lengths in Angstrom, areas in Angstrom^2, surface energies in J/m^2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from interphase_dft.schemas import BindingEnergyDoc, SiteResult, site_order

Row = dict[str, Any]
MODE_ORDER = ("bulk", "surface", "interface")


def reactive_text(site: SiteResult) -> str:
    """'REACTIVE' (the number is a reaction energy), 'no', or '-' (not checked)."""
    flag = getattr(site, "reactive", None)
    return "-" if flag is None else "REACTIVE" if flag else "no"


def descriptor_site(doc: BindingEnergyDoc, *, include_reactive: bool = False
                    ) -> SiteResult | None:
    """The first site in :func:`interphase_dft.schemas.site_order` that is not flagged
    reactive (the document's headline site unless that one is reactive); with
    ``include_reactive`` the first of all. None if all are reactive."""
    usable = [s for s in doc.sites if include_reactive or not s.reactive]
    if not usable:
        return None
    return min(usable, key=lambda s: site_order(s, include_reactive=include_reactive))


def _mode_key(mode: str) -> tuple[int, str]:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def mode_rows(docs: Iterable[BindingEnergyDoc]) -> list[Row]:
    """Phase x mode: E_b(bcc) (eV) of the descriptor site and the reactive flag per mode.

    The reactive column reads 'REACTIVE k/n' when k of the n sites broke a host bond (the
    lowest of them is then left out of the descriptor), 'no' when every site was checked
    and none reacted, '-' when the document predates the check.
    """
    docs = list(docs)
    modes = sorted({d.mode for d in docs}, key=_mode_key)
    by_key = {(d.phase, d.mode): d for d in docs}
    rows = []
    for phase in sorted({d.phase for d in docs}):
        row: Row = {"phase": phase}
        for mode in modes:
            doc = by_key.get((phase, mode))
            site = descriptor_site(doc) if doc is not None else None
            row[f"{mode} E_b_bcc_eV"] = site.binding_energy_bcc if site is not None else None
            row[f"{mode} reactive"] = "-" if doc is None else _reactive_count(doc)
        rows.append(row)
    return rows


def _reactive_count(doc: BindingEnergyDoc) -> str:
    flags = [getattr(s, "reactive", None) for s in doc.sites]
    if all(f is None for f in flags):
        return "-"
    k = sum(bool(f) for f in flags)
    return f"REACTIVE {k}/{len(flags)}" if k else "no"


def _slab(doc: BindingEnergyDoc) -> tuple[Any, Any, Any]:
    rec = doc.slab_convergence
    if not rec:
        return None, None, None
    layers = rec.get("layers") or []
    deltas = [d for d in rec.get("delta") or [] if d is not None]
    text = "->".join(str(n) for n in layers) if layers else None
    return text, (deltas[-1] if deltas else None), rec.get("converged")


def termination_text(doc: BindingEnergyDoc) -> str:
    """The chosen termination and its DFT surface energy, e.g. '(001) Cl, 0.35 J/m^2 (1 of 3)'."""
    rec = doc.termination or {}
    cands: Sequence[dict[str, Any]] = rec.get("candidates") or []
    chosen = rec.get("chosen")
    if not isinstance(chosen, int) or not 0 <= chosen < len(cands):
        return "-" if not doc.surface else _surface_name(doc.surface)
    row = cands[chosen]
    gamma = row.get("surface_energy_j_per_m2")
    energy = "no surface energy" if gamma is None else f"{gamma:.3f} J/m^2"
    return f"{_surface_name(row)}, {energy} (candidate {chosen} of {len(cands)})"


def _surface_name(rec: dict[str, Any]) -> str:
    miller = rec.get("miller")
    hkl = "".join(str(i) for i in miller) if isinstance(miller, list | tuple) else str(miller)
    term = rec.get("termination")
    return f"({hkl})" + (f" {term}" if term is not None else "")


def record_rows(docs: Iterable[BindingEnergyDoc]) -> list[Row]:
    """One row per binding document: the state it measures (see the module docstring)."""
    rows = []
    for d in sorted(docs, key=lambda d: (_mode_key(d.mode), d.phase)):
        layers, delta, converged = _slab(d)
        cov = d.coverage or {}
        cell = d.supercell or {}
        vac = d.vacancy or {}
        rows.append({
            "phase": d.phase, "mode": d.mode, "slab_layers": layers,
            "slab_dE_b_eV": delta, "slab_converged": converged,
            "area_per_li_A2": cov.get("area_per_li"),
            "min_area_per_li_A2": cov.get("min_area_per_li"),
            "termination": termination_text(d) if d.mode == "surface" else "-",
            "supercell_lengths_A": cell.get("lengths"),
            "supercell_min_length_A": cell.get("min_length"),
            "vacancy_formation_bcc_eV": vac.get("formation_energy_bcc"),
            "charge_state": d.charge_state,
        })
    return rows


def rule_texts(docs: Iterable[BindingEnergyDoc]) -> list[str]:
    """The distinct termination, slab-convergence and supercell rules and charge notes."""
    seen: dict[str, None] = {}
    for d in docs:
        for label, rec in (("termination", d.termination), ("slab thickness", d.slab_convergence),
                           ("bulk supercell", d.supercell)):
            if rec and rec.get("rule"):
                seen[f"{label} rule: {rec['rule']}"] = None
        if d.charge_note:
            seen[f"charge state ({d.mode}): {d.charge_note}"] = None
    return list(seen)


def coexistence_rows(docs: Iterable[BindingEnergyDoc]) -> list[Row]:
    """Li chemical potential at Al/LiAl coexistence (eV per Li) and plateau voltage (V)."""
    rows = []
    for d in docs:
        rec = d.coexistence
        if not rec:
            continue
        exp = rec.get("experiment_voltage")
        rows.append({
            "phase": d.phase, "mode": d.mode, "mu_Li_eV": rec.get("mu_li"),
            "voltage_V_vs_Li": rec.get("voltage"),
            "experiment_V": (f"{exp[0]:g} to {exp[1]:g}"
                             if isinstance(exp, list | tuple) and len(exp) == 2 else None),
            "geometry": rec.get("geometry"), "definition": rec.get("definition"),
        })
    return rows
