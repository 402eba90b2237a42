"""DFT confirmation of the surrogate registry scan (recipes/registry.confirm_scan, hop_setup)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from interphase_dft.builders.migration import migration_cell_for, set_registry
from interphase_dft.calc.presets import preset
from interphase_dft.errors import InputError
from interphase_dft.recipes.hop_setup import interface_states, registry_cell
from interphase_dft.recipes.registry import (
    EQUIVALENT_ENERGY,
    EV_PER_A2_TO_J_PER_M2,
    MAX_GAP_STEPS,
    confirm_scan,
    distinct_lowest,
    scan_cell,
)

SETTINGS = preset("test", {"structure": {"interface_registry_grid": 2,
                                         "interface_gap_offsets": (0.0, 0.4),
                                         "interface_registry_confirm": 3}})


def surrogate(atoms, attempt=0, label=""):
    return LennardJones(sigma=2.3, epsilon=0.01, rc=5.0, smooth=True)


class Spread(Calculator):
    """A stand-in reference level whose ranking differs from the surrogate's: the energy is
    minus the z extent of the atoms (a wider gap is lower), so its lowest registry is the
    widest gap among the points it is given."""

    implemented_properties = ("energy", "forces")
    calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        Spread.calls += 1
        z = self.atoms.positions[:, 2]
        self.results = {"energy": -float(z.max() - z.min()),
                        "forces": np.zeros((len(self.atoms), 3))}


def reference(atoms, attempt=0, label=""):
    return Spread()


def stiffer(atoms, attempt=0, label=""):
    """A reference level with a gap minimum of its own (wider than the surrogate's)."""
    return LennardJones(sigma=2.6, epsilon=0.01, rc=5.5, smooth=True)


def refuse(atoms, attempt=0, label=""):
    raise AssertionError("a confirmed registry must come from its checkpoint")


def test_distinct_lowest_keeps_one_point_of_each_equivalent_registry():
    pts = [(0.5, 0.0, 2.0, -1.0), (0.0, 0.0, 2.0, -1.0 + EQUIVALENT_ENERGY / 2),
           (0.0, 0.0, 2.2, -0.99), (0.5, 0.5, 2.0, -0.5), (0.0, 0.5, 2.0, -0.99)]
    assert distinct_lowest(pts, 2) == [pts[0], pts[2]]
    assert distinct_lowest(pts, 5) == [pts[0], pts[2], pts[3]]
    assert distinct_lowest(pts, 0) == []


def test_confirmation_takes_the_lowest_reference_point_and_its_work_of_adhesion(tmp_path):
    built = migration_cell_for("LiAl", "LiCl", SETTINGS)
    scan = scan_cell(built, surrogate, grid=2, gap_offsets=(0.0, 0.4))
    chosen = distinct_lowest(scan.points, 3)
    assert len(chosen) == 3
    conf = confirm_scan(built, scan.points, reference, k=3, checkpoint=tmp_path / "c.json")
    assert [p[:4] for p in conf.points[:3]] == [tuple(map(float, p)) for p in chosen]
    widest = max(chosen, key=lambda p: p[2])  # the reference prefers ever wider gaps
    assert conf.best_shift == pytest.approx(widest[:2]) and not conf.surrogate_choice_kept
    # the gap of the lowest point is extended one step at a time and never brackets here
    extra = conf.points[3:]
    assert len(extra) == MAX_GAP_STEPS and not conf.gap_bracketed
    assert all(p[:2] == pytest.approx(widest[:2]) for p in extra)
    assert conf.best_gap == pytest.approx(max(p[2] for p in extra))
    assert conf.best_gap > widest[2]
    assert not conf.to_dict()["gap_bracketed"]
    # the cell is the built cell at the chosen registry, computed with vacuum along z
    expect = set_registry(built, conf.best_shift, conf.best_gap).atoms
    assert np.allclose(conf.cell.atoms.positions, expect.positions)
    assert conf.energy_ab == pytest.approx(min(p[4] for p in conf.points))
    w = (conf.energy_a + conf.energy_b - conf.energy_ab) / built.area
    seen = []

    def spy(atoms, attempt=0, label=""):
        seen.append((len(atoms), atoms.info.get("kpoint_atoms"), tuple(atoms.pbc)))
        return Spread()

    confirm_scan(built, scan.points, spy, k=3, checkpoint=tmp_path / "spy.json")
    n = len(built.atoms)  # the sides alone are computed with the whole cell's k-point rule
    assert [s for s in seen if s[0] < n] and all(s[1] == n for s in seen if s[0] < n)
    assert all(s[2] == (True, True, False) for s in seen)  # vacuum along z: dipole layer
    record = conf.to_dict()
    assert record["work_of_adhesion_eV_A2"] == pytest.approx(w)
    assert record["work_of_adhesion_J_m2"] == pytest.approx(w * EV_PER_A2_TO_J_PER_M2)
    json.dumps(record)
    # resumed from the checkpoint: no reference call
    again = confirm_scan(built, scan.points, refuse, k=3, checkpoint=tmp_path / "c.json")
    assert again.to_dict() == record
    with pytest.raises(InputError, match="another cell or scan"):
        confirm_scan(built, scan.points, refuse, k=2, checkpoint=tmp_path / "c.json")
    with pytest.raises(InputError, match="interface_registry_confirm"):
        confirm_scan(built, scan.points, refuse, k=0, checkpoint=tmp_path / "d.json")


def test_a_killed_confirmation_resumes_from_the_points_it_finished(tmp_path):
    built = migration_cell_for("LiAl", "LiCl", SETTINGS)
    scan = scan_cell(built, surrogate, grid=2, gap_offsets=(0.0, 0.4))
    seen = []

    def dies_on_the_second(atoms, attempt=0, label=""):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return Spread()

    with pytest.raises(KeyboardInterrupt):
        confirm_scan(built, scan.points, dies_on_the_second, k=3, checkpoint=tmp_path / "c.json")
    stored = json.loads((tmp_path / "c.json").read_text())
    assert list(stored["energies"]) == ["ab0"]
    Spread.calls = 0
    confirm_scan(built, scan.points, reference, k=3, checkpoint=tmp_path / "c.json")
    # the two other registries, the gap steps and the two sides, not ab0 again
    assert Spread.calls == 2 + MAX_GAP_STEPS + 2


def test_registry_cell_confirms_and_the_document_gets_the_reference_work_of_adhesion(tmp_path):
    cell, record = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, stiffer)
    assert record["level"] == "surrogate scan, DFT-confirmed"
    dft = record["dft"]
    assert (record["best_shift"], record["best_gap_A"]) == (dft["best_shift"], dft["best_gap_A"])
    assert cell.info["registry_rule"].startswith("lowest DFT energy")
    scan = record["surrogate"]  # the surrogate scan is kept beside the DFT points
    assert scan["level"] == "surrogate" and len(scan["points"]) >= 8
    assert scan == json.loads((tmp_path / "registry-scan.json").read_text())
    for name in ("registry.json", "registry-scan.json"):
        assert (tmp_path / name).is_file()
    assert len(list(tmp_path.glob("registry-dft-*.json"))) == 1
    again, cached = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, refuse)
    assert cached == record and np.allclose(again.atoms.positions, cell.atoms.positions)
    hs = interface_states("LiAl", "LiCl", SETTINGS, "vacancy", tmp_path, surrogate=surrogate,
                          relaxer=refuse, reference=refuse)
    assert hs.work_of_adhesion == pytest.approx(dft["work_of_adhesion_J_m2"])
    # without confirmation the surrogate's choice stands and no DFT work of adhesion is claimed
    plain = preset("test", {"structure": {**SETTINGS.structure.model_dump(),
                                          "interface_registry_confirm": 0}})
    hs = interface_states("LiAl", "LiCl", plain, "vacancy", tmp_path / "plain",
                          surrogate=surrogate, relaxer=refuse, reference=refuse)
    assert hs.meta["registry"]["level"] == "surrogate" and hs.work_of_adhesion is None
    assert not list((tmp_path / "plain").glob("registry-dft*.json"))


