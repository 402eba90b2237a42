"""Bounded binding energies: a binding run that reaches its cost ceiling ends 'not converged:
over budget' with what it reached and no binding energy, and the same call with a larger
budget continues from the checkpoints (stand-in calculators from test_recipes_binding_modes,
seconds)."""

from __future__ import annotations

import json

import pytest

from interphase_dft.analysis.descriptor import select_binding
from interphase_dft.analysis.missing import quality_notes
from interphase_dft.barrier_status import BINDING_OVER_BUDGET, CONTINUABLE_QUERY, continuable
from interphase_dft.calc.budget import LEDGER, BudgetExceeded, Ledger, has_room
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import BudgetSettings
from interphase_dft.campaign import work_key
from interphase_dft.commands.calc import format_binding
from interphase_dft.recipes.binding import binding_energy
from interphase_dft.schemas import BINDING_COMPLETE, BindingEnergyDoc, doc_from_dict
from tests.test_recipes_binding_modes import _REFS, _factory

STRUCTURE = {"structure": {"slab_max_layers": 8, "slab_max_atoms": 400}}


def _converging(planes: int) -> float:
    return -1.0 - 2.0 * 0.5**planes


def _surface(workdir, **budget):
    settings = preset("test", {**STRUCTURE, "budget": budget})
    return binding_energy("Al", settings, mode="surface", workdir=workdir,
                          calc_factory=_factory(_converging), references=_REFS)


def _calls(workdir) -> int:
    return json.loads((workdir / LEDGER).read_text())["dft_calls"]


def test_surface_over_budget_has_no_binding_energy_and_a_larger_budget_continues(tmp_path):
    full = _surface(tmp_path / "full")
    assert full.status == BINDING_COMPLETE and full.complete
    n_full = full.budget["dft_calls"]
    assert n_full == _calls(tmp_path / "full") > 12
    assert full.budget["max_dft_calls"] is None
    assert full.budget["ceilings"] == ["binding_max_dft_calls", "binding_max_dft_hours"]

    # termination 3 calls + first thickness (host and sites) finish; the second does not
    stopped = _surface(tmp_path / "w", binding_max_dft_calls=10)
    assert stopped.status == BINDING_OVER_BUDGET and not stopped.complete
    assert stopped.binding_energy_atom is None and stopped.binding_energy_bcc is None
    assert stopped.sites == [] and stopped.lowest_site is None and stopped.host_energy is None
    b = stopped.budget
    assert b["dft_calls"] == 10 == _calls(tmp_path / "w") and b["max_dft_calls"] == 10
    first = full.slab_convergence["layers"][0]
    assert [row["layers"] for row in b["reached"]["layers"]] == [first]
    assert b["reached"]["layers"][0]["binding_energy_bcc"] == pytest.approx(
        full.slab_convergence["binding_energy_bcc"][0])
    assert b["stage"].startswith(f"layers-{full.slab_convergence['layers'][1]}/")
    assert "termination/bulk/relax" in b["finished"] and f"layers-{first}/host/host" in \
        b["finished"]
    note = stopped.status_note
    assert "10 of binding_max_dft_calls=10" in note and f"{first} layers E_b(bcc)" in note
    assert "binding_max_dft_calls" in note and stopped.termination is not None
    assert any(BINDING_OVER_BUDGET in w for w in stopped.warnings)
    back = doc_from_dict(json.loads(stopped.model_dump_json()))
    assert isinstance(back, BindingEnergyDoc) and back.status == BINDING_OVER_BUDGET
    # the report leaves it out of dE and says why (no crash on its missing numbers)
    sel = select_binding([stopped])
    assert sel.chosen == {} and sel.partial == [stopped]
    notes = quality_notes([stopped], [])
    assert notes == [f"binding energy of Al (surface): {BINDING_OVER_BUDGET} - {note}; "
                     "left out of dE"]
    assert f"{BINDING_OVER_BUDGET}: {note}" in format_binding(stopped)

    # the same call with a larger budget reuses every finished run: no call is repeated
    done = _surface(tmp_path / "w", binding_max_dft_calls=100)
    assert done.complete and done.budget["max_dft_calls"] == 100
    assert done.budget["dft_calls"] == _calls(tmp_path / "w") == n_full
    assert done.binding_energy_bcc == pytest.approx(full.binding_energy_bcc)
    assert done.slab_convergence["layers"] == full.slab_convergence["layers"]


def test_bulk_over_budget_then_continued(tmp_path):
    settings = preset("test", {"budget": {"binding_max_dft_calls": 1}})
    kw = {"mode": "bulk", "workdir": tmp_path, "calc_factory": _factory(), "references": _REFS}
    stopped = binding_energy("LiCl", settings, **kw)
    assert stopped.status == BINDING_OVER_BUDGET and stopped.binding_energy_bcc is None
    assert stopped.budget["finished"] == ["host/host"] and stopped.budget["dft_calls"] == 1
    assert "interstitial sites not finished" in stopped.status_note
    assert stopped.supercell is not None and stopped.charge_state == "neutral"
    more = settings.with_overrides({"budget": {"binding_max_dft_calls": 50}})
    done = binding_energy("LiCl", more, **kw)
    assert done.complete and done.vacancy is not None
    assert done.binding_energy_bcc == pytest.approx(-2.0 + 1.6)
    assert done.budget["dft_calls"] == 3  # host, one interstitial site, one vacancy


def test_a_wall_time_ceiling_stops_at_the_next_call(tmp_path):
    doc = _surface(tmp_path, binding_max_dft_hours=1e-12)
    assert doc.status == BINDING_OVER_BUDGET and doc.budget["dft_calls"] == 1
    assert "binding_max_dft_hours" in doc.status_note
    assert doc.budget["stage"] == "termination/candidate-0"  # the bulk cell finished
    assert doc.budget["reached"] == {"termination_chosen": False, "layers": []}


