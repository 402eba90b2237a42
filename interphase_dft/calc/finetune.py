"""Fine-tuning the CHGNet surrogate on reference (DFT) frames, and its errors against them.

Recipe (:func:`finetune`), CPU only:

* targets: reference energy and forces **minus DFT-D3(BJ)** when the reference calculator
  applied D3 (its description says ``dispersion: 'd3'``): the surrogate factory adds D3 on
  top of CHGNet exactly as DFT does (:mod:`interphase_dft.calc.dispersion`), so CHGNet learns
  the D3-free part;
* energy reference: the per-element energies of CHGNet's composition model are shifted by a
  least-squares fit of (reference - CHGNet) per-atom energies on the element fractions, so a
  constant offset between codes (PAW datasets, EMT) is not learned by the network;
* trainable: the last atom-convolution layer and the readout MLP (everything else frozen);
  CHGNet's own :class:`chgnet.trainer.Trainer` (Adam, cosine schedule, MSE on energy per atom
  and forces), ``epochs`` epochs at ``learning_rate``, batch size 4, fixed seeds;
* the model is a copy: the pretrained weights stay untouched; the result carries a SHA-256 of
  the fine-tuned weights and the ids of the frames used.

:func:`surrogate_errors` measures a factory against reference frames: MAE of the energies
relative to a reference frame (eV; the absolute offset between codes does not matter for a
barrier) and of the force components (eV/Angstrom).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.frames import Frame
from interphase_dft.calc.guard import CalcFactory

#: frames per optimizer step
BATCH_SIZE = 4


@dataclass
class FineTuned:
    """A fine-tuned CHGNet model and where it came from.

    Attributes
    ----------
    model
        The fine-tuned copy (CHGNet).
    weights_hash
        SHA-256 of its state dict (tensors in key order).
    frame_ids
        Ids of the frames it was trained on (frame-store ids, or ``'hop:<i>'`` for frames of
        this hop that were not stored).
    seconds
        Wall time of the fine-tuning, s.
    history
        CHGNet's training history (train MAE per epoch: ``e`` eV/atom, ``f`` eV/Angstrom).
    """

    model: Any
    weights_hash: str
    frame_ids: list[str]
    seconds: float
    history: dict[str, Any] = field(default_factory=dict)


def d3_part(atoms: Atoms, xc: str) -> tuple[float, np.ndarray]:
    """DFT-D3(BJ) energy (eV) and forces (eV/Angstrom) of ``atoms`` for functional ``xc``."""
    from dftd3.ase import DFTD3

    work = atoms.copy()
    work.calc = DFTD3(method=xc, damping="d3bj")
    return float(work.get_potential_energy()), np.array(work.get_forces())


def training_targets(frames: list[Frame]) -> tuple[list[Atoms], np.ndarray, list[np.ndarray]]:
    """Structures, energies (eV per cell) and forces (eV/Angstrom) to learn: the reference
    values minus D3(BJ) where the reference applied it (see the module docstring)."""
    structures, energies, forces = [], [], []
    for f in frames:
        a = f.atoms
        e = float(a.get_potential_energy())
        frc = np.array(a.get_forces(apply_constraint=False))
        if f.calculator.get("dispersion") == "d3":
            xc = str((f.calculator.get("dft") or {}).get("xc", "PBE"))
            ed, fd = d3_part(a, xc)
            e, frc = e - ed, frc - fd
        bare = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell, pbc=True)
        structures.append(bare)
        energies.append(e)
        forces.append(frc)
    return structures, np.array(energies), forces


def weights_hash(model: Any) -> str:
    """SHA-256 of a torch model's state dict."""
    h = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _shift_atom_refs(model: Any, structures: list[Atoms], energies: np.ndarray) -> None:
    """Add the least-squares per-element offset (eV/atom) of reference - CHGNet energies to
    the composition model (see the module docstring)."""
    import torch
    from pymatgen.io.ase import AseAtomsAdaptor

    pred = np.array([float(model.predict_structure(AseAtomsAdaptor.get_structure(s),
                                                   task="e")["e"]) for s in structures])
    per_atom = energies / np.array([len(s) for s in structures]) - pred
    zs = sorted({int(z) for s in structures for z in s.numbers})
    frac = np.array([[np.mean(s.numbers == z) for z in zs] for s in structures])
    shift, *_ = np.linalg.lstsq(frac, per_atom, rcond=None)
    with torch.no_grad():
        w = model.composition_model.fc.weight
        for z, dz in zip(zs, shift, strict=True):
            w[0, z - 1] += float(dz)


