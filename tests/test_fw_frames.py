"""FireTasks hand their recipe the LaunchPad's frame store and their work key (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interphase_dft.calc.frames import FRAMES_DB, AseDbFrames
from interphase_dft.calc.presets import preset
from interphase_dft.fw.launchpad import lp_session
from interphase_dft.store import ResultStore
from tests.test_fw_campaign import BARRIER_SPEC, _launchpad_with_references, _run_all
from tests.test_recipes_barrier import al_adatom_hop, emt_factory


def test_a_barrier_task_stores_its_dft_frames_with_its_work_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interphase_dft.campaign import parse_spec
    from interphase_dft.fw.workflows import submit_campaign
    from interphase_dft.recipes import barrier

    spec = parse_spec(BARRIER_SPEC)
    lp = _launchpad_with_references(tmp_path, spec)
    assert submit_campaign(lp, spec, tmp_path / "runs").n_fireworks == 3
    real_neb_barrier = barrier.neb_barrier

    def emt_hop(*args: Any, workdir: Path, frames: Any = None, work_key: str | None = None,
                **kw: Any) -> Any:  # the recipe on an EMT hop, with what the task passed
        initial, final = al_adatom_hop()
        return real_neb_barrier(initial, final, preset("test", {"neb": {"fmax": 0.05}}),
                                workdir, calc_factory=emt_factory, frames=frames,
                                work_key=work_key)

    monkeypatch.setattr(barrier, "migration_barrier", emt_hop)
    monkeypatch.setattr(barrier, "bulk_reference_barrier", emt_hop)
    monkeypatch.chdir(tmp_path)
    assert _run_all(lp) == 3
    store = AseDbFrames(tmp_path / ".interphase" / FRAMES_DB)
    keys = {w.work_key for w in spec.results()}
    frames = store.select()
    # three tasks computed the same EMT hop: each geometry stored once, under the first key
    assert len(frames) > 10 and {f.work_key for f in frames} <= keys
    with lp_session(lp) as real:
        docs = [ResultStore(real.db).get(k) for k in keys]
    assert all(d is not None and d["saddle"] == "saddle" for d in docs)
    assert not list((tmp_path / "runs").rglob(FRAMES_DB))  # no LaunchPad-less fallback used
    assert "frame_key" not in lp.store_file.read_text()  # frames never in the JSON file


def test_without_a_launchpad_frames_go_to_the_work_directory(tmp_path: Path) -> None:
    from interphase_dft.campaign import WorkItem
    from interphase_dft.fw.workflows import work_firework

    item = WorkItem.create("bulk_barrier", preset("test"), phase="Al")
    task = work_firework(item, tmp_path).tasks[0]
    sink = task.frames(tmp_path / "w")  # an MPI rank: no LaunchPad attached
    assert isinstance(sink, AseDbFrames) and sink.path == tmp_path / "w" / FRAMES_DB


def test_frames_of_an_mpi_run_are_copied_into_the_launchpad_store(tmp_path: Path) -> None:
    from interphase_dft.calc.frames import recording
    from interphase_dft.calc.runners import static
    from interphase_dft.campaign import WorkItem
    from interphase_dft.fw.launchpad import init_embedded, open_launchpad
    from interphase_dft.fw.tasks import _collect_frames
    from interphase_dft.fw.workflows import work_firework

    item = WorkItem.create("bulk_barrier", preset("test"), phase="Al")
    task = work_firework(item, tmp_path / "runs").tasks[0]
    workdir = tmp_path / "w"
    initial, _ = al_adatom_hop()
    static(initial, recording(emt_factory, task.frames(workdir), item.work_key), workdir)
    task.launchpad = open_launchpad(init_embedded(tmp_path / ".interphase"))
    _collect_frames(task, workdir)
    _collect_frames(task, workdir)  # stored once
    frames = AseDbFrames(tmp_path / ".interphase" / FRAMES_DB).select()
    assert len(frames) == 1 and frames[0].work_key == item.work_key
