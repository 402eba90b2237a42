"""`interphase-dft campaign/submit/run` end to end on the embedded store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interphase_dft.campaign import load_spec
from interphase_dft.cli import main
from interphase_dft.fw.execution import state_counts
from interphase_dft.fw.launchpad import init_embedded, lp_session, open_launchpad
from interphase_dft.fw.workflows import campaign_keys
from interphase_dft.store import ResultStore

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interphase_dft.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_campaign_with_all_results_stored_recomputes_nothing(tmp_path, capsys):
    spec_path = REPO / "workflows" / "test.yaml"
    lp = open_launchpad(init_embedded(tmp_path / ".interphase"))
    with lp_session(lp) as real:
        for key in campaign_keys(load_spec(spec_path)):
            ResultStore(real.db).insert({"kind": "binding", "phase": "Al"}, key=key)
    assert main(["campaign", str(spec_path), "--report", ""]) == 0
    out = capsys.readouterr().out
    assert "nothing to submit" in out and "1 results stored, 0 missing" in out
    assert state_counts(lp) == {}


def _recipes_ready() -> bool:
    try:
        from interphase_dft.builders import sites  # noqa: F401
        from interphase_dft.recipes.binding import binding_energy  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.gpaw
@pytest.mark.slow
@pytest.mark.skipif(not _recipes_ready(), reason="binding recipe not importable yet")
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
