"""What a barrier is: the saddle rule on analytic bands, E_KRA, and the endpoint-force refusal."""

from __future__ import annotations

import numpy as np
import pytest

from interphase_dft.barrier_status import (
    NO_SADDLE,
    NOT_CONVERGED,
    NOT_ONE_HOP,
    OVER_BUDGET,
    SADDLE,
    SURROGATE_ONLY,
    UNRELAXED,
)
from interphase_dft.errors import CalculationError
from interphase_dft.recipes.saddle import certify, e_kra, hop_saddle

RELAXED = {"initial": 0.01, "final": 0.02}


def band(energies, ci_force=0.01, other=0.01):
    """Per-image forces of an analytic band: ``ci_force`` on the highest interior image."""
    e = np.asarray(energies, float)
    f = np.full(e.size, other)
    f[int(np.argmax(e[1:-1])) + 1] = ci_force
    return e, f


def rule(e, f, **kw):
    args = {"neb_fmax": 0.05, "relax_fmax": 0.05, "endpoint_fmax": RELAXED}
    args.update(kw)
    return certify(e, f, **args)


def test_interior_converged_maximum_is_a_saddle():
    s = np.linspace(0, 1, 7)
    e, f = band(0.4 * np.sin(np.pi * s) ** 2 + 0.1 * s, ci_force=0.03)
    cert = rule(e, f)
    assert cert.status == SADDLE and cert.saddle_image == 3
    assert cert.saddle_fmax == pytest.approx(0.03)


def test_interior_maximum_above_fmax_is_not_converged():
    e, f = band([0.0, 0.3, 0.5, 0.3, 0.1], ci_force=0.2)
    cert = rule(e, f)
    assert cert.status == NOT_CONVERGED and "0.200 eV/A > neb.fmax 0.05" in cert.note


@pytest.mark.parametrize("energies", [[0.0, 0.1, 0.2, 0.3, 0.4],   # monotonic uphill
                                      [0.0, -0.1, -0.2, -0.3, -0.5],  # monotonic downhill
                                      [0.0, 0.3, 0.1, 0.2, 0.5]])  # hump below the final state
def test_maximum_at_an_endpoint_is_a_reaction_energy(energies):
    e, f = band(energies)
    cert = rule(e, f)
    assert cert.status == NO_SADDLE and hop_saddle(e) is None
    assert f"reaction energy {e[-1]:+.3f} eV" in cert.note
    assert cert.note.startswith("the band: highest image is an endpoint")
    assert "not relaxed" not in cert.note  # interior forces 0.01 eV/A


def test_a_reaction_energy_from_an_unrelaxed_band_says_so():
    """The Li2S|LiCl crossing's last reference band: it rises to its final endpoint while its
    interior images carry 0.32, 0.49 and 0.21 eV/A. Still no saddle (the path bounds the
    forward barrier by the reaction energy), and the note says the band is not relaxed."""
    e = np.array([0.0, 0.013, 0.257, 0.254, 0.317])
    f = np.array([0.035, 0.316, 0.491, 0.211, 0.038])
    cert = rule(e, f)
    assert cert.status == NO_SADDLE
    assert "interior images are not relaxed (largest force 0.491 eV/A > neb.fmax 0.05)" \
        in cert.note


def test_a_joined_path_needs_a_saddle_in_every_hop():
    e = np.array([0.0, 0.49, -0.18, -0.23, 0.52])  # hop 2 rises to its end
    f = np.full(5, 0.01)
    cert = rule(e, f, segments=[(0, 2), (2, 4)])
    assert cert.status == NO_SADDLE and "hop 2 of 2" in cert.note
    e = np.array([0.0, 0.49, -0.18, 0.3, 0.1])
    assert rule(e, f, segments=[(0, 2), (2, 4)]).status == SADDLE
    f[3] = 0.3  # the second hop's climbing image is not converged
    assert rule(e, f, segments=[(0, 2), (2, 4)]).status == NOT_CONVERGED


def test_the_rule_order():
    e, f = band([0.0, 0.3, 0.5, 0.3, 0.1])
    assert rule(e, f, over_budget=True).status == OVER_BUDGET
    assert rule(e, f, stage="ml").status == SURROGATE_ONLY
    cert = rule(e, f, endpoint_fmax={"initial": 0.31, "final": 0.02})
    assert cert.status == UNRELAXED and "initial 0.310" in cert.note
    assert rule(e, f, continuous=False).status == NOT_ONE_HOP
    # a DFT//surrogate band: the DFT force on the surrogate saddle decides
    e, f = band([0.0, 0.3, 0.5, 0.3, 0.1], ci_force=0.4)
    assert rule(e, f, stage="dft//ml").status == NOT_CONVERGED


def test_e_kra_is_the_saddle_above_the_mean_of_the_endpoints():
    assert e_kra([0.0, 0.3, 0.5, 0.3, 0.2]) == pytest.approx(0.4)
    assert e_kra([0.0, 0.5]) is None
    # forward and reverse barriers average to E_KRA for one hop
    e = [0.0, 0.3, 0.7, 0.4, -0.2]
    assert e_kra(e) == pytest.approx(0.5 * ((0.7 - 0.0) + (0.7 + 0.2)))


def test_a_document_without_saddle_refuses_to_give_a_barrier():
    from tests.test_analysis_factories import make_barrier_doc

    ok = make_barrier_doc("LiAl", "LPSC", 0.35)
    assert ok.certified and ok.certified_barrier() == ok.barrier_forward
    assert ok.certified_barrier("max") >= ok.certified_barrier()
    unrelaxed = ok.model_copy(update={"saddle": UNRELAXED, "barrier_forward": None,
                                      "saddle_note": "endpoint forces initial 0.310"})
    with pytest.raises(CalculationError, match=r"unrelaxed endpoints.*0\.310"):
        unrelaxed.certified_barrier()


def test_documents_before_the_rule_are_not_certified():
    from interphase_dft.barrier_status import LEGACY
    from interphase_dft.schemas import doc_from_dict
    from tests.test_analysis_factories import make_barrier_doc

    data = make_barrier_doc("LiAl", "LPSC", 0.35).model_dump()
    data.pop("saddle")
    data["schema_version"] = 2
    doc = doc_from_dict(data)
    assert doc.saddle == LEGACY and not doc.certified


def test_an_interior_maximum_on_top_of_an_endpoint_is_that_minimum_not_a_saddle():
    """The LiAl|Li2S case: the climbing image converged onto the initial minimum (0.010 A
    along the path, 0.2 meV above it) on a band falling by 0.52 eV."""
    e, f = band([0.0, 0.0002, -0.029, -0.382, -0.517], ci_force=0.033)
    near = [0.0, 0.01047, 1.224, 2.281, 3.144]
    cert = rule(e, f, path=near)
    assert cert.status == NO_SADDLE and hop_saddle(e, near) is None
    assert "highest interior image lies 0.010 A from the initial endpoint" in cert.note
    assert "reaction energy -0.517 eV" in cert.note
    assert rule(e, f).status == SADDLE  # without the path the rule cannot tell
    apart = [0.0, 0.35, 1.224, 2.281, 3.144]  # the same energies, the image 0.35 A away
    assert rule(e, f, path=apart).status == SADDLE and hop_saddle(e, apart) == 1
    late = [0.0, 1.0, 2.0, 3.0, 3.05]  # next to the final endpoint of a rising band
    e2, f2 = band([0.0, 0.1, 0.2, 0.5, 0.4999])
    assert "from the final endpoint" in rule(e2, f2, path=late).note
