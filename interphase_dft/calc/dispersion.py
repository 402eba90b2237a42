"""DFT-D3(BJ) dispersion: where it applies and how it is added to a calculator.

``dft.dispersion == 'd3'`` adds DFT-D3 with Becke-Johnson damping (``dftd3.ase.DFTD3``) through
:class:`ase.calculators.mixing.SumCalculator`. With ``dft.dispersion_scope == 'all'`` (default)
every calculation of the settings gets it, so energies of different phases come from one
Hamiltonian; with ``'phase'`` only calculations of phases that need it (P2S5) do. The ML
surrogate gets D3 exactly where DFT does, with PBE parameters (CHGNet is trained on PBE).
"""

from __future__ import annotations

from ase.calculators.calculator import Calculator

from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import CalculationError

#: functional whose D3(BJ) parameters go on top of the surrogate (CHGNet is trained on PBE)
SURROGATE_D3_XC = "PBE"


def dispersion_applied(settings: CalcSettings, requested: bool) -> str:
    """Dispersion correction actually applied: ``'d3'`` or ``'none'``.

    Parameters
    ----------
    settings
        Calculation settings (``dft.dispersion``, ``dft.dispersion_scope``).
    requested
        The phase needs dispersion (P2S5); it only matters with
        ``dft.dispersion_scope == 'phase'``.
    """
    if settings.dft.dispersion != "d3":
        return "none"
    return "d3" if requested or settings.dft.dispersion_scope == "all" else "none"


def surrogate_d3_xc(settings: CalcSettings, requested: bool) -> str | None:
    """Functional of the D3 parameters added to the surrogate, or None without D3."""
    return SURROGATE_D3_XC if dispersion_applied(settings, requested) == "d3" else None


def add_d3(calc: Calculator, xc: str) -> Calculator:
    """Wrap ``calc`` in a SumCalculator with DFT-D3(BJ) for functional ``xc`` (energies eV)."""
    try:
        from dftd3.ase import DFTD3
    except ImportError as exc:
        raise CalculationError(
            "dispersion='d3' was requested but the 'dftd3' package is not installed; "
            "install the d3 extra (pip install 'interphase-dft[d3]', a manylinux wheel) or set "
            "dft.dispersion='none' and accept plain-PBE under-binding of P2S5"
        ) from exc
    from ase.calculators.mixing import SumCalculator

    return SumCalculator([calc, DFTD3(method=xc, damping="d3bj")])
