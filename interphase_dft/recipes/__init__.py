"""Recipes: typed functions that run calculations and return pydantic documents.

* :func:`interphase_dft.recipes.binding.binding_energy` -> ``BindingEnergyDoc``
* :func:`interphase_dft.recipes.barrier.migration_barrier` -> ``BarrierDoc``
* :func:`interphase_dft.recipes.barrier.neb_barrier` (any pair of endpoints) -> ``BarrierDoc``
* :func:`interphase_dft.recipes.references.li_references` -> ``ReferenceEnergies``

Building blocks: :mod:`~interphase_dft.recipes.band` (relaxed minima, surrogate pre-stage, band
convergence, split at a minimum), :mod:`~interphase_dft.recipes.neb_path` (path geometry and
energy profiles), :mod:`~interphase_dft.recipes.screening` (surrogate site screening).
Heavy modules (GPAW, chgnet) are imported inside the functions.
"""
