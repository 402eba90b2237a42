"""The named presets (test, screening, laptop, production): plain functions returning fresh
:class:`~interphase_dft.calc.settings.CalcSettings`; :func:`preset` applies overrides."""

from __future__ import annotations

from typing import Any

from interphase_dft.calc.settings import (
    BindingSettings,
    BudgetSettings,
    CalcSettings,
    DFTSettings,
    NEBSettings,
    RelaxSettings,
    StructureSettings,
)
from interphase_dft.errors import InputError

#: laptop wall-time ceiling of one barrier, hours (the 2-hour main job on 2 workers)
LAPTOP_BARRIER_HOURS = 2.0
#: laptop DFT-call ceiling of one barrier: the active-learning loop's rounds (<= n_images + 2
#: single points each, 4 rounds) and a few steps of the final DFT CI-NEB
LAPTOP_BARRIER_CALLS = 30
#: laptop ceilings of one binding energy: the plan is at most 30 DFT calls (surface: 3 for the
#: termination, up to 3 thicknesses x (host + 4 sites + 4 Li charges) when the surrogate
#: cannot rank the sites (binding.max_window_sites); bulk: at most 12, and the P4S10 crystal's
#: DFT cell relaxation before them, cost.RELAX_CALLS = 25 planned), so the calls only stop a
#: runaway; the hour stops a slab that is too slow for a laptop pass (the LPSC slab takes
#: about 1 h per single point on 2 ranks)
LAPTOP_BINDING_CALLS = 40
LAPTOP_BINDING_HOURS = 1.0


def _test() -> CalcSettings:
    return CalcSettings(
        preset="test",
        dft=DFTSettings(
            ecut=200.0, kpt_density=1.0, smearing_width=0.1, scf_energy=1e-4,
            scf_density=1e-3, maxiter=100, atom_box=8.0, gamma_only_atoms=16,
        ),
        relax=RelaxSettings(fmax=0.1, steps=30),
        neb=NEBSettings(n_images=3, fmax=0.1, steps=60, ml_prestage=False),
        structure=StructureSettings(
            slab_layers=2, slab_vacuum=4.0, slab_fixed_layers=1, bulk_min_length=3.0,
            slab_max_layers=3, slab_max_atoms=60, surface_energy_candidates=2,
            interface_max_atoms=40, interface_layers=1, interface_min_thickness=3.0,
            interface_migration_max_atoms=120,
        ),
        binding=BindingSettings(max_dft_sites=None),
        budget=BudgetSettings(max_dft_calls=2000),
    )


def _laptop() -> CalcSettings:
    # Level: certified DFT saddles by the active-learning loop (issue 17). The surrogate relaxes
    # the endpoints and converges the climbing-image band, DFT single points check them (the
    # climbing image first), CHGNet is fine-tuned on those frames and the stored ones, and the
    # loop repeats until the DFT force on the climbing image is <= neb.fmax and on the
    # endpoints <= relax.fmax; after al_max_rounds a DFT CI-NEB finishes the band (counted by
    # the budget). Binding geometries are relaxed by the surrogate and given DFT single points
    # (a DFT relaxation of a 50-80 atom slab takes 30-60 min on 2 cores).
    return CalcSettings(
        preset="laptop",
        # maxiter 120: converging slab SCFs here need 30-60 iterations; a diverging one fails
        # over to the safer retry after 120 instead of 200 (about 15 min of a 2-core laptop)
        dft=DFTSettings(ecut=300.0, kpt_density=2.0, gamma_only_atoms=60, dispersion="d3",
                        maxiter=120),
        relax=RelaxSettings(fmax=0.05, steps=150, ml_steps=600, ml_prerelax=True,
                            dft_relax=False),
        neb=NEBSettings(n_images=3, fmax=0.05, steps=100, dft_refine=False,
                        active_learning=True),
        structure=StructureSettings(
            slab_layers=3, slab_vacuum=6.0, slab_fixed_layers=1, slab_min_area=60.0,
            slab_max_layers=5, slab_max_atoms=160, surface_energy_candidates=2,
            bulk_min_length=8.0, interface_max_atoms=80, interface_layers=1,
            interface_min_thickness=6.0, interface_migration_max_atoms=200,
            # interface hop cells (6-9 A in-plane) on the density mesh (2x2x1): at Gamma the
            # Li3P|LiCl minima and saddle carry 0.19-0.30 eV/A at 2x2x1 (docs/physics.md)
            interface_density_mesh=True,
        ),
        binding=BindingSettings(max_dft_sites=2, max_dft_vacancies=1, screen_window=0.1,
                                max_window_sites=4),
        # a band the loop cannot certify ends 'not certified: over budget' (what was reached
        # is stored; a rerun with a larger budget continues from the checkpoints)
        budget=BudgetSettings(max_dft_calls=LAPTOP_BARRIER_CALLS,
                              max_dft_hours=LAPTOP_BARRIER_HOURS,
                              binding_max_dft_calls=LAPTOP_BINDING_CALLS,
                              binding_max_dft_hours=LAPTOP_BINDING_HOURS),
    )


