"""Calculators and runners: settings and presets (:mod:`~.settings`), the GPAW/surrogate
factory (:mod:`~.factory`, :mod:`~.ml`, :mod:`~.dispersion`, :mod:`~.spin`), the guarded
calculator (:mod:`~.guard`), runners with checkpoints (:mod:`~.runners` static/relax,
:mod:`~.neb` CI-NEB, :mod:`~.checkpoint`) and the run log of a recipe (:mod:`~.runlog`)."""
