"""`interphase-dft campaign/submit/run` end to end on the embedded store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interphase_dft.campaign import load_spec
from interphase_dft.cli import main
from interphase_dft.fw.launchpad import init_embedded, lp_session, open_launchpad
from interphase_dft.fw.status import state_counts
from interphase_dft.store import ResultStore

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interphase_dft.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_campaign_with_all_results_stored_recomputes_nothing(tmp_path, capsys):
    spec_path = REPO / "workflows" / "test.yaml"
    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    with lp_session(lp) as real:
        for item in load_spec(spec_path).results():
            ResultStore(real.db).insert({"kind": "binding", "phase": "Al",
                                         "work_key": item.work_key})
    assert main(["campaign", str(spec_path), "--report", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "nothing to submit" in out and "1 results stored, 0 missing" in out
    assert state_counts(lp) == {}


@pytest.mark.gpaw
@pytest.mark.slow
def test_test_campaign_runs_to_completed_and_results_persist(tmp_path):
    spec = REPO / "workflows" / "test.yaml"
    out = _cli("campaign", str(spec), "--report", "rep", "--workers", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "COMPLETED" in out.stdout and "0 missing" in out.stdout
    # a new process reads the results back
    res = _cli("results", "--kind", "binding", "--format", "json", cwd=tmp_path)
    docs = json.loads(res.stdout)
    assert [d["phase"] for d in docs] == ["Al"] and docs[0]["mode"] == "bulk"
    assert docs[0]["settings"]["preset"] == "test"
    assert (tmp_path / "rep" / "index.html").exists()
    # submitting the same spec again computes nothing
    again = _cli("submit", str(spec), cwd=tmp_path)
    assert "nothing to submit" in again.stdout
    status = _cli("status", cwd=tmp_path).stdout
    assert status.count("COMPLETED") == 3  # prepare, binding, analysis


def test_a_queued_firework_computes_with_the_settings_it_was_submitted_with(tmp_path,
                                                                            monkeypatch):
    """Submit, change a preset default (a package upgrade), run: the recipe gets the submitted
    settings and the document is stored under the submitted work key."""
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import launch_rocket

    from interphase_dft.calc import presets as settings_mod
    from interphase_dft.campaign import parse_spec
    from interphase_dft.fw.workflows import submit_campaign
    from interphase_dft.recipes import binding

    spec = parse_spec("name: pin\npreset: test\nbinding: {phases: [Al], modes: [bulk]}\n"
                      "analysis: false\n")
    (item,) = spec.results()
    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    with lp_session(lp) as real:  # the references are not what this test is about
        ResultStore(real.db).insert({"kind": "references", "work_key": spec.work()[0].work_key})
    submit_campaign(lp, spec, tmp_path / "runs")

    test_preset = settings_mod.PRESETS["test"]
    monkeypatch.setitem(settings_mod.PRESETS, "test",
                        lambda: test_preset().with_overrides({"dft": {"ecut": 987.0}}))
    assert settings_mod.preset("test").dft.ecut == 987.0 != item.settings.dft.ecut
    seen = []

    def spy(phase, settings, *, mode, workdir):
        seen.append(settings)
        return {"kind": "binding", "phase": phase, "mode": mode,
                "settings": settings.model_dump(mode="json")}

    monkeypatch.setattr(binding, "binding_energy", spy)
    monkeypatch.chdir(tmp_path)
    assert launch_rocket(lp, FWorker(), strm_lvl="ERROR")
    assert seen == [item.settings]
    with lp_session(lp) as real:
        doc = ResultStore(real.db).get(item.work_key)
    assert doc is not None and doc["settings"]["dft"]["ecut"] == item.settings.dft.ecut
    assert doc["work_key"] == item.work_key


def test_a_task_whose_settings_do_not_give_its_key_is_refused(tmp_path):
    from interphase_dft.calc.presets import preset
    from interphase_dft.campaign import WorkItem
    from interphase_dft.errors import InputError
    from interphase_dft.fw.workflows import work_firework

    fw = work_firework(WorkItem.create("binding", preset("test"), phase="Al", mode="bulk"),
                       tmp_path)
    task = fw.tasks[0]
    assert task.item().work_key == fw.spec["work_key"]
    task["settings"]["dft"]["ecut"] = 999.0
    with pytest.raises(InputError, match="do not give its work key"):
        task.item()
    del task["settings"]
    with pytest.raises(InputError, match="resubmit"):
        task.item()


BARRIER_SPEC = ("name: hop\npreset: test\nbarriers:\n  - {a: LiAl, b: LiCl, mechanism: vacancy}\n"
                "analysis: false\n")


def _launchpad_with_references(tmp_path, spec):
    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    with lp_session(lp) as real:  # the references are not what these tests are about
        ResultStore(real.db).insert({"kind": "references", "work_key": spec.work()[0].work_key})
    return lp


def _run_all(lp):
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import launch_rocket

    n = 0
    while launch_rocket(lp, FWorker(), strm_lvl="ERROR"):
        n += 1
    return n


def test_barrier_and_bulk_barrier_tasks_run_their_recipes_with_the_submitted_settings(
        tmp_path, monkeypatch):
    """Every phase of a barrier gets a bulk reference hop; each task calls its recipe with
    the settings (and mechanism) it carries and stores the document under its work key."""
    from interphase_dft.campaign import parse_spec
    from interphase_dft.fw.workflows import submit_campaign
    from interphase_dft.recipes import barrier

    spec = parse_spec(BARRIER_SPEC)
    items = {w.name: w for w in spec.results()}
    assert set(items) == {"barrier:LiAl|LiCl:vacancy", "bulk_barrier:LiAl", "bulk_barrier:LiCl"}
    lp = _launchpad_with_references(tmp_path, spec)
    assert submit_campaign(lp, spec, tmp_path / "runs").n_fireworks == 3
    seen = []

    def spy_bulk(phase, settings, *, workdir, frames=None, work_key=None):
        assert frames is not None and work_key.startswith(workdir.name)
        seen.append(("bulk", phase, settings, workdir.name))
        return {"kind": "barrier", "phase_a": phase, "phase_b": phase, "saddle": "saddle",
                "mechanism": "bulk-vacancy", "settings": settings.model_dump(mode="json")}

    def spy_interface(a, b, settings, *, workdir, mechanism, frames=None, work_key=None):
        seen.append(("interface", f"{a}|{b}:{mechanism}", settings, workdir.name))
        return {"kind": "barrier", "phase_a": a, "phase_b": b, "mechanism": mechanism,
                "saddle": "saddle", "settings": settings.model_dump(mode="json")}

    monkeypatch.setattr(barrier, "bulk_reference_barrier", spy_bulk)
    monkeypatch.setattr(barrier, "migration_barrier", spy_interface)
    monkeypatch.chdir(tmp_path)
    assert _run_all(lp) == 3
    got = {(kind, name): (s, wd) for kind, name, s, wd in seen}
    for kind, name, item in (("interface", "LiAl|LiCl:vacancy", "barrier:LiAl|LiCl:vacancy"),
                             ("bulk", "LiAl", "bulk_barrier:LiAl"),
                             ("bulk", "LiCl", "bulk_barrier:LiCl")):
        s, wd = got[(kind, name)]
        assert s == items[item].settings and wd == items[item].work_key[:12]
    with lp_session(lp) as real:
        store = ResultStore(real.db)
        for item in items.values():
            assert store.get(item.work_key)["kind"] == "barrier"


def test_a_barrier_over_budget_continues_when_submitted_with_a_larger_budget(tmp_path,
                                                                           monkeypatch):
    from interphase_dft.barrier_status import OVER_BUDGET
    from interphase_dft.campaign import parse_spec
    from interphase_dft.fw.workflows import submit_campaign
    from interphase_dft.recipes import barrier

    spec = parse_spec(BARRIER_SPEC)
    (item,) = [w for w in spec.results() if w.kind == "barrier"]
    lp = _launchpad_with_references(tmp_path, spec)
    with lp_session(lp) as real:  # the bulk hops are done
        for w in spec.results():
            if w.kind == "bulk_barrier":
                ResultStore(real.db).insert({"kind": "barrier", "work_key": w.work_key})
    budgets = []

    def spy(a, b, settings, *, workdir, mechanism, **recording):
        budgets.append(settings.budget.max_dft_calls)
        limit = settings.budget.max_dft_calls
        status = OVER_BUDGET if limit < 3000 else "saddle"
        return {"kind": "barrier", "phase_a": a, "phase_b": b, "saddle": status,
                "budget": {"max_dft_calls": limit, "dft_calls": min(limit, 2500)},
                "settings": settings.model_dump(mode="json")}

    monkeypatch.setattr(barrier, "migration_barrier", spy)
    monkeypatch.chdir(tmp_path)
    assert submit_campaign(lp, spec, tmp_path / "runs").n_fireworks == 1
    assert _run_all(lp) == 1
    with lp_session(lp) as real:
        assert ResultStore(real.db).get(item.work_key)["saddle"] == OVER_BUDGET
    # the same budget leaves no room: nothing is added
    same = submit_campaign(lp, spec, tmp_path / "runs")
    assert same.n_fireworks == 0 and same.continued == 0
    bigger = parse_spec(BARRIER_SPEC.replace("analysis", "overrides: {budget: "
                                             "{max_dft_calls: 4000}}\nanalysis"))
    rep = submit_campaign(lp, bigger, tmp_path / "runs")
    assert rep.n_fireworks == 1 and rep.continued == 1
    assert _run_all(lp) == 1
    assert budgets == [2000, 4000]
    with lp_session(lp) as real:
        docs = list(ResultStore(real.db).coll.find({"work_key": item.work_key}))
    assert len(docs) == 1 and docs[0]["saddle"] == "saddle"  # replaced, same work key
    assert submit_campaign(lp, bigger, tmp_path / "runs").n_fireworks == 0


def test_a_barrier_task_without_a_mechanism_is_refused(tmp_path):
    from interphase_dft.calc.presets import preset
    from interphase_dft.campaign import WorkItem
    from interphase_dft.errors import InputError
    from interphase_dft.fw.workflows import work_firework

    item = WorkItem.create("barrier", preset("test"), phase_a="LiAl", phase_b="LiCl",
                           mechanism="vacancy")
    task = work_firework(item, tmp_path).tasks[0]
    assert task.item().work_key == item.work_key
    task["settings"]["budget"]["max_dft_calls"] = 99  # a budget change keeps the key
    assert task.item().work_key == item.work_key
    del task["mechanism"]
    with pytest.raises(InputError, match="no mechanism"):
        task.item()
