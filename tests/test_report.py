"""The report directory: complete on full data, honest on partial or empty data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interphase_dft.analysis.missing import doc_work_key, missing_results, no_saddle_notes
from interphase_dft.analysis.report import write_report
from interphase_dft.campaign import CampaignSpec, parse_spec
from interphase_dft.cli import main
from tests.test_analysis_factories import campaign_docs, make_barrier_doc, make_binding_doc

CAMPAIGN = parse_spec(
    "name: report-test\npreset: test\n"
    "binding: {phases: [Al, LiAl, LPSC, Li2S, LiCl, Li3P], modes: [surface]}\n"
    "barriers: [{a: LiAl, b: LPSC}, {a: LPSC, b: Li3P}, "
    "{a: Al, b: Li2S, mechanism: interstitial}]\n"
)


def stored(docs: list[Any], spec: CampaignSpec = CAMPAIGN, preset: str = "test") -> list[Any]:
    """``docs`` as the store returns them: a document of ``preset`` that answers one of the
    campaign's work items carries that item's key (as ``_key``, like documents stored before
    the ``work_key`` field existed)."""
    keys = {w.name: w.work_key for w in spec.results()}
    out = []
    for doc in docs:
        d = doc.model_dump() if hasattr(doc, "model_dump") else dict(doc)
        name = (f"barrier:{d.get('phase_a')}|{d.get('phase_b')}:{d.get('mechanism')}"
                if d.get("kind") == "barrier" else f"binding:{d.get('phase')}:{d.get('mode')}")
        if name in keys and d.get("settings", {}).get("preset") == preset:
            d["_key"] = keys[name]
        out.append(d)
    return out


def test_full_report(tmp_path: Path) -> None:
    docs = campaign_docs()
    docs += [make_barrier_doc("Al", "LPSC", 0.7).model_dump(),
             make_barrier_doc("Al", "LiAl", 0.2).model_dump()]
    index = write_report(stored(docs), tmp_path / "rep", campaign=CAMPAIGN, n_boot=200)
    rep = tmp_path / "rep"
    assert index == rep / "index.html"
    md = (rep / "index.md").read_text()
    html = index.read_text()
    for fig in ("binding_energies", "fits", "neb_LiAl__LPSC_vacancy", "descriptor_modes",
                "cell_LiAl__LPSC_vacancy", "cell_Al__LPSC_vacancy"):
        for ext in ("png", "svg"):
            assert (rep / "figures" / f"{fig}.{ext}").stat().st_size > 1000
        assert f"figures/{fig}.png" in md and f'src="figures/{fig}.png"' in html
    for name in ("binding_energies", "delta_e_pairs", "barriers", "bulk_barriers",
                 "barrier_status", "settings", "versions"):
        for ext in ("csv", "md", "json"):
            assert (rep / "tables" / f"{name}.{ext}").is_file()
    data = json.loads((rep / "results.json").read_text())
    fits = {f["y"]: f for f in data["fits"]}
    assert {f["mode"] for f in data["fits"]} == {"surface"}
    assert fits["forward barrier (eV)"]["n"] == 4  # LiAl|Li2S is not converged -> left out
    assert fits["forward barrier (eV)"]["pearson_r"] is not None
    assert fits["reaction energy (eV)"]["n"] == 5  # every DFT band has a reaction energy
    assert data["rules"]["fits"].startswith("one point per interface")
    assert "binding:LiCl:surface: not computed" in md
    assert "barrier:LPSC|Li3P:vacancy: not computed" in md
    assert "bulk_barrier:LiAl: not computed" in md  # every phase of a barrier gets one
    assert "barrier LiAl|Li2S (vacancy): not converged" in md
    assert "barrier:Al|Li2S" not in md  # stored under its work key
    assert "surface mode, forward barrier against |dE|: no significant correlation at n = 4" \
        in md and data["conclusion"] in md
    assert "too few points" not in md and "The data show" not in md  # one conclusion only
    assert "Consistency check" in md and "passed." in md
    rows = {r["interface"]: r for r in
            json.loads((rep / "tables" / "barriers.json").read_text())}
    assert {r["dft_force_calls"] for r in rows.values()} == {42}  # CHGNet calls not counted


def test_report_labels_single_points_on_surrogate_path(tmp_path: Path) -> None:
    docs = [*campaign_docs(), make_barrier_doc("Al", "LPSC", 0.7, stage="dft//ml").model_dump()]
    write_report(stored(docs), tmp_path / "rep", campaign=CAMPAIGN, n_boot=50)
    md = (tmp_path / "rep" / "index.md").read_text()
    assert "'dft//ml': DFT single points on the surrogate's path (not a DFT saddle" in md
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    barrier_fit = next(f for f in data["fits"] if f["y"] == "forward barrier (eV)")
    assert barrier_fit["n"] == 3  # LiAl|LPSC, Al|Li2S and the dft//ml Al|LPSC
    rows = json.loads((tmp_path / "rep" / "tables" / "barriers.json").read_text())
    row = next(r for r in rows if r["interface"] == "Al|LPSC")
    assert row["stage"] == "dft//ml" and row["used_in_fit"] and row["dft_force_calls"] == 42
    assert "has no saddle" not in md  # every factory profile has an interior maximum


def test_report_flags_a_path_without_saddle(tmp_path: Path) -> None:
    doc = make_barrier_doc("Al", "LPSC", 0.0, reaction=0.4)  # monotonic uphill
    write_report(stored([*campaign_docs(), doc]), tmp_path / "rep", campaign=CAMPAIGN,
                 n_boot=50)
    md = (tmp_path / "rep" / "index.md").read_text()
    assert ("barrier Al|LPSC (vacancy): no saddle: reaction energy (+0.400 eV); a reaction "
            "energy, not a barrier: left out of the barrier fit") in md
    rows = json.loads((tmp_path / "rep" / "tables" / "barriers.json").read_text())
    row = next(r for r in rows if r["interface"] == "Al|LPSC")
    assert row["saddle"] == "no saddle: reaction energy" and row["barrier_forward_eV"] is None
    assert row["reaction_energy_eV"] == pytest.approx(0.4) and not row["used_in_fit"]


def test_report_with_zero_docs(tmp_path: Path) -> None:
    index = write_report([], tmp_path / "empty")
    md = (tmp_path / "empty" / "index.md").read_text()
    assert "Nothing computed yet" in md
    assert "no correlation can be tested" in md
    assert index.is_file() and "<html" in index.read_text()
    assert json.loads((tmp_path / "empty" / "results.json").read_text())["fits"] == []


def test_report_lists_missing_instead_of_crashing(tmp_path: Path) -> None:
    docs = [make_binding_doc("Al", [-1.0]).model_dump(),
            make_binding_doc("LPSC", [-2.0], preset="production").model_dump(),
            {"kind": "barrier", "interface": "broken"},
            {"kind": "references", "li_atom": -0.2}]
    broken = make_binding_doc("Li2S", [-2.9, -2.5])
    broken.sites[1].binding_energy_bcc += 0.1
    docs.append(broken.model_dump())
    write_report(stored(docs), tmp_path / "part", campaign=CAMPAIGN)
    md = (tmp_path / "part" / "index.md").read_text()
    for phase in ("LiAl", "LPSC", "LiCl", "Li3P"):  # LPSC: only a production result
        assert f"binding:{phase}:surface: not computed" in md
    assert "binding:Al:surface" not in md and "binding:Li2S:surface" not in md
    assert "barrier:LiAl|LPSC:vacancy: not computed" in md
    assert "other presets ignored" in md
    assert "is not valid" in md
    assert "FAILED" in md and "site s1" in md
    assert "Nothing computed yet" not in md


def test_report_command_from_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "docs.json"
    src.write_text(json.dumps(campaign_docs(), default=str))
    lines = tmp_path / "more.jsonl"
    lines.write_text(make_barrier_doc("Al", "LPSC", 0.7).model_dump_json() + "\n")
    out = tmp_path / "cli"
    assert main(["report", "-o", str(out), "--from-json", str(src), str(lines),
                 "--barrier", "max"]) == 0
    assert "report written" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["rules"]["barrier"] == "max"
    assert len(data["barriers"]) == 4
    assert main(["report", "-o", str(out), "--from-json", str(tmp_path / "nope.json")]) == 1


def test_report_command_with_campaign_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: t\npreset: test\nbinding:\n  phases: [Al, LiCl]\n"
        "barriers:\n  - {a: Al, b: LiCl, mechanism: interstitial}\n"
    )
    src = tmp_path / "docs.json"
    (al,) = stored([make_binding_doc("Al", [-1.0])], parse_spec(spec.read_text()))
    src.write_text(json.dumps(al, default=str))
    out = tmp_path / "rep"
    assert main(["report", "-o", str(out), "--from-json", str(src),
                 "--campaign", str(spec)]) == 0
    md = (out / "index.md").read_text()
    assert "binding:LiCl:surface: not computed" in md
    assert "barrier:Al|LiCl:interstitial: not computed" in md
    assert "binding:Al:surface" not in md
    assert main(["report", "-o", str(out), "--from-json", str(src),
                 "--campaign", str(tmp_path / "nope.yaml")]) == 1


def test_report_survives_nan_results(tmp_path: Path) -> None:
    nan_barrier = make_barrier_doc("LiAl", "LPSC", 0.3).model_copy(
        update={"barrier_forward": float("nan")})
    nan_binding = make_binding_doc("Li2S", [-2.9]).model_copy(
        update={"binding_energy_atom": float("nan")})
    docs = [make_binding_doc("LiAl", [-1.6]), make_binding_doc("LPSC", [-2.4]),
            nan_binding, nan_barrier]
    write_report(docs, tmp_path / "nan", n_boot=100)
    data = json.loads((tmp_path / "nan" / "results.json").read_text())  # strict JSON
    assert data["points"][0]["used"] is False
    assert "not a finite number" in data["points"][0]["note"]
    assert any("Li2S" in m for m in data["consistency_issues"])


def test_report_command_reads_the_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mongomock_persistence")
    from interphase_dft.fw.launchpad import lp_session, open_launchpad, resolve_launchpad
    from interphase_dft.store import ResultStore

    monkeypatch.setenv("INTERPHASE_HOME", str(tmp_path))
    monkeypatch.delenv("INTERPHASE_LAUNCHPAD", raising=False)
    monkeypatch.setenv("MONGOMOCK_SERVERSTORE_FILE", "")  # restored after the test
    with lp_session(open_launchpad(resolve_launchpad(None))) as lp:
        store = ResultStore(lp.db)
        for doc in campaign_docs():
            store.insert({k: v for k, v in doc.items() if k != "_id"})
    out = tmp_path / "rep"
    assert main(["report", "-o", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert len(data["binding_energies"]) == 4 and len(data["barriers"]) == 3


def test_tables_state_spin_and_smearing_of_each_result() -> None:
    from interphase_dft.analysis.tables import barrier_rows, binding_rows

    pol = make_binding_doc("LiCl", [-0.5]).model_copy(update={"calculator": {
        "spin": "host + Li spin-polarised (1 mu_B seeded on Li), host spin-paired",
        "smearing": {"name": "fermi-dirac", "width": 0.1}}})
    old = make_binding_doc("Al", [-1.0]).model_copy(update={"calculator": {"spin": False}})
    rows = {r["phase"]: r for r in binding_rows([pol, old])}
    assert rows["LiCl"]["spin"] == "polarised" and rows["LiCl"]["smearing_eV"] == 0.1
    assert rows["Al"]["spin"] == "paired" and rows["Al"]["smearing_eV"] is None
    bar = make_barrier_doc("LiAl", "LiCl", 0.4).model_copy(
        update={"calculator": {"spin": "spin-paired"}})
    assert barrier_rows([bar])[0]["spin"] == "paired"
    cell = bar.model_copy(update={"thickness_a": 6.8, "thickness_b": 9.1, "strain": 0.021,
                                  "work_of_adhesion": 0.61})
    row = barrier_rows([cell])[0]  # the interface cell of the hop beside its barrier
    assert (row["thickness_a_A"], row["thickness_b_A"], row["strain"],
            row["work_of_adhesion_J_m2"]) == (6.8, 9.1, 0.021, 0.61)


def test_no_saddle_note_of_a_joined_path_names_the_hop() -> None:
    """LiAl|Li2S of the laptop campaign: hop 1 has a saddle, hop 2 rises to the final state."""
    e = [0.0, 0.49, -0.18, -0.23, 0.52]
    doc = make_barrier_doc("LiAl", "Li2S", 0.5).model_copy(update={
        "energies": e, "segments": [
            {"images": [0, 2], "barrier_forward": 0.49, "barrier_reverse": 0.67},
            {"images": [2, 4], "barrier_forward": 0.70, "barrier_reverse": 0.0}]})
    notes = no_saddle_notes(doc)
    assert notes == ["barrier LiAl|Li2S: hop 2 of 2 (images 2-4) has no saddle (its highest "
                     "image is an endpoint); its barriers 0.700 eV forward and 0.000 eV reverse "
                     "are endpoint energy differences (lower bounds)"]
    # the whole path's maximum is its final image, but the path as a whole is not flagged
    assert not any("the path has no saddle" in n for n in notes)
    # one hop with an interior maximum: nothing to say
    assert no_saddle_notes(make_barrier_doc("LiAl", "Li2S", 0.5)) == []


TWO_BINDINGS = "name: two\npreset: test\nbinding: {phases: [Al, LiCl], modes: [surface]}\n"


@pytest.mark.parametrize("field", ["work_key", "_key"])
def test_missing_comes_from_the_work_items(field: str) -> None:
    """Two binding items, one document stored with its key: the other item is missing."""
    spec = parse_spec(TWO_BINDINGS)
    al, licl = spec.results()
    assert (al.name, licl.name) == ("binding:Al:surface", "binding:LiCl:surface")
    doc = {**make_binding_doc("Al", [-1.0]).model_dump(), field: al.work_key}
    assert doc_work_key(doc) == al.work_key
    assert missing_results(spec, [doc]) == [
        f"binding:LiCl:surface: not computed (no result with work key {licl.work_key[:12]})"]
    assert missing_results(None, [doc]) == []
    # same phase and mode, other settings (another work key): still missing
    other = {**doc, field: "0" * 64}
    assert [m.split(":")[1] for m in missing_results(spec, [other])] == ["Al", "LiCl"]


def test_report_lists_the_item_without_a_document(tmp_path: Path) -> None:
    spec = parse_spec(TWO_BINDINGS)
    docs = stored([make_binding_doc("Al", [-1.0])], spec)
    index = write_report(docs, tmp_path / "rep", campaign=spec, n_boot=20)
    md = (tmp_path / "rep" / "index.md").read_text()
    assert "binding:LiCl:surface: not computed" in md and "binding:Al:surface" not in md
    assert "Preset: test." in md and "1 binding-energy and 0 barrier result(s) used" in md
    assert "binding:LiCl:surface" in index.read_text()
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["preset"] == "test"
    assert [m.split(":")[1] for m in data["missing_or_not_converged"]] == ["LiCl"]


def test_report_takes_only_a_campaign_spec(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="CampaignSpec"):
        write_report([], tmp_path / "rep", campaign={"preset": "test"})  # type: ignore[arg-type]


def test_report_lists_over_budget_and_bulk_hops_and_the_excess_barrier(tmp_path: Path) -> None:
    from interphase_dft.barrier_status import OVER_BUDGET

    over = make_barrier_doc("LiAl", "Li2S", 0.4).model_copy(update={
        "saddle": OVER_BUDGET, "barrier_forward": None, "barrier_reverse": None,
        "e_kra": None, "saddle_note": "stopped in stage dft_neb after 12 DFT calls",
        "budget": {"max_dft_calls": 12, "dft_calls": 12, "dft_hours": 0.5}})
    bulk = make_barrier_doc("LiAl", "LiAl", 0.2, reaction=0.0, mechanism="bulk-vacancy")
    docs = [*campaign_docs()[:4], make_barrier_doc("LiAl", "LPSC", 0.35), over, bulk]
    write_report(docs, tmp_path / "rep", n_boot=20)
    md = (tmp_path / "rep" / "index.md").read_text()
    assert "barrier LiAl|Li2S (vacancy): not certified: over budget" in md
    assert "raise budget.max_dft_calls" in md and "## Migration barriers" in md
    timed = over.model_copy(update={"budget": {**over.budget, "time_limit": "stopped"}})
    write_report([*docs[:-2], timed, bulk], tmp_path / "rep2", n_boot=20)
    md2 = (tmp_path / "rep2" / "index.md").read_text()
    assert "time limit stopped it: run the campaign again" in md2
    assert "raise budget.max_dft_calls" not in md2
    tables = tmp_path / "rep" / "tables"
    status = json.loads((tables / "barrier_status.json").read_text())
    assert [(r["hop"], r["dft_calls"]) for r in status] == [("LiAl|Li2S (vacancy)", 12)]
    rows = {r["interface"]: r for r in json.loads((tables / "barriers.json").read_text())}
    assert "LiAl|LiAl" not in rows  # bulk hops have their own table
    assert rows["LiAl|LPSC"]["bulk_barrier_eV"] == pytest.approx(bulk.barrier_forward)
    assert rows["LiAl|LPSC"]["excess_barrier_eV"] == pytest.approx(
        rows["LiAl|LPSC"]["barrier_forward_eV"] - bulk.barrier_forward)
    assert rows["LiAl|Li2S"]["barrier_forward_eV"] is None
    assert rows["LiAl|Li2S"]["excess_barrier_eV"] is None
    (b,) = json.loads((tables / "bulk_barriers.json").read_text())
    assert b["phase"] == "LiAl" and b["mechanism"] == "bulk-vacancy"
