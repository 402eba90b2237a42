"""Fine-tuned surrogate weights kept with the run that made them (issue 17, item 3).

A hop's active-learning loop fine-tunes the surrogate before round 0 and after each round on
every reference frame it can see: its own and the stored frames of the same elements and
settings. After a kill the frame store holds more frames than when a fine-tuning first ran,
so fine-tuning again would give other weights, hence other checkpoint fingerprints of every
surrogate step that followed. Each fine-tuning is therefore written once to
``<workdir>/tuned/<stage>.json`` (weights hash, frame ids, wall time, training history, the
identity of the starting model and the training settings, the SHA-256 of the weights file)
and ``<stage>.pt`` (the weights: a torch state dict for a torch model, else a pickle), and a
rerun reads it back instead of training: the barrier is re-derived with the weights it was
computed with. The JSON is written after the weights file, so a kill between the two leaves
no record and the stage is trained again.

A stage that ran without a fine-tuning (no frame to train on yet, or the training failed) is
recorded too (:func:`save_untuned`, no weights file): a rerun that finds more frames in the
store must still take the pretrained surrogate there, or the checkpoints of the steps that
followed would belong to another surrogate and be refused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interphase_dft.calc.checkpoint import read_json, write_json_here
from interphase_dft.calc.finetune import FineTuned, weights_hash
from interphase_dft.errors import InputError

#: folder of the stored fine-tunings inside a hop's work directory
TUNED_DIR = "tuned"


def tuned_fingerprint(base: dict[str, Any], **training: Any) -> str:
    """Identity of a fine-tuning's inputs other than its frames: the starting surrogate's
    description and the training settings (epochs, learning rate)."""
    text = json.dumps({"base": base, "training": training}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Untuned:
    """A stage that ran with the pretrained surrogate: ``failure`` is why the training failed,
    None when there was no frame to train on."""

    failure: str | None = None


def _paths(workdir: Path, stage: str) -> tuple[Path, Path]:
    folder = Path(workdir) / TUNED_DIR
    return folder / f"{stage}.json", folder / f"{stage}.pt"


def _is_torch(model: Any) -> bool:
    return hasattr(model, "state_dict") and hasattr(model, "load_state_dict")


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_tuned(tuned: FineTuned, workdir: Path | str, stage: str, fingerprint: str) -> None:
    """Write ``tuned`` as fine-tuning ``stage`` of the run in ``workdir``, on the calling
    rank only (the one that trained); the JSON record is written last, atomically."""
    record_path, weights_path = _paths(Path(workdir), stage)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(f".{weights_path.name}.tmp")
    if _is_torch(tuned.model):
        import torch

        torch.save(tuned.model.state_dict(), tmp)
        state = weights_hash(tuned.model)
    else:
        tmp.write_bytes(pickle.dumps(tuned.model))
        state = None
    os.replace(tmp, weights_path)
    write_json_here(record_path, {
        "stage": stage, "fingerprint": fingerprint, "weights_hash": tuned.weights_hash,
        "state_hash": state, "file_sha256": _file_hash(weights_path),
        "frame_ids": list(tuned.frame_ids), "seconds": tuned.seconds,
        "history": tuned.history})


def save_untuned(workdir: Path | str, stage: str, fingerprint: str,
                 failure: str | None) -> None:
    """Record that stage ``stage`` of the run in ``workdir`` took the pretrained surrogate
    (``failure``: why the training failed, None: no frame to train on); calling rank only."""
    record_path, weights_path = _paths(Path(workdir), stage)
    weights_path.unlink(missing_ok=True)
    write_json_here(record_path, {"stage": stage, "fingerprint": fingerprint,
                                  "weights_hash": None, "untuned": True, "failure": failure,
                                  "frame_ids": []})


def load_tuned(base_model: Any, workdir: Path | str, stage: str,
               fingerprint: str) -> FineTuned | Untuned | None:
    """The stored fine-tuning ``stage`` of the run in ``workdir`` (weights loaded into a copy
    of ``base_model``), :class:`Untuned` when that stage ran without one, or None when
    nothing is stored.

    Raises
    ------
    InputError
        The record belongs to another starting model or training settings, or its weights
        file is missing or does not match the record.
    """
    record_path, weights_path = _paths(Path(workdir), stage)
    record = read_json(record_path)
    if record is None:
        return None
    fix = f"use a fresh workdir or delete {record_path} and {weights_path} to train again"
    if record.get("fingerprint") != fingerprint:
        raise InputError(f"{record_path} was fine-tuned from another surrogate or training "
                         f"settings ({record.get('fingerprint')} != {fingerprint}); {fix}")
    if record.get("untuned"):
        return Untuned(record.get("failure"))
    if not weights_path.is_file() or _file_hash(weights_path) != record.get("file_sha256"):
        raise InputError(f"{weights_path} is missing or does not match {record_path}; {fix}")
    if _is_torch(base_model):
        import torch

        model = copy.deepcopy(base_model)
        model.load_state_dict(torch.load(weights_path, weights_only=True))
        model.eval()
        if weights_hash(model) != record.get("state_hash"):
            raise InputError(f"the weights read from {weights_path} do not reproduce their "
                             f"hash; {fix}")
    else:
        model = pickle.loads(weights_path.read_bytes())
    return FineTuned(model, str(record["weights_hash"]), [str(i) for i in record["frame_ids"]],
                     float(record["seconds"]), dict(record.get("history") or {}))
