"""Descriptor dE, document selection and the consistency checks."""

from __future__ import annotations

import pytest

from interphase_dft.analysis.descriptor import (
    consistency_check,
    descriptor_pairs,
    load_docs,
    lookup_pair,
    select_barriers,
    select_binding,
)
from tests.test_analysis_factories import campaign_docs, make_barrier_doc, make_binding_doc


def test_delta_e_is_reference_independent_and_signed() -> None:
    sel = select_binding([make_binding_doc("LiAl", [-1.6, -1.3]),
                          make_binding_doc("LPSC", [-2.4, -2.0])])
    pair = lookup_pair(sel, "LiAl", "LPSC")
    assert pair is not None
    assert pair.delta_e_atom == pytest.approx(0.8)
    assert pair.delta_e_bcc == pytest.approx(0.8, abs=1e-12)
    assert pair.agree
    assert pair.abs_delta_e == pytest.approx(0.8)
    back = lookup_pair(sel, "LPSC", "LiAl")
    assert back is not None and back.delta_e == pytest.approx(-0.8)


def test_mixed_references_are_flagged() -> None:
    sel = select_binding([make_binding_doc("LiAl", [-1.6]),
                          make_binding_doc("LPSC", [-2.4], li_bcc=-1.80)])
    pair = lookup_pair(sel, "LiAl", "LPSC")
    assert pair is not None
    assert not pair.agree
    assert pair.reference_gap == pytest.approx(-0.10)


def test_all_pairs_per_mode() -> None:
    docs = [make_binding_doc(p, [e]) for p, e in (("Al", -1), ("LiAl", -1.5), ("LPSC", -2))]
    docs.append(make_binding_doc("Li2S", [-3.0], mode="bulk"))
    pairs = descriptor_pairs(select_binding(docs))
    assert {(p.phase_a, p.phase_b) for p in pairs} == {
        ("Al", "LPSC"), ("Al", "LiAl"), ("LPSC", "LiAl")}
    assert lookup_pair(select_binding(docs), "Al", "Li2S") is None


def test_selection_newest_and_preset() -> None:
    old = make_binding_doc("Al", [-1.0], created="2026-01-01T00:00:00+00:00")
    new = make_binding_doc("Al", [-1.1], created="2026-02-01T00:00:00+00:00")
    prod = make_binding_doc("Al", [-1.3], preset="production",
                            created="2026-03-01T00:00:00+00:00")
    sel = select_binding([old, new, prod])
    assert sel.chosen[("Al", "surface")].uid == prod.uid
    sel = select_binding([old, new, prod], preset="test")
    assert sel.chosen[("Al", "surface")].uid == new.uid
    assert [d.uid for d in sel.superseded] == [old.uid]
    assert [d.uid for d in sel.other_preset] == [prod.uid]


def test_barrier_selection_unordered_interfaces() -> None:
    a = make_barrier_doc("LiAl", "LPSC", 0.3)
    b = make_barrier_doc("LPSC", "LiAl", 0.4)
    chosen, superseded = select_barriers([a, b])
    assert len(chosen) == 1 and len(superseded) == 1


def test_a_later_unfinished_run_never_hides_a_finished_barrier() -> None:
    """An older certified barrier stays chosen against a newer over-budget or unconverged run
    of the same hop (a refinement in progress); a newer finished one replaces it; among
    unfinished runs only, the newest is chosen. Bulk hops follow the same rule."""
    from interphase_dft.analysis.descriptor import select_bulk
    from interphase_dft.barrier_status import OVER_BUDGET

    def at(doc, day, **update):
        return doc.model_copy(update={"created": f"2026-0{day}-01T00:00:00+00:00", **update})

    certified = at(make_barrier_doc("Li3P", "LiCl", 0.3), 1)
    assert certified.saddle == "saddle"
    unconverged = at(make_barrier_doc("Li3P", "LiCl", 0.2, converged=False), 2)
    over = at(make_barrier_doc("LiCl", "Li3P", 0.2), 3, saddle=OVER_BUDGET)
    chosen, superseded = select_barriers([over, certified, unconverged])
    assert [d.uid for d in chosen.values()] == [certified.uid]
    assert [d.uid for d in superseded] == [over.uid, unconverged.uid]
    newer = at(make_barrier_doc("Li3P", "LiCl", 0.25), 4)
    chosen, _ = select_barriers([over, certified, unconverged, newer])
    assert [d.uid for d in chosen.values()] == [newer.uid]
    chosen, _ = select_barriers([over, unconverged])
    assert [d.uid for d in chosen.values()] == [over.uid]
    bulk_old = at(make_barrier_doc("Li2S", "Li2S", 0.3), 1)
    bulk_new = at(make_barrier_doc("Li2S", "Li2S", 0.3, converged=False), 2)
    assert select_bulk([bulk_new, bulk_old])["Li2S"].uid == bulk_old.uid


def test_consistency_check_passes_good_and_catches_broken_doc() -> None:
    good = make_binding_doc("Al", [-1.2, -1.0])
    assert consistency_check([good]) == []
    broken = good.model_copy(deep=True)
    broken.sites[1].binding_energy_bcc += 0.05
    issues = consistency_check([broken])
    assert len(issues) == 1
    assert "site s1" in issues[0].item and "recompute" in issues[0].message
    wrong_low = good.model_copy(update={"binding_energy_atom": -1.0})
    assert any("lowest" in i.item for i in consistency_check([wrong_low]))


def test_load_docs_splits_kinds_and_reports_invalid() -> None:
    raw = campaign_docs()
    raw.append({"kind": "binding", "phase": "LiCl"})
    loaded = load_docs(raw)
    assert len(loaded.binding) == 4 and len(loaded.barriers) == 3
    assert len(loaded.invalid) == 1 and "LiCl" in loaded.invalid[0]


def test_consistency_check_flags_unknown_lowest_site() -> None:
    doc = make_binding_doc("Al", [-1.2]).model_copy(update={"lowest_site": "nope"})
    issues = consistency_check([doc])
    assert len(issues) == 1 and issues[0].expected is None and "nope" in issues[0].message


def test_delta_e_matrix_is_antisymmetric() -> None:
    from interphase_dft.analysis.tables import matrix_rows

    docs = [make_binding_doc(p, [e]) for p, e in (("Al", -1.0), ("LiAl", -1.5), ("LPSC", -2.0))]
    rows = {r["dE(row, col) eV"]: r for r in matrix_rows(descriptor_pairs(select_binding(docs)))}
    assert rows["Al"]["LPSC"] == pytest.approx(1.0)
    assert rows["LPSC"]["Al"] == pytest.approx(-1.0)
    assert rows["LiAl"]["LiAl"] == 0.0
