"""FireWorks layer on the embedded (mongomock file) store: no MongoDB, no GPAW."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interphase_dft.cli import main
from interphase_dft.fw.launchpad import (
    get_launchpad,
    init_embedded,
    lp_session,
    open_launchpad,
    resolve_launchpad,
)
from interphase_dft.fw.pool import run_workers
from interphase_dft.fw.status import detect_and_rerun, firework_rows, state_counts
from interphase_dft.fw.workflows import submit_campaign
from interphase_dft.store import ResultStore

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
name: mech
preset: test
binding:
  phases: [Al, LiAl]
  modes: [bulk]
barriers:
  - {a: LiAl, b: LPSC}
analysis: true
"""


def countdown_wf(runs: Path, n: int, steps: int, seconds: float):
    from fireworks import Firework, Workflow

    from interphase_dft.fw.tasks import CountdownTask

    fws = [Firework([CountdownTask(work_key=f"{i:02d}" * 32, runs_dir=str(runs), steps=steps,
                                   seconds=seconds)],
                    spec={"_add_launchpad_and_fw_id": True}, name=f"countdown{i}")
           for i in range(n)]
    return Workflow(fws, name="countdown")


def test_embedded_store_files_and_fireworks_lpad(tmp_path):
    cfg = init_embedded(tmp_path / ".interphase")
    assert json.loads(cfg.store_file.read_text()) == {}
    assert "embedded store" in cfg.describe()
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 2, 1, 0.0))
    # FireWorks' own CLI reads the same file through MONGOMOCK_SERVERSTORE_FILE
    env = dict(os.environ, MONGOMOCK_SERVERSTORE_FILE=str(cfg.store_file))
    out = subprocess.run([str(Path(sys.executable).parent / "lpad"), "-l", str(cfg.yaml_path),
                          "get_fws", "-d", "ids"], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert sorted(json.loads(out.stdout)) == [1, 2]
    assert resolve_launchpad(cfg.yaml_path).store_file == cfg.store_file


def test_submit_is_deduplicated_against_queue_and_store(tmp_path):
    from interphase_dft.campaign import parse_spec

    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    spec = parse_spec(SPEC)
    first = submit_campaign(lp, spec, tmp_path / "runs")
    # prepare + 2 binding + 1 barrier + its 2 bulk reference hops + analysis
    assert first.n_fireworks == 7
    names = {r["name"] for r in firework_rows(lp)}
    assert names == {"prepare:references", "binding:Al:bulk", "binding:LiAl:bulk",
                     "barrier:LiAl|LPSC:vacancy", "bulk_barrier:LiAl", "bulk_barrier:LPSC",
                     "analysis:mech"}
    again = submit_campaign(lp, spec, tmp_path / "runs")
    assert again.n_fireworks == 0 and again.skipped_queued == 5
    # results stored, fireworks gone (e.g. another LaunchPad was reset): nothing recomputed
    with lp_session(lp) as real:
        real.reset("", require_password=False)
        for item in spec.results()[:2]:
            ResultStore(real.db).insert({"kind": "binding", "phase": "x",
                                         "work_key": item.work_key})
    third = submit_campaign(lp, spec, tmp_path / "runs")
    assert third.skipped_stored == 2
    assert {r["name"] for r in firework_rows(lp)} == {
        "prepare:references", "barrier:LiAl|LPSC:vacancy", "bulk_barrier:LiAl",
        "bulk_barrier:LPSC", "analysis:mech"}


def test_workflow_dependencies(tmp_path):
    from interphase_dft.campaign import parse_spec
    from interphase_dft.fw.workflows import campaign_workflow

    wf = campaign_workflow(parse_spec(SPEC), tmp_path)
    by_name = {fw.name: fw.fw_id for fw in wf.fws}
    links = wf.links
    prepare, analysis = by_name["prepare:references"], by_name["analysis:mech"]
    work = [i for n, i in by_name.items() if n.startswith(("binding", "barrier", "bulk_barrier"))]
    assert len(work) == 5
    assert sorted(links[prepare]) == sorted(work)
    assert all(links[i] == [analysis] for i in work)
    assert wf.root_fw_ids == [prepare]
    for fw in wf.fws:  # no credentials or launchpad settings in specs
        assert "password" not in json.dumps(fw.to_dict())


def test_malformed_spec_rejected_nothing_submitted(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("[Al, LiAl]", "[Al, LiAll]"))
    assert main(["submit", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err and "LiAl" in err
    lp = open_launchpad(resolve_launchpad())
    assert state_counts(lp) == {}


def test_two_parallel_workers_run_every_firework_once(tmp_path):
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 6, steps=3, seconds=0.3))
    counts = run_workers(cfg, workers=2, launch_root=tmp_path / "launches", progress=None,
                         poll=0.3, timeout=300)
    assert counts == {"COMPLETED": 6}
    # a new process sees everything: one launch per firework, one result per firework
    code = (
        "import json; from interphase_dft.fw.launchpad import get_launchpad;"
        f"lp = get_launchpad({str(cfg.yaml_path)!r});"
        "fws = list(lp.fireworks.find({}, {'_id': 0, 'fw_id': 1, 'launches': 1, 'state': 1}));"
        "print(json.dumps([fws, lp.launches.count_documents({}),"
        " lp.db.interphase_results.count_documents({})]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    fws, n_launches, n_results = json.loads(out.stdout)
    assert len(fws) == 6 and all(len(f["launches"]) == 1 for f in fws)
    assert {f["state"] for f in fws} == {"COMPLETED"}
    assert n_launches == 6 and n_results == 6
    # both workers really worked
    logs = [(tmp_path / "launches" / f"worker{i}.log").read_text() for i in range(2)]
    assert all("Rocket finished" in log for log in logs), logs


def test_killed_worker_is_lost_rerun_and_resumes(tmp_path):
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 1, steps=12, seconds=0.5))
    ckpt = tmp_path / "runs" / ("00" * 6) / "checkpoint.json"
    (tmp_path / "l").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "interphase_dft.fw.worker", "singleshot",
                             "--launchpad", str(cfg.yaml_path), "--ping-secs", "0.3"],
                            cwd=tmp_path / "l", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(600):
        if ckpt.exists() and json.loads(ckpt.read_text())["done"] >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state_counts(lp) == {"RUNNING": 1}
    time.sleep(1.5)  # three missed heartbeats of 0.3 s: lost, no expiration to give
    assert detect_and_rerun(lp)["lost"] == [1]
    assert state_counts(lp) == {"READY": 1}
    assert run_workers(cfg, 1, tmp_path / "l", progress=None, poll=0.3) == {"COMPLETED": 1}
    doc = ResultStore(get_launchpad(cfg.yaml_path).db).find(kind="test")[0]
    assert doc["resumed_from"] >= 3
    assert next(int(x) for x in (ckpt.parent / "starts.txt").read_text().split()) == 0


