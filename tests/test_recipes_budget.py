"""Bounded stages: a band that reaches its cost ceiling ends 'over budget' with what it reached,
and the same call with a larger budget continues from the checkpoints (EMT, seconds)."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from interphase_dft.barrier_status import OVER_BUDGET, SADDLE, UNRELAXED, continuable
from interphase_dft.calc.budget import LEDGER, BudgetExceeded, Ledger, MeteredFactory
from interphase_dft.calc.presets import LAPTOP_BARRIER_CALLS, preset
from interphase_dft.calc.settings import BudgetSettings
from interphase_dft.campaign import work_key
from interphase_dft.recipes.barrier import neb_barrier
from tests.test_recipes_barrier import al_adatom_hop, emt_factory

FMAX = {"neb": {"fmax": 0.05}}


def run(workdir, **budget):
    settings = preset("test", {**FMAX, "budget": budget})
    initial, final = al_adatom_hop()
    return neb_barrier(initial, final, settings, workdir, calc_factory=emt_factory,
                       phase_a="Al", phase_b="Al")


def test_a_band_over_budget_stops_and_a_larger_budget_continues_it(tmp_path):
    full = run(tmp_path / "full", max_dft_calls=None)
    assert full.saddle == SADDLE and full.budget["dft_calls"] > 16

    stopped = run(tmp_path / "w", max_dft_calls=16)
    assert stopped.saddle == OVER_BUDGET and continuable(stopped.model_dump())
    assert stopped.barrier_forward is None and stopped.e_kra is None
    b = stopped.budget
    assert b["dft_calls"] == 16 and b["max_dft_calls"] == 16
    assert b["stage"] == "dft_neb"  # the endpoints (10 calls) finished, the band did not
    band = b["unfinished"]["neb/neb"]
    assert band["kind"] == "neb" and band["steps"] >= 1 and band["fmax"] > 0.05
    assert len(stopped.energies) == 5 and stopped.energies[0] == 0.0  # the last band reached
    assert "16 of max_dft_calls=16" in stopped.saddle_note and "neb/neb: neb" in stopped.saddle_note
    assert json.loads((tmp_path / "w" / LEDGER).read_text())["dft_calls"] == 16

    # the same call with a larger budget continues: endpoints and band steps are reused
    done = run(tmp_path / "w", max_dft_calls=100)
    assert done.saddle == SADDLE and done.budget["max_dft_calls"] == 100
    new_calls = done.budget["dft_calls"] - 16
    assert 0 < new_calls < full.budget["dft_calls"] - 10  # neither endpoints nor band redone
    assert done.barrier_forward == pytest.approx(full.barrier_forward, abs=0.02)
    # the document is the same work: same input hash and settings hash
    assert done.input_hash == stopped.input_hash == full.input_hash


def test_a_stop_between_runs_names_the_finished_runs(tmp_path):
    # both endpoints relaxed in 10 calls; the band's first call is the one refused
    doc = run(tmp_path, max_dft_calls=10)
    assert doc.saddle == OVER_BUDGET and doc.budget["unfinished"] == {}
    assert doc.saddle_note.endswith("reached: no unfinished run checkpointed; 2 finished runs "
                                    "kept for a continuation (final/relax, initial/relax)")


def test_a_wall_time_ceiling_stops_at_the_next_call(tmp_path):
    doc = run(tmp_path, max_dft_hours=1e-12)
    assert doc.saddle == OVER_BUDGET and doc.budget["dft_calls"] == 1
    assert "max_dft_hours" in doc.saddle_note and doc.budget["stage"] == "endpoint initial"
    assert doc.energies == [] and doc.reaction_energy is None and doc.fmax_final is None


def test_budget_is_not_part_of_the_work_key_or_the_settings_hash():
    s = preset("laptop")
    big = s.with_overrides({"budget": {"max_dft_calls": 400, "max_dft_hours": 9.0}})
    assert big.budget.max_dft_calls == 400 and s.budget.max_dft_calls == LAPTOP_BARRIER_CALLS
    kw = {"phase_a": "LiAl", "phase_b": "LPSC", "mechanism": "vacancy"}
    assert work_key("barrier", s, **kw) == work_key("barrier", big, **kw)
    assert s.physics() == big.physics() and "budget" not in s.physics()
    # physics still changes the key
    assert work_key("barrier", s.with_overrides({"neb": {"fmax": 0.03}}), **kw) != \
        work_key("barrier", s, **kw)


def test_metered_factory_keeps_the_description_and_refuses_at_the_ceiling(tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    class Described:
        description: ClassVar[dict] = {"engine": "emt"}

        def __call__(self, atoms, attempt=0, label=""):
            return EMT()

    ledger = Ledger.open(tmp_path, BudgetSettings(max_dft_calls=2))
    factory = MeteredFactory(Described(), ledger)
    assert factory.description == {"engine": "emt"}
    with pytest.raises(AttributeError):
        factory.paired  # noqa: B018 - the wrapped factory has no spin-paired variant
    atoms = bulk("Cu", cubic=True)
    for k in range(2):
        atoms.positions[0, 0] += 0.01
        atoms.calc = factory(atoms)
        atoms.get_potential_energy()
        assert ledger.calls == k + 1
    atoms.positions[0, 0] += 0.01
    atoms.calc = factory(atoms)
    with pytest.raises(BudgetExceeded, match="2 of max_dft_calls=2"):
        atoms.get_potential_energy()
    assert Ledger.open(tmp_path, BudgetSettings()).calls == 2  # persisted


def test_unrelaxed_endpoints_give_no_barrier(tmp_path):
    """Endpoint forces above relax.fmax at the barrier's level: the document says so."""
    settings = preset("test", {"relax": {"steps": 1, "fmax": 0.001}, **FMAX})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory)
    assert doc.saddle == UNRELAXED and doc.barrier_forward is None
    assert max(doc.endpoint_fmax.values()) > 0.001 and "relax.fmax 0.001" in doc.saddle_note
    assert doc.reaction_energy is not None  # the profile is kept


