"""The queue adapter works from the installed package (no source checkout needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interphase_dft.errors import InputError
from interphase_dft.fw.launchpad import init_embedded
from interphase_dft.fw.queue import default_qadapter_template, make_qadapter

REPO = Path(__file__).resolve().parents[1]


def test_packaged_template_is_the_documented_one():
    assert default_qadapter_template() == (REPO / "hpc" / "my_qadapter.yaml").read_text()


def test_default_qadapter_runs_the_interphase_worker_on_the_store(tmp_path):
    config = init_embedded(tmp_path / ".interphase")
    adapter = make_qadapter(config, walltime="00:05:00")
    assert adapter["rocket_launch"].startswith("exec ")
    assert "interphase_dft.fw.worker singleshot" in adapter["rocket_launch"]
    assert str(config.yaml_path) in adapter["rocket_launch"]
    assert f"MONGOMOCK_SERVERSTORE_FILE={config.store_file}" in adapter["pre_rocket"]
    assert adapter["walltime"] == "00:05:00" and adapter.q_type == "SLURM"
    assert "--ping-secs 60 " in adapter["rocket_launch"] + " "  # the default heartbeat


def test_the_job_worker_pings_at_the_configured_interval(tmp_path, monkeypatch):
    config = init_embedded(tmp_path / ".interphase")
    monkeypatch.setenv("INTERPHASE_PING_SECS", "30")
    assert "--ping-secs 30" in make_qadapter(config)["rocket_launch"]
    assert "--ping-secs 5" in make_qadapter(config, ping=5)["rocket_launch"]
    monkeypatch.setenv("INTERPHASE_PING_SECS", "0")
    with pytest.raises(InputError, match="INTERPHASE_PING_SECS"):
        make_qadapter(config)


def test_every_fw_module_imports_first_in_a_fresh_interpreter():
    """An import cycle shows up as an ImportError when the module is the first one loaded."""
    import subprocess
    import sys

    for name in ("tasks", "workflows", "status", "pool", "queue", "launchpad", "worker",
                 "embedded", "heartbeat"):
        subprocess.run([sys.executable, "-c", f"import interphase_dft.fw.{name}"], check=True)


def test_a_worker_uses_the_fireworker_file_with_its_heartbeat(tmp_path):
    """mpi_command from my_fworker.yaml reaches the tasks (FireWorks passes fworker.env as
    fw_spec['_fw_env']); the heartbeat entries are added, the file's query is kept."""
    import pytest

    from interphase_dft.errors import InputError
    from interphase_dft.fw.worker import load_fworker

    shutil_copy = (REPO / "hpc" / "my_fworker.yaml").read_text()
    path = tmp_path / "my_fworker.yaml"
    path.write_text(shutil_copy)
    fworker = load_fworker(str(path), {"interphase_ping_secs": 5.0})
    assert fworker.env["mpi_command"] == "srun"
    assert fworker.env["interphase_ping_secs"] == 5.0
    assert fworker.name == "interphase-slurm"
    assert load_fworker(None, {"x": 1}).env == {"x": 1}
    with pytest.raises(InputError, match="not found"):
        load_fworker(str(tmp_path / "missing.yaml"), {})