def test_cli_status_results_and_reruns(tmp_path, capsys):
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    with lp_session(lp) as real:
        ResultStore(real.db).insert({"kind": "binding", "phase": "Al", "mode": "bulk",
                                     "binding_energy_atom": -1.23456, "settings":
                                     {"preset": "test"}, "work_key": "k" * 64})
    lp.add_wf(countdown_wf(tmp_path / "runs", 1, 1, 0.0))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert str(cfg.store_file) in out and "READY" in out and "countdown0" in out
    assert main(["results", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("kind,phase") and "-1.2346" in out
    assert main(["results", "--kind", "barrier"]) == 0
    assert "no results" in capsys.readouterr().out
    assert main(["results", "--phase", "al", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["phase"] == "Al"
    assert main(["rerun", "--fizzled"]) == 0


def test_real_prepare_firework_end_to_end(tmp_path, capsys):
    """A real `test`-preset firework (Li references, GPAW) through `interphase-dft campaign`."""
    spec = tmp_path / "refs.yaml"
    spec.write_text("name: refs\npreset: test\nbinding: {phases: [Al], modes: [bulk]}\n"
                    "analysis: false\n")
    cfg = init_embedded(tmp_path / ".interphase")
    from interphase_dft.campaign import parse_spec
    from interphase_dft.fw.workflows import campaign_workflow

    wf = campaign_workflow(parse_spec(spec.read_text()), tmp_path / "runs")
    prepare = next(fw for fw in wf.fws if fw.name == "prepare:references")
    from fireworks import Workflow

    lp = open_launchpad(cfg)
    lp.add_wf(Workflow([prepare]))
    counts = run_workers(cfg, 1, tmp_path / "launches", progress=None, poll=0.5)
    assert counts == {"COMPLETED": 1}
    assert main(["results", "--kind", "references", "--format", "json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert len(docs) == 1
    assert 1.0 < docs[0]["cohesive_energy"] < 2.5  # PBE ~1.6 eV; loose test preset
    assert docs[0]["work_key"] == prepare.spec["work_key"]
    assert (tmp_path / "runs" / prepare.spec["work_key"][:12]).is_dir()


@pytest.mark.mpi
@pytest.mark.gpaw
def test_prepare_firework_under_mpi(tmp_path, monkeypatch):
    """`_mpi_command` runs the recipe on 2 MPI ranks; the serial FireTask stores the result."""
    from fireworks import Workflow

    from interphase_dft.calc.presets import preset
    from interphase_dft.campaign import WorkItem
    from interphase_dft.fw.workflows import work_firework

    for k, v in {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                 "OMPI_MCA_rmaps_base_oversubscribe": "1"}.items():
        monkeypatch.setenv(k, v)
    cfg = init_embedded(tmp_path / ".interphase")
    fw = work_firework(WorkItem.create("references", preset("test")), tmp_path / "runs")
    fw.spec["_mpi_command"] = "mpiexec -n 2"
    open_launchpad(cfg).add_wf(Workflow([fw]))
    assert run_workers(cfg, 1, tmp_path / "l", progress=None, poll=0.5) == {"COMPLETED": 1}
    (doc,) = ResultStore(get_launchpad(cfg.yaml_path).db).find(kind="references")
    assert 1.0 < doc["cohesive_energy"] < 2.5
    workdir = tmp_path / "runs" / fw.spec["work_key"][:12]
    assert (workdir / "fw_result.json").exists() and (workdir / "fw_task.json").exists()


def test_backups_rotate_and_reads_write_nothing(tmp_path, monkeypatch):
    from interphase_dft.fw import embedded

    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    store = cfg.store_file
    monkeypatch.setattr(embedded, "BACKUP_SPACING_S", 3600.0)
    for i in range(5):
        lp.add_wf(countdown_wf(tmp_path / f"r{i}", 1, 1, 0.0))
    # writes close together: .1 is the last good copy, .2 keeps the oldest, no .3 yet
    checks = embedded.backups(store)
    assert [c.path.name for c in checks] == ["launchpad.json.1", "launchpad.json.2"]
    assert [sum(c.states.values()) for c in checks] == [4, 1]
    monkeypatch.setattr(embedded, "BACKUP_SPACING_S", 0.0)
    for i in range(5, 9):
        lp.add_wf(countdown_wf(tmp_path / f"r{i}", 1, 1, 0.0))
    checks = embedded.backups(store)
    assert [c.path.name for c in checks] == [f"launchpad.json.{n}" for n in (1, 2, 3)]
    assert [sum(c.states.values()) for c in checks] == [8, 7, 6]
    before = store.stat().st_mtime_ns
    state_counts(lp)
    assert store.stat().st_mtime_ns == before  # a read is not a write
    assert not list(store.parent.glob(".*.tmp"))


def test_a_failed_transaction_writes_nothing(tmp_path):
    from interphase_dft.fw.launchpad import lp_session

    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 1, 1, 0.0))
    before = cfg.store_file.read_text()
    with pytest.raises(KeyboardInterrupt), lp_session(lp) as real:
        real.rerun_fw(1)
        real.fireworks.delete_many({})
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of an operation
    assert cfg.store_file.read_text() == before and state_counts(lp) == {"READY": 1}
