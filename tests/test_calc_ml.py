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


def test_surrogate_gets_d3_exactly_where_dft_does():
    """P2S5 (vdW-bound): CHGNet + D3(BJ) holds two P4S10-like S2 dimers together where
    CHGNet alone gives no dispersion; without D3 in the DFT settings it stays plain CHGNet."""
    from ase import Atoms
    from ase.calculators.mixing import SumCalculator

    from interphase_dft.calc.factory import surrogate_factory
    from interphase_dft.calc.presets import preset

    laptop = preset("laptop")  # dft.dispersion = 'd3', scope 'all'
    f = surrogate_factory(laptop, dispersion=True)
    assert f.d3_xc == "PBE" and f.description["dispersion"] == "d3(PBE)"
    assert surrogate_factory(laptop, dispersion=False).d3_xc == "PBE"  # every phase
    plain = laptop.with_overrides({"dft": {"dispersion": "none"}})
    assert surrogate_factory(plain, dispersion=True).d3_xc is None
    assert surrogate_factory(preset("test"), dispersion=True).d3_xc is None  # no D3 there
    two = Atoms("S2S2", positions=[(0, 0, 0), (0, 0, 1.9), (4.0, 0, 0), (4.0, 0, 1.9)],
                cell=[12, 12, 12], pbc=True)
    calc = f(two)
    assert isinstance(calc, SumCalculator)
    two.calc = calc
    e_d3 = two.get_potential_energy()
    two.calc = surrogate_factory(plain, dispersion=False)(two)
    assert e_d3 < two.get_potential_energy()  # dispersion only adds attraction
