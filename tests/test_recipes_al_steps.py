"""The fine-tuning step of the active-learning loop (recipes/al_steps.py, ``HopLoop.fine_tuned``):
what the caller gets with no frames, a failing and a succeeding fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ase.build import bulk
from ase.calculators.emt import EMT

from interphase_dft.calc.finetune import FineTuned
from interphase_dft.calc.frames import RecordingFactory
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import MLSettings
from interphase_dft.recipes.al_steps import HopFrames, HopLoop


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


def test_a_failed_fine_tuning_returns_the_pretrained_surrogate_and_the_error(
        tmp_path: Path) -> None:
    def broken(*args: Any, **kwargs: Any) -> FineTuned:
        raise RuntimeError("injected")

    lp = loop(tmp_path, broken)
    one_frame(lp)
    ml, tuned, failure = lp.fine_tuned("round0")
    assert ml is lp.base and tuned is None and failure == "RuntimeError: injected"
    assert not (tmp_path / "tuned").exists()  # nothing stored: a rerun trains again


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
