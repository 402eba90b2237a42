"""The active-learning level of the barrier recipe (neb.active_learning; issue 17): the
document, the budget ledger and the frame store, with EMT standing in for both DFT and the
surrogate (the loop itself is tested in test_active_learning.py with the real surrogate)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.emt import EMT

from interphase_dft.barrier_status import OVER_BUDGET, SADDLE, continuable
from interphase_dft.calc.checkpoint import read_frames
from interphase_dft.calc.finetune import FineTuned
from interphase_dft.calc.frames import AseDbFrames, Frame
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import MLSettings
from interphase_dft.recipes import barrier
from interphase_dft.recipes.active_learning import CERTIFIED, active_learning_band
from interphase_dft.recipes.barrier import neb_barrier
from interphase_dft.schemas import BarrierDoc
from tests.test_recipes_barrier import al_adatom_hop, emt_factory

torch.set_num_threads(1)
KEY = "a" * 64


@dataclass
class EMTSurrogate(MLFactory):
    """A surrogate with EMT energies (no model to load)."""

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
        return EMT()

    @property
    def model(self) -> Any:
        return "emt"


@pytest.fixture
def emt_loop(monkeypatch: pytest.MonkeyPatch) -> list[list[Frame]]:
    """EMT as the recipe's surrogate and a fine-tuning stand-in that records its frames."""
    seen: list[list[Frame]] = []

    def tune(model: Any, frames: list[Frame], **kwargs: Any) -> FineTuned:
        seen.append(list(frames))
        return FineTuned(model, "0" * 64, [str(f.id) for f in frames], 0.0)

    monkeypatch.setattr(barrier, "surrogate_factory",
                        lambda settings, dispersion=False: EMTSurrogate(MLSettings()))
    monkeypatch.setitem(active_learning_band.__kwdefaults__, "tune", tune)
    return seen


def run(workdir: Path, frames: Any = None, **budget: Any) -> BarrierDoc:
    settings = preset("test", {"neb": {"fmax": 0.05, "active_learning": True},
                               "budget": budget})
    initial, final = al_adatom_hop()
    return neb_barrier(initial, final, settings, workdir, calc_factory=emt_factory,
                       phase_a="Al", phase_b="Al", frames=frames, work_key=KEY)


def test_active_learning_level_gives_a_certified_saddle_with_its_record(
        tmp_path: Path, emt_loop: list[list[Frame]]) -> None:
    store = AseDbFrames(tmp_path / "frames.db")
    doc = run(tmp_path / "hop", store)
    assert doc.saddle == SADDLE and doc.stage == "dft-certified" and doc.converged
    assert doc.saddle_fmax <= 0.05 and max(doc.endpoint_fmax.values()) <= 0.1
    assert doc.barrier_forward == pytest.approx(doc.barrier_reverse, abs=0.02)
    assert 0.1 < doc.barrier_forward < 1.0 and doc.climbing_image == 2
    al = doc.active_learning
    assert al is not None and al["stage"] == CERTIFIED and al["fallback"] is None
    # round 0: 3 images + 2 endpoints; round 1 (same band) needs no new reference call
    assert al["rounds"] == 2 and al["reference_calls"] == 5 and len(emt_loop) == 1
    assert al["weights_hash"] == "0" * 64 and len(al["frame_ids"]) == 5
    assert doc.force_calls["al_dft"] == 5 and doc.budget["dft_calls"] == 5  # all metered
    assert doc.calculator["geometry"].startswith("endpoints relaxed by the active-learning")
    assert "initial" not in {p.name for p in (tmp_path / "hop").iterdir()}  # no 2nd relaxation
    frames = store.select()
    assert len(frames) == 5 and {f.work_key for f in frames} == {KEY}
    assert sorted(al["frame_ids"]) == sorted(str(f.id) for f in frames)
    assert BarrierDoc.model_validate_json(doc.model_dump_json()).active_learning == al


def test_budget_ceiling_stops_the_loop_and_a_larger_budget_continues_it(
        tmp_path: Path, emt_loop: list[list[Frame]]) -> None:
    stopped = run(tmp_path, max_dft_calls=3)
    assert stopped.saddle == OVER_BUDGET and continuable(stopped.model_dump())
    assert stopped.budget["dft_calls"] == 3 and stopped.budget["stage"] == "active learning"
    assert stopped.stage == "dft-certified" and stopped.barrier_forward is None
    done = run(tmp_path, max_dft_calls=100)
    assert done.saddle == SADDLE and done.stage == "dft-certified"
    assert done.budget["dft_calls"] == 5  # the 3 stored single points were reused


