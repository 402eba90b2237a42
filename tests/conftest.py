"""Shared test fixtures: every test runs in its own temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test inside its own temporary working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def mpi_env() -> dict[str, str]:
    """Environment for mpiexec; OpenMPI refuses to run as root without these."""
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    return env


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start the local single-node Slurm from hpc/ (idempotent) and return the node name."""
    script = REPO / "hpc" / "slurm-local-start.sh"
    if shutil.which("sbatch") is None:
        pytest.fail("sbatch not found: run scripts/bootstrap.sh (installs slurm-wlm and munge)")
    out = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=180, check=False
    )
    if out.returncode != 0:
        pytest.fail(f"hpc/slurm-local-start.sh failed:\n{out.stdout}\n{out.stderr}")
    node = subprocess.run(
        ["sinfo", "-h", "-o", "%N"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return node
