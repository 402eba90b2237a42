"""FireTasks. FireWorks stores ``{{interphase_dft.fw.tasks.<Name>}}`` in the database:
never move or rename these classes.

A task carries the full settings it was submitted with (``settings``: the
``CalcSettings.model_dump``), its work parameters and its ``work_key``; it runs with exactly
those settings, whatever the presets of the installed package say by then. Each task returns
the stored document if its work key is already in the results store, else calls its recipe in
the deterministic work directory ``<runs_dir>/<work_key[:12]>`` (a rerun finds the
calculation's checkpoint there), stores the document under its work key and returns an
:class:`FWAction` with a small summary. A stored document that a larger budget can continue
(:func:`interphase_dft.schemas.continuable`: a barrier over budget) is not reused: the task
computes again in the same work directory (continuing from the checkpoints, with the budget
it carries) and replaces it. The LaunchPad comes from FireWorks
(``_add_launchpad_and_fw_id`` in the spec); parameters never hold credentials.

Frames: the barrier tasks hand their recipe the frame store of their LaunchPad
(:func:`interphase_dft.calc.frames.frames_for_launchpad`: ``frames.db`` next to the embedded
store, the ``interphase_frames`` collection of a MongoDB) and their work key. Under MPI
(:mod:`interphase_dft.fw.mpirun`) the ranks have no LaunchPad: rank 0 writes the frames to
``<workdir>/frames.db`` and the serial task copies them into the LaunchPad's store after the
run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from fireworks import FiretaskBase, FWAction, explicit_serialize

from interphase_dft.barrier_status import continuable
from interphase_dft.calc.checkpoint import write_json
from interphase_dft.calc.frames import AseDbFrames, FrameSink, frames_for_launchpad, open_frames
from interphase_dft.campaign import CampaignSpec, WorkItem
from interphase_dft.errors import InputError
from interphase_dft.fw.launchpad import lp_session
from interphase_dft.store import ResultStore

COMMON: list[str] = ["settings", "work_key", "runs_dir"]
SUMMARY = ("kind", "uid", "phase", "interface", "mechanism", "binding_energy_atom",
           "binding_energy_bcc", "barrier_forward", "saddle")


class WorkTask(FiretaskBase):
    """Base of the tasks that compute one :class:`WorkItem` (not stored itself)."""

    kind: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()

    def item(self) -> WorkItem:
        """The work item this task computes, with the settings it carries.

        Raises
        ------
        InputError
            The task carries no settings (queued by an older interphase-dft) or its settings
            do not give its work key.
        """
        from interphase_dft.calc.settings import CalcSettings

        if "settings" not in self or "work_key" not in self:
            raise InputError(f"firework task {type(self).__name__} carries no settings (queued "
                             "by an older interphase-dft); resubmit the campaign: "
                             "interphase-dft submit SPEC")
        item = WorkItem.create(self.kind, CalcSettings.model_validate(self["settings"]),  # type: ignore[arg-type]
                               **{p: self[p] for p in self.params})
        if item.work_key != self["work_key"]:
            raise InputError(f"{item.name}: the settings carried by the task do not give its "
                             f"work key {self['work_key'][:12]}; the firework was altered, "
                             "resubmit the campaign")
        return item

    def workdir(self) -> Path:
        path = Path(self["runs_dir"]) / self["work_key"][:12]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def recipe(self, workdir: Path) -> Any:
        raise NotImplementedError

    def frames(self, workdir: Path) -> FrameSink | None:
        """Where the recipe's DFT frames go: the LaunchPad's frame store, else (no LaunchPad:
        an MPI rank) ``<workdir>/frames.db``; None on MPI ranks other than 0."""
        from ase.parallel import world

        lp = getattr(self, "launchpad", None)
        if world.rank != 0:
            return None
        return frames_for_launchpad(lp) if lp is not None else open_frames(workdir)

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        return _run_cached(self, fw_spec)


def _mpi_command(fw_spec: dict[str, Any]) -> str:
    """MPI launcher for the recipe ('' = run in this process).

    Set ``mpi_command`` (e.g. ``srun`` or ``mpiexec -n 4``) in the FireWorker's ``env``
    (hpc/my_fworker.yaml) or in the firework spec as ``_mpi_command``; it is used when the job
    has more than one task (``SLURM_NTASKS`` > 1) or the spec asks for it explicitly.
    """
    if fw_spec.get("_mpi_command"):
        return str(fw_spec["_mpi_command"])
    command = (fw_spec.get("_fw_env") or {}).get("mpi_command", "")
    return command if command and int(os.environ.get("SLURM_NTASKS", "1")) > 1 else ""


def _compute(task: WorkTask, fw_spec: dict[str, Any], workdir: Path) -> Any:
    """``task.recipe(workdir)`` here, or on all MPI ranks (``interphase_dft.fw.mpirun``)."""
    command = _mpi_command(fw_spec)
    if not command:
        return task.recipe(workdir)
    task_file, out_file = workdir / "fw_task.json", workdir / "fw_result.json"
    task_file.write_text(json.dumps(task.to_dict()))
    out_file.unlink(missing_ok=True)
    gpaw = Path(sys.executable).with_name("gpaw")  # GPAW runs MPI-parallel via `gpaw python`
    python = [str(gpaw), "python"] if gpaw.exists() else [sys.executable]
    argv = [*shlex.split(command), *python, "-m", "interphase_dft.fw.mpirun",
            str(task_file), str(out_file)]
    subprocess.run(argv, check=True, cwd=workdir)
    _collect_frames(task, workdir)
    return json.loads(out_file.read_text())


def _collect_frames(task: WorkTask, workdir: Path) -> None:
    """Copy the frames an MPI run wrote to ``<workdir>/frames.db`` into the LaunchPad's store
    (stored once by frame key; nothing without a LaunchPad)."""
    lp = getattr(task, "launchpad", None)
    local = open_frames(workdir)
    if lp is None or local.count() == 0:
        return
    sink = frames_for_launchpad(lp)
    if isinstance(sink, AseDbFrames) and sink.path.resolve() == local.path.resolve():
        return
    for frame in local.select():
        sink.add(replace(frame, id=None))


def _run_cached(task: WorkTask, fw_spec: dict[str, Any]) -> FWAction:
    """Return the stored result of the task's work key or compute, store and summarise it."""
    key = task["work_key"]
    launchpad = getattr(task, "launchpad", None)
    found = None
    if launchpad is not None:
        with lp_session(launchpad) as lp:
            found = ResultStore(lp.db).get(key)
        if found is not None and not continuable(found):
            return FWAction(stored_data={"work_key": key, "uid": found.get("uid"),
                                         "reused": True})
    doc = _compute(task, fw_spec, task.workdir())
    data = doc.model_dump(mode="json") if hasattr(doc, "model_dump") else dict(doc)
    data["work_key"] = key
    if launchpad is not None:
        with lp_session(launchpad) as lp:
            store = ResultStore(lp.db)
            store.ensure_indexes()
            meta = {"fw_id": getattr(task, "fw_id", None)}
            if found is not None:  # the continued run replaces the over-budget document
                store.replace(data, meta=meta)
            else:
                store.insert(data, meta=meta)
    summary = {k: data[k] for k in SUMMARY if k in data}
    return FWAction(stored_data={"work_key": key, "reused": False, **summary})


