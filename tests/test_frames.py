"""Frame store (issue 17, item 2): EMT stands in for DFT; ASE db and mongomock backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mongomock
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from interphase_dft.calc.frames import (
    AseDbFrames,
    MongoFrames,
    RecordingFactory,
    frame_settings_hash,
    frames_for_launchpad,
)
from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import relax, static
from interphase_dft.calc.settings import RelaxSettings
from interphase_dft.cli import main


class EMTFactory:
    """Cheap reference calculator factory with a description (like GPAWFactory)."""

    def __init__(self, tag: str = "emt") -> None:
        self.tag = tag

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
        return EMT()

    @property
    def description(self) -> dict[str, Any]:
        return {"engine": self.tag}


def _cu() -> Atoms:
    a = bulk("Cu", cubic=True).repeat((2, 1, 1))
    a.rattle(0.05, seed=1)
    return a


@pytest.fixture(params=["asedb", "mongo"])
def store(request: Any, tmp_path: Path) -> Any:
    if request.param == "asedb":
        return AseDbFrames(tmp_path / "frames.db")
    return MongoFrames(mongomock.MongoClient().db)


def test_relax_frames_stored_once_and_queryable(store: Any, tmp_path: Path) -> None:
    run = RunLog(frames=store, work_key="k" * 64)
    factory = run.recorded(EMTFactory())
    assert isinstance(factory, RecordingFactory)
    assert factory.description == {"engine": "emt"}  # checkpoint fingerprints unchanged
    r = relax(_cu(), factory, tmp_path / "r", RelaxSettings(fmax=0.05, steps=50))
    assert store.count() == r.force_calls == len(set(factory.ids))
    # the relaxed geometry again (another work directory): stored once already
    n = store.count()
    static(r.atoms, factory, tmp_path / "s")
    assert store.count() == n
    moved = r.atoms.copy()
    moved.positions[0, 0] += 0.05
    static(moved, factory, tmp_path / "s1")
    static(moved, factory, tmp_path / "s2")
    assert store.count() == n + 1
    # another element set and another settings hash
    other = run.recorded(EMTFactory("emt-other"))
    static(bulk("Al", cubic=True), other, tmp_path / "al")
    shash = frame_settings_hash({"engine": "emt"})
    assert store.count(elements="Cu", settings_hash=shash) == n + 1
    assert store.count(elements="Al") == 1
    assert store.count(settings_hash=frame_settings_hash({"engine": "emt-other"})) == 1
    frames = store.select(elements="Cu", settings_hash=shash)
    f = frames[n - 1]  # the relaxed geometry (frames come in the order stored)
    assert f.work_key == "k" * 64 and f.calculator == {"engine": "emt"}
    assert "ase" in f.versions
    np.testing.assert_allclose(f.atoms.get_potential_energy(), r.atoms.get_potential_energy())
    assert f.atoms.get_forces().shape == (len(r.atoms), 3)


def test_surrogate_and_unrecorded_factories_store_nothing(tmp_path: Path) -> None:
    store = AseDbFrames(tmp_path / "frames.db")
    run = RunLog()  # no sink: the factory is returned unchanged
    f = EMTFactory()
    assert run.recorded(f) is f
    static(_cu(), f, tmp_path / "s")
    assert store.count() == 0


def test_cli_export_extxyz_reads_back(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "frames.db"
    factory = RunLog(frames=AseDbFrames(db)).recorded(EMTFactory())
    r = relax(_cu(), factory, tmp_path / "r", RelaxSettings(fmax=0.1, steps=20))
    static(bulk("Al", cubic=True), factory, tmp_path / "al")
    assert main(["frames", "count", "--db", str(db)]) == 0
    assert f"{r.force_calls + 1} frames" in capsys.readouterr().out
    out = tmp_path / "cu.xyz"
    shash = frame_settings_hash({"engine": "emt"})
    assert main(["frames", "export", "--format", "extxyz", "-o", str(out), "--db", str(db),
                 "--elements", "Cu", "--settings-hash", shash[:8]]) == 0
    images = read(out, index=":")
    assert len(images) == r.force_calls
    for im in images:
        assert np.isfinite(im.get_potential_energy())
        assert im.get_forces().shape == (len(im), 3)
        assert im.info["settings_hash"] == shash
    np.testing.assert_allclose(images[-1].get_potential_energy(),
                               r.atoms.get_potential_energy(), atol=1e-8)


def test_embedded_launchpad_file_does_not_grow(tmp_path: Path) -> None:
    from interphase_dft.fw.launchpad import init_embedded, open_launchpad

    cfg = init_embedded(tmp_path / ".interphase")
    lp = open_launchpad(cfg)
    size = cfg.store_file.stat().st_size
    sink = frames_for_launchpad(lp)
    assert isinstance(sink, AseDbFrames)
    assert sink.path == tmp_path / ".interphase" / "frames.db"
    relax(_cu(), RunLog(frames=sink).recorded(EMTFactory()), tmp_path / "r",
          RelaxSettings(fmax=0.1, steps=20))
    assert sink.count() > 0
    assert cfg.store_file.stat().st_size == size


def test_mongo_launchpad_gets_a_collection() -> None:
    class LP:
        db = mongomock.MongoClient().fireworks

    sink = frames_for_launchpad(LP())
    assert isinstance(sink, MongoFrames)
    assert sink.coll.name == "interphase_frames"
