"""ML surrogate (CHGNet) as an ASE calculator, loaded offline from the weights in the wheel.

The surrogate is used for pre-relaxations and to pre-converge NEB paths only. Its energies
are never mixed with DFT energies: documents record the stage (``'ml'``, ``'ml+dft'``,
``'dft'``) and keep an ML barrier in a separate field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from interphase_dft.calc.dispersion import add_d3
from interphase_dft.calc.settings import MLSettings
from interphase_dft.errors import CalculationError

#: CHGNet weights version shipped inside the chgnet wheel (no download)
CHGNET_MODEL = "0.3.0"

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TORCH_HOME": os.path.join(os.path.expanduser("~"), ".cache", "torch"),
}


def _offline_environment() -> None:
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def load_model(settings: MLSettings) -> Any:
    """Load the pretrained CHGNet model from the package directory (never downloads)."""
    _offline_environment()
    try:
        from chgnet.model import CHGNet
    except ImportError as exc:
        raise CalculationError(
            "the ML surrogate needs chgnet: install the ml extra "
            "(scripts/bootstrap.sh dev,ml) or set neb.ml_prestage=false"
        ) from exc
    return CHGNet.load(model_name=CHGNET_MODEL, use_device=settings.device, verbose=False)


def ml_calculator(settings: MLSettings, model: Any = None) -> Calculator:
    """Return a CHGNet ASE calculator (energies eV, forces eV/Angstrom, stress).

    Parameters
    ----------
    settings
        ``settings.model`` must be ``'chgnet'``; ``settings.device`` e.g. ``'cpu'``.
    model
        An already loaded model to share between calculators (NEB images).
    """
    if settings.model != "chgnet":
        raise CalculationError(f"unknown ML model {settings.model!r}; only 'chgnet' is supported")
    from chgnet.model.dynamics import CHGNetCalculator

    model = model if model is not None else load_model(settings)
    return CHGNetCalculator(model=model, use_device=settings.device)


@dataclass
class MLFactory:
    """Factory ``factory(atoms, attempt=0, label='')`` for CHGNet calculators (shared model).

    ``d3_xc``: add DFT-D3(BJ) with that functional's parameters (``'PBE'``: CHGNet is trained
    on PBE energies without dispersion), for phases whose DFT calculations get D3 (see
    :mod:`interphase_dft.calc.dispersion`), so vdW-bound molecules stay bound in surrogate
    geometries.

    ``weights``: hash of fine-tuned weights in ``_model`` (:mod:`interphase_dft.calc.finetune`),
    None for the pretrained model; it is part of the description, so checkpoints of a
    fine-tuned surrogate never match those of another model.
    """

    settings: MLSettings
    _model: Any = field(default=None, repr=False)
    d3_xc: str | None = None
    weights: str | None = None

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
        if self._model is None:
            self._model = load_model(self.settings)
        calc = ml_calculator(self.settings, self._model)
        if self.d3_xc:
            calc = add_d3(calc, self.d3_xc)
        return calc

    @property
    def description(self) -> dict[str, Any]:
        desc = {"engine": "ml", "model": f"chgnet-{CHGNET_MODEL}",
                "device": self.settings.device,
                "dispersion": f"d3({self.d3_xc})" if self.d3_xc else "none"}
        if self.weights:
            desc["weights"] = self.weights
        return desc

    @property
    def model(self) -> Any:
        """The CHGNet model (loaded on first use)."""
        if self._model is None:
            self._model = load_model(self.settings)
        return self._model