@explicit_serialize
class ReferencesTask(WorkTask):
    """Li references (isolated atom, bcc Li) with the campaign settings."""

    required_params: ClassVar[list[str]] = ["runs_dir"]
    optional_params: ClassVar[list[str]] = ["settings", "work_key"]
    kind: ClassVar[str] = "references"

    def recipe(self, workdir: Path) -> dict[str, Any]:
        from interphase_dft.recipes.references import li_references

        settings = self.item().settings
        refs = li_references(settings, workdir=workdir)
        return {"kind": "references", "uid": uuid.uuid4().hex,
                "settings": settings.model_dump(mode="json"), **refs.model_dump(mode="json")}


@explicit_serialize
class BindingEnergyTask(WorkTask):
    """Li binding energy of one phase (``mode`` surface or bulk)."""

    required_params: ClassVar[list[str]] = ["runs_dir", "phase", "mode"]
    optional_params: ClassVar[list[str]] = ["settings", "work_key"]
    kind: ClassVar[str] = "binding"
    params: ClassVar[tuple[str, ...]] = ("phase", "mode")

    def recipe(self, workdir: Path) -> Any:
        from interphase_dft.recipes.binding import binding_energy

        settings = self.item().settings
        _seed_references(settings, Path(self["runs_dir"]), workdir)
        return binding_energy(self["phase"], settings, mode=self["mode"], workdir=workdir)


