"""NEB path geometry and energy profiles: interpolation, distances, minima, joined paths.

Pure functions on ``Atoms`` bands and :class:`interphase_dft.calc.neb.NEBResult` objects; no
calculator is run here (the band procedure is :mod:`interphase_dft.recipes.band`). Energies
in eV, lengths in Angstrom.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms

from interphase_dft.builders.neb import interpolate_images
from interphase_dft.calc.neb import NEBResult
from interphase_dft.constraints import copy_constraints, max_force
from interphase_dft.geometry import displacements, mic_vectors

#: an intermediate image this far below the lower endpoint marks another minimum, eV
INTERMEDIATE_MINIMUM = 0.05

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

    The endpoints are ``initial`` and ``final`` themselves (with their results); every inner
    image carries the constraints of ``initial``. ``mic=False`` interpolates the raw position
    difference (needed when the final state is the initial one translated by a lattice vector,
    e.g. a hop into the next cell).
    """
    band = interpolate_images(initial, final, n_images, method="idpp", mic=mic)
    out = []
    for i, im in enumerate(band):
        im = im.copy() if 0 < i < len(band) - 1 else im
        copy_constraints(im, initial)
        out.append(im)
    out[0], out[-1] = initial, final
    return out


def path_steps(images: list[Atoms]) -> list[float]:
    """Distances between consecutive images (minimum image), Angstrom."""
    return [float(np.linalg.norm(mic_vectors(a, b.positions - a.positions)))
            for a, b in itertools.pairwise(images)]


def path_coordinate(images: list[Atoms]) -> list[float]:
    """Cumulative path length of the images from the first (minimum image), Angstrom."""
    return [0.0, *np.cumsum(path_steps(images)).tolist()]


def max_displacement(a: Atoms, b: Atoms, mic: bool = True) -> float:
    """Largest atom displacement between ``a`` and ``b`` (Angstrom), minimum image if ``mic``.

    With ``mic=False`` a hop to a periodic image of the same site counts as a real move,
    exactly as the band interpolation treats it.
    """
    return float(displacements(a, b, mic).max())


def with_results(atoms: Atoms, ref: Atoms) -> Atoms:
    """``ref`` (geometry and SinglePointCalculator results) with the constraints of ``atoms``."""
    out = ref.copy()
    out.calc = ref.calc
    copy_constraints(out, atoms)
    return out


def single_point_band(band: list[Atoms], converged: bool) -> NEBResult:
    """An :class:`NEBResult` of single points (energies and forces attached to ``band``).

    ``converged`` is that of the band the geometries come from (the surrogate band);
    ``fmax``/``image_fmax`` are the forces on the intermediate images (constraints applied),
    eV/Angstrom, i.e. how far the path is from a saddle of these energies.
    """
    energies = [float(im.get_potential_energy()) for im in band]
    image_fmax = [float(np.linalg.norm(im.get_forces(apply_constraint=True), axis=1).max())
                  for im in band[1:-1]]
    top = int(np.argmax(energies[1:-1])) + 1
    return NEBResult(images=band, energies=energies, image_fmax=image_fmax,
                     fmax=max(image_fmax), steps=0, converged=converged, force_calls=0,
                     climbing_image=top)


#: largest displacement (A: the same basin) and energy difference (eV: the span's accuracy)
#: between the two hops' copies of the minimum they share for the joined path to be one path
SEAM_DISPLACEMENT, SEAM_ENERGY = 0.25, 0.005


def join_bands(first: NEBResult, second: NEBResult, middle_fmax: float) -> NEBResult:
    """One path from two bands that share an endpoint (``first`` ends where ``second`` starts).

    ``middle_fmax`` is the largest force on the shared (relaxed) minimum, eV/Angstrom; it
    joins the per-image list of intermediate images (the largest of it and the two bands'
    own copies of the minimum), while ``fmax`` stays the largest force on the images of the
    two bands (how far each band is from its saddle). Each hop's loop may relax the shared
    minimum again: when its two copies differ by more than :data:`SEAM_DISPLACEMENT` or
    :data:`SEAM_ENERGY`, ``seam_mismatch`` says so and the path is not converged (its span
    would join two different states).
    """
    a, b = first.images[-1], second.images[0]
    shift = max_displacement(a, b)
    de = abs(first.energies[-1] - second.energies[0])
    mismatch = None
    if shift > SEAM_DISPLACEMENT or de > SEAM_ENERGY:
        mismatch = (f"the two hops' copies of their shared minimum differ by {shift:.3f} A "
                    f"and {de:.4f} eV (limits {SEAM_DISPLACEMENT} A, {SEAM_ENERGY} eV)")
    seam = max([middle_fmax, *(max_force(x) for x in (a, b) if x.calc is not None)])
    images: list[Atoms] = [*first.images, *second.images[1:]]
    energies = [*first.energies, *second.energies[1:]]
    inner = np.asarray(energies[1:-1], float)
    return NEBResult(
        images=images, energies=energies,
        image_fmax=[*first.image_fmax, seam, *second.image_fmax],
        fmax=max(first.fmax, second.fmax), steps=first.steps + second.steps,
        converged=first.converged and second.converged and mismatch is None,
        force_calls=first.force_calls + second.force_calls,
        climbing_image=int(np.argmax(inner)) + 1 if inner.size else None,
        warnings=[*first.warnings, *second.warnings, *([mismatch] if mismatch else [])],
        wall_time=first.wall_time + second.wall_time,
        seam_mismatch="; ".join(m for m in (first.seam_mismatch, second.seam_mismatch,
                                            mismatch) if m) or None,
    )
