"""The run's time limit (`run`/`campaign --hours`, `make demo HOURS=`): parsing, and workers
that take the cheapest READY firework first and none after the deadline."""

from __future__ import annotations

import pytest

from interphase_dft.errors import InputError
from interphase_dft.fw.launchpad import get_launchpad, init_embedded, open_launchpad
from interphase_dft.timelimit import (
    ENV_DEADLINE,
    check_hours,
    deadline_after,
    deadline_env,
    passed,
    run_deadline,
)
from tests.test_reliability import cli


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "two"])
def test_bad_hours_are_refused_with_the_fix(bad):
    with pytest.raises(InputError, match="--hours must be"):
        check_hours(bad)


def test_deadline_round_trip_through_the_environment():
    deadline = deadline_after(0.5, now=1000.0)
    assert deadline == 2800.0
    env = deadline_env(deadline)
    assert run_deadline(env) == deadline and run_deadline({}) is None
    assert deadline_env(None) == {}
    assert passed(deadline, now=2800.0) and not passed(deadline, now=2799.0)
    assert not passed(None)
    with pytest.raises(InputError, match=ENV_DEADLINE):
        run_deadline({ENV_DEADLINE: "tomorrow"})


def test_run_with_hours_rejects_a_bad_value_before_starting(tmp_path):
    init_embedded(tmp_path / ".interphase")
    out = cli("run", "--hours", "-2", home=tmp_path, timeout=120)
    assert out.returncode == 2 and "--hours must be a positive" in out.stderr


def _fireworks(runs, jobs, seconds):
    from fireworks import Firework, Workflow

    from interphase_dft.fw.tasks import CountdownTask

    return Workflow([Firework([CountdownTask(work_key=f"{i:02d}" * 32, runs_dir=str(runs),
                                             steps=int(seconds / 0.25), seconds=0.25)],
                              spec={"_add_launchpad_and_fw_id": True, "_priority": cost,
                                    "kind": kind}, name=f"{kind}{cost}")
                     for i, (kind, cost) in enumerate(jobs)], name="costs")


def test_within_a_time_limit_bindings_then_barriers_cheapest_first_none_after_it(tmp_path):
    """Six 3 s fireworks, one worker, a limit of 10.8 s: some run (binding energies before the
    cheap barrier, cheapest first), the rest stay READY, and `run` says the limit was reached
    and exits 0."""
    cfg = init_embedded(tmp_path / ".interphase")
    jobs = [("binding", 40), ("barrier", 5), ("binding", 10), ("binding", 50), ("binding", 30),
            ("binding", 20)]
    open_launchpad(cfg).add_wf(_fireworks(tmp_path / "runs", jobs, seconds=3.0))
    out = cli("run", "--hours", "0.003", home=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "time limit of 0.003 h reached" in out.stdout and "--hours 0.003" in out.stdout
    fws = list(get_launchpad(cfg.yaml_path).fireworks.find(
        {}, {"name": 1, "state": 1, "launches": 1}))
    order = ["binding10", "binding20", "binding30", "binding40", "binding50", "barrier5"]
    ran = sorted((d["name"] for d in fws if d["state"] == "COMPLETED"), key=order.index)
    left = [d for d in fws if d["state"] == "READY"]
    assert ran and left and len(ran) + len(left) == len(jobs)
    assert ran == order[:len(ran)]  # the cheapest bindings, and only they
    assert all(not d["launches"] for d in left)


def test_a_campaign_stopped_by_its_time_limit_still_writes_the_report_and_exits_0(tmp_path):
    """`make demo` finishes in one pass: what the limit left is listed, not an error."""
    from tests.test_reliability import SPEC

    (tmp_path / "drill.yaml").write_text(SPEC)
    out = cli("campaign", "drill.yaml", "--hours", "0.0001", "--report", "report",
              home=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 results stored, 1 missing" in out.stdout
    assert "time limit of 0.0001 h reached: READY 1" in out.stdout
    assert "interphase-dft campaign drill.yaml --hours 0.0001" in out.stdout
    assert (tmp_path / "report" / "index.html").is_file()
