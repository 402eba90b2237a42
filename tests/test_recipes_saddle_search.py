"""The saddle-search finish (recipes/saddle_search.py) on the Mueller-Brown surface: a saddle
counts only when its descents reach the hop's two endpoints."""

from __future__ import annotations

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from interphase_dft.calc.presets import preset
from interphase_dft.recipes.saddle_search import search_saddle
from tests.test_calc_prfo import MINIMA, SADDLE_2, MuellerBrown, factory, one_atom

SETTINGS = preset("test", {"neb": {"fmax": 0.001, "steps": 60, "ml_fmax": 0.001},
                           "relax": {"fmax": 0.001}})


def image(x, y):
    atoms = one_atom(x, y)
    atoms.pbc = True  # the 20 A box: no vacuum axis for the guard to police
    atoms.calc = MuellerBrown()
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
    return atoms


def band(points):
    return [image(*p) for p in points]


def test_a_saddle_between_the_endpoints_is_certified(tmp_path):
    c, b = MINIMA[2], MINIMA[1]
    top = (SADDLE_2[0] + 0.05, SADDLE_2[1] + 0.05)
    ref = band([c, top, b])
    found = search_saddle([ref[0], ref[-1]], ref, factory, factory, SETTINGS, tmp_path)
    assert found is not None and found.converged
    assert np.allclose(found.band[1].positions[0][:2], SADDLE_2, atol=2e-3)
    assert found.band[1].get_potential_energy() > max(ref[0].get_potential_energy(),
                                                      ref[-1].get_potential_energy())
    rec = found.record
    assert rec["negative_modes"] == 1 and rec["descents"]["connects"]
    assert rec["why"] == "first-order saddle connecting the endpoints"


def test_a_saddle_that_leads_elsewhere_is_not_certified(tmp_path):
    """Hop A -> B drawn through the saddle between C and B: the search converges on that
    saddle, but one descent falls into C, which is neither endpoint."""
    a, c, b = MINIMA[0], MINIMA[2], MINIMA[1]
    top = (SADDLE_2[0] + 0.05, SADDLE_2[1] + 0.05)
    ref = band([a, c, top, b])
    found = search_saddle([ref[0], ref[-1]], ref, factory, factory, SETTINGS, tmp_path)
    assert found is not None and not found.converged
    assert found.record["converged"] and found.record["negative_modes"] == 1
    assert not found.record["descents"]["connects"]
    assert "do not reach the two endpoints" in found.record["why"]


def test_a_band_without_an_interior_maximum_is_not_searched(tmp_path):
    c, b = MINIMA[2], MINIMA[1]
    ref = band([c, ((c[0] + b[0]) / 2 - 0.2, (c[1] + b[1]) / 2), b])
    ref = [ref[0], ref[0].copy(), ref[-1]]  # interior image at an endpoint's energy
    ref[1].calc = SinglePointCalculator(ref[1], energy=ref[0].get_potential_energy() - 0.1,
                                        forces=np.zeros((1, 3)))
    assert search_saddle([ref[0], ref[-1]], ref, factory, factory, SETTINGS, tmp_path) is None