def test_a_record_cached_before_confirmation_keeps_its_registry(tmp_path):
    """The states of a run depend on its registry: an older surrogate-only record stays."""
    _, plain = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, None)
    assert plain["level"] == "surrogate"
    _, again = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, refuse)
    assert again == plain and not list(tmp_path.glob("registry-dft*.json"))


def test_a_choice_confirmed_at_another_reference_level_is_confirmed_again(tmp_path):
    """A registry DFT-confirmed with one reference calculator is not reused by a rerun whose
    reference differs (e.g. the density k-mesh after Gamma): that rerun confirms at its own
    level, in its own checkpoint; the first level's choice is then cached no more, and a
    record from before the rule (no reference_level) counts as another level."""
    def described(kpoints):
        def factory(atoms, attempt=0, label=""):
            return stiffer(atoms)

        factory.description = {"engine": "stiffer", "kpoints": kpoints}
        return factory

    gamma, dense = described("gamma"), described("density")
    _, first = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, gamma)
    _, same = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, refuse_described(
        "gamma"))
    assert same == first  # cached: the refusing reference is never called
    _, second = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate, dense)
    assert second["reference_level"] != first["reference_level"]
    assert len(list(tmp_path.glob("registry-dft-*.json"))) == 2
    legacy = {k: v for k, v in second.items() if k != "reference_level"}
    (tmp_path / "registry.json").write_text(json.dumps(legacy))
    _, redone = registry_cell("LiAl", "LiCl", SETTINGS, tmp_path, surrogate,
                              refuse_described("density"))
    # confirmed again (the record gets its level back), from that level's checkpoint
    assert redone == second and "reference_level" in redone


