"""ML surrogate: loads offline from the weights in the wheel and relaxes a cell."""

from __future__ import annotations

import socket

import pytest
from ase.build import bulk

from interphase_dft.calc.ml import MLFactory, ml_calculator
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import MLSettings, RelaxSettings

pytest.importorskip("chgnet")
pytestmark = pytest.mark.ml


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading the surrogate")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_surrogate_loads_offline_and_relaxes(tmp_path, no_network):
    atoms = bulk("Li", "bcc", a=3.44, cubic=True) * (2, 1, 1)
    atoms.rattle(0.08, seed=2)
    calc = ml_calculator(MLSettings())
    probe = atoms.copy()
    probe.calc = calc
    e0 = probe.get_potential_energy()
    r = relax(atoms, MLFactory(MLSettings()), tmp_path, RelaxSettings(fmax=0.05, steps=100))
    assert r.converged and r.fmax <= 0.05
    assert r.energy < e0
    assert MLFactory(MLSettings()).description["model"].startswith("chgnet-")
