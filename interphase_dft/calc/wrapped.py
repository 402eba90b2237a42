"""A calculator that evaluates through another one: the base of the metered (budget) and the
recording (frame store) wrappers, which add bookkeeping around the same evaluation; and
:class:`WrappingFactory`, the base of the factories that wrap another factory."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator


class WrappedCalculator(Calculator):
    """Energy, free energy, forces (and stress when asked) of ``inner``.

    ``mixer.calcs`` exposes the inner calculator's parts, so
    :func:`interphase_dft.calc.spin.total_moment` still finds the GPAW part.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, inner: Calculator) -> None:
        super().__init__()
        self.inner = inner

    @property
    def mixer(self) -> SimpleNamespace:
        parts = getattr(getattr(self.inner, "mixer", None), "calcs", None) or [self.inner]
        return SimpleNamespace(calcs=list(parts))

    def evaluate(self, properties: Any) -> dict[str, Any]:
        """The inner calculator's results for ``self.atoms`` (set by ``calculate``)."""
        work = self.atoms.copy()
        work.calc = self.inner
        results: dict[str, Any] = {"energy": float(work.get_potential_energy()),
                                   "forces": np.array(work.get_forces())}
        try:
            results["free_energy"] = float(work.get_potential_energy(force_consistent=True))
        except Exception:
            results["free_energy"] = results["energy"]
        if "stress" in properties:
            results["stress"] = np.array(work.get_stress())
        return results


class WrappingFactory:
    """Base of a factory that wraps the factory ``self.inner``: ``description`` and every
    other attribute are the wrapped factory's (checkpoint fingerprints and frame hashes do not
    change), and ``paired()``, where the wrapped factory has one, is its spin-paired variant
    wrapped the same way (:meth:`rewrap`)."""

    inner: Any

    def rewrap(self, inner: Any) -> Any:
        """This wrapper around another factory ``inner``."""
        raise NotImplementedError

    @property
    def description(self) -> dict[str, Any]:
        return dict(getattr(self.inner, "description", {}) or {})

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        if name == "paired":
            paired = inner.paired  # AttributeError when the wrapped factory has none

            def wrapped_paired() -> Any:
                return self.rewrap(paired())

            return wrapped_paired
        return getattr(inner, name)
