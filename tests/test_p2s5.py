"""P2S5 (P4S10 molecular crystal): intact molecules at van der Waals distance (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from interphase_dft.builders.molecular import inversion_pair, packing_report
from interphase_dft.phases import get_bulk, p4s10_molecule, phase_info, relax_cell_in_bulk


@pytest.fixture(scope="module")
def report():
    return packing_report(get_bulk("P2S5"))


def test_molecules_intact(report):
    assert report.n_molecules == 2 and report.molecule_sizes == [14, 14]
    assert len(report.bond_lengths) == 2 * 16  # 12 bridging + 4 terminal P-S per molecule


def test_intramolecular_p_s_bonds(report):
    assert min(report.bond_lengths) >= 1.9 and max(report.bond_lengths) <= 2.2


def test_intermolecular_s_s_is_van_der_waals(report):
    assert report.shortest_s_s is not None and report.shortest_s_s >= 3.2
    assert report.shortest_contact >= 3.2  # no P...S or P...P closer either


def test_cell_and_density(report):
    cell = get_bulk("P2S5").cell.cellpar()
    assert np.allclose(cell, phase_info("P2S5").lattice, atol=1e-6)
    assert report.density == pytest.approx(2.09, abs=0.05)  # experiment about 2.09 g/cm3


def test_molecular_crystals_relax_their_cell_in_bulk_mode():
    assert phase_info("P2S5").molecular and not phase_info("Li2S").molecular
    assert relax_cell_in_bulk("P2S5", False) and relax_cell_in_bulk("Li2S", True)
    assert not relax_cell_in_bulk("Li2S", False)


def test_report_sees_contacts_between_periodic_images():
    """One molecule in a small cell: its own periodic image is another molecule."""
    cell = np.diag([7.0, 12.0, 12.0])
    atoms = inversion_pair(p4s10_molecule(), cell, np.zeros(3), np.zeros(3))[:14]
    rep = packing_report(atoms)
    assert rep.n_molecules == 1 and rep.shortest_contact <= 7.0 + 1e-9  # atom to own image