def test_an_unfinished_band_is_not_converged(tmp_path):
    settings = preset("test", {"neb": {"fmax": 0.01, "steps": 2}})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory)
    assert doc.saddle == "not converged" and doc.saddle_fmax > 0.01
    assert doc.barrier_forward is None and doc.climbing_image == 2


@pytest.mark.gpaw
@pytest.mark.slow
def test_gpaw_bulk_reference_hop_over_budget_then_continued(tmp_path):
    """LiAl bulk vacancy hop with GPAW (test preset, 3-atom cell): stopped at 6 DFT calls,
    then continued to a certified saddle with the ledger's count carried over."""
    from interphase_dft.recipes.barrier import bulk_reference_barrier

    settings = preset("test", {"budget": {"max_dft_calls": 6}})
    stopped = bulk_reference_barrier("LiAl", settings, workdir=tmp_path)
    assert stopped.saddle == OVER_BUDGET and stopped.budget["dft_calls"] == 6
    assert stopped.mechanism == "bulk-vacancy" and stopped.interface == "LiAl|LiAl"
    assert stopped.calculator["charge"].startswith("neutral: the metal")
    more = settings.with_overrides({"budget": {"max_dft_calls": 400}})
    done = bulk_reference_barrier("LiAl", more, workdir=tmp_path)
    assert done.saddle in (SADDLE, "not converged", "no saddle: reaction energy")
    assert done.budget["dft_calls"] > 6 and done.input_hash == stopped.input_hash
    if done.saddle == SADDLE:
        assert done.saddle_fmax <= settings.neb.fmax
        assert max(done.endpoint_fmax.values()) <= settings.relax.fmax
        assert done.e_kra == pytest.approx(done.barrier_forward - 0.5 * done.reaction_energy)


def test_the_runs_time_limit_stops_a_band_at_its_next_call_and_a_rerun_continues(
        tmp_path, monkeypatch):
    """`run --hours`: past the deadline ($INTERPHASE_DEADLINE) a work item ends over budget with
    what it reached and says so; without the limit the same call continues it."""
    from interphase_dft.timelimit import ENV_DEADLINE

    monkeypatch.setenv(ENV_DEADLINE, "1000")  # long past
    stopped = run(tmp_path, max_dft_calls=None)
    assert stopped.saddle == OVER_BUDGET and continuable(stopped.model_dump())
    assert stopped.budget["dft_calls"] == 0 and "time_limit" in stopped.budget
    assert "time limit (--hours)" in stopped.saddle_note and "run again" in stopped.saddle_note
    monkeypatch.delenv(ENV_DEADLINE)
    done = run(tmp_path, max_dft_calls=None)
    assert done.saddle == SADDLE and "time_limit" not in done.budget


def test_a_ledger_refuses_calls_only_past_its_deadline(tmp_path):
    import time

    ledger = Ledger.open(tmp_path, BudgetSettings(), "binding")
    ledger.deadline = time.time() + 3600
    ledger.check()  # an hour left: allowed
    assert "time_limit" not in ledger.summary()
    ledger.deadline = time.time() - 1
    assert "time_limit" not in ledger.summary()  # past it, but no call refused yet
    with pytest.raises(BudgetExceeded, match=r"time limit.*run again") as err:
        ledger.check()
    assert err.value.used["time_limit"] and err.value.used["ceilings"]
