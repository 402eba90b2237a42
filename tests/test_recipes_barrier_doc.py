"""The barrier document of a joined path (recipes.barrier_doc, recipes.neb_path.join_bands):
the minima it joins at are checked as minima, the span is taken over stationary images, the
saddle force is the image's own, and a seam whose two copies differ is not one path."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from interphase_dft.calc.neb import NEBResult
from interphase_dft.calc.presets import preset
from interphase_dft.calc.runlog import RunLog
from interphase_dft.recipes.band import Band
from interphase_dft.recipes.barrier_doc import HopRecord, barrier_doc
from interphase_dft.recipes.neb_path import join_bands


def _image(x: float, energy: float, force: float = 0.0) -> Atoms:
    a = Atoms("H2", positions=[[0, 0, 0], [1.0 + x, 0, 0]], cell=[10, 10, 10], pbc=False)
    f = np.zeros((2, 3))
    f[1, 0] = force
    a.calc = SinglePointCalculator(a, energy=energy, forces=f)
    return a


def _band(xs, es, forces=None, fmax=0.01) -> NEBResult:
    forces = forces or [0.0] * len(xs)
    images = [_image(x, e, f) for x, e, f in zip(xs, es, forces, strict=True)]
    return NEBResult(images=images, energies=list(es), image_fmax=[fmax] * (len(xs) - 2),
                     fmax=fmax, converged=True)


def _doc(res: NEBResult, segments):
    hop = HopRecord("A", "B", "vacancy", {}, {"engine": "test"}, res.images[0])
    band = Band(res, "dft", None, None,
                [{"images": list(s), "stage": "dft", "ml_fallback_reason": None}
                 for s in segments])
    return barrier_doc(band, preset("test"), RunLog(), hop)


def test_span_of_a_joined_path_is_taken_over_its_stationary_images():
    """e = [0, .5, -.3, -.33, .4, .1], hops (0, 2) and (2, 5): image 3 lies 0.03 eV below
    the shared minimum (image 2) but is not a minimum; the spans are 0.7 and 0.8 eV (from
    image 2), not 0.73 and 0.83 eV (from image 3)."""
    first = _band([0.0, 0.4, 0.8], [0.0, 0.5, -0.3])
    second = _band([0.8, 1.2, 1.6, 2.0], [-0.3, -0.33, 0.4, 0.1])
    doc = _doc(join_bands(first, second, 0.0), [(0, 2), (2, 5)])
    assert doc.saddle == "saddle"
    assert doc.barrier_forward == pytest.approx(0.7)
    assert doc.barrier_reverse == pytest.approx(0.8)


def test_a_minimum_the_path_is_split_at_must_be_relaxed():
    """The split minimum carries 0.4 eV/A (relax.fmax 0.05 in the test preset): not a
    barrier, and the force is in endpoint_fmax."""
    first = _band([0.0, 0.4, 0.8], [0.0, 0.5, -0.3], forces=[0.0, 0.0, 0.4])
    second = _band([0.8, 1.2, 1.6, 2.0], [-0.3, 0.2, 0.4, 0.1], forces=[0.4, 0, 0, 0])
    doc = _doc(join_bands(first, second, 0.0), [(0, 2), (2, 5)])
    assert doc.endpoint_fmax["minimum1"] == pytest.approx(0.4)
    assert doc.saddle == "not certified: unrelaxed endpoints"


def test_the_saddle_force_is_the_images_own_force():
    """A band whose stored per-image force is small (spring-projected, no climbing image)
    while the highest image's own force is 0.12 eV/A: not converged."""
    res = _band([0.0, 0.5, 1.0, 1.5, 2.0], [0.0, 0.2, 0.3, 0.2, 0.0],
                forces=[0.0, 0.0, 0.12, 0.0, 0.0], fmax=0.01)
    doc = _doc(res, [])
    assert doc.saddle == "not converged" and doc.saddle_fmax == pytest.approx(0.12)


def test_a_seam_whose_two_copies_differ_is_not_one_path():
    """Each hop relaxed the shared minimum again and ended 0.1 A and 0.04 eV apart: the joined
    path is not converged and says why; so is a copy in another basin (0.4 A) at the same
    energy; identical copies join silently."""
    first = _band([0.0, 0.4, 0.8], [0.0, 0.5, -0.3])
    apart = _band([0.9, 1.2, 1.6, 2.0], [-0.26, -0.1, 0.4, 0.1])
    joined = join_bands(first, apart, 0.0)
    assert not joined.converged and "0.100 A and 0.0400 eV" in joined.seam_mismatch
    assert join_bands(first, _band([1.2, 1.4, 1.6, 2.0], [-0.3, -0.1, 0.4, 0.1]),
                      0.0).seam_mismatch
    doc = _doc(joined, [(0, 2), (2, 5)])
    assert doc.saddle == "not converged" and "shared minimum" in doc.saddle_note
    same = join_bands(first, _band([0.8, 1.2, 1.6, 2.0], [-0.3, -0.1, 0.4, 0.1]), 0.0)
    assert same.converged and same.seam_mismatch is None


def test_a_monotonic_band_keeps_its_band_forces():
    """A converged downhill band: the highest interior image is on the slope (its own force
    0.2 eV/A), not a saddle; the band's NEB forces stand and the status is no saddle."""
    res = _band([0.0, 0.5, 1.0, 1.5, 2.0], [0.0, -0.1, -0.2, -0.3, -0.4],
                forces=[0.0, 0.2, 0.2, 0.2, 0.0], fmax=0.01)
    doc = _doc(res, [])
    assert doc.saddle == "no saddle: reaction energy"
    assert max(im.fmax for im in doc.images[1:-1]) == pytest.approx(0.01)