def _freeze_all_but_last(model: Any) -> None:
    for p in model.parameters():
        p.requires_grad = False
    for layer in (model.atom_conv_layers[-1], model.mlp):
        for p in layer.parameters():
            p.requires_grad = True


def finetune(model: Any, frames: list[Frame], *, epochs: int, learning_rate: float,
             seed: int = 0) -> FineTuned:
    """Fine-tune a copy of the CHGNet ``model`` on ``frames`` (see the module docstring).

    Parameters
    ----------
    model
        The starting CHGNet model (not modified).
    frames
        Reference frames (energy eV, forces eV/Angstrom) with their calculator description.
    epochs
        Passes over the frames.
    learning_rate
        Adam learning rate.
    seed
        Seed of torch and of the data order.
    """
    from chgnet.data.dataset import StructureData, collate_graphs
    from chgnet.trainer import Trainer
    from pymatgen.io.ase import AseAtomsAdaptor
    from torch.utils.data import DataLoader, Subset

    if not frames:
        raise ValueError("no reference frames to fine-tune on")
    t0 = time.perf_counter()
    tuned = copy.deepcopy(model)
    structures, energies, forces = training_targets(frames)
    _shift_atom_refs(tuned, structures, energies)
    _freeze_all_but_last(tuned)
    data = StructureData(
        structures=[AseAtomsAdaptor.get_structure(s) for s in structures],
        energies=list(energies / np.array([len(s) for s in structures])),
        forces=[f.tolist() for f in forces],
        structure_ids=[str(f.id) for f in frames], shuffle=False)
    loader = DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, collate_fn=collate_graphs,
                        generator=_generator(seed))
    # CHGNet's trainer validates after every epoch: on one frame (the first), to keep it cheap
    val = DataLoader(Subset(data, [0]), batch_size=1, collate_fn=collate_graphs)
    trainer = Trainer(tuned, targets="ef", optimizer="Adam", scheduler="CosLR",
                      criterion="MSE", epochs=epochs, learning_rate=learning_rate,
                      use_device="cpu", print_freq=10**6, torch_seed=seed, data_seed=seed)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train(loader, val, save_dir="")
    tuned = trainer.model
    tuned.eval()
    history = {k: dict(v) for k, v in trainer.training_history.items()}
    return FineTuned(tuned, weights_hash(tuned), [str(f.id) for f in frames],
                     time.perf_counter() - t0, history)


def _generator(seed: int) -> Any:
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g


def surrogate_errors(factory: CalcFactory, frames: list[Atoms],
                     reference: Atoms) -> dict[str, float]:
    """Errors of ``factory``'s calculators against reference frames.

    Parameters
    ----------
    factory
        The surrogate factory (D3 included as in DFT).
    frames
        Reference single points (SinglePointCalculator with energy and forces).
    reference
        A reference single point whose energy is the zero of both scales (e.g. the initial
        endpoint); energies are compared relative to it.

    Returns
    -------
    dict
        ``energy_mae`` (eV, relative energies), ``force_mae`` (eV/Angstrom, per component),
        ``force_max`` (eV/Angstrom, largest atom force error), ``n`` frames; NaN without frames.
    """
    if not frames:
        return {"energy_mae": float("nan"), "force_mae": float("nan"),
                "force_max": float("nan"), "n": 0}

    def evaluate(a: Atoms) -> tuple[float, np.ndarray]:
        work = a.copy()
        work.calc = factory(work)
        return float(work.get_potential_energy()), np.array(work.get_forces())

    e0_ml, _ = evaluate(reference)
    e0 = float(reference.get_potential_energy())
    de, df, dmax = [], [], 0.0
    for a in frames:
        e_ml, f_ml = evaluate(a)
        f_ref = np.array(a.get_forces(apply_constraint=False))
        de.append(abs((e_ml - e0_ml) - (float(a.get_potential_energy()) - e0)))
        df.append(np.abs(f_ml - f_ref).mean())
        dmax = max(dmax, float(np.linalg.norm(f_ml - f_ref, axis=1).max()))
    return {"energy_mae": float(np.mean(de)), "force_mae": float(np.mean(df)),
            "force_max": dmax, "n": len(frames)}
