"""Checks of a binding run's settings against its structures before any calculation.

A binding run cuts its Li sites (and vacancies) to ``binding.max_dft_sites`` (and
``max_dft_vacancies``) only by a surrogate ranking (:func:`~interphase_dft.recipes.screening.
needs_screening`): without ``binding.screen_with_ml`` or without the surrogate installed such a
run must stop. It used to stop only when it reached the sites, after the references, the cell
relaxation or the termination choice had been computed and checkpointed. :func:`check_sites`
counts the sites with the builders alone (seconds) and raises first.

Rules
-----
- Nothing to check when no cap is set, or when screening is on and the surrogate imports.
- Bulk mode: the symmetry-distinct interstitial sites and Li sites of the conventional cell
  (the counts the recipe places in its supercell).
- Surface mode: the adsorption sites of every termination candidate the DFT surface energy
  may choose, at the first thickness (any of them may become the slab).
"""

from __future__ import annotations

from typing import Literal

from interphase_dft.calc.settings import CalcSettings
from interphase_dft.recipes.screening import needs_screening


def _cannot_fail(settings: CalcSettings) -> bool:
    b = settings.binding
    if b.max_dft_sites is None and b.max_dft_vacancies is None:
        return True
    if not b.screen_with_ml:
        return False
    try:
        import chgnet.model  # noqa: F401
    except ImportError:
        return False
    return True


def check_sites(name: str, settings: CalcSettings, mode: Literal["surface", "bulk"]) -> None:
    """Raise :class:`~interphase_dft.errors.InputError` (or
    :class:`~interphase_dft.errors.CalculationError` for a missing surrogate) when the run of
    phase ``name`` in ``mode`` would have to cut its sites and cannot (module rules)."""
    if _cannot_fail(settings):
        return
    from interphase_dft import phases
    from interphase_dft.builders.sites import adsorption_sites, interstitial_sites, vacancy_sites

    bulk = phases.get_bulk(name)
    if mode == "bulk":
        needs_screening(len(interstitial_sites(bulk)), settings)
        if "Li" in bulk.get_chemical_symbols():
            needs_screening(len(vacancy_sites(bulk, "Li")), settings, "max_dft_vacancies")
        return
    from interphase_dft.recipes.surface_mode import adsorption_slab, termination_pool

    st = settings.structure
    _, pool = termination_pool(bulk, name, st)
    for term in pool[:st.surface_energy_candidates]:
        host = adsorption_slab(bulk, term, st, st.slab_layers, name)
        needs_screening(len(adsorption_sites(host)), settings)