def refuse_described(kpoints):
    """A reference that refuses to compute, described like ``described(kpoints)``."""
    def factory(atoms, attempt=0, label=""):
        return refuse(atoms)

    factory.description = {"engine": "stiffer", "kpoints": kpoints}
    return factory


def test_a_hop_stopped_by_its_budget_in_the_registry_confirmation_says_so(monkeypatch,
                                                                          tmp_path):
    """A ceiling reached before the band is an over-budget document, not a crash; the same
    call with a larger budget continues from the stored DFT points."""
    from interphase_dft.barrier_status import OVER_BUDGET
    from interphase_dft.recipes import barrier

    monkeypatch.setattr(barrier, "_surrogate_for", lambda settings, opts: surrogate)
    # the stand-in reference widens the gap: allow the longer crossing it leaves
    wide = SETTINGS.with_overrides({"structure": {"interface_max_hop": 8.0}})
    small = wide.with_overrides({"budget": {"max_dft_calls": 2}})
    doc = barrier.migration_barrier("LiAl", "LiCl", small, workdir=tmp_path,
                                    calc_factory=reference)
    assert doc.saddle == OVER_BUDGET and doc.budget["dft_calls"] == 2
    assert "hop setup" in doc.saddle_note and doc.interface == "LiAl|LiCl"
    assert doc.thickness_a >= small.structure.interface_min_thickness
    assert not (tmp_path / "registry.json").exists()  # nothing chosen yet
    (confirmed,) = tmp_path.glob("registry-dft-*.json")
    assert len(json.loads(confirmed.read_text())["energies"]) == 2
    seen = {}
    monkeypatch.setattr(barrier, "path_barrier", lambda states, *a, **kw: seen.update(kw) or "ok")
    Spread.calls = 0
    assert barrier.migration_barrier("LiAl", "LiCl", wide, workdir=tmp_path,
                                     calc_factory=reference) == "ok"
    assert Spread.calls == 1 + MAX_GAP_STEPS + 2  # the third registry point, gaps, sides
    assert seen["work_of_adhesion"] == pytest.approx(
        json.loads((tmp_path / "registry.json").read_text())["dft"]["work_of_adhesion_J_m2"])


def test_a_reference_with_a_gap_minimum_ends_bracketed(tmp_path):
    """A stiffer Lennard-Jones stands in for DFT: its best gap is wider than the surrogate's,
    and the confirmation steps out until a wider gap is higher again."""
    built = migration_cell_for("LiAl", "LiCl", SETTINGS)
    scan = scan_cell(built, surrogate, grid=2, gap_offsets=(0.0, 0.4))
    conf = confirm_scan(built, scan.points, stiffer, k=2, checkpoint=tmp_path / "c.json")
    assert conf.gap_bracketed
    at_best = sorted(p[2] for p in conf.points if p[:2] == pytest.approx(conf.best_shift))
    assert at_best[0] < conf.best_gap < at_best[-1]
    assert conf.energy_ab == min(p[4] for p in conf.points)


class Squeeze(Spread):
    """A stand-in reference that prefers ever narrower gaps (energy = z extent)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] = -self.results["energy"]


def test_a_gap_pushed_to_its_narrowest_allowed_value_is_not_bracketed(tmp_path):
    from interphase_dft.recipes.registry import MIN_GAP

    built = migration_cell_for("LiAl", "LiCl", SETTINGS)
    scan = scan_cell(built, surrogate, grid=2, gap_offsets=(0.0, 0.4))
    conf = confirm_scan(built, scan.points, lambda atoms, attempt=0, label="": Squeeze(),
                        k=3, checkpoint=tmp_path / "c.json")
    assert not conf.gap_bracketed and not conf.to_dict()["gap_bracketed"]
    assert min(p[2] for p in conf.points) >= MIN_GAP
    assert conf.best_gap == min(p[2] for p in conf.points)
