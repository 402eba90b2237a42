"""Fine-tuned weights kept with the run (calc/tuned_weights.py) and an active-learning hop
killed after a fine-tuning that resumes while the frame store has grown."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.emt import EMT

from interphase_dft.calc.finetune import FineTuned, weights_hash
from interphase_dft.calc.frames import AseDbFrames, Frame
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import MLSettings
from interphase_dft.calc.tuned_weights import (
    TUNED_DIR,
    Untuned,
    load_tuned,
    save_tuned,
    save_untuned,
    tuned_fingerprint,
)
from interphase_dft.errors import InputError
from interphase_dft.recipes.active_learning import active_learning_band
from tests.test_recipes_basin import adatom_hop, emt


def _linear(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def test_torch_weights_round_trip_into_a_copy_of_the_base_model(tmp_path: Path) -> None:
    base, trained = _linear(0), _linear(1)
    tuned = FineTuned(trained, weights_hash(trained), ["3", "5"], 12.5, {"train": {"e": [1]}})
    key = tuned_fingerprint({"engine": "ml"}, epochs=3, learning_rate=1e-3)
    assert load_tuned(base, tmp_path, "round0", key) is None  # nothing stored yet
    save_tuned(tuned, tmp_path, "round0", key)
    back = load_tuned(base, tmp_path, "round0", key)
    assert back is not None and back.model is not base
    assert torch.equal(back.model.weight, trained.weight)
    assert not torch.equal(base.weight, trained.weight)  # the base model is untouched
    assert (back.weights_hash, back.frame_ids, back.seconds) == (
        tuned.weights_hash, ["3", "5"], 12.5)
    assert back.history == {"train": {"e": [1]}}


def test_a_stage_without_fine_tuning_is_recorded_and_replaces_stale_weights(
        tmp_path: Path) -> None:
    base, trained = _linear(0), _linear(1)
    key = tuned_fingerprint({"engine": "ml"}, epochs=3, learning_rate=1e-3)
    save_tuned(FineTuned(trained, weights_hash(trained), ["1"], 1.0), tmp_path, "host", key)
    save_untuned(tmp_path, "host", key, None)
    assert load_tuned(base, tmp_path, "host", key) == Untuned(None)
    assert not (tmp_path / TUNED_DIR / "host.pt").exists()
    save_untuned(tmp_path, "round2", key, "RuntimeError: out of memory")
    assert load_tuned(base, tmp_path, "round2", key) == Untuned("RuntimeError: out of memory")
    other = tuned_fingerprint({"engine": "ml"}, epochs=4, learning_rate=1e-3)
    with pytest.raises(InputError, match="another surrogate or training settings"):
        load_tuned(base, tmp_path, "round2", other)


def test_a_stored_fine_tuning_of_other_inputs_or_damaged_weights_is_refused(
        tmp_path: Path) -> None:
    base, trained = _linear(0), _linear(1)
    key = tuned_fingerprint({"engine": "ml"}, epochs=3, learning_rate=1e-3)
    save_tuned(FineTuned(trained, weights_hash(trained), ["1"], 1.0), tmp_path, "host", key)
    other = tuned_fingerprint({"engine": "ml"}, epochs=4, learning_rate=1e-3)
    with pytest.raises(InputError, match=r"another surrogate or training settings.*delete"):
        load_tuned(base, tmp_path, "host", other)
    weights = tmp_path / TUNED_DIR / "host.pt"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(InputError, match=r"does not match.*train again"):
        load_tuned(base, tmp_path, "host", key)
    weights.unlink()
    with pytest.raises(InputError, match="missing"):
        load_tuned(base, tmp_path, "host", key)


def test_a_model_without_torch_weights_is_kept_as_a_pickle(tmp_path: Path) -> None:
    key = tuned_fingerprint({"engine": "emt"})
    save_tuned(FineTuned("emt-model", "0" * 64, [], 0.0), tmp_path, "round1", key)
    back = load_tuned("emt-model", tmp_path, "round1", key)
    assert back is not None and back.model == "emt-model" and back.weights_hash == "0" * 64


class TiltedEMT(EMT):
    """EMT plus a uniform force of 0.1 eV/A along x on the last atom (the adatom)."""

    def calculate(self, atoms: Any = None, properties: Any = None,
                  system_changes: Any = None) -> None:
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        x = float(self.atoms.positions[-1, 0])
        self.results["energy"] -= 0.1 * x
        self.results["free_energy"] = self.results["energy"]
        forces = self.results["forces"].copy()
        forces[-1, 0] += 0.1
        self.results["forces"] = forces


@dataclass
class EMTSurrogate(MLFactory):
    """A surrogate that differs from the EMT reference (a tilt), so no round certifies;
    the model is a name."""

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
        return TiltedEMT()

    @property
    def model(self) -> Any:
        return "emt"


class Killed(Exception):
    pass


def test_a_hop_killed_after_a_fine_tuning_resumes_although_the_store_grew(
        tmp_path: Path) -> None:
    """Kill after round 1's surrogate band (fine-tuned after round 0), add a frame to the
    store, rerun: round 0's fine-tuning is read back (training on the grown store would give
    other weights, so round 1's checkpoints would be refused), the run finishes and trains
    only the stages it had not reached."""
    trained: list[str] = []

    def tune(model: Any, frames: list[Frame], **kwargs: Any) -> FineTuned:
        ids = [str(f.id) for f in frames]
        trained.append(",".join(ids))
        return FineTuned(model, hashlib.sha256(",".join(ids).encode()).hexdigest(), ids, 0.1)

    stops = {"n": 0, "kill_at": 2}

    def stop() -> None:  # called after each round that does not end the loop
        stops["n"] += 1
        if stops["n"] == stops["kill_at"]:
            raise Killed

    settings = preset("test", {"neb": {"fmax": 0.05, "surrogate_hessian": False,
                                       "al_max_rounds": 3, "n_images": 3,
                                       "al_force_correction": False},
                               "relax": {"fmax": 0.05}})
    initial, final = adatom_hop(0.0)
    store = AseDbFrames(tmp_path / "frames.db")
    work = tmp_path / "hop"

    def run() -> Any:
        return active_learning_band(initial, final, emt, EMTSurrogate(MLSettings()), settings,
                                    work, frames=store, work_key="k" * 64, tune=tune,
                                    stop=stop)

    with pytest.raises(Killed):
        run()
    assert len(trained) == 1 and (work / TUNED_DIR / "round0.json").is_file()
    assert (work / "round1" / "neb-ml").is_dir()  # round 1 ran with round 0's weights
    n_before = store.count()
    extra = store.select()[0]  # a frame of another hop with the same elements and settings
    moved = extra.atoms.copy()
    moved.positions[0] += [0.05, 0.0, 0.0]
    moved.calc = extra.atoms.calc
    added = store.add(replace(extra, atoms=moved, id=None, work_key="other"))
    assert store.count() == n_before + 1
    stops["kill_at"] = -1
    r = run()
    assert r.fallback is not None and "after 3 rounds" in r.fallback
    assert len(trained) == 2  # round 1's fine-tuning only: round 0's was read back
    assert added in trained[1].split(",") and r.frame_ids == trained[1].split(",")
    assert np.isfinite(r.barrier_forward) and r.ci_force <= settings.neb.fmax
