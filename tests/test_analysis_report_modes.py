"""The report with several descriptor modes: modes side by side, one fit row per mode and
quantity, the conclusion from the fits, reactive sites flagged, binding records and the
Al/LiAl coexistence potential, tables that scroll instead of overflowing the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interphase_dft.analysis.records import coexistence_rows, mode_rows, record_rows
from interphase_dft.analysis.report import write_report
from interphase_dft.analysis.tables import site_rows
from interphase_dft.schemas import BindingEnergyDoc
from tests.test_analysis_factories import make_barrier_doc, make_binding_doc

SURFACE = {"Al": [-1.2, -1.0], "LiAl": [-1.6, -1.4], "LPSC": [-2.4, -2.0], "Li2S": [-2.9]}
BULK = {"Al": [-0.9], "LiAl": [-1.1], "LPSC": [-2.8, -2.6], "Li2S": [-3.1, -2.2]}


def _reactive(doc: BindingEnergyDoc, label: str, note: str = "P-S 2.05 -> 2.61 A") -> None:
    for s in doc.sites:
        s.reactive = s.label == label
        s.reaction_note = note if s.reactive else ""
        s.li_charge, s.li_charge_note, s.li_magnetic_moment = 0.81, "Hirshfeld", 0.02


def two_mode_docs() -> list[Any]:
    """Four phases in bulk and surface mode, three certified interface hops (n = 3)."""
    docs: list[Any] = [make_binding_doc(p, e) for p, e in SURFACE.items()]
    docs += [make_binding_doc(p, e, mode="bulk") for p, e in BULK.items()]
    docs += [make_barrier_doc("LiAl", "LPSC", 0.35), make_barrier_doc("Al", "Li2S", 0.55),
             make_barrier_doc("LiAl", "Li2S", 0.48)]
    return docs


def _surface_records(doc: BindingEnergyDoc) -> BindingEnergyDoc:
    return doc.model_copy(update={
        "slab_convergence": {"rule": "add layers until E_b changes by < 0.05 eV",
                             "layers": [3, 5, 7], "delta": [None, 0.12, 0.03],
                             "converged": True},
        "coverage": {"li_per_cell": 1, "area_per_li": 64.2, "min_area_per_li": 60.0},
        "termination": {"rule": "lowest DFT surface energy", "chosen": 1, "candidates": [
            {"miller": [1, 0, 0], "termination": 0, "surface_energy_j_per_m2": 0.9},
            {"miller": [1, 1, 1], "termination": 0, "surface_energy_j_per_m2": 0.45}]},
        "charge_state": "neutral", "charge_note": "the Li electron stays in the slab"})


def test_report_shows_both_modes_and_a_fit_row_per_mode(tmp_path: Path) -> None:
    write_report(two_mode_docs(), tmp_path / "rep", n_boot=20)
    rep = tmp_path / "rep"
    md = (rep / "index.md").read_text()
    fits = json.loads((rep / "tables" / "fits.json").read_text())
    assert [(f["mode"], f["y"]) for f in fits] == [
        (m, y) for m in ("bulk", "surface")
        for y in ("reaction energy (eV)", "forward barrier (eV)", "E_KRA (eV)")]
    assert all(f["n"] == 3 and f["detectable_r"] is None for f in fits)
    assert {"r", "r_CI", "rho", "rho_CI", "detectable_r"} <= set(fits[0])
    # the conclusion comes from the fits: n = 3 cannot test a correlation, in every mode
    summary = md.split("## Summary")[1].split("##")[0]
    for mode in ("bulk", "surface"):
        assert (f"{mode} mode, forward barrier against |dE|: n = 3: no correlation can be "
                "tested; \u2265 14 pairs needed to detect r = 0.7 at 80 % power (11 more)."
                ) in summary
    assert "## Descriptor against the hop, per mode" in md
    assert "Barrier versus |dE|" not in md and "The data show" not in md
    modes = json.loads((rep / "tables" / "descriptor_modes.json").read_text())
    row = next(r for r in modes if r["phase"] == "LPSC")
    assert set(row) == {"phase", "bulk E_b_bcc_eV", "bulk reactive", "surface E_b_bcc_eV",
                        "surface reactive"}
    low = make_binding_doc("LPSC", [-2.8])  # bcc value of the lowest bulk site
    assert row["bulk E_b_bcc_eV"] == pytest.approx(low.binding_energy_bcc)
    assert row["bulk reactive"] == "-"  # documents before the reaction check
    data = json.loads((rep / "results.json").read_text())
    assert len(data["fits"]) == 6 and data["conclusion"] in md
    assert (rep / "figures" / "fits.png").stat().st_size > 1000


def test_reactive_sites_are_flagged_and_left_out_of_the_descriptor(tmp_path: Path) -> None:
    docs = two_mode_docs()
    li2s = next(d for d in docs if getattr(d, "phase", None) == "Li2S" and d.mode == "bulk")
    _reactive(li2s, "s0")  # the lowest site (-3.1 eV) broke a bond
    (row,) = [r for r in mode_rows([li2s])]
    assert row["bulk reactive"] == "REACTIVE 1/2"
    assert row["bulk E_b_bcc_eV"] == pytest.approx(li2s.sites[1].binding_energy_bcc)
    sites = {r["site"]: r for r in site_rows([li2s])}
    assert sites["s0"]["reactive"] == "REACTIVE" and sites["s1"]["reactive"] == "no"
    assert sites["s0"]["reaction_note"] == "P-S 2.05 -> 2.61 A"
    assert sites["s0"]["li_charge_e"] == 0.81 and sites["s0"]["li_moment_muB"] == 0.02
    write_report(docs, tmp_path / "rep", n_boot=20)
    html = (tmp_path / "rep" / "index.html").read_text()
    assert '<td class="bad">REACTIVE</td>' in html
    assert '<td class="bad">REACTIVE 1/2</td>' in html
    fit = next(f for f in json.loads((tmp_path / "rep" / "results.json").read_text())["fits"]
               if f["mode"] == "bulk" and f["y"] == "reaction energy (eV)")
    # LiAl|Li2S: dE(hop) = E_b(Li2S, non-reactive s1) - E_b(LiAl) = -2.2 - (-1.1)
    i = fit["interfaces"].index("LiAl|Li2S")
    assert fit["x_values"][i] == pytest.approx(-1.1)


def test_binding_records_and_coexistence_appear(tmp_path: Path) -> None:
    docs = two_mode_docs()
    docs[0] = _surface_records(docs[0])  # Al surface
    i = next(k for k, d in enumerate(docs) if d.phase == "Al" and d.mode == "bulk")
    docs[i] = docs[i].model_copy(update={
        "supercell": {"lengths": [11.4, 11.4, 11.4], "min_length": 10.0, "rule": "min 10 A"},
        "coexistence": {"mu_li": -0.31, "voltage": 0.31, "experiment_voltage": [0.3, 0.4],
                        "geometry": "cell-relaxed", "definition": "mu_Li = ..."}})
    rec = {(r["phase"], r["mode"]): r for r in record_rows(d for d in docs
                                                           if hasattr(d, "sites"))}
    al = rec[("Al", "surface")]
    assert al["slab_layers"] == "3->5->7" and al["slab_dE_b_eV"] == 0.03
    assert al["slab_converged"] is True and al["area_per_li_A2"] == 64.2
    assert al["termination"] == "(111) 0, 0.450 J/m^2 (candidate 1 of 2)"
    assert rec[("Al", "bulk")]["supercell_lengths_A"] == [11.4, 11.4, 11.4]
    assert coexistence_rows([docs[i]])[0]["experiment_V"] == "0.3 to 0.4"
    write_report(docs, tmp_path / "rep", n_boot=20)
    md = (tmp_path / "rep" / "index.md").read_text()
    assert "### Al/LiAl coexistence potential" in md and "| 0.3100 |" in md
    assert "termination rule: lowest DFT surface energy" in md
    assert "charge state (surface): the Li electron stays in the slab" in md


def test_no_coexistence_section_without_a_record(tmp_path: Path) -> None:
    write_report(two_mode_docs(), tmp_path / "rep", n_boot=20)
    assert "coexistence potential" not in (tmp_path / "rep" / "index.md").read_text()


def test_every_html_table_scrolls_inside_the_page(tmp_path: Path) -> None:
    index = write_report(two_mode_docs(), tmp_path / "rep", n_boot=20)
    html = index.read_text()
    n = html.count("<table>")
    assert n >= 8
    assert html.count('<div class="scroll" style="overflow-x:auto"><table>') == n
    assert "overflow-x:auto" in html.split("</style>")[0]
