"""The fine-tuning step of the active-learning loop (recipes/al_steps.py, ``HopLoop.fine_tuned``):
what the caller gets with no frames, a failing and a succeeding fine-tuning; the surrogate band
climbs only from a relaxed band with an interior maximum."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

from ase.build import bulk
from ase.calculators.emt import EMT

from interphase_dft.calc.finetune import FineTuned
from interphase_dft.calc.frames import RecordingFactory
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import MLSettings
from interphase_dft.recipes.al_steps import HopFrames, HopLoop, capped_frames


def emt(atoms: Any, attempt: int = 0, label: str = "") -> EMT:
    return EMT()


def loop(tmp_path: Path, tune: Any) -> HopLoop:
    pretrained = MLFactory(MLSettings(), _model="pretrained")  # never evaluated here
    hop = HopFrames(None)
    return HopLoop(preset("test"), RecordingFactory(emt, hop), pretrained, hop, tmp_path, True,
                   tune, "Cu")


def one_frame(lp: HopLoop) -> None:
    a = bulk("Cu", cubic=True)
    a.calc = EMT()
    lp.reference.store(a, {"energy": a.get_potential_energy(), "forces": a.get_forces()})


def test_fine_tuned_without_frames_keeps_the_pretrained_surrogate_and_says_nothing(
        tmp_path: Path) -> None:
    def never(*args: Any, **kwargs: Any) -> FineTuned:
        raise AssertionError("tune must not run without frames")

    lp = loop(tmp_path, never)
    assert lp.fine_tuned("round0") == (lp.base, None, None)
    assert (tmp_path / "tuned" / "round0.json").is_file()


def test_a_stage_that_ran_pretrained_stays_pretrained_when_frames_appear(
        tmp_path: Path) -> None:
    """A kill after the host stage (no frames then) and a rerun that finds the hop's later
    frames in the store: the stage must take the pretrained surrogate again, or round 0's
    surrogate checkpoints belong to another surrogate and are refused."""
    def never(*args: Any, **kwargs: Any) -> FineTuned:
        raise AssertionError("a stage decided before must not be trained on a rerun")

    assert loop(tmp_path, never).fine_tuned("host") == (loop(tmp_path, never).base, None, None)
    rerun = loop(tmp_path, never)
    one_frame(rerun)  # the frames the first run made after the host stage
    assert rerun.fine_tuned("host") == (rerun.base, None, None)
    assert not (tmp_path / "tuned" / "host.pt").exists()


def test_a_failed_fine_tuning_returns_the_pretrained_surrogate_and_the_error(
        tmp_path: Path) -> None:
    def broken(*args: Any, **kwargs: Any) -> FineTuned:
        raise RuntimeError("injected")

    lp = loop(tmp_path, broken)
    one_frame(lp)
    ml, tuned, failure = lp.fine_tuned("round0")
    assert ml is lp.base and tuned is None and failure == "RuntimeError: injected"
    # the outcome is recorded: a rerun takes the same decision (the finish) without training
    rerun = loop(tmp_path, lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    one_frame(rerun)
    assert rerun.fine_tuned("round0") == (rerun.base, None, "RuntimeError: injected")


def test_a_fine_tuned_surrogate_carries_the_new_model_and_its_weights_hash(
        tmp_path: Path) -> None:
    seen: list[Any] = []

    def tune(model: Any, frames: list[Any], *, epochs: int, learning_rate: float) -> FineTuned:
        seen.append((model, len(frames), epochs))
        return FineTuned(model="tuned", weights_hash="abc",
                         frame_ids=[str(f.id) for f in frames], seconds=1.5)

    lp = loop(tmp_path, tune)
    one_frame(lp)
    ml, tuned, failure = lp.fine_tuned("round0")
    assert failure is None and tuned is not None and tuned.frame_ids == ["hop:0"]
    assert seen == [("pretrained", 1, lp.settings.neb.al_epochs)]
    assert ml.model == "tuned" and ml.weights == "abc"
    assert lp.base.model == "pretrained" and lp.base.weights is None  # not modified
    # a rerun reads the stored stage back, untrained
    again, stored, _ = lp.fine_tuned("round0")
    assert len(seen) == 1 and again.model == "tuned" and again.weights == "abc"
    assert stored is not None and stored.frame_ids == ["hop:0"] and stored.seconds == 1.5


def test_training_frames_are_capped_own_frames_first_the_stored_ones_spread_evenly(
        tmp_path: Path) -> None:
    own, stored = list(range(100, 104)), list(range(20))
    assert capped_frames(own, stored, 10) == [100, 101, 102, 103, 0, 4, 8, 11, 15, 19]
    assert capped_frames(own, stored, 3) == [101, 102, 103]  # the latest of the hop's own
    assert capped_frames(own, stored[:5], 60) == own + stored[:5]  # under the cap: all
    from interphase_dft.calc.frames import AseDbFrames

    seen: list[int] = []

    def tune(model: Any, frames: list[Any], **kwargs: Any) -> FineTuned:
        seen.append(len(frames))
        return FineTuned("tuned", "abc", [str(f.id) for f in frames], 0.0)

    hop = HopFrames(AseDbFrames(tmp_path / "frames.db"))
    settings = preset("test", {"neb": {"al_max_frames": 3}})
    lp = HopLoop(settings, RecordingFactory(emt, hop, "k" * 64), MLFactory(
        MLSettings(), _model="pretrained"), hop, tmp_path, True, tune, "Cu")
    for k in range(5):
        a = bulk("Cu", cubic=True)
        a.rattle(0.02, seed=k)
        a.calc = EMT()
        lp.reference.store(a, {"energy": a.get_potential_energy(), "forces": a.get_forces()})
    assert len(hop.frames) == 5 and len(lp.training_frames()) == 3
    lp.fine_tuned("round0")
    assert seen == [3]


class _Tilted(EMT):
    """EMT plus a uniform force ``push`` (eV/A) along x on the last atom."""

    def __init__(self, push: float) -> None:
        super().__init__()
        self.push = push

    def calculate(self, atoms: Any = None, properties: Any = None,
                  system_changes: Any = None) -> None:
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        self.results["energy"] -= self.push * float(self.atoms.positions[-1, 0])
        self.results["free_energy"] = self.results["energy"]
        forces = self.results["forces"].copy()
        forces[-1, 0] += self.push
        self.results["forces"] = forces


def _band(tmp_path: Path, push: float) -> tuple[list[Any], int, HopLoop]:
    from dataclasses import dataclass

    from tests.test_recipes_basin import adatom_hop

    @dataclass
    class TiltedSurrogate(MLFactory):
        def __call__(self, atoms: Any, attempt: int = 0, label: str = "") -> EMT:
            return _Tilted(push)

    hop = HopFrames(None)
    settings = preset("test", {"neb": {"n_images": 3, "ml_fmax": 0.03, "steps": 200},
                               "relax": {"ml_steps": 200}})
    lp = HopLoop(settings, RecordingFactory(emt, hop), TiltedSurrogate(MLSettings()), hop,
                 tmp_path, True, lambda *a, **k: None, "Al")
    # the endpoints stay where they are (hollows; the tilt would carry them away)
    band, top, _ = lp.surrogate_band(list(adatom_hop(0.0)), None, lp.base, tmp_path / "r0",
                                     fixed_ends=True)
    return band, top, lp


def test_the_surrogate_band_climbs_from_its_relaxed_band_to_the_saddle(tmp_path: Path) -> None:
    band, top, lp = _band(tmp_path, 0.0)  # the hollow-bridge-hollow hop: a saddle mid-way
    assert top == 2 and not lp.warnings
    assert (tmp_path / "r0" / "neb-ml" / "neb.json").is_file()  # relaxed first
    assert (tmp_path / "r0" / "neb-ml" / "ci.json").is_file()  # then climbed
    bridge = 0.5 * (band[0].positions[-1, 0] + band[-1].positions[-1, 0])
    assert abs(band[top].positions[-1, 0] - bridge) < 0.05


def test_a_surrogate_band_without_interior_maximum_does_not_climb(tmp_path: Path) -> None:
    # a push of 1 eV/A over the 2.9 A hop: the relaxed band falls from the initial state, and
    # a climbing image would climb into it
    band, _, lp = _band(tmp_path, 1.0)
    assert not lp.warnings  # the relaxed band converged
    assert not (tmp_path / "r0" / "neb-ml" / "ci.json").exists()
    e = []
    for im in band:  # the band comes back bare (positions only)
        im.calc = _Tilted(1.0)
        e.append(im.get_potential_energy())
    assert all(a > b for a, b in pairwise(e))  # monotonic
