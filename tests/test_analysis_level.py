"""The report's comparison of its level with production (issue 18: what the laptop level
leaves out, and how far a hop's barrier moves at production cell sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interphase_dft.analysis.level import level_rows, meaning, size_rows
from interphase_dft.analysis.report import write_report
from interphase_dft.calc.presets import preset
from tests.test_analysis_factories import make_barrier_doc


def _doc(a: str, b: str, barrier: float, level: str, n_atoms: int):
    doc = make_barrier_doc(a, b, barrier, preset=level)
    return doc.model_copy(update={"settings": preset(level).model_dump(mode="json"),
                                  "interface_meta": {"n_atoms": n_atoms}})


def test_the_level_table_lists_each_differing_setting_with_what_it_controls():
    rows = {r["setting"]: r for r in level_rows([_doc("LiAl", "Li2S", 0.4, "laptop", 74)])}
    assert rows["structure.interface_min_thickness"]["these_results"] == "6.0000"
    assert rows["structure.interface_min_thickness"]["production"] == "10.0000"
    assert "migration cells" in rows["structure.interface_min_thickness"]["controls"]
    assert rows["dft.ecut"]["production"] == "520.0000" and "cutoff" in rows["dft.ecut"]["controls"]
    assert not any(k.startswith("budget.") for k in rows) and "preset" not in rows
    assert "dft.xc" not in rows  # the same functional at both levels
    assert level_rows([_doc("LiAl", "Li2S", 0.4, "production", 300)]) == []
    assert meaning("no.such") == "" and meaning("dft.no_such") == ""


def test_the_same_hop_at_both_levels_gives_its_barrier_shift():
    docs = [_doc("LiAl", "Li2S", 0.40, "laptop", 74), _doc("LiAl", "Li2S", 0.46, "production", 290),
            _doc("LiAl", "LiCl", 0.30, "laptop", 68)]
    rows = size_rows(docs, "laptop")
    assert len(rows) == 1 and rows[0]["hop"].startswith("LiAl|Li2S")
    assert rows[0]["level"] == "laptop" and rows[0]["barrier_eV"] == docs[0].barrier_forward
    assert rows[0]["difference_eV"] == pytest.approx(0.06, abs=1e-6)
    assert rows[0]["atoms"] == 74 and rows[0]["atoms_production"] == 290
    assert size_rows(docs, "production") == []
    assert size_rows(docs, None) == rows  # every other preset: here only laptop
    bulk = [_doc("Li2S", "Li2S", 0.24, "test", 80), _doc("Li2S", "Li2S", 0.27, "production", 300)]
    both = size_rows(docs + bulk, None)
    assert [(r["hop"].split()[0], r["level"]) for r in both] == [("LiAl|Li2S", "laptop"),
                                                                ("Li2S|Li2S", "test")]


def test_the_report_has_the_level_section(tmp_path: Path):
    docs = [_doc("LiAl", "Li2S", 0.40, "laptop", 74)]
    index = write_report([d.model_dump(mode="json") for d in docs], tmp_path, preset="laptop")
    page = index.read_text()
    assert "What this level leaves out against production" in page
    assert "interface_min_thickness" in page and "no hop has been computed at both levels" in page
    assert (tmp_path / "tables" / "level.csv").is_file()
