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
    assert main(["campaign", str(spec_path), "--report", ""]) == 0
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

    from interphase_dft.calc import settings as settings_mod
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
    from interphase_dft.calc.settings import preset
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
