"""Recipes: typed functions that run calculations and return pydantic documents.

* :func:`interphase_dft.recipes.binding.binding_energy` -> ``BindingEnergyDoc``
* :func:`interphase_dft.recipes.barrier.migration_barrier` (A|B, vacancy or interstitial)
  -> ``BarrierDoc``
* :func:`interphase_dft.recipes.barrier.bulk_reference_barrier` (one phase) -> ``BarrierDoc``
* :func:`interphase_dft.recipes.barrier.neb_barrier` (any pair of endpoints) and
  :func:`~interphase_dft.recipes.barrier.path_barrier` (a path through given minima)
  -> ``BarrierDoc``
* :func:`interphase_dft.recipes.references.li_references` -> ``ReferenceEnergies``

Building blocks: :mod:`~interphase_dft.recipes.band` (relaxed minima, band convergence, split
at a minimum, joined paths), :mod:`~interphase_dft.recipes.surrogate_path` (surrogate
pre-stage), :mod:`~interphase_dft.recipes.neb_path` (path geometry and energy profiles),
:mod:`~interphase_dft.recipes.saddle` (what a barrier is),
:mod:`~interphase_dft.recipes.barrier_doc` (the barrier document),
:mod:`~interphase_dft.recipes.hop_setup` (minima of interface and bulk hops),
:mod:`~interphase_dft.recipes.screening` (surrogate site screening).
Heavy modules (GPAW, chgnet) are imported inside the functions.
"""