def test_the_time_limit_stops_the_loop_before_its_surrogate_work_and_a_rerun_continues(
        tmp_path: Path, emt_loop: list[list[Frame]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the run's time limit the loop does not start fine-tuning or the next surrogate
    band (work the DFT ceilings do not count): the item ends over budget after round 0's
    reference points, and the next run continues from them."""
    import json

    from interphase_dft.calc import budget
    from interphase_dft.timelimit import ENV_DEADLINE

    monkeypatch.setenv(ENV_DEADLINE, "4000000000")  # a limit that "passes" after round 0:
    ledger_file = tmp_path / "hop" / budget.LEDGER
    monkeypatch.setattr(budget, "passed", lambda deadline: deadline is not None
                        and ledger_file.exists()
                        and json.loads(ledger_file.read_text())["dft_calls"] >= 5)
    stopped = run(tmp_path / "hop")
    assert stopped.saddle == OVER_BUDGET and "time_limit" in stopped.budget
    assert stopped.budget["dft_calls"] == 5 and emt_loop == []  # never fine-tuned
    monkeypatch.delenv(ENV_DEADLINE)
    done = run(tmp_path / "hop")
    assert done.saddle == SADDLE and done.stage == "dft-certified" and len(emt_loop) == 1
    assert done.budget["dft_calls"] == 5  # round 0's single points were reused


def test_check_time_limit_ignores_the_dft_ceilings(tmp_path: Path) -> None:
    import time

    from interphase_dft.calc.budget import BudgetExceeded, Ledger
    from interphase_dft.calc.settings import BudgetSettings

    ledger = Ledger.open(tmp_path, BudgetSettings(max_dft_calls=1), "barrier")
    ledger.charge(10.0)
    ledger.deadline = None
    ledger.check_time_limit()  # the call ceiling is reached, but that is check()'s business
    with pytest.raises(BudgetExceeded, match="max_dft_calls"):
        ledger.check()
    assert not ledger.timed_out
    ledger.deadline = time.time() - 1
    with pytest.raises(BudgetExceeded, match=r"time limit.*run again"):
        ledger.check_time_limit()
    assert ledger.timed_out


def test_reference_endpoints_are_relaxed_first_and_kept_through_the_rounds(
        tmp_path: Path, emt_loop: list[list[Frame]]) -> None:
    """neb.al_reference_endpoints: both endpoints are reference minima before round 0
    (``al/endpoints/``), the rounds move the band only and reuse the endpoints' results."""
    settings = preset("test", {"neb": {"fmax": 0.05, "active_learning": True,
                                       "al_reference_endpoints": True}})
    initial, final = al_adatom_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory,
                      phase_a="Al", phase_b="Al", work_key=KEY)
    assert doc.saddle == SADDLE and doc.stage == "dft-certified"
    assert max(doc.endpoint_fmax.values()) <= settings.relax.fmax
    assert (tmp_path / "al" / "endpoints" / "initial" / "relax.json").is_file()
    al = doc.active_learning
    assert al is not None and al["fallback"] is None
    relax_calls = sum(len(read_frames(tmp_path / "al" / "endpoints" / n / "relax.traj"))
                      for n in ("initial", "final"))
    # round 0 computed the 3 images only (the endpoints' results reused), round 1 (the same
    # band: the stand-in fine-tuning returns the same surrogate) nothing new
    assert al["rounds"] == 2 and al["reference_calls"] == relax_calls + 3
    ends = [read_frames(tmp_path / "al" / "endpoints" / n / "relax.traj")[-1]
            for n in ("initial", "final")]
    band0 = [read_frames(tmp_path / "al" / "round0" / "ref" / f"img{i}.traj")
             for i in (1, 2, 3)]
    assert all(b for b in band0)
    assert not (tmp_path / "al" / "round0" / "ref" / "img0.traj").exists()  # reused
    assert np.allclose(doc.images[0].structure.positions, ends[0].positions, atol=1e-6)


@dataclass
class WellsSurrogate(MLFactory):
    """The three-well potential as its own surrogate (no model to load); ``shift`` moves its
    wells (A), for a surrogate whose minima are not the reference's."""

    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Any:
        from tests.test_recipes_barrier import ThreeWells

        wells = ThreeWells()
        wells.centres = wells.centres + np.array(self.shift)
        return wells

    @property
    def model(self) -> Any:
        return "wells"


def test_a_band_through_another_minimum_ends_the_loop_and_is_split_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference points of round 0 lie in the deeper middle well: the loop stops there
    (no further round, no CI-NEB across the well), the minimum is relaxed with the reported
    forces (no surrogate relaxation) and each hop gets its own certified loop; the barrier is
    the energetic span checked against the exact saddles of the potential."""
    from tests.test_recipes_barrier import ThreeWells, three_wells_factory, three_wells_hop

    monkeypatch.setattr(barrier, "surrogate_factory",
                        lambda settings, dispersion=False: WellsSurrogate(MLSettings()))
    monkeypatch.setitem(active_learning_band.__kwdefaults__, "tune",
                        lambda model, frames, **kw: FineTuned(model, "1" * 64, [], 0.0))
    # relax.dft_relax=false: the laptop level, whose other minima the surrogate relaxes
    settings = preset("test", {"neb": {"fmax": 0.02, "active_learning": True},
                               "relax": {"dft_relax": False, "ml_prerelax": True}})
    assert settings.surrogate_geometry
    initial, final = three_wells_hop()
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=three_wells_factory,
                      phase_a="A", phase_b="B")
    wells = ThreeWells()
    x = np.linspace(0.0, 4.0, 4001)
    v = wells.potential(x)
    e_a, e_m = (float(v[np.argmin(np.abs(x - c))]) for c in (0.0, 2.0))
    s2 = float(v[x > 2].max())
    assert any("round 0: band passes through another minimum" in w for w in doc.warnings)
    assert not (tmp_path / "al" / "round1").exists() and not (tmp_path / "al" / "final").exists()
    assert doc.force_calls["intermediate"] >= 1 and "intermediate_ml" not in doc.force_calls
    assert len(doc.segments) == 2 and doc.band_continuous
    assert all(sg["stage"] == "dft-certified" for sg in doc.segments)
    n = settings.neb.n_images + 2
    assert doc.energies[n - 1] == pytest.approx(e_m - e_a, abs=0.01)
    assert doc.barrier_forward == pytest.approx(s2 - e_m, abs=0.02)


def test_the_shared_minimum_of_a_joined_path_is_one_reference_minimum(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path through three given minima at the active-learning level: the surrogate
    pre-relaxes each minimum and the reported forces finish it, before any hop, so both hops
    start from the same relaxed middle minimum (their loops find it converged) and the joined
    path's middle image is that minimum: its energy the exact well bottom, its force below
    relax.fmax."""
    from tests.test_recipes_barrier import ThreeWells, three_wells_factory, three_wells_hop

    monkeypatch.setattr(barrier, "surrogate_factory",
                        lambda settings, dispersion=False:
                        WellsSurrogate(MLSettings(), shift=(0.1, 0.15, -0.1)))
    monkeypatch.setitem(active_learning_band.__kwdefaults__, "tune",
                        lambda model, frames, **kw: FineTuned(model, "1" * 64, [], 0.0))
    settings = preset("test", {"neb": {"fmax": 0.02, "active_learning": True,
                                       "al_reference_endpoints": True},
                               "relax": {"dft_relax": False, "ml_prerelax": True}})
    initial, final = three_wells_hop()
    middle = initial.copy()
    middle.positions[-1, 0] += 2.0
    doc = barrier.path_barrier([initial, middle, final], settings, tmp_path,
                               calc_factory=three_wells_factory, phase_a="A", phase_b="B")
    wells = ThreeWells()
    x = np.linspace(-0.5, 4.5, 5001)
    v = wells.potential(x)
    e_a, e_m, e_b = (float(v[np.argmin(np.abs(x - c))]) for c in (0.0, 2.0, 4.0))
    n = settings.neb.n_images + 2
    mid = doc.images[n - 1]
    assert mid.structure.positions[-1][0] - 10.0 == pytest.approx(2.0, abs=0.03)  # fmax 0.1
    assert doc.energies[n - 1] == pytest.approx(e_m - e_a, abs=0.002)
    assert mid.fmax <= settings.relax.fmax
    assert doc.reaction_energy == pytest.approx(e_b - e_a, abs=0.002)
    # each minimum relaxed once with the reported forces (more than a single point) ...
    assert all(doc.force_calls[f"endpoint_{name}"] > 1
               for name in ("initial", "minimum1", "final"))
    # ... so each hop's loop found its two ends converged: one reference call each
    for hop in ("hop1", "hop2"):
        for end in ("initial", "final"):
            state = json.loads((tmp_path / hop / "al" / "endpoints" / end / "relax.json")
                               .read_text())
            assert state["steps"] == 0, (hop, end, state)


def test_a_saddle_search_finishes_the_band_at_the_ci_neb_barrier(
        tmp_path: Path, emt_loop: list[list[Frame]]) -> None:
    """neb.al_finish = 'prfo': one loose round (surrogate band to 0.3 eV/A, no previous round
    to compare), then the P-RFO search from its climbing image with the surrogate's Hessian.
    The saddle is first order, its descents reach the two endpoints, and the barrier is the
    one the reference CI-NEB finish gives on the same hop."""
    initial, final = al_adatom_hop()
    docs = {}
    for finish in ("ci-neb", "prfo"):
        settings = preset("test", {"neb": {"fmax": 0.05, "active_learning": True,
                                           "al_max_rounds": 1, "ml_fmax": 0.3,
                                           "al_finish": finish}})
        docs[finish] = neb_barrier(initial, final, settings, tmp_path / finish,
                                   calc_factory=emt_factory, phase_a="Al", phase_b="Al")
    doc, ref = docs["prfo"], docs["ci-neb"]
    assert ref.saddle == SADDLE and doc.saddle == SADDLE and doc.stage == "dft-certified"
    search = doc.active_learning["saddle_search"]
    assert search["converged"] and search["negative_modes"] == 1 and search["fmax"] <= 0.05
    descents = search["descents"]
    assert descents["connects"] and descents["plus"]["converged"] and descents["minus"]["converged"]
    near = sorted(min(d["to_initial_A"], d["to_final_A"]) for d in (descents["plus"],
                                                                    descents["minus"]))
    assert near[1] < 0.3 < 2.5 < descents["endpoint_separation_A"]  # each reaches an endpoint
    assert doc.saddle_fmax <= 0.05 and doc.climbing_image == search["start_image"]
    assert doc.barrier_forward == pytest.approx(ref.barrier_forward, abs=0.01)
    assert doc.active_learning["fallback"].startswith("not certified after 1 rounds")
    assert (tmp_path / "prfo" / "al" / "final" / "saddle" / "prfo.npz").is_file()
    assert BarrierDoc.model_validate_json(doc.model_dump_json()).active_learning == \
        doc.active_learning
    # a rerun reads the finished search from its checkpoints: no new reference call
    calls = []

    class Counting(EMT):
        def calculate(self, *args: Any, **kwargs: Any) -> None:
            calls.append(1)
            super().calculate(*args, **kwargs)

    again = neb_barrier(initial, final, preset("test", {"neb": {
        "fmax": 0.05, "active_learning": True, "al_max_rounds": 1, "ml_fmax": 0.3,
        "al_finish": "prfo"}}), tmp_path / "prfo",
        calc_factory=lambda atoms, attempt=0, label="": Counting(),
        phase_a="Al", phase_b="Al")
    assert again.barrier_forward == pytest.approx(doc.barrier_forward, abs=1e-9)
    assert calls == [] and again.active_learning["reference_calls"] == \
        doc.active_learning["reference_calls"]


def test_a_saddle_search_that_does_not_certify_is_followed_by_the_ci_neb(
        tmp_path: Path, emt_loop: list[list[Frame]]) -> None:
    """Two reference calls cannot converge the search: the record says so and the band is
    finished by the CI-NEB (here not converged either, with the same two-step limit)."""
    initial, final = al_adatom_hop()
    settings = preset("test", {"neb": {"fmax": 0.05, "active_learning": True, "steps": 2,
                                       "al_max_rounds": 1, "ml_fmax": 0.3,
                                       "al_finish": "prfo"}})
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory,
                      phase_a="Al", phase_b="Al")
    search = doc.active_learning["saddle_search"]
    assert not search["converged"] and search["steps"] == 2
    assert any("the search did not converge; finished with a reference CI-NEB" in w
               for w in doc.warnings)
    assert doc.stage != "dft-certified" and doc.saddle != SADDLE
    assert (tmp_path / "al" / "final" / "neb").is_dir()