@explicit_serialize
class MigrationBarrierTask(WorkTask):
    """Climbing-image NEB Li migration barrier across ``phase_a|phase_b`` by ``mechanism``.

    ``mechanism`` is optional for FireWorks (tasks queued before it existed still load) but
    required by :meth:`item`: such a task computed the earlier interface model and is
    refused with the fix (resubmit).
    """

    required_params: ClassVar[list[str]] = ["runs_dir", "phase_a", "phase_b"]
    optional_params: ClassVar[list[str]] = ["settings", "work_key", "mechanism"]
    kind: ClassVar[str] = "barrier"
    params: ClassVar[tuple[str, ...]] = ("phase_a", "phase_b", "mechanism")

    def item(self) -> WorkItem:
        if "mechanism" not in self:
            raise InputError(f"barrier {self['phase_a']}|{self['phase_b']}: the task carries no "
                             "mechanism (queued by an older interphase-dft for the earlier "
                             "interface model); resubmit the campaign: interphase-dft submit "
                             "SPEC")
        return super().item()

    def recipe(self, workdir: Path) -> Any:
        from interphase_dft.recipes.barrier import migration_barrier

        item = self.item()
        return migration_barrier(self["phase_a"], self["phase_b"], item.settings,
                                 workdir=workdir, mechanism=item.params["mechanism"],
                                 frames=self.frames(workdir), work_key=self["work_key"])


@explicit_serialize
class BulkBarrierTask(WorkTask):
    """Bulk reference hop of ``phase`` (vacancy, or interstitial without Li lattice sites)."""

    required_params: ClassVar[list[str]] = ["runs_dir", "phase"]
    optional_params: ClassVar[list[str]] = ["settings", "work_key"]
    kind: ClassVar[str] = "bulk_barrier"
    params: ClassVar[tuple[str, ...]] = ("phase",)

    def recipe(self, workdir: Path) -> Any:
        from interphase_dft.recipes.barrier import bulk_reference_barrier

        return bulk_reference_barrier(self["phase"], self.item().settings, workdir=workdir,
                                      frames=self.frames(workdir), work_key=self["work_key"])


def _seed_references(settings: Any, runs_dir: Path, workdir: Path) -> None:
    """Copy the prepare step's Li reference cache into ``workdir/references`` (if computed)."""
    source = runs_dir / WorkItem.create("references", settings).work_key[:12]
    target = workdir / "references"
    for cache in source.glob("li_references-*.json"):
        if not (target / cache.name).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(cache, target / cache.name)


@explicit_serialize
class AnalysisTask(FiretaskBase):
    """Collect the campaign's documents and write the report to ``report_dir`` (if given).

    ``campaign`` is :meth:`CampaignSpec.to_dict` (the spec with its settings pinned), so the
    documents are found by the work keys they were submitted with.
    """

    required_params: ClassVar[list[str]] = ["campaign"]
    optional_params: ClassVar[list[str]] = ["report_dir"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        spec = CampaignSpec.from_dict(self["campaign"])
        items = spec.results()
        with lp_session(self.launchpad) as lp:
            store = ResultStore(lp.db)
            docs = [d for item in items if (d := store.get(item.work_key))]
        written = None
        if self.get("report_dir"):
            from interphase_dft.analysis.report import write_report

            written = str(write_report(docs, Path(self["report_dir"]), campaign=spec))
        return FWAction(stored_data={"n_docs": len(docs), "report": written,
                                     "missing": len(items) - len(docs)})


@explicit_serialize
class CountdownTask(WorkTask):
    """Cheap stand-in used by tests/Slurm checks: ``steps`` x ``seconds`` of sleep.

    Progress is checkpointed to ``<runs_dir>/<work_key[:12]>/checkpoint.json`` after every
    step; a rerun resumes from there (like the calculation runners do). Every start is logged
    in ``starts.txt`` and the stored document records the step it resumed from.
    """

    required_params: ClassVar[list[str]] = ["work_key", "runs_dir", "steps"]
    optional_params: ClassVar[list[str]] = ["seconds"]

    def recipe(self, workdir: Path) -> dict[str, Any]:
        ckpt = workdir / "checkpoint.json"
        done = json.loads(ckpt.read_text())["done"] if ckpt.exists() else 0
        with open(workdir / "starts.txt", "a") as fh:
            fh.write(f"{done}\n")
        for step in range(done, int(self["steps"])):
            time.sleep(float(self.get("seconds", 0.1)))
            write_json(ckpt, {"done": step + 1})
        return {"kind": "test", "uid": uuid.uuid4().hex, "steps": int(self["steps"]),
                "resumed_from": done, "settings": {}}
