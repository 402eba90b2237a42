"""Li migration barrier recipes: climbing-image NEB between two relaxed endpoints.

:func:`migration_barrier` computes the hop of a Li from phase A into phase B across their
interface (cell and endpoints from :func:`interface_hop`); :func:`neb_barrier` works on any
pair of endpoints (a bulk vacancy hop, an interface hop) with the hop's calculator choices in
a :class:`HopOptions`. The procedure (:mod:`interphase_dft.recipes.band`):

1. both endpoints are relaxed in the same cell (fixed atoms stay fixed); with
   ``settings.relax.dft_relax = False`` the surrogate relaxes them and DFT gives one single
   point each;
2. the band is interpolated with IDPP (``settings.neb.n_images`` intermediate images);
3. optional surrogate pre-stage (``settings.neb.ml_prestage``): the band is converged with the
   CHGNet surrogate to ``ml_fmax`` and checked (no atoms closer than 0.7 Angstrom, no image
   step more than 3x the mean, surrogate NEB converged, DFT barrier on the surrogate path
   within ``ml_max_barrier_gap`` eV of the surrogate barrier). A rejected path is replaced by
   the IDPP band and the reason is stored in ``ml_fallback_reason``;
4. DFT climbing-image NEB (climbing from the start, :mod:`interphase_dft.calc.neb`) to
   ``settings.neb.fmax``; or, with ``settings.neb.dft_refine = False`` and an accepted
   surrogate path, the DFT single points of step 3 are the result (stage ``'dft//ml'``);
5. a band through another minimum is split there (``HopOptions.split_minimum``).

Barriers are taken from the images (the climbing image is the saddle point): forward =
max(E) - E(initial), reverse = max(E) - E(final); for a joined path the energetic spans
(:mod:`interphase_dft.span`). The spline is ASE's force-curve fit
(:func:`ase.utils.forcecurve.fit_images`), stored for plots only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.dispersion import dispersion_applied
from interphase_dft.calc.factory import (
    factory_for,
    insertion_spin,
    scf_parameters,
    seed_moment,
    surrogate_factory,
)
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import InputError
from interphase_dft.recipes.band import Band, BandRunner
from interphase_dft.recipes.neb_path import intermediate_minimum, path_steps
from interphase_dft.schemas import BarrierDoc, NEBImageData, StructureData
from interphase_dft.span import span_barriers

__all__ = ["FIX_BEYOND", "HopOptions", "barrier_doc", "interface_hop", "interface_hop_options",
           "intermediate_minimum", "migration_barrier", "neb_barrier"]

log = logging.getLogger("interphase_dft.recipes")

#: interface atoms farther than this from the interface midplane are fixed, Angstrom
FIX_BEYOND = 4.0


@dataclass(frozen=True)
class HopOptions:
    """Calculator and path choices of one hop (what :func:`neb_barrier` needs besides settings).

    Attributes
    ----------
    is_metal
        Metal smearing (``dft.smearing_width``) instead of the insulator width.
    dispersion
        The hop involves a phase that needs dispersion (P2S5); see
        :func:`interphase_dft.calc.dispersion.dispersion_applied`.
    li_inserted
        The hopping Li is an added (interstitial) Li, as in interface hops: smearing at least
        ``dft.li_insertion_smearing``, and spin-polarised with 1 mu_B seeded on the hopping Li
        (``info['li_index']``, else the last atom) when neither side is a metal
        (:func:`interphase_dft.calc.factory.insertion_spin`); a vacancy hop in an insulator
        stays as it is.
    mic
        Interpolate with the minimum-image convention (False: raw position difference, for a
        hop into the next cell).
    calc_extra
        Extra GPAW keywords, e.g. ``{'charge': -1}`` for a charged Li vacancy (stored in the
        document's ``calculator`` field).
    relax_endpoints
        Relax both endpoints first (positions, cell fixed).
    split_minimum
        When the converged band passes through another minimum (an image more than
        ``INTERMEDIATE_MINIMUM`` eV below the lower endpoint), relax that image at the
        endpoints' level and converge the hops initial -> minimum -> final separately (work
        directories ``intermediate/``, ``seg1/``, ``seg2/``). The document then holds the
        joined path, its ``segments`` and, as barriers, the energetic spans.
    """

    is_metal: bool = False
    dispersion: bool = False
    li_inserted: bool = False
    mic: bool = True
    calc_extra: Mapping[str, Any] | None = None
    relax_endpoints: bool = True
    split_minimum: bool = True


def neb_barrier(initial: Atoms, final: Atoms, settings: CalcSettings, workdir: Path | str,
                options: HopOptions | None = None, *, label: str = "neb",
                phase_a: str | None = None, phase_b: str | None = None,
                interface_meta: dict[str, Any] | None = None,
                calc_factory: CalcFactory | None = None) -> BarrierDoc:
    """Climbing-image NEB barrier between ``initial`` and ``final`` (same atom order).

    Parameters
    ----------
    initial, final
        Endpoints with identical symbols order, cell and constraints (not modified).
    settings
        Calculation settings (``settings.neb`` for the band, ``settings.relax`` for endpoints).
    workdir
        Checkpoint directory (``initial/``, ``final/``, ``neb-ml/``, ``ml-check/``, ``neb/``;
        see :mod:`interphase_dft.recipes.band`).
    options
        Calculator and path choices of the hop (default :class:`HopOptions` ()).
    label
        Name used in logs and warnings.
    phase_a, phase_b
        Stored in the document; default the formula of ``initial`` (``phase_b``: ``phase_a``).
    interface_meta
        Stored as ``BarrierDoc.interface_meta``.
    calc_factory
        Use this factory instead of the one built from ``settings`` (tests, other codes).

    Returns
    -------
    BarrierDoc
        Energies relative to the initial state (eV), barriers, spline, per-image fmax.
    """
    opts = options or HopOptions()
    if initial.get_chemical_symbols() != final.get_chemical_symbols():
        raise InputError(f"NEB endpoints of {label} differ in atom order or composition; "
                         "build both from the same host and move only the hopping Li")
    workdir = Path(workdir)
    # an added Li hopping through non-metals: spin-polarised, 1 mu_B seeded on the hopping Li
    spin = opts.li_inserted and insertion_spin(settings, is_metal=opts.is_metal)
    if spin:
        li = int(initial.info.get("li_index", len(initial) - 1))
        initial, final = seed_moment(initial, li), seed_moment(final, li)
    runner = _band_runner(settings, opts, workdir, calc_factory, spin=spin, label=label)
    ends, unconverged = runner.relax_endpoints(initial, final, workdir,
                                               relax_it=opts.relax_endpoints)
    band = runner.converge(ends, workdir)
    if opts.split_minimum and intermediate_minimum(band.res.energies):
        band = runner.split_at_minimum(band, workdir) or band
    if unconverged:
        # an endpoint that is not a minimum makes the barrier meaningless: not converged
        band.res.converged = False
        runner.run.warn(f"endpoint relaxation not converged ({', '.join(unconverged)}): the "
                        "barrier is not used in the fit; raise relax.steps (relax.ml_steps for "
                        "surrogate relaxations)")
    calculator = _description(runner, opts, settings, custom=calc_factory is not None,
                              spin=spin)
    pa = phase_a or initial.get_chemical_formula()
    return barrier_doc(band, settings, runner.run, phase_a=pa, phase_b=phase_b or pa,
                       interface_meta=interface_meta or {}, calculator=calculator,
                       input_structure=initial)


def _band_runner(settings: CalcSettings, opts: HopOptions, workdir: Path,
                 calc_factory: CalcFactory | None, *, spin: bool, label: str) -> BandRunner:
    """The calculators of a hop: the reported level, the surrogate for geometries and path."""
    factory = calc_factory or factory_for(
        settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
        txt=str(workdir / "gpaw.txt"), extra=dict(opts.calc_extra or {}),
        li_inserted=opts.li_inserted, spin=spin)
    # relax.dft_relax=false: endpoints relaxed by the surrogate, then one DFT single point
    geometry_ml = None
    if opts.relax_endpoints and settings.surrogate_geometry:
        geometry_ml = surrogate_factory(settings, dispersion=opts.dispersion)
    path_ml = geometry_ml  # one surrogate (one loaded model) for geometries and path
    if path_ml is None and settings.neb.ml_prestage and settings.engine != "ml":
        path_ml = surrogate_factory(settings, dispersion=opts.dispersion)
    return BandRunner(settings, factory, RunLog(), geometry_ml=geometry_ml, path_ml=path_ml,
                      mic=opts.mic, label=label)


def _description(runner: BandRunner, opts: HopOptions, settings: CalcSettings, *,
                 custom: bool, spin: bool) -> dict[str, Any]:
    """What the calculators of the hop applied (``BarrierDoc.calculator``)."""
    nset = settings.neb
    desc = dict(getattr(runner.factory, "description", {}))
    desc.pop("dft", None)
    desc["smearing"] = scf_parameters(settings, is_metal=opts.is_metal,
                                      li_inserted=opts.li_inserted)["occupations"]
    desc["dispersion"] = (dispersion_applied(settings, opts.dispersion)
                          if settings.engine == "gpaw" and not custom else "none")
    if opts.calc_extra:
        desc["extra"] = dict(opts.calc_extra)
    desc["spin"] = "spin-polarised (1 mu_B seeded on the hopping Li)" if spin else "spin-paired"
    desc["geometry"] = ("surrogate-relaxed endpoints, DFT single points"
                        if runner.geometry_ml is not None
                        else "DFT-relaxed endpoints" if opts.relax_endpoints
                        else "endpoints as given")
    desc["neb"] = {"climb": "from the start" if nset.climb else "off",
                   "method": nset.method, "optimizer": nset.optimizer,
                   "spring_eV_per_A2": nset.spring, "interpolation": "idpp"}
    return desc


def _fmax(atoms: Atoms) -> float:
    """Largest force on ``atoms`` (constraints applied), eV/Angstrom."""
    return float(np.linalg.norm(atoms.get_forces(apply_constraint=True), axis=1).max())


def barrier_doc(band: Band, settings: CalcSettings, run: RunLog, *, phase_a: str,
                phase_b: str, interface_meta: dict[str, Any], calculator: dict[str, Any],
                input_structure: Atoms) -> BarrierDoc:
    """Assemble the :class:`BarrierDoc` of a finished band (energies relative to image 0).

    With ``band.segments`` (a path joined at an intermediate minimum) the barriers are the
    energetic spans of the joined path and each segment is checked for minima of its own.
    The fit and band warnings are added to ``run``.
    """
    from ase.utils.forcecurve import fit_images

    res = band.res
    e = np.array(res.energies) - res.energies[0]
    try:
        fit = fit_images(res.images)
        path = [float(x) for x in fit.path]
        spline = {"x": [float(x) for x in fit.fit_path],
                  "y": [float(y) for y in fit.fit_energies]}  # already relative to image 0
    except np.linalg.LinAlgError:  # coinciding images: no cubic fit, keep the raw profile
        path = [0.0, *np.cumsum(path_steps(res.images)).tolist()]
        spline = {"x": path, "y": [float(x) for x in e]}
        run.warn("force-curve fit failed (coinciding images); raw profile stored")
    segments = list(band.segments)
    if segments:
        jumps = [intermediate_minimum(e[sg["images"][0]:sg["images"][1] + 1]) for sg in segments]
        jump = next((j for j in jumps if j), None)
        forward, reverse = span_barriers(e)
    else:
        jump = intermediate_minimum(e)
        forward, reverse = float(e.max()), float(e.max() - e[-1])
    if jump:
        log.warning(jump)
        run.warn(jump)
    image_fmax = [_fmax(res.images[0]), *res.image_fmax, _fmax(res.images[-1])]
    return BarrierDoc.from_run(
        settings, run, calculator=calculator, input_structure=input_structure,
        interface=f"{phase_a}|{phase_b}", phase_a=phase_a, phase_b=phase_b,
        interface_meta=interface_meta,
        images=[NEBImageData(energy=float(im.get_potential_energy()), fmax=fm,
                             structure=StructureData.from_atoms(im))
                for im, fm in zip(res.images, image_fmax, strict=True)],
        energies=[float(x) for x in e], path_coordinate=path, spline=spline,
        barrier_forward=forward, barrier_reverse=reverse, segments=segments,
        reaction_energy=float(e[-1]), converged=res.converged, fmax_final=res.fmax,
        band_continuous=jump is None, climbing_image=res.climbing_image, stage=band.stage,
        ml_barrier=band.ml_barrier, ml_fallback_reason=band.fallback,
    )


def interface_hop(phase_a: str, phase_b: str,
                  settings: CalcSettings) -> tuple[Atoms, Atoms, dict[str, Any]]:
    """The interface cell and NEB endpoints :func:`migration_barrier` computes.

    The smallest interface candidate (fewest atoms, then lowest strain) within the
    ``settings.structure`` limits (:func:`interphase_dft.builders.interfaces.make_interfaces`);
    endpoints Li in A and Li in B next to the interface, same cell, atoms farther than
    ``FIX_BEYOND`` = 4 Angstrom from the interface midplane fixed
    (:func:`interphase_dft.builders.neb.interface_endpoints`).

    Returns
    -------
    (initial, final, meta) : ``meta`` is stored as ``BarrierDoc.interface_meta``.
    """
    from interphase_dft import phases
    from interphase_dft.builders.interfaces import make_interfaces
    from interphase_dft.builders.neb import interface_endpoints
    from interphase_dft.errors import NoMatchError

    a, b = phases.resolve_phase(phase_a), phases.resolve_phase(phase_b)
    st = settings.structure
    cands = make_interfaces(a, b, max_strain=st.interface_max_strain,
                            max_atoms=st.interface_max_atoms, gap=st.interface_gap,
                            layers_a=st.interface_layers, layers_b=st.interface_layers,
                            vacuum=st.interface_vacuum)
    if not cands:
        raise NoMatchError(f"no {a}|{b} interface within strain {st.interface_max_strain} and "
                           f"{st.interface_max_atoms} atoms; raise structure.interface_max_atoms "
                           "or structure.interface_max_strain")
    best = min(cands, key=lambda c: (c.n_atoms, c.strain))
    initial, final = interface_endpoints(best.atoms, fix_beyond=FIX_BEYOND)
    meta = {
        "n_atoms": best.n_atoms, "strain": best.strain, "area": best.area,
        "miller_a": list(best.miller_a), "miller_b": list(best.miller_b),
        "termination_a": best.termination_a, "termination_b": best.termination_b,
        "strained_side": best.strained_side, "rule": "fewest atoms, then lowest strain",
        "layers": st.interface_layers, "cell_A": [float(x) for x in best.atoms.cell.lengths()],
        "hop_A": float(initial.info["li_hop_A"]),
        "n_fixed": len(initial.constraints[0].index) if initial.constraints else 0,
    }
    return initial, final, meta


def migration_barrier(phase_a: str, phase_b: str, settings: CalcSettings, *,
                      workdir: Path | str) -> BarrierDoc:
    """Li migration barrier from phase A into phase B across their interface.

    Cell and endpoints from :func:`interface_hop`, options from :func:`interface_hop_options`,
    then :func:`neb_barrier`; the document is labelled with the resolved phase names.
    """
    from interphase_dft import phases

    a, b = phases.resolve_phase(phase_a), phases.resolve_phase(phase_b)
    initial, final, meta = interface_hop(a, b, settings)
    return neb_barrier(initial, final, settings, workdir, interface_hop_options(a, b),
                       label=f"{a}|{b}", phase_a=a, phase_b=b, interface_meta=meta)


def interface_hop_options(phase_a: str, phase_b: str) -> HopOptions:
    """:class:`HopOptions` of an A|B interface hop (what :func:`migration_barrier` uses).

    Metal smearing when either side is a metal, D3 when either side needs it, and the
    Li-insertion treatment (the hopping Li is an added interstitial).
    """
    from interphase_dft import phases

    ia = phases.phase_info(phases.resolve_phase(phase_a))
    ib = phases.phase_info(phases.resolve_phase(phase_b))
    return HopOptions(is_metal=ia.is_metal or ib.is_metal,
                      dispersion=ia.needs_dispersion or ib.needs_dispersion, li_inserted=True)
