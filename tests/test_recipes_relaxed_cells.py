"""recipes.relaxed_cells: a DFT-relaxed cell stored per level, the start of later relaxations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from interphase_dft.calc.presets import preset
from interphase_dft.calc.runners import relax
from interphase_dft.cost import RELAX_CALLS
from interphase_dft.errors import InputError
from interphase_dft.phases import get_bulk
from interphase_dft.recipes import relaxed_cells as rc


def emt(atoms, attempt=0, label=""):
    return EMT()


emt.description = {"engine": "emt"}


def test_a_stored_cell_is_the_start_of_its_level_only_and_converges_at_once(tmp_path):
    """Al relaxed with EMT (a = 4.05 -> 4.02 A) and stored: at the same level the next
    relaxation starts from it and stops at its first call; at another relax.fmax, or with
    another calculator, the built cell is the start again."""
    settings = preset("test", {"relax": {"fmax": 0.01}})
    built = get_bulk("Al")
    start = rc.starting_cell("Al", built, emt, settings, tmp_path)
    assert start.info["cell_start"] == "built cell"
    first = relax(start, emt, tmp_path / "r1", settings.relax, cell=True)
    assert first.converged and first.steps > 1
    assert abs(first.atoms.cell.cellpar()[0] - built.cell.cellpar()[0]) > 0.01
    path = rc.store_cell(first.atoms, "Al", built, emt, settings, tmp_path)
    assert path.name == f"Al-{rc.level_tag(emt, built, settings)}.extxyz"
    again = rc.starting_cell("Al", built, emt, settings, tmp_path)
    assert again.info["cell_start"] == f"stored relaxed cell {path.name}"
    assert np.allclose(again.cell[:], first.atoms.cell[:], atol=1e-8)
    second = relax(again, emt, tmp_path / "r2", settings.relax, cell=True)
    assert second.converged and second.force_calls == 1
    looser = preset("test", {"relax": {"fmax": 0.02}})
    assert rc.starting_cell("Al", built, emt, looser, tmp_path).info["cell_start"] == "built cell"

    def other(atoms, attempt=0, label=""):
        return EMT()

    other.description = {"engine": "other"}
    assert rc.starting_cell("Al", built, other, settings, tmp_path).info["cell_start"] == (
        "built cell")


def test_storing_refuses_other_atoms_or_a_cell_without_results(tmp_path):
    settings = preset("test")
    built = get_bulk("Al")
    with pytest.raises(InputError, match="other atoms"):
        rc.store_cell(get_bulk("LiAl"), "Al", built, emt, settings, tmp_path)
    with pytest.raises(InputError, match="carries no energy"):
        rc.store_cell(built.copy(), "Al", built, emt, settings, tmp_path)
    assert not list(tmp_path.iterdir())


def test_bulk_mode_starts_the_cell_relaxation_from_the_stored_cell(tmp_path, monkeypatch):
    """The bulk host of a cell-relaxing level: from the built cell first (BFGS from the
    surrogate's Hessian of atoms and cell), then (stored) from the stored cell (no Hessian:
    it converges at once)."""
    from interphase_dft.recipes.bulk_mode import bulk_host

    monkeypatch.setattr(rc, "DIRECTORY", tmp_path / "store")
    settings = preset("test", {"relax": {"fmax": 0.01, "relax_cell_bulk": True}})
    host = bulk_host("Al", settings, tmp_path / "a", emt, surrogate=emt)
    assert host.info["cell_start"] == "built cell"
    assert host.info["cell_curvature"] == "surrogate Hessian of atoms and cell"
    assert (tmp_path / "a" / "bulk-cell" / "hessian.npz").is_file()
    rc.store_cell(host, "Al", get_bulk("Al"), emt, settings)
    again = bulk_host("Al", settings, tmp_path / "b", emt, surrogate=emt)
    assert again.info["cell_start"].startswith("stored relaxed cell Al-")
    assert again.info["cell_curvature"] == "BFGS default"  # converges at its first call
    assert not (tmp_path / "b" / "bulk-cell" / "hessian.npz").exists()
    assert np.allclose(again.cell[:], host.cell[:], atol=1e-8)
    plain = preset("test")
    assert bulk_host("Al", plain, tmp_path / "c", emt).info["cell_start"] == "built cell"


def test_the_cost_model_counts_one_call_for_a_stored_cell(tmp_path, monkeypatch):
    """P2S5 at laptop: the cell relaxation is priced as a relaxation until a relaxed cell of
    the level is stored, then as one call; the rest of the estimate is unchanged."""
    from interphase_dft.campaign import WorkItem
    from interphase_dft.cost import estimate

    monkeypatch.setattr(rc, "DIRECTORY", tmp_path)
    settings = preset("laptop")
    item = WorkItem.create("binding", settings, phase="P2S5", mode="bulk")
    before = estimate(item)
    assert not rc.has_stored_cell("P2S5", settings)
    built = get_bulk("P2S5")
    fake = built.copy()
    fake.calc = SinglePointCalculator(fake, energy=-1.0, forces=np.zeros((len(fake), 3)),
                                      stress=np.zeros(6))
    rc.store_cell(fake, "P2S5", built, rc.cell_factory("P2S5", settings), settings)
    assert rc.has_stored_cell("P2S5", settings)
    after = estimate(item)
    assert after.seconds < before.seconds
    assert before.needed_calls - after.needed_calls == min(settings.relax.steps, RELAX_CALLS) - 1


@pytest.mark.gpaw
@pytest.mark.slow
def test_the_cell_command_relaxes_with_gpaw_stores_and_restarts_from_the_stored_cell(
        tmp_path, capsys, monkeypatch):
    """fcc Al (4 atoms, PW 200 eV) through ``interphase-dft cell --store``: the relaxed
    cell is stored for its level; the same command in a new work directory starts from it
    and stops at its first GPAW call with the same cell."""
    from interphase_dft.cli import main

    monkeypatch.setattr(rc, "DIRECTORY", tmp_path / "store")
    args = ["cell", "Al", "--preset", "test", "--set", "dft.kpt_density=1.5",
            "--set", "relax.fmax=0.01", "-q"]
    assert main([*args, "--workdir", str(tmp_path / "a"), "--store"]) == 0
    first = capsys.readouterr().out
    assert "started from the built cell" in first and "stored as" in first
    [stored] = list((tmp_path / "store").iterdir())
    assert main([*args, "--workdir", str(tmp_path / "b")]) == 0
    second = capsys.readouterr().out
    assert f"started from the stored relaxed cell {stored.name}" in second
    steps = [json.loads((tmp_path / d / "bulk-cell" / "bulk-cell.json").read_text())["steps"]
             for d in ("a", "b")]
    assert steps[0] > 0 and steps[1] == 0
    volume = next(line for line in first.splitlines() if "volume" in line).split()[1]
    assert volume in second
