"""Fast checks of the benchmark tooling: the table in benchmarks/README.md and the quick modes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import update_readme  # noqa: E402


def _fake_results(outdir: Path) -> list[dict]:
    out = []
    for name, rows in (
        ("store", [("insert, total", 123.456789, "s"), ("documents", 10000, "docs")]),
        ("neb_cost", [("Al|Li2S: DFT call ratio", 4.321, "x"), ("goal met", False, ""),
                      ("Al|Li2S: barrier ML - plain", -0.01234, "eV")]),
        ("accuracy", [("Li cohesive energy", 1.6123, "eV"), ("tiny", 2.5e-5, "s")]),
    ):
        res = common.new_result(name, quick=False, settings={"x": 1})
        for q, v, u in rows:
            common.add_summary(res, q, v, u)
        res["status"] = "complete"
        res["notes"].append(f"note of {name}")
        common.write_result(res, outdir)
        out.append(res)
    return out


def test_table_reproduces_json_numbers(tmp_path: Path) -> None:
    written = _fake_results(tmp_path)
    loaded = common.load_results(tmp_path)
    assert [r["benchmark"] for r in loaded] == ["store", "accuracy", "neb_cost"]  # ORDER
    table = common.markdown_table(loaded)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + sum(len(r["summary"]) for r in written)
    for res in written:
        for row in res["summary"]:
            line = next(ln for ln in lines
                        if f"| {common.format_value(row['quantity'])} |" in ln)
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 6
            assert cells[0] == res["benchmark"]
            assert cells[2] == common.format_value(row["value"])
            if isinstance(row["value"], float):
                assert float(cells[2]) == pytest.approx(row["value"], rel=1e-3)
    assert "| 10000 |" in table and "| no |" in table and "| 123.5 |" in table
    assert "Al\\|Li2S" in table  # pipes in text are escaped, the row keeps 6 cells
    assert "2.500e-05" in table


def test_update_readme_replaces_only_the_block(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _fake_results(results)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\nbefore\n{common.TABLE_START}\nold table\n"
                      f"{common.TABLE_END}\nafter\n")
    block = update_readme.update(readme, results)
    text = readme.read_text()
    assert text.startswith("# Title\nbefore\n") and text.endswith(f"{common.TABLE_END}\nafter\n")
    assert "old table" not in text and block in text
    assert "note of neb_cost" in text
    update_readme.update(readme, results)  # idempotent
    assert readme.read_text() == text
    bad = tmp_path / "NOMARKERS.md"
    bad.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="bench:start"):
        update_readme.update(bad, results)
    assert update_readme.main(["--readme", str(bad), "--results", str(results)]) == 1


def test_table_goes_only_into_benchmarks_readme(tmp_path: Path, monkeypatch) -> None:
    import run_all

    results = tmp_path / "results"
    _fake_results(results)
    assert update_readme.BENCH_README == BENCH / "README.md"
    target = tmp_path / "bench_README.md"
    target.write_text(f"# Benchmarks\n{common.TABLE_START}\nold\n{common.TABLE_END}\n")
    monkeypatch.setattr(update_readme, "BENCH_README", target)
    top = BENCH.parent / "README.md"
    top_before = top.read_text()
    table = run_all.publish(results, to_readme=True)
    assert table in target.read_text() and "old" not in target.read_text()
    assert top.read_text() == top_before  # the top-level README links, it has no copy
    assert not (results / "README.md").exists()
    # quick runs, --out and --no-readme: the table goes next to their results only
    target_before = target.read_text()
    run_all.publish(results, to_readme=False)
    assert table in (results / "README.md").read_text()
    assert target.read_text() == target_before


def test_committed_readmes_have_the_markers_where_the_table_goes() -> None:
    bench = (BENCH / "README.md").read_text()
    assert bench.count(common.TABLE_START) == 1 and bench.count(common.TABLE_END) == 1
    assert bench.index(common.TABLE_START) < bench.index(common.TABLE_END)
    top = (BENCH.parent / "README.md").read_text()
    assert common.TABLE_START not in top and common.TABLE_END not in top


def test_store_benchmark_quick(tmp_path: Path) -> None:
    import bench_store

    out = tmp_path / "out"
    rc = bench_store.main(["--quick", "--n-docs", "300", "--out", str(out),
                           "--workdir", str(tmp_path / "work")])
    assert rc == 0
    data = json.loads((out / "store.json").read_text())
    assert data["benchmark"] == "store" and data["quick"] is True
    assert data["status"] == "complete"
    assert data["machine"]["nproc"] >= 1 and len(data["machine"]["load_average_at_start"]) == 3
    m = data["measurements"]
    assert m["n_docs"] == 300 and m["store"] == "embedded"
    q = m["queries"]
    assert q["find_kind_binding"]["result_size"] == 150
    assert q["find_kind_barrier"]["result_size"] == 150
    assert q["count"]["result_size"] == 300
    assert q["get_by_work_key"]["result_size"] == 1
    assert m["report_load"]["result_size"] == 300  # every stored document validates
    assert m["store_file_mb"] > 0.1
    quantities = {r["quantity"]: r["value"] for r in data["summary"]}
    assert quantities["documents inserted (ResultStore.insert)"] == 300
    assert quantities["insert, total"] == pytest.approx(m["insert_s"])
    table = common.markdown_table(common.load_results(out))
    assert common.format_value(m["insert_s"]) in table


def _run(calls: int, energies: list[float], converged: bool = True,
         stage: str = "dft", rounds: int | None = None) -> dict:
    return {"dft_total_calls_incl_endpoints": calls,
            "barrier_forward": max(energies) - energies[0], "converged": converged,
            "stage": stage, "energies": energies, "active_learning": {"rounds": rounds}}


def test_neb_cost_assessment_states_what_limits_the_saving() -> None:
    import bench_neb_cost

    saddle = [0.0, 0.12, 0.244, 0.12, 0.0]
    hop = {"runs": {"plain": _run(43, saddle),
                    "al": _run(8, [0.0, 0.12, 0.25, 0.12, 0.0], stage="dft-certified")}}
    a = bench_neb_cost.assess(hop, n_images=3)
    assert a["dft_call_ratio"] == pytest.approx(43 / 8) and a["goal_met"] is True
    assert a["barrier_difference_eV"] == pytest.approx(0.006) and a["limits"] == []
    # not certified, a band without a saddle, a small ratio and a large difference: all named
    downhill = [0.0, -0.02, -0.05, -0.07, -0.09]
    hop = {"runs": {"plain": _run(12, downhill),
                    "al": _run(15, [0.0, 0.1, 0.0, -0.05, -0.09], stage="not certified: x",
                               rounds=3),
                    "ml": _run(6, downhill, stage="ml+dft")}}
    a = bench_neb_cost.assess(hop, n_images=3)
    assert a["goal_met"] is False and a["dft_call_ratio"] == pytest.approx(0.8)
    assert a["ml_dft_call_ratio"] == pytest.approx(2.0)
    text = " ".join(a["limits"])
    assert "no saddle" in text and "3 rounds and 15 DFT calls" in text
    assert "ended 'not certified: x'" in text
    assert "barriers differ by +0.100 eV" in text and ">= 50 calls" in text


def test_campaign_wall_time_sums_the_demo_passes(tmp_path: Path) -> None:
    import bench_campaign

    (tmp_path / "demo.start").write_text("1000\n")
    (tmp_path / "demo.end").write_text("3020\n")
    (tmp_path / "demo2.start").write_text("5000")
    (tmp_path / "demo2.end").write_text("5500")
    (tmp_path / "demo3.start").write_text("9000")  # still running: no end file
    assert bench_campaign.demo_passes(tmp_path) == {"demo": 2020.0, "demo2": 500.0}
    assert bench_campaign.demo_passes(tmp_path / "missing") == {}


def test_neb_cost_puts_the_two_finishes_side_by_side() -> None:
    import bench_neb_cost

    result = {"summary": [], "notes": []}
    hop = {"hop": "Li2S:vacancy", "n_atoms": 23, "runs": {
        "finish-cineb": {**_run(20, [0.0, 0.12, 0.244, 0.12, 0.0], stage="dft-certified"),
                         "wall_s": 10.0},
        "finish-prfo": {**_run(9, [0.0, 0.12, 0.246, 0.12, 0.0], stage="dft-certified"),
                        "wall_s": 5.0}}}
    assert bench_neb_cost.summarise(result, [hop], 3, []) == 1  # complete: the finishes ran
    assert "assessment" not in hop  # plain/al not run: no goal verdict
    rows = {r["quantity"]: r["value"] for r in result["summary"]}
    assert rows["Li2S:vacancy: finish after one round, DFT calls of the whole loop "
                "ci-neb / prfo"] == "20 / 9"
    assert rows["Li2S:vacancy: finish, barrier prfo - ci-neb"] == pytest.approx(0.002)
    assert "finish-prfo" in bench_neb_cost.RUNS[-1][0]
    assert set(bench_neb_cost.FINISHES).isdisjoint(bench_neb_cost.DEFAULT_MODES)


def test_recorded_commands_carry_no_machine_paths() -> None:
    import common

    assert common.portable(str(common.REPO) + "/benchmarks/bench_store.py") == \
        "benchmarks/bench_store.py"
    assert common.portable("/scratch/me/out") == "<path>"
    assert common.portable('{"dft": {"kpt_density": 1.0}}') == '{"dft": {"kpt_density": 1.0}}'
    assert common.portable("Li2S:vacancy") == "Li2S:vacancy"
