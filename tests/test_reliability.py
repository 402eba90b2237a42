"""Reliability drills (issue 16): watched workers, heartbeats, secrets, a store that survives.

Each drill reproduces a defect found by trying the package as a new user would: a worker
killed by ``kill -9``, SIGTERM/SIGINT to ``run``, ``rerun --lost`` against a live worker,
malformed LaunchPad files holding a password, and a truncated, empty or missing store. No
MongoDB server is needed; heartbeats are short (0.5-1 s) so each drill takes seconds.
The drills of bounded inputs, output paths and shared validation (items 3, 5, 6) are in
``test_reliability_inputs.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interphase_dft.fw.launchpad import get_launchpad, init_embedded, open_launchpad
from interphase_dft.fw.status import detect_and_rerun, state_counts
from interphase_dft.store import ResultStore

SECRET = "S3cretPw"
SPEC = "name: drill\npreset: test\nbinding: {phases: [Al], modes: [bulk]}\nanalysis: false\n"


def countdown_wf(runs: Path, n: int, steps: int, seconds: float):
    from fireworks import Firework, Workflow

    from interphase_dft.fw.tasks import CountdownTask

    return Workflow([Firework([CountdownTask(work_key=f"{i:02d}" * 32, runs_dir=str(runs),
                                             steps=steps, seconds=seconds)],
                              spec={"_add_launchpad_and_fw_id": True}, name=f"countdown{i}")
                     for i in range(n)], name="countdown")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("INTERPHASE_LAUNCHPAD", "MONGOMOCK_SERVERSTORE_FILE")}
    return {**env, "INTERPHASE_HOME": str(home), "INTERPHASE_PING_SECS": "0.5", **extra}


def cli(*args: str, home: Path, timeout: float = 300, **extra: str
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interphase_dft.cli", *args], cwd=home,
                          env=cli_env(home, **extra), capture_output=True, text=True,
                          timeout=timeout)


def start_run(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "interphase_dft.cli", "run", *args],
                            cwd=home, env=cli_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stat(pid: int | str) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*") if _stat(p.name)[1:2] == [str(pid)]]


def alive(pid: int) -> bool:
    return _stat(pid)[:1] not in ([], ["Z"])


def wait_progress(runs: Path, done: int, timeout: float = 120) -> Path:
    """The checkpoint of the first countdown that has done ``done`` steps."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for ckpt in runs.glob("*/checkpoint.json"):
            with contextlib.suppress(ValueError, OSError):
                if json.loads(ckpt.read_text())["done"] >= done:
                    return ckpt
        time.sleep(0.1)
    raise TimeoutError(f"no countdown reached step {done} in {timeout} s")


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def long_run(tmp_path: Path):
    """A store with one 10 s countdown and `interphase-dft run` started on it."""
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 1, steps=40, seconds=0.25))
    return cfg, lp, start_run(tmp_path)


def results(cfg) -> list[dict]:
    return ResultStore(get_launchpad(cfg.yaml_path).db).find(kind="test")


# --- 1. workers that are watched -----------------------------------------------------------