def test_barrier_ceilings_do_not_bound_a_binding_energy(tmp_path):
    doc = _surface(tmp_path, max_dft_calls=1, max_dft_hours=1e-12)
    assert doc.complete and doc.budget["dft_calls"] > 1


def test_binding_ceilings_are_not_part_of_the_work_key_or_the_settings_hash():
    s = preset("laptop")
    big = s.with_overrides({"budget": {"binding_max_dft_calls": 400,
                                       "binding_max_dft_hours": 9.0}})
    assert big.budget.binding_max_dft_calls == 400 and "budget" not in big.physics()
    kw = {"phase": "LPSC", "mode": "surface"}
    assert work_key("binding", s, **kw) == work_key("binding", big, **kw)


def test_ledger_kinds_pick_their_ceilings(tmp_path):
    limits = BudgetSettings(max_dft_calls=1, binding_max_dft_calls=3)
    barrier = Ledger.open(tmp_path / "a", limits)
    binding = Ledger.open(tmp_path / "b", limits, kind="binding")
    barrier.charge(1.0)
    binding.charge(1.0)
    with pytest.raises(BudgetExceeded, match="1 of max_dft_calls=1"):
        barrier.check()
    binding.check()  # 1 of 3
    binding.charge(1.0)
    binding.charge(1.0)
    with pytest.raises(BudgetExceeded, match="3 of binding_max_dft_calls=3"):
        binding.check()
    assert binding.summary()["max_dft_calls"] == 3 and "ceilings" not in barrier.summary()
    used = binding.summary()
    assert not has_room(limits, used, "binding")
    assert has_room(limits.model_copy(update={"binding_max_dft_calls": 4}), used, "binding")
    assert has_room(BudgetSettings(), used, "binding")  # no ceiling
    with pytest.raises(ValueError, match="kind"):
        Ledger.open(tmp_path, limits, kind="band")


def test_a_stored_binding_document_without_status_is_complete():
    doc = _surface_dict()
    doc.pop("status")
    doc.pop("status_note")
    doc.pop("budget")
    old = doc_from_dict(doc)
    assert old.complete and old.binding_energy_bcc == pytest.approx(0.35)


def _surface_dict() -> dict:
    from ase.build import bulk

    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.schemas import SiteResult, StructureData

    atoms = bulk("Al")
    site = SiteResult(label="top", site_kind="top", position=[0.0, 0.0, 0.0], energy=-1.0,
                      binding_energy_atom=-1.25, binding_energy_bcc=0.35, converged=True,
                      final_structure=StructureData.from_atoms(atoms))
    return BindingEnergyDoc.from_run(
        preset("test"), RunLog(), calculator={}, input_structure=atoms, phase="Al",
        mode="surface", host_energy=-3.0, host_structure=StructureData.from_atoms(atoms),
        references=_REFS, sites=[site], lowest_site="top", binding_energy_atom=-1.25,
        binding_energy_bcc=0.35).model_dump(mode="json")


def test_a_binding_run_over_budget_is_continuable_and_a_complete_one_is_not():
    """A larger budget resubmits a stopped binding run (the campaign's query and the task's
    reuse rule agree); a complete one, or another kind with that status text, is reused."""
    import mongomock

    stopped = {"kind": "binding", "status": BINDING_OVER_BUDGET, "work_key": "a"}
    done = {"kind": "binding", "status": BINDING_COMPLETE, "work_key": "b"}
    other = {"kind": "barrier", "status": BINDING_OVER_BUDGET, "work_key": "c"}
    assert continuable(stopped) and not continuable(done) and not continuable(other)
    coll = mongomock.MongoClient().db.results
    coll.insert_many([stopped, done, other, {"kind": "barrier", "saddle": "not certified: "
                                             "over budget", "work_key": "d"}])
    assert {d["work_key"] for d in coll.find(CONTINUABLE_QUERY)} == {"a", "d"}


def test_resubmission_room_uses_the_ceilings_of_the_document_kind():
    """A stored over-budget binding document gets a new firework only when the binding
    ceilings grew; a barrier document is judged by the barrier ceilings."""
    from interphase_dft.fw.workflows import _has_room

    budget = BudgetSettings(max_dft_calls=100, binding_max_dft_calls=5)
    binding = {"kind": "binding", "budget": {"dft_calls": 5, "dft_hours": 0.1}}
    barrier = {"kind": "barrier", "budget": {"dft_calls": 5, "dft_hours": 0.1}}
    assert not _has_room(budget, binding) and _has_room(budget, barrier)
    assert _has_room(budget.model_copy(update={"binding_max_dft_calls": 6}), binding)


def test_the_runs_time_limit_stops_a_binding_run_and_the_next_run_continues_it(
        tmp_path, monkeypatch):
    from interphase_dft.timelimit import ENV_DEADLINE

    kw = {"mode": "bulk", "workdir": tmp_path, "calc_factory": _factory(), "references": _REFS}
    monkeypatch.setenv(ENV_DEADLINE, "1000")  # long past
    stopped = binding_energy("LiCl", preset("test"), **kw)
    assert stopped.status == BINDING_OVER_BUDGET and continuable(stopped.model_dump())
    assert "time limit" in stopped.status_note and "run the campaign again" in stopped.status_note
    assert "larger budget" not in stopped.status_note and stopped.budget["time_limit"]
    monkeypatch.delenv(ENV_DEADLINE)
    assert binding_energy("LiCl", preset("test"), **kw).complete
