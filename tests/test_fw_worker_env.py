"""Local workers share the cores: thread limits for OpenBLAS/torch in each worker."""

from __future__ import annotations

from interphase_dft.fw.pool import THREAD_VARS, worker_env


def test_two_workers_on_two_cores_get_one_thread_each():
    env = worker_env(2, base={}, cores=2)
    assert {env[v] for v in THREAD_VARS} == {"1"}
    assert "PYTHONPATH" in env


def test_cores_are_divided_and_never_below_one():
    assert worker_env(2, base={}, cores=8)["OMP_NUM_THREADS"] == "4"
    assert worker_env(1, base={}, cores=8)["OPENBLAS_NUM_THREADS"] == "8"
    assert worker_env(4, base={}, cores=2)["MKL_NUM_THREADS"] == "1"


def test_user_settings_win():
    env = worker_env(2, base={"OMP_NUM_THREADS": "3"}, cores=2)
    assert env["OMP_NUM_THREADS"] == "3" and env["OPENBLAS_NUM_THREADS"] == "1"