def test_kill_9_of_a_worker_is_requeued_at_once_and_run_finishes(tmp_path):
    """Before: `run` printed 'RUNNING 1' and exited 0; the firework stayed RUNNING."""
    cfg = init_embedded(tmp_path / ".interphase")
    open_launchpad(cfg).add_wf(countdown_wf(tmp_path / "runs", 2, steps=8, seconds=0.3))
    run = start_run(tmp_path)
    try:
        ckpt = wait_progress(tmp_path / "runs", 2)
        (worker,) = children(run.pid)
        os.kill(worker, signal.SIGKILL)
        out, err = run.communicate(timeout=300)
    finally:
        kill_all([run.pid])
    assert run.returncode == 0, out + err
    assert "marked lost and requeued" in err and "SIGKILL" in err, err
    assert "COMPLETED 2" in out
    docs = results(cfg)  # exactly once: one result per firework
    assert sorted(d["work_key"] for d in docs) == ["00" * 32, "01" * 32]
    killed = next(d for d in docs if d["work_key"][:12] == ckpt.parent.name)
    assert killed["resumed_from"] >= 2  # the requeued firework resumed from its checkpoint
    assert (ckpt.parent / "starts.txt").read_text().split()[0] == "0"
    fws = get_launchpad(cfg.yaml_path).fireworks.find({}, {"launches": 1, "archived_launches": 1})
    assert sorted(len(d["launches"]) + len(d["archived_launches"]) for d in fws) == [1, 2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_run_stops_its_workers_and_requeues_their_fireworks(tmp_path, sig):
    """Before: SIGTERM killed `run` only; its worker ran on, re-parented to PID 1."""
    cfg, lp, run = long_run(tmp_path)
    workers: list[int] = []
    try:
        wait_progress(tmp_path / "runs", 2)
        workers = children(run.pid)
        assert workers
        run.send_signal(sig)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 128 + sig, out + err
        assert wait_gone(workers) == []  # no orphan worker
        assert "requeued" in err and "continue with `interphase-dft run`" in err, err
        assert state_counts(lp) == {"READY": 1}  # resumable at once
    finally:
        kill_all([run.pid, *workers])
    from interphase_dft.fw.pool import run_workers

    assert run_workers(cfg, 1, tmp_path / "l", progress=None, poll=0.3,
                       ping_secs=0.5) == {"COMPLETED": 1}
    assert results(cfg)[0]["resumed_from"] >= 2


def test_kill_9_of_run_leaves_no_orphan_and_the_next_run_recovers(tmp_path):
    """Before: the worker ran on; the next `run` waited or ended with the firework RUNNING."""
    cfg, lp, run = long_run(tmp_path)
    workers: list[int] = []
    try:
        wait_progress(tmp_path / "runs", 2)
        workers = children(run.pid)
        run.kill()
        run.communicate(timeout=60)
        assert wait_gone(workers) == []  # the workers notice their parent is gone
    finally:
        kill_all(workers)
    assert state_counts(lp) == {"RUNNING": 1}
    again = cli("run", home=tmp_path, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "stopped sending heartbeats" in again.stderr and "COMPLETED 1" in again.stdout
    assert results(cfg)[0]["resumed_from"] >= 2


def test_a_live_workers_firework_is_never_requeued(tmp_path):
    """Before: `rerun --lost --expiration 0` requeued a firework in the middle of its run; a
    killed worker's firework was not found lost before 4 h."""
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 1, steps=30, seconds=0.25))
    (tmp_path / "l").mkdir()
    worker = subprocess.Popen([sys.executable, "-m", "interphase_dft.fw.worker", "singleshot",
                               "--launchpad", str(cfg.yaml_path)], cwd=tmp_path / "l",
                              env=cli_env(tmp_path, INTERPHASE_PING_SECS="1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_progress(tmp_path / "runs", 1)
        end = time.monotonic() + 4.0  # > one heartbeat window (3 x 1 s)
        while time.monotonic() < end:
            assert detect_and_rerun(lp, expiration_secs=0)["lost"] == []
            time.sleep(0.3)
        out = cli("rerun", "--lost", "--expiration", "0", home=tmp_path)
        assert "lost -" in out.stdout, out.stdout + out.stderr
        assert state_counts(lp) == {"RUNNING": 1}
        status = cli("status", home=tmp_path).stdout
        assert "last ping" in status and "lost after 3 s" in status
    finally:
        worker.kill()
        worker.wait()
    time.sleep(3.5)  # three missed heartbeats
    out = cli("rerun", "--lost", home=tmp_path)  # no expiration to guess
    assert "lost [1]" in out.stdout, out.stdout + out.stderr
    assert state_counts(lp) == {"READY": 1}
    ran = cli("run", home=tmp_path, timeout=120)
    assert ran.returncode == 0 and len(results(cfg)) == 1


def test_run_exits_non_zero_when_work_is_left(tmp_path):
    from fireworks import Firework, ScriptTask, Workflow

    cfg = init_embedded(tmp_path / ".interphase")
    open_launchpad(cfg).add_wf(Workflow([Firework([ScriptTask.from_str("exit 3")], name="bad")]))
    out = cli("run", home=tmp_path, timeout=120)
    assert out.returncode == 1 and "FIZZLED" in out.stderr and "rerun --fizzled" in out.stderr


# --- 2. no secret is ever echoed -----------------------------------------------------------

BAD_LAUNCHPADS = {
    # YAML reads `Xy: S3cretPw` as a nested mapping: was printed as `password: *** S3cretPw`
    "value_with_colon": (f"host: localhost\nport: 27017\nname: db\nusername: alice\n"
                         f"password: Xy: {SECRET}\n", 5),
    # the parser cut the line before `mongodb://`, past the URI pattern
    "uri_on_a_bad_line": ("name: db\nuri_mode: true\nhost: mongodb://interphase_campaign_service"
                          f"_account_user:{SECRET}@db.example.org: x\n", 3),
    # the value on the line after `password:` was quoted by the parser
    "value_on_next_line": (f'host: localhost\nname: db\npassword:\n  "{SECRET}\nport: 1\n',
                           None),
    # PyYAML names the alias: `found undefined alias 'S3cretPw'`
    "value_read_as_alias": (f"host: localhost\nname: db\npassword: *{SECRET}\n", 3),
}


@pytest.mark.parametrize("shape", sorted(BAD_LAUNCHPADS))
def test_a_malformed_launchpad_file_never_echoes_its_password(tmp_path, shape):
    text, line = BAD_LAUNCHPADS[shape]
    lpad = tmp_path / "my_launchpad.yaml"
    lpad.write_text(text)
    for args, extra in ((["status", "--launchpad", str(lpad)], {}),
                        (["rerun", "--lost"], {"INTERPHASE_LAUNCHPAD": str(lpad)})):
        out = cli(*args, home=tmp_path, **extra)
        seen = out.stdout + out.stderr
        assert out.returncode == 1, seen
        assert SECRET not in seen, seen
        assert "Traceback" not in seen
        assert f"LaunchPad file {lpad}: line " in out.stderr
        if line:
            assert f": line {line}, column " in out.stderr
    worker = subprocess.run([sys.executable, "-m", "interphase_dft.fw.worker", "singleshot",
                             "--launchpad", str(lpad)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert worker.returncode == 1 and SECRET not in worker.stdout + worker.stderr


def test_redaction_works_on_values_from_files_and_the_environment(monkeypatch):
    from interphase_dft.secrets import redact, register_secrets, secrets_in_text

    for text, _ in BAD_LAUNCHPADS.values():
        assert SECRET in secrets_in_text(text)
    register_secrets(secrets_in_text("password: Xy: OtherPw9\n"))
    assert "OtherPw9" not in redact("a message quoting Xy: OtherPw9 out of context")
    monkeypatch.setenv("INTERPHASE_DB_PASSWORD", "EnvPw1234")
    monkeypatch.setenv("MONGO_URI", "mongodb://bob:UriPw5678@db.example.org/x")
    out = redact("EnvPw1234 and UriPw5678 in a message, at " + os.getcwd())
    assert "EnvPw1234" not in out and "UriPw5678" not in out
    assert os.getcwd() in out  # $PWD is a directory, not a password


# --- 4. a store that survives --------------------------------------------------------------

def store_with_backup(tmp_path: Path):
    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    lp.add_wf(countdown_wf(tmp_path / "runs", 1, 1, 0.0))
    lp.add_wf(countdown_wf(tmp_path / "runs2", 1, 1, 0.0))  # the first version becomes .1
    return cfg


def assert_refused(out: subprocess.CompletedProcess[str], store: Path, problem: str) -> None:
    seen = out.stdout + out.stderr
    assert out.returncode == 1, seen
    assert "Traceback" not in seen and "JSONDecodeError" not in seen, seen
    assert f"embedded store {store} is {problem}" in out.stderr, out.stderr
    assert f"{store}.1" in out.stderr and "interphase-dft store restore" in out.stderr


def test_a_truncated_store_is_refused_and_restored(tmp_path):
    """Before: every command ended in a raw JSONDecodeError traceback; no backup existed."""
    cfg = store_with_backup(tmp_path)
    store = cfg.store_file
    text = store.read_text()
    store.write_text(text[: len(text) // 2])
    for args in (["status"], ["results"], ["run"]):
        assert_refused(cli(*args, home=tmp_path), store, "not valid JSON")
    (tmp_path / "spec.yaml").write_text(SPEC)
    assert_refused(cli("submit", "spec.yaml", home=tmp_path), store, "not valid JSON")
    assert store.read_text() == text[: len(text) // 2]  # nothing was written over it
    check = cli("store", "check", home=tmp_path)
    assert check.returncode == 1 and "probably truncated" in check.stdout
    assert f"{store}.1: ok, 1 fireworks" in check.stdout
    restored = cli("store", "restore", home=tmp_path)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert list(store.parent.glob("launchpad.json.replaced-*"))
    status = cli("status", home=tmp_path)
    assert status.returncode == 0 and "countdown0" in status.stdout


def test_an_empty_store_is_refused_not_read_as_a_new_one(tmp_path):
    """Before: a 0-byte store silently became an empty database ('no fireworks')."""
    cfg = store_with_backup(tmp_path)
    cfg.store_file.write_bytes(b"")
    assert_refused(cli("status", home=tmp_path), cfg.store_file, "empty (0 bytes)")
    assert cfg.store_file.stat().st_size == 0
    assert cli("store", "restore", "--from", "1", home=tmp_path).returncode == 0
    assert "countdown0" in cli("status", home=tmp_path).stdout


def test_a_store_of_another_shape_or_gone_with_backups_is_refused(tmp_path):
    cfg = store_with_backup(tmp_path)
    cfg.store_file.write_text("[1, 2]")
    assert_refused(cli("status", home=tmp_path), cfg.store_file, "not a FireWorks database")
    cfg.store_file.unlink()
    assert_refused(cli("status", home=tmp_path), cfg.store_file, "missing")


def test_a_missing_interphase_home_is_an_error_unless_a_store_is_made(tmp_path):
    """Before: a mistyped INTERPHASE_HOME silently became a new, empty database."""
    (tmp_path / "spec.yaml").write_text(SPEC)
    home = tmp_path / "typo"
    for args in (["status"], ["results"], ["rerun", "--lost"], ["store", "check"]):
        out = cli(*args, home=tmp_path, INTERPHASE_HOME=str(home))
        assert out.returncode == 1 and "INTERPHASE_HOME" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not home.exists()
    out = cli("submit", str(tmp_path / "spec.yaml"), home=tmp_path, INTERPHASE_HOME=str(home))
    assert out.returncode == 0, out.stdout + out.stderr
    assert (home / ".interphase" / "launchpad.json").stat().st_size > 2


def test_heartbeat_windows_on_a_plain_launchpad(monkeypatch):
    """The MongoDB code path (a fireworks.LaunchPad, here on in-memory mongomock): a launch
    is lost after three of its own heartbeats; one without a recorded interval after
    --expiration (default 4 h)."""
    import datetime

    from fireworks import FWorker

    from interphase_dft.fw.embedded import new_fireworks_launchpad
    from interphase_dft.fw.heartbeat import worker_env

    monkeypatch.setenv("MONGOMOCK_SERVERSTORE_FILE", "")  # in memory
    lp = new_fireworks_launchpad({"host": "localhost", "name": "hb", "strm_lvl": "ERROR"},
                                 embedded=True)
    lp.reset("", require_password=False)
    lp.add_wf(countdown_wf(Path("runs"), 2, 1, 0.0))
    lp.checkout_fw(FWorker(env=worker_env(10.0, "w1")), "l1")
    lp.checkout_fw(FWorker(), "l2")  # FireWorks' own rlaunch: no interval recorded

    def silent_for(launch_id: int, secs: float) -> None:
        when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=secs)
        lp.launches.update_one({"launch_id": launch_id},
                               {"$set": {"state_history.0.updated_on": when.isoformat()}})

    silent_for(1, 25)  # missed two heartbeats of 10 s: alive
    silent_for(2, 3000)
    assert detect_and_rerun(lp, expiration_secs=0)["lost"] == [2]  # only the legacy one
    silent_for(1, 35)  # three missed: lost
    assert detect_and_rerun(lp)["lost"] == [1]
    assert state_counts(lp) == {"READY": 2}
