"""Recipes: typed functions that run calculations and return pydantic documents.

* :func:`interphase_dft.recipes.binding.binding_energy` -> ``BindingEnergyDoc``
* :func:`interphase_dft.recipes.barrier.migration_barrier` -> ``BarrierDoc``
* :func:`interphase_dft.recipes.barrier.neb_barrier` (any pair of endpoints) -> ``BarrierDoc``

Heavy modules (GPAW, chgnet) are imported inside the functions.
"""
