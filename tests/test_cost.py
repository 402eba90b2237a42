"""Cost model (interphase_dft.cost): growth, firework priorities, the dry run, calibration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interphase_dft.calc.presets import preset
from interphase_dft.campaign import WorkItem, load_spec, parse_spec
from interphase_dft.cli import main
from interphase_dft.cost import Calcs, Calibration, Cell, estimate, plan
from interphase_dft.fw.launchpad import init_embedded, lp_session, open_launchpad
from interphase_dft.store import ResultStore

REPO = Path(__file__).resolve().parents[1]
SPEC = ("name: costs\npreset: test\nbinding: {phases: [Al, LiCl], modes: [bulk]}\n"
        "barriers:\n  - {a: LiAl, b: LiCl, mechanism: vacancy}\nanalysis: true\n")


def _bulk_al(**overrides: object) -> WorkItem:
    return WorkItem.create("binding", preset("test", overrides or None), phase="Al", mode="bulk")


def test_the_estimate_grows_with_atoms_and_k_points():
    cell = Cell(atoms=40, kpts=2, spin=1, volume=400.0)
    base = Calcs(cell, 1, 10).units(300.0)
    assert Calcs(Cell(80, 2, 1, 800.0), 1, 10).units(300.0) > base * 4  # N^2.3
    assert Calcs(Cell(40, 4, 1, 400.0), 1, 10).units(300.0) == pytest.approx(2 * base)
    assert Calcs(Cell(40, 2, 2, 400.0), 1, 10).units(300.0) == pytest.approx(2 * base)

    gamma = {"kpt_density": 0.0}  # a larger supercell also needs fewer k-points
    small = estimate(_bulk_al(dft=gamma, structure={"bulk_min_length": 8.0}))
    big = estimate(_bulk_al(dft=gamma, structure={"bulk_min_length": 12.0}))
    assert big.atoms > small.atoms and big.seconds > small.seconds
    small = estimate(_bulk_al(dft={"gamma_only_atoms": 1000}))
    dense = estimate(_bulk_al(dft={"gamma_only_atoms": 1000, "kpt_density": 3.0}))
    assert dense.kpts > small.kpts and dense.seconds > small.seconds
    assert small.core_hours == pytest.approx(small.seconds * small.ranks / 3600)
    assert small.spec()["seconds"] == small.seconds and "atoms" in small.basis


def test_fireworks_are_checked_out_longest_first(tmp_path):
    from fireworks import FWorker

    from interphase_dft.fw.workflows import submit_campaign

    spec = parse_spec(SPEC)
    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    with lp_session(lp) as real:  # the references are done: every work firework is READY
        ResultStore(real.db).insert({"kind": "references", "work_key": spec.work()[0].work_key})
    assert submit_campaign(lp, spec, tmp_path / "runs").n_fireworks == len(spec.results()) + 1
    with lp_session(lp) as real:
        docs = {d["name"]: d["spec"] for d in real.fireworks.find({}, {"name": 1, "spec": 1})}
    for item in spec.results():
        cost = docs[item.name]["cost"]
        assert set(cost) == {"seconds", "core_hours", "dft_calls", "basis"}
        assert isinstance(cost["seconds"], float) and cost["seconds"] > 0
        assert docs[item.name]["_priority"] == max(1, round(cost["seconds"]))
        assert docs[item.name]["work_key"] == item.work_key  # keys unchanged
    assert docs["analysis:costs"]["_priority"] == 0
    order = []
    with lp_session(lp) as real:
        while (got := real.reserve_fw(FWorker(), str(tmp_path))) and got[0] is not None:
            order.append(got[0].name)
    assert sorted(order) == sorted(w.name for w in spec.results())
    seconds = [docs[name]["cost"]["seconds"] for name in order]
    assert seconds == sorted(seconds, reverse=True) and seconds[0] > seconds[-1]


def test_the_dry_run_prints_every_item_and_a_total_and_writes_nothing(tmp_path, capsys,
                                                                     monkeypatch):
    # a LaunchPad file that does not exist: opening it would be an error
    monkeypatch.setenv("INTERPHASE_LAUNCHPAD", str(tmp_path / "missing" / "my_launchpad.yaml"))
    monkeypatch.delenv("INTERPHASE_HOME", raising=False)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC)
    before = sorted(os.listdir(tmp_path))
    assert main(["submit", str(spec_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for item in load_spec(spec_file).work():
        line = next(x for x in out.splitlines() if x.startswith(item.name + " "))
        assert len(line.split()) == 8, line  # name atoms k-pts spin calls finish core-h wall-h
    assert "analysis:costs" in out and "total:" in out and "core-hours" in out
    assert main(["campaign", str(spec_file), "--dry-run", "--ranks", "4"]) == 0
    assert "wall-h@4" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == before


def test_the_dry_run_refuses_a_bad_spec_with_its_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npreset: test\nbarriers:\n  - {a: Al, b: LPSC, mechanism: vacancy}\n")
    assert main(["submit", str(bad), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4" in err and "interstitial" in err


def test_calibration_from_samples_scales_the_prefactor():
    item = _bulk_al()
    plain = estimate(item)
    cal = Calibration.fit([(item, plain.seconds * 10)])
    assert cal is not None and cal.n_docs == 1
    fitted = estimate(item, cal)
    assert fitted.seconds == pytest.approx(plain.seconds * 10, rel=0.05)
    assert "calibrated from 1 stored documents" in fitted.basis
    assert Calibration.fit([]) is None


def test_calibration_fits_the_start_up_overhead_and_the_prefactor():
    """Samples made by a known model (overhead 3 s, prefactor 2x the default) are recovered:
    a short firework is then not overestimated by the default 10 s start-up."""
    from interphase_dft.cost import DEFAULT_PREFACTOR, speedup

    items = [_bulk_al(), *[w for w in parse_spec(SPEC, source="s").work()
                           if w.kind == "references"]]
    units = [sum(c.units(i.settings.dft.ecut) for c in plan(i)) / speedup(1) for i in items]
    samples = [(i, 3.0 + 2 * DEFAULT_PREFACTOR * u) for i, u in zip(items, units, strict=True)]
    cal = Calibration.fit(samples)
    assert cal is not None and cal.n_docs == 2
    assert cal.overhead == pytest.approx(3.0, rel=1e-6)
    assert cal.prefactor == pytest.approx(2 * DEFAULT_PREFACTOR, rel=1e-6)
    for item, seconds in samples:
        assert estimate(item, cal).seconds == pytest.approx(seconds, rel=1e-6)


@pytest.mark.gpaw
@pytest.mark.slow
def test_calibrated_estimates_are_within_a_factor_3_of_the_stored_wall_times(tmp_path):
    """Run workflows/test.yaml, calibrate from its stored documents and compare each completed
    work firework's calibrated estimate with its launch's wall time."""
    from interphase_dft.fw.workflows import store_calibration

    spec_path = REPO / "workflows" / "test.yaml"
    assert main(["campaign", str(spec_path), "--report", str(tmp_path / "rep")]) == 0
    spec = load_spec(spec_path)
    items = {w.work_key: w for w in spec.work()}
    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    with lp_session(lp) as real:
        cal = store_calibration(real)
        assert cal is not None and cal.n_docs == len(items)
        launches = {d["fw_id"]: d["runtime_secs"] for d in real.launches.find(
            {"state": "COMPLETED"}, {"fw_id": 1, "runtime_secs": 1})}
        fws = list(real.fireworks.find({"state": "COMPLETED", "spec.work_key": {"$in":
                                                                              list(items)}}))
    assert len(fws) == len(items)
    for fw in fws:
        est = estimate(items[fw["spec"]["work_key"]], cal)
        wall = launches[fw["fw_id"]]
        assert wall / 3 <= est.seconds <= wall * 3, (fw["name"], est.seconds, wall)
        assert f"calibrated from {len(items)} stored documents" in est.basis


def test_relaxing_the_host_adds_one_relaxation_to_an_interface_vacancy_hop():
    costs = []
    for extra in ({}, {"neb": {"relax_host": True}}):
        settings = preset("laptop", {"budget": {"max_dft_calls": None}, **extra})
        costs.append(estimate(WorkItem.create("barrier", settings, phase_a="LiAl", phase_b="LiCl",
                                              mechanism="vacancy")))
    assert costs[1].dft_calls == costs[0].dft_calls + 25
    assert costs[1].seconds > costs[0].seconds


def test_the_surrogate_screening_of_a_bulk_host_is_counted_and_left_out_of_the_fit():
    """LPSC's 82 distinct sites are screened by the surrogate before DFT (laptop cuts them to
    max_dft_sites): measured 27 min in the make-demo run at b28fc6b. Hosts whose sites are
    not cut cost no screening, and the calibration fits the DFT part only."""
    from interphase_dft.cost import DEFAULT_PREFACTOR, speedup, surrogate_seconds

    laptop = preset("laptop")
    lpsc = WorkItem.create("binding", laptop, phase="LPSC", mode="bulk")
    lial = WorkItem.create("binding", laptop, phase="LiAl", mode="bulk")
    assert 20 * 60 < surrogate_seconds(lpsc) < 35 * 60
    assert surrogate_seconds(lial) == 0.0
    uncut = preset("laptop", {"binding": {"max_dft_sites": None, "max_dft_vacancies": None}})
    assert surrogate_seconds(WorkItem.create("binding", uncut, phase="LPSC", mode="bulk")) == 0

    samples = []
    for item in (lpsc, lial):
        units = sum(c.units(item.settings.dft.ecut) for c in plan(item)) / speedup(1)
        samples.append((item, 3.0 + 2 * DEFAULT_PREFACTOR * units + surrogate_seconds(item)))
    cal = Calibration.fit(samples)
    assert cal is not None and cal.prefactor == pytest.approx(2 * DEFAULT_PREFACTOR, rel=1e-6)
    for item, seconds in samples:
        assert estimate(item, cal).seconds == pytest.approx(seconds, rel=1e-6)


def test_reference_endpoints_add_two_relaxations_to_a_hop():
    costs = [estimate(WorkItem.create("bulk_barrier", preset("laptop", {
        "budget": {"max_dft_calls": None}, **extra}), phase="Li2S"))
        for extra in ({}, {"neb": {"al_reference_endpoints": True}})]
    assert costs[1].dft_calls == costs[0].dft_calls + 2 * 25


def test_a_laptop_interface_hop_needs_more_calls_than_its_ceiling(tmp_path, capsys, monkeypatch):
    """The loop's rounds and the DFT CI-NEB finish that every interface hop has needed: far
    more than the laptop ceiling of 30 calls, and the dry run says so and how to raise it."""
    laptop = preset("laptop")
    item = WorkItem.create("barrier", laptop, phase_a="Li3P", phase_b="LiCl",
                           mechanism="vacancy")
    e = estimate(item)
    assert e.dft_calls == laptop.budget.max_dft_calls and e.stops_early
    n = laptop.neb.n_images
    assert e.needed_calls >= n * min(laptop.neb.steps, 100)  # the finish alone
    free = estimate(WorkItem.create("barrier", preset("laptop", {"budget": {
        "max_dft_calls": None}}), phase_a="Li3P", phase_b="LiCl", mechanism="vacancy"))
    assert free.dft_calls == free.needed_calls == e.needed_calls and not free.stops_early
    unconfirmed = estimate(WorkItem.create("barrier", preset("laptop", {
        "budget": {"max_dft_calls": None}, "structure": {"interface_registry_confirm": 0}}),
        phase_a="Li3P", phase_b="LiCl", mechanism="vacancy"))
    # the registry's DFT confirmation: its points, the gap bracketing and the two sides alone
    from interphase_dft.cost import REGISTRY_GAP_POINTS
    from interphase_dft.recipes.registry import MAX_GAP_STEPS

    assert free.needed_calls - unconfirmed.needed_calls == (
        laptop.structure.interface_registry_confirm + REGISTRY_GAP_POINTS + 2)
    assert 0 < REGISTRY_GAP_POINTS <= MAX_GAP_STEPS
    monkeypatch.setenv("INTERPHASE_LAUNCHPAD", str(tmp_path / "missing" / "my_launchpad.yaml"))
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("name: hops\npreset: laptop\nbarriers:\n"
                         "  - {a: Li3P, b: LiCl, mechanism: vacancy}\n")
    assert main(["submit", str(spec_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"barrier:Li3P|LiCl:vacancy 30/{e.needed_calls}" in out
    assert f"max_dft_calls: {e.needed_calls}" in out