def _screening() -> CalcSettings:
    # The PBE//CHGNet single-point level (what `laptop` computed before issue 17): DFT single
    # points on surrogate endpoints and the surrogate-converged path. Cheap (5 DFT calls a
    # hop; 12 with a split at an intermediate minimum) but its images carry DFT forces of
    # 0.3-1.7 eV/A: its bands are not saddles, and the saddle rule never certifies them
    # (documents say 'not certified'/'not converged').
    laptop = _laptop()
    return laptop.model_copy(update={
        "preset": "screening",
        "neb": laptop.neb.model_copy(update={"active_learning": False}),
        "budget": laptop.budget.model_copy(update={"max_dft_calls": 12})})


def _production() -> CalcSettings:
    return CalcSettings(
        preset="production",
        dft=DFTSettings(
            ecut=520.0, kpt_density=4.0, gamma_only_atoms=400, smearing_width=0.1,
            scf_energy=5e-6, dispersion="d3", atom_box=14.0,
        ),
        relax=RelaxSettings(fmax=0.02, steps=400, relax_cell_bulk=True),
        neb=NEBSettings(n_images=7, fmax=0.05, steps=500),
        structure=StructureSettings(
            slab_layers=6, slab_vacuum=8.0, slab_fixed_layers=2, slab_min_area=60.0,
            slab_max_layers=10, slab_max_atoms=600, surface_energy_candidates=4,
            bulk_min_length=10.0, interface_max_atoms=400, interface_layers=3,
            interface_min_thickness=10.0, interface_migration_max_atoms=600,
            interface_migration_vacuum=12.0, interface_density_mesh=True,
        ),
        binding=BindingSettings(max_dft_sites=None),
        # 2 relaxations (<= 100 steps each) + a 7-image CI-NEB of <= 250 band evaluations
        budget=BudgetSettings(max_dft_calls=2000),
    )


#: overrides that lift a cheaper level (laptop: active learning; screening: PBE//CHGNet) to
#: DFT-relaxed geometries and a plain DFT CI-NEB
FULL_DFT_OVERRIDES: dict[str, Any] = {
    "relax": {"dft_relax": True}, "neb": {"dft_refine": True, "active_learning": False},
    # the laptop budget is the active-learning plan; full DFT gets the production ceiling
    "budget": {"max_dft_calls": 2000, "max_dft_hours": None, "binding_max_dft_calls": None,
               "binding_max_dft_hours": None},
}

PRESETS = {"test": _test, "screening": _screening, "laptop": _laptop,
           "production": _production}


def preset(name: str, overrides: dict[str, Any] | None = None) -> CalcSettings:
    """Return a fresh :class:`CalcSettings` for preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise InputError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} "
            "(override single fields with the 'overrides' mapping)"
        )
    return PRESETS[name]().with_overrides(overrides)
