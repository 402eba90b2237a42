"""Reused SCF starting points (calc.reuse): one live calculator per band slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from interphase_dft.calc.factory import GPAWFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.reuse import ReusingFactory, slot


class Counting:
    """A factory that records what it was asked to build."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
        self.calls.append((attempt, label))
        return EMT()

    @property
    def description(self) -> dict[str, Any]:
        return {"engine": "emt"}


def test_a_slot_keeps_its_calculator_while_only_positions_move() -> None:
    inner = Counting()
    f = ReusingFactory(inner)
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    first = f(a, 0, "img1")
    moved = a.copy()
    moved.positions[0] += 0.05
    assert f(moved, 0, "img1") is first  # positions moved: the same calculator
    assert f(moved, 0, "neb-img1") is first  # the final CI-NEB's image shares the slot
    assert slot("neb-img1") == "img1" and slot("relax") == "relax"
    assert f(moved, 0, "img2") is not first  # another slot
    retry = f(moved, 1, "img1")  # an SCF retry: a new calculator, kept from then on
    assert retry is not first and f(moved, 0, "img1") is retry
    other = moved.copy()
    other.set_cell(other.cell * 1.01, scale_atoms=True)
    assert f(other, 0, "img1") is not retry  # the cell changed
    fewer = a[:-1]
    assert f(fewer, 0, "img1") is not retry  # the atoms changed
    assert f.reused == 3 and f.built == len(inner.calls) == 5
    assert f.description == {"engine": "emt"}
    with pytest.raises(AttributeError):
        f.paired  # noqa: B018 - the wrapped factory has no spin-paired variant
    f.release()
    assert f(a, 0, "img1") is not first


def test_gpaw_starts_from_the_previous_scf_and_gets_the_same_energy(tmp_path: Path) -> None:
    """A moved Al atom: the kept GPAW calculator converges in fewer SCF iterations than a
    new one, to the same energy and forces."""
    settings = preset("test", {"dft": {"scf_energy": 1e-6, "scf_density": 1e-5}})
    factory = GPAWFactory(settings, is_metal=True, txt=str(tmp_path / "gpaw.txt"))
    reusing = ReusingFactory(factory)
    a = bulk("Al", "fcc", a=4.05, cubic=True)
    a.calc = reusing(a, 0, "img1")
    a.get_potential_energy()
    moved = a.copy()
    moved.positions[1] += (0.04, -0.03, 0.02)
    moved.calc = reusing(moved, 0, "img1")
    assert moved.calc is a.calc
    e_reused, f_reused = moved.get_potential_energy(), moved.get_forces()
    n_reused = moved.calc.get_number_of_iterations()
    fresh = moved.copy()
    fresh.calc = factory(fresh, 0, "fresh")
    e_fresh, f_fresh = fresh.get_potential_energy(), fresh.get_forces()
    n_fresh = fresh.calc.get_number_of_iterations()
    assert n_reused < n_fresh
    assert e_reused == pytest.approx(e_fresh, abs=2e-4)
    assert abs(f_reused - f_fresh).max() < 5e-3
