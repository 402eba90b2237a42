"""Li migration barrier recipes: climbing-image NEB between two relaxed endpoints.

:func:`neb_barrier` works on any pair of endpoints (a bulk vacancy hop, an interface hop):

1. both endpoints are relaxed in the same cell (fixed atoms stay fixed);
2. the band is interpolated with IDPP (``settings.neb.n_images`` intermediate images);
3. optional ML pre-stage (``settings.neb.ml_prestage``): the band is converged with the CHGNet
   surrogate to ``ml_fmax`` (plain NEB, then climbing image), then checked: no atoms closer
   than 0.7 Angstrom, a continuous band (no image step more than 3x the mean), ML NEB
   converged, and the DFT energies of the surrogate path must give a barrier within
   ``ml_max_barrier_gap`` eV of the surrogate barrier. A rejected path is replaced by the IDPP
   band and the reason is stored in ``ml_fallback_reason``;
4. DFT climbing-image NEB (climbing from the start, see :mod:`interphase_dft.calc.neb`) to
   ``settings.neb.fmax``; or, with ``settings.neb.dft_refine = False`` and an accepted
   surrogate path, the DFT single points of step 3 are the result (stage ``'dft//ml'``,
   the cheap level of the laptop preset; its error against full DFT NEB is measured in
   ``benchmarks/bench_neb_cost.py``).

With ``settings.relax.dft_relax = False`` the endpoints are relaxed by the surrogate and get
one DFT single point each (constrained atoms stay fixed either way).

Barriers are taken from the images (the climbing image is the saddle point): forward =
max(E) - E(initial), reverse = max(E) - E(final). The spline is ASE's force-curve fit
(:func:`ase.utils.forcecurve.fit_images`), stored for plots only.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from interphase_dft.calc.factory import (
    dispersion_applied,
    factory_for,
    insertion_spin,
    scf_parameters,
    seed_moment,
    surrogate_factory,
)
from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.neb import NEBResult, run_neb
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import InputError
from interphase_dft.recipes.segments import join_bands, segment_summary
from interphase_dft.schemas import (
    BarrierDoc,
    NEBImageData,
    StructureData,
    settings_hash,
    structure_hash,
)
from interphase_dft.span import span_barriers

log = logging.getLogger("interphase_dft.recipes")

#: interface atoms farther than this from the interface midplane are fixed, Angstrom
FIX_BEYOND = 4.0
#: relaxed endpoints closer than this (largest atom displacement, Angstrom) are one minimum
SAME_MINIMUM = 0.3
#: ML path rejected when any two atoms come closer than this, Angstrom
ML_MIN_DISTANCE = 0.7
#: ML path rejected when one image step exceeds this multiple of the mean step
ML_MAX_STEP_RATIO = 3.0
#: an intermediate image this far below the lower endpoint marks another minimum, eV
INTERMEDIATE_MINIMUM = 0.05
#: path stages from the cheapest level to the most complete one (a joined path gets the lowest)
STAGE_RANK = ("ml", "dft//ml", "ml+dft", "dft")


def intermediate_minimum(energies: list[float] | np.ndarray) -> str | None:
    """Describe an intermediate minimum of a band, or return None for a single hop.

    An image lying more than ``INTERMEDIATE_MINIMUM`` eV below the lower endpoint means the
    band passes through another minimum: its "barrier" is not that of one hop, and the fix is
    to relax that image and compute the two hops separately.
    """
    e = np.asarray(energies, float)
    if e.size < 3:
        return None
    inner = e[1:-1]
    lower = min(e[0], e[-1])
    i = int(np.argmin(inner)) + 1
    if e[i] < lower - INTERMEDIATE_MINIMUM:
        return (f"band passes through another minimum: image {i} lies {lower - e[i]:.3f} eV "
                "below the lower endpoint, so this is not one hop; relax that image and "
                "compute the two hops separately")
    return None


def idpp_band(initial: Atoms, final: Atoms, n_images: int, mic: bool = True) -> list[Atoms]:
    """Full band (endpoints included) interpolated with IDPP; constraints copied, no reordering.

    ``mic=False`` interpolates the raw position difference (needed when the final state is the
    initial one translated by a lattice vector, e.g. a hop into the next cell).
    """
    try:
        from interphase_dft.builders.neb import interpolate_images
    except ImportError:
        interpolate_images = None
    if interpolate_images is not None:
        band = interpolate_images(initial, final, n_images, method="idpp", mic=mic)
    else:
        from ase.mep import NEB

        band = [initial.copy()] + [initial.copy() for _ in range(n_images)] + [final.copy()]
        NEB(band).interpolate("idpp", mic=mic, apply_constraint=False)
    out = []
    for i, im in enumerate(band):
        im = im.copy() if 0 < i < len(band) - 1 else im
        im.set_constraint([c.copy() for c in initial.constraints])
        out.append(im)
    out[0], out[-1] = initial, final
    return out


def path_steps(images: list[Atoms]) -> list[float]:
    """Distances between consecutive images (minimum image), Angstrom."""
    out = []
    for a, b in itertools.pairwise(images):
        d = b.positions - a.positions
        if a.pbc.any():
            d, _ = find_mic(d, a.cell, a.pbc)
        out.append(float(np.linalg.norm(d)))
    return out


def _max_displacement(a: Atoms, b: Atoms, mic: bool = True) -> float:
    """Largest atom displacement between ``a`` and ``b`` (Angstrom), minimum image if ``mic``.

    With ``mic=False`` a hop to a periodic image of the same site counts as a real move,
    exactly as the band interpolation treats it.
    """
    d = b.positions - a.positions
    if mic and a.pbc.any():
        d, _ = find_mic(d, a.cell, a.pbc)
    return float(np.linalg.norm(d, axis=1).max())


def _ml_band_problem(res: NEBResult) -> str | None:
    from interphase_dft.calc.guard import min_distance

    if not res.converged:
        return f"surrogate NEB not converged (fmax {res.fmax:.3f} eV/A after {res.steps} steps)"
    for i, im in enumerate(res.images):
        if min_distance(im) < ML_MIN_DISTANCE:
            return f"atoms collapsing in surrogate image {i} (< {ML_MIN_DISTANCE} A)"
    steps = path_steps(res.images)
    if max(steps) > ML_MAX_STEP_RATIO * float(np.mean(steps)):
        return (f"surrogate band discontinuous (largest image step {max(steps):.2f} A > "
                f"{ML_MAX_STEP_RATIO} x mean {np.mean(steps):.2f} A)")
    return None


def _with_results(atoms: Atoms, ref: Atoms) -> Atoms:
    """``atoms`` geometry with the SinglePointCalculator of ``ref`` and its own constraints."""
    out = ref.copy()
    out.calc = ref.calc
    out.set_constraint([c.copy() for c in atoms.constraints])
    return out


def neb_barrier(initial: Atoms, final: Atoms, settings: CalcSettings, workdir: Path | str,
                label: str = "neb", *, is_metal: bool = False, dispersion: bool = False,
                phase_a: str | None = None, phase_b: str | None = None,
                interface_meta: dict[str, Any] | None = None,
                relax_endpoints: bool = True, mic: bool = True,
                calc_extra: dict[str, Any] | None = None,
                calc_factory: CalcFactory | None = None,
                li_inserted: bool = False, split_minimum: bool = True) -> BarrierDoc:
    """Climbing-image NEB barrier between ``initial`` and ``final`` (same atom order).

    Parameters
    ----------
    initial, final
        Endpoints with identical symbols order, cell and constraints.
    settings
        Calculation settings (``settings.neb`` for the band, ``settings.relax`` for endpoints).
    workdir
        Checkpoint directory (``initial/``, ``final/``, ``neb-ml/``, ``ml-check/``, ``neb/``).
    label
        Name used in logs; ``phase_a``/``phase_b`` default to the formula of ``initial``.
    is_metal, dispersion
        Smearing and DFT-D3 choice for the calculator.
    relax_endpoints
        Relax both endpoints first (positions, cell fixed).
    mic
        Interpolate with the minimum-image convention (see :func:`idpp_band`).
    calc_extra
        Extra GPAW keywords, e.g. ``{'charge': -1}`` for a charged Li vacancy (stored in the
        document's ``calculator`` field).
    calc_factory
        Use this factory instead of the one built from ``settings`` (tests, other codes).
    li_inserted
        The hopping Li is an added (interstitial) Li, as in interface hops: smearing at least
        ``dft.li_insertion_smearing``, and spin-polarised with 1 mu_B seeded on the hopping Li
        (``info['li_index']``, else the last atom) when neither side is a metal (see
        :mod:`interphase_dft.calc.factory`); a vacancy hop in an insulator stays as it is.
    split_minimum
        When the converged band passes through another minimum (an image more than
        ``INTERMEDIATE_MINIMUM`` eV below the lower endpoint), relax that image at the
        endpoints' level and converge the hops initial -> minimum -> final separately
        (work directories ``intermediate/``, ``seg1/``, ``seg2/``). The document then holds
        the joined path, its ``segments`` and, as barriers, the energetic spans
        (:mod:`interphase_dft.span`).

    Returns
    -------
    BarrierDoc
        Energies relative to the initial state, barriers, spline, per-image fmax.
    """
    if initial.get_chemical_symbols() != final.get_chemical_symbols():
        raise InputError(f"NEB endpoints of {label} differ in atom order or composition; "
                         "build both from the same host and move only the hopping Li")
    workdir = Path(workdir)
    nset = settings.neb
    timings: dict[str, float] = {}
    calls: dict[str, int] = {}
    warnings: list[str] = []
    # an added Li hopping through non-metals: spin-polarised, 1 mu_B seeded on the hopping Li
    spin = li_inserted and insertion_spin(settings, is_metal=is_metal)
    if spin:
        li = int(initial.info.get("li_index", len(initial) - 1))
        initial, final = seed_moment(initial, li), seed_moment(final, li)
    factory = calc_factory or factory_for(settings, is_metal=is_metal, dispersion=dispersion,
                                          txt=str(workdir / "gpaw.txt"), extra=calc_extra,
                                          li_inserted=li_inserted, spin=spin)
    t0 = time.perf_counter()
    # relax.dft_relax=false: endpoints relaxed by the surrogate, then one DFT single point
    surrogate_ends = relax_endpoints and settings.surrogate_geometry
    ml_factory = surrogate_factory(settings, dispersion=dispersion) if surrogate_ends else None
    ends = []
    unconverged_ends = []
    for name, atoms in (("initial", initial), ("final", final)):
        end, ok = _relax_point(atoms, settings, workdir / name, factory, ml_factory,
                               relax_it=relax_endpoints, key=f"endpoint_{name}", calls=calls,
                               warnings=warnings)
        ends.append(end)
        if not ok:
            unconverged_ends.append(name)
    timings["endpoints"] = time.perf_counter() - t0
    separation = _max_displacement(ends[0], ends[1], mic=mic)
    if separation < SAME_MINIMUM:
        msg = (f"{label}: the relaxed endpoints are the same minimum (largest atom displacement "
               f"{separation:.2f} A < {SAME_MINIMUM} A); the barrier is meaningless - use sites "
               "farther apart (thicker interface layers)")
        log.warning(msg)
        warnings.append(msg)

    path_ml = ml_factory
    if path_ml is None and nset.ml_prestage and settings.engine != "ml":
        path_ml = surrogate_factory(settings, dispersion=dispersion)

    def converge(pair: list[Atoms], sub: Path, prefix: str) -> _Band:
        return _converge_band(pair, settings, sub, factory, path_ml, mic=mic, label=label,
                              prefix=prefix, timings=timings, calls=calls, warnings=warnings)

    band = converge(ends, workdir, "")
    res, stage, ml_barrier, fallback = band.res, band.stage, band.ml_barrier, band.fallback
    segments: list[dict[str, Any]] = []
    if split_minimum and intermediate_minimum(res.energies):
        joined = _split_at_minimum(band, settings, workdir, factory, ml_factory, converge,
                                   mic=mic, label=label, calls=calls, warnings=warnings)
        if joined is not None:
            res, segments = joined
            ml_barrier = None
            fallback = "; ".join(str(sg["ml_fallback_reason"]) for sg in segments
                                 if sg["ml_fallback_reason"]) or None
            stage = min((str(sg["stage"]) for sg in segments), key=STAGE_RANK.index)
    if unconverged_ends:
        # an endpoint that is not a minimum makes the barrier meaningless: not converged
        res.converged = False
        warnings.append(f"endpoint relaxation not converged ({', '.join(unconverged_ends)}): "
                        "the barrier is not used in the fit; raise relax.steps (relax.ml_steps for "
                        "surrogate relaxations)")
    doc_desc = dict(getattr(factory, "description", {}))
    doc_desc.pop("dft", None)
    doc_desc["smearing"] = scf_parameters(settings, is_metal=is_metal,
                                          li_inserted=li_inserted)["occupations"]
    doc_desc["dispersion"] = (dispersion_applied(settings, dispersion)
                              if settings.engine == "gpaw" and calc_factory is None else "none")
    if calc_extra:
        doc_desc["extra"] = dict(calc_extra)
    doc_desc["spin"] = ("spin-polarised (1 mu_B seeded on the hopping Li)" if spin
                        else "spin-paired")
    doc_desc["geometry"] = ("surrogate-relaxed endpoints, DFT single points" if surrogate_ends
                            else "DFT-relaxed endpoints" if relax_endpoints
                            else "endpoints as given")
    doc_desc["neb"] = {"climb": "from the start" if nset.climb else "off",
                       "method": nset.method, "optimizer": nset.optimizer,
                       "spring_eV_per_A2": nset.spring, "interpolation": "idpp"}
    pa = phase_a or initial.get_chemical_formula()
    pb = phase_b or pa
    return barrier_doc(res, settings, stage=stage, phase_a=pa, phase_b=pb, timings=timings,
                       calls=calls, warnings=warnings, ml_barrier=ml_barrier,
                       fallback=fallback, interface_meta=interface_meta or {},
                       calculator=doc_desc, input_structure=initial, segments=segments)


@dataclass
class _Band:
    """A converged band and how it was obtained."""

    res: NEBResult
    stage: str
    ml_barrier: float | None
    fallback: str | None


def _relax_point(atoms: Atoms, settings: CalcSettings, workdir: Path, factory: Any,
                 ml_factory: Any, *, relax_it: bool, key: str, calls: dict[str, int],
                 warnings: list[str]) -> tuple[Atoms, bool]:
    """Relax one minimum of the path (an endpoint or an intermediate minimum).

    With a surrogate factory: surrogate relaxation, then one DFT single point; else a DFT
    relaxation (``relax_it``) or a single point. Returns the atoms with their DFT results and
    whether the relaxation converged; force calls go to ``calls[key]`` (``key + '_ml'``).
    """
    start = atoms
    converged = True
    if ml_factory is not None:
        m = relax(atoms, ml_factory, workdir, settings.relax.for_surrogate(), label="ml")
        calls[f"{key}_ml"] = m.force_calls
        warnings += m.warnings
        start = m.atoms
        start.set_constraint([c.copy() for c in atoms.constraints])
        converged = m.converged
    if relax_it and ml_factory is None:
        r = relax(start, factory, workdir, settings.relax, label="relax")
        converged = converged and r.converged
    else:
        r = static(start, factory, workdir, label="static")
    calls[key] = r.force_calls
    warnings += r.warnings
    return _with_results(atoms, r.atoms), converged


def _converge_band(ends: list[Atoms], settings: CalcSettings, workdir: Path, factory: Any,
                   ml_factory: Any, *, mic: bool, label: str, prefix: str,
                   timings: dict[str, float], calls: dict[str, int],
                   warnings: list[str]) -> _Band:
    """IDPP band between two relaxed minima, then the ML pre-stage and the DFT stage."""
    nset = settings.neb
    band = idpp_band(ends[0], ends[1], nset.n_images, mic=mic)
    stage = "dft"
    ml_converged = False
    ml_barrier = None
    fallback: str | None = None
    if nset.ml_prestage and settings.engine != "ml":
        t0 = time.perf_counter()
        ml_band, ml_barrier, fallback, dft_check_calls, ml_converged = _ml_prestage(
            band, settings, workdir, factory, ml_factory)
        timings[f"{prefix}ml_neb"] = time.perf_counter() - t0
        calls[f"{prefix}dft_ml_path_check"] = dft_check_calls
        if fallback is None:
            band, stage = ml_band, "ml+dft"
        else:
            warnings.append(f"ML pre-stage rejected: {fallback}; DFT NEB from the IDPP band")
            log.warning("%s: ML path rejected (%s)", label, fallback)
    if stage == "ml+dft" and not nset.dft_refine:
        # DFT single points on the surrogate-converged path are the result (no refinement)
        res = _single_point_band(band, ml_converged)
        stage = "dft//ml"
    else:
        t0 = time.perf_counter()
        res = run_neb(band, factory, workdir / "neb", nset, label="neb",
                      describe=getattr(factory, "description", {}))
        timings[f"{prefix}dft_neb"] = time.perf_counter() - t0
        calls[f"{prefix}dft_neb"] = res.force_calls
        warnings += res.warnings
    if settings.engine == "ml":
        stage = "ml"
    return _Band(res, stage, ml_barrier, fallback)


def _split_at_minimum(band: _Band, settings: CalcSettings, workdir: Path, factory: Any,
                      ml_factory: Any, converge: Any, *, mic: bool, label: str,
                      calls: dict[str, int],
                      warnings: list[str]) -> tuple[NEBResult, list[dict[str, Any]]] | None:
    """Relax the lowest intermediate image of ``band`` and converge the two hops through it.

    Returns the joined path and its segments, or None (with a warning) when the image relaxes
    back into an endpoint, so the band stays one (flagged) hop.
    """
    res = band.res
    i = int(np.argmin(res.energies[1:-1])) + 1
    guess = res.images[i].copy()
    guess.set_constraint([c.copy() for c in res.images[0].constraints])
    mid, ok = _relax_point(guess, settings, workdir / "intermediate", factory, ml_factory,
                           relax_it=True, key="intermediate", calls=calls, warnings=warnings)
    if not ok:
        warnings.append("relaxation of the intermediate minimum not converged; raise "
                        "relax.steps (relax.ml_steps for surrogate relaxations)")
    ends = (res.images[0], res.images[-1])
    closest = min(_max_displacement(mid, end, mic=mic) for end in ends)
    if closest < SAME_MINIMUM:
        msg = (f"{label}: image {i} relaxed back into an endpoint (largest displacement "
               f"{closest:.2f} A); the band is kept as one hop")
        log.warning(msg)
        warnings.append(msg)
        return None
    log.info("%s: band passes through a minimum at image %d; converging the two hops", label, i)
    first = converge([res.images[0], mid], workdir / "seg1", "seg1_")
    second = converge([mid, res.images[-1]], workdir / "seg2", "seg2_")
    mid_fmax = float(np.linalg.norm(mid.get_forces(apply_constraint=True), axis=1).max())
    joined = join_bands(first.res, second.res, mid_fmax)
    joined.converged = joined.converged and ok
    segments = [segment_summary(first.res, 0, first.stage, ml_barrier=first.ml_barrier,
                                fallback=first.fallback),
                segment_summary(second.res, len(first.res.images) - 1, second.stage,
                                ml_barrier=second.ml_barrier, fallback=second.fallback)]
    e0 = res.energies[0]
    warnings.append(
        f"the first band passed through another minimum (image {i}, "
        f"{res.energies[i] - e0:+.3f} eV); it was relaxed "
        f"({mid.get_potential_energy() - e0:+.3f} eV) and the two hops were converged "
        "separately; the barriers are the energetic span of the joined path")
    return joined, segments


def _ml_prestage(band: list[Atoms], settings: CalcSettings, workdir: Path, dft_factory: Any,
                 ml: Any) -> tuple[list[Atoms], float | None, str | None, int, bool]:
    """Converge the band with the surrogate factory ``ml``.

    Returns (band, ML barrier, fallback reason, DFT calls, surrogate NEB converged); the band
    holds DFT single points on the surrogate path when accepted, else the input band.
    """
    nset = settings.neb
    ml_ends = []
    for name, im in (("initial", band[0]), ("final", band[-1])):
        r = static(im, ml, workdir / "ml-endpoints", label=name)
        ml_ends.append(_with_results(im, r.atoms))
    ml_start = [ml_ends[0]] + [im.copy() for im in band[1:-1]] + [ml_ends[1]]
    for im, src in zip(ml_start[1:-1], band[1:-1], strict=True):
        im.set_constraint([c.copy() for c in src.constraints])
    try:
        res = run_neb(ml_start, ml, workdir / "neb-ml", nset, label="neb", fmax=nset.ml_fmax,
                      describe=ml.description)
    except Exception as exc:  # the surrogate failing must not stop the DFT stage
        return band, None, f"surrogate NEB failed: {exc}", 0, False
    ml_barrier = max(res.energies) - res.energies[0]
    problem = _ml_band_problem(res)
    if problem:
        return band, ml_barrier, problem, 0, res.converged
    # DFT single points on the surrogate path: they are the first band of the DFT stage
    checked = [band[0]]
    calls = 0
    for i, im in enumerate(res.images[1:-1], start=1):
        geo = im.copy()
        geo.set_constraint([c.copy() for c in band[i].constraints])
        r = static(geo, dft_factory, workdir / "ml-check", label=f"img{i}")
        calls += r.force_calls
        checked.append(_with_results(geo, r.atoms))
    checked.append(band[-1])
    e = [im.get_potential_energy() for im in checked]
    dft_on_ml = max(e) - e[0]
    if abs(dft_on_ml - ml_barrier) > nset.ml_max_barrier_gap:
        return band, ml_barrier, (
            f"DFT barrier on the surrogate path {dft_on_ml:.3f} eV differs from the surrogate "
            f"barrier {ml_barrier:.3f} eV by more than {nset.ml_max_barrier_gap} eV"), calls, \
            res.converged
    return checked, ml_barrier, None, calls, res.converged


def _single_point_band(band: list[Atoms], ml_converged: bool) -> NEBResult:
    """An :class:`NEBResult` of DFT single points (energies and forces attached to ``band``).

    ``converged`` is the surrogate band's; ``fmax``/``image_fmax`` are the DFT forces on the
    intermediate images (constraints applied), i.e. how far the path is from a DFT saddle.
    """
    energies = [float(im.get_potential_energy()) for im in band]
    image_fmax = [float(np.linalg.norm(im.get_forces(apply_constraint=True), axis=1).max())
                  for im in band[1:-1]]
    top = int(np.argmax(energies[1:-1])) + 1
    return NEBResult(images=band, energies=energies, image_fmax=image_fmax,
                     fmax=max(image_fmax), steps=0, converged=ml_converged, force_calls=0,
                     climbing_image=top)


def barrier_doc(res: NEBResult, settings: CalcSettings, *, stage: str, phase_a: str,
                phase_b: str, timings: dict[str, float], calls: dict[str, int],
                warnings: list[str], ml_barrier: float | None, fallback: str | None,
                interface_meta: dict[str, Any], calculator: dict[str, Any],
                input_structure: Atoms,
                segments: list[dict[str, Any]] | None = None) -> BarrierDoc:
    """Assemble the :class:`BarrierDoc` of a finished NEB (energies relative to image 0).

    With ``segments`` (a path joined at an intermediate minimum) the barriers are the
    energetic spans of the joined path and each segment is checked for minima of its own.
    """
    from ase.utils.forcecurve import fit_images

    e = np.array(res.energies) - res.energies[0]
    try:
        fit = fit_images(res.images)
        path = [float(x) for x in fit.path]
        spline = {"x": [float(x) for x in fit.fit_path],
                  "y": [float(y) for y in fit.fit_energies]}  # already relative to image 0
    except np.linalg.LinAlgError:  # coinciding images: no cubic fit, keep the raw profile
        path = [0.0, *np.cumsum(path_steps(res.images)).tolist()]
        spline = {"x": path, "y": [float(x) for x in e]}
        warnings = [*warnings, "force-curve fit failed (coinciding images); raw profile stored"]
    segments = list(segments or [])
    if segments:
        jumps = [intermediate_minimum(e[sg["images"][0]:sg["images"][1] + 1]) for sg in segments]
        jump = next((j for j in jumps if j), None)
        forward, reverse = span_barriers(e)
    else:
        jump = intermediate_minimum(e)
        forward, reverse = float(e.max()), float(e.max() - e[-1])
    if jump:
        log.warning(jump)
        warnings = [*warnings, jump]
    s_dump = settings.model_dump()
    s_hash = settings_hash(s_dump)
    h = structure_hash(input_structure)
    image_fmax = [float(np.linalg.norm(res.images[0].get_forces(apply_constraint=True),
                                       axis=1).max())]
    image_fmax += list(res.image_fmax)
    image_fmax.append(float(np.linalg.norm(res.images[-1].get_forces(apply_constraint=True),
                                           axis=1).max()))
    return BarrierDoc(
        settings=s_dump, settings_hash=s_hash, timings=timings, force_calls=calls,
        warnings=warnings, task_key=f"{h}:{s_hash}", calculator=calculator,
        interface=f"{phase_a}|{phase_b}", phase_a=phase_a, phase_b=phase_b,
        interface_meta=interface_meta,
        images=[NEBImageData(energy=float(im.get_potential_energy()), fmax=fm,
                             structure=StructureData.from_atoms(im))
                for im, fm in zip(res.images, image_fmax, strict=True)],
        energies=[float(x) for x in e],
        path_coordinate=path,
        spline=spline,
        barrier_forward=forward, barrier_reverse=reverse, segments=segments,
        reaction_energy=float(e[-1]), converged=res.converged, fmax_final=res.fmax,
        band_continuous=jump is None,
        climbing_image=res.climbing_image, stage=stage, ml_barrier=ml_barrier,
        ml_fallback_reason=fallback, structure_hash=h,
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

    Cell and endpoints from :func:`interface_hop`, then :func:`neb_barrier`.
    """
    initial, final, meta = interface_hop(phase_a, phase_b, settings)
    kw = interface_hop_options(phase_a, phase_b)
    return neb_barrier(initial, final, settings, workdir,
                       label=f"{kw['phase_a']}|{kw['phase_b']}", interface_meta=meta, **kw)


def interface_hop_options(phase_a: str, phase_b: str) -> dict[str, Any]:
    """:func:`neb_barrier` keywords of an A|B interface hop (what :func:`migration_barrier`
    passes): metal smearing when either side is a metal, D3 when either side needs it, and
    the Li-insertion smearing (the hopping Li is an added interstitial).
    """
    from interphase_dft import phases

    a, b = phases.resolve_phase(phase_a), phases.resolve_phase(phase_b)
    ia, ib = phases.phase_info(a), phases.phase_info(b)
    return {"is_metal": ia.is_metal or ib.is_metal,
            "dispersion": ia.needs_dispersion or ib.needs_dispersion,
            "phase_a": a, "phase_b": b, "li_inserted": True}
