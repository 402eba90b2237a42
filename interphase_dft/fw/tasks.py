"""FireTasks. FireWorks stores ``{{interphase_dft.fw.tasks.<Name>}}`` in the database:
never move or rename these classes.

Each task: load its parameters, return the stored document if the work key is already in
the results store, else call a recipe in the deterministic work directory
``<runs_dir>/<key[:12]>`` (a rerun finds the calculation's checkpoint there), store the
document and return an :class:`FWAction` with a small summary. Parameters hold the preset
name and overrides only (never credentials); the LaunchPad comes from FireWorks
(``_add_launchpad_and_fw_id`` in the spec).
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
from pathlib import Path
from typing import Any, ClassVar

from fireworks import FiretaskBase, FWAction, explicit_serialize

from interphase_dft.calc.checkpoint import write_json
from interphase_dft.calc.settings import CalcSettings, preset
from interphase_dft.fw.launchpad import lp_session
from interphase_dft.store import ResultStore

COMMON: list[str] = ["preset", "key", "runs_dir"]


def _settings(task: FiretaskBase) -> CalcSettings:
    return preset(task["preset"], task.get("overrides") or None)


def _workdir(task: FiretaskBase) -> Path:
    path = Path(task["runs_dir"]) / task["key"][:12]
    path.mkdir(parents=True, exist_ok=True)
    return path


def _seed_references(task: FiretaskBase, workdir: Path) -> None:
    """Copy the prepare step's Li reference cache into ``workdir/references`` (if computed)."""
    from interphase_dft.campaign import work_key

    source = Path(task["runs_dir"]) / work_key("references", _settings(task))[:12]
    target = workdir / "references"
    for cache in source.glob("li_references-*.json"):
        if not (target / cache.name).exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(cache, target / cache.name)


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


def _compute(task: FiretaskBase, fw_spec: dict[str, Any], workdir: Path) -> Any:
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
    return json.loads(out_file.read_text())


def _run_cached(task: FiretaskBase, fw_spec: dict[str, Any]) -> FWAction:
    """Return the stored result of ``task['key']`` or compute, store and summarise it."""
    launchpad = getattr(task, "launchpad", None)
    if launchpad is not None:
        with lp_session(launchpad) as lp:
            found = ResultStore(lp.db).get_by_task_key(task["key"])
        if found is not None:
            return FWAction(stored_data={"key": task["key"], "uid": found.get("uid"),
                                         "reused": True})
    doc = _compute(task, fw_spec, _workdir(task))
    data = doc.model_dump(mode="json") if hasattr(doc, "model_dump") else dict(doc)
    data.setdefault("task_key", task["key"])
    data["task_key"] = data["task_key"] or task["key"]
    if launchpad is not None:
        with lp_session(launchpad) as lp:
            store = ResultStore(lp.db)
            store.ensure_indexes()
            store.insert(data, key=task["key"], meta={"fw_id": getattr(task, "fw_id", None)})
    summary = {k: data[k] for k in ("kind", "uid", "phase", "interface", "binding_energy_atom",
                                    "binding_energy_bcc", "barrier_forward") if k in data}
    return FWAction(stored_data={"key": task["key"], "reused": False, **summary})


@explicit_serialize
class ReferencesTask(FiretaskBase):
    """Li references (isolated atom, bcc Li) with the campaign settings."""

    required_params: ClassVar[list[str]] = COMMON
    optional_params: ClassVar[list[str]] = ["overrides"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        return _run_cached(self, fw_spec)

    def recipe(self, workdir: Path) -> dict[str, Any]:
        from interphase_dft.calc.references import li_references

        settings = _settings(self)
        refs = li_references(settings, workdir=workdir)
        return {"kind": "references", "uid": uuid.uuid4().hex,
                "settings": settings.model_dump(mode="json"), **refs.model_dump(mode="json")}


@explicit_serialize
class BindingEnergyTask(FiretaskBase):
    """Li binding energy of one phase (``mode`` surface or bulk)."""

    required_params: ClassVar[list[str]] = [*COMMON, "phase", "mode"]
    optional_params: ClassVar[list[str]] = ["overrides"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        return _run_cached(self, fw_spec)

    def recipe(self, workdir: Path) -> Any:
        from interphase_dft.recipes.binding import binding_energy

        _seed_references(self, workdir)
        return binding_energy(self["phase"], _settings(self), mode=self["mode"],
                              workdir=workdir)


@explicit_serialize
class MigrationBarrierTask(FiretaskBase):
    """Climbing-image NEB Li migration barrier across the interface ``phase_a|phase_b``."""

    required_params: ClassVar[list[str]] = [*COMMON, "phase_a", "phase_b"]
    optional_params: ClassVar[list[str]] = ["overrides"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        return _run_cached(self, fw_spec)

    def recipe(self, workdir: Path) -> Any:
        from interphase_dft.recipes.barrier import migration_barrier

        return migration_barrier(self["phase_a"], self["phase_b"], _settings(self),
                                 workdir=workdir)


@explicit_serialize
class AnalysisTask(FiretaskBase):
    """Collect the campaign's documents and write the report to ``report_dir`` (if given)."""

    required_params: ClassVar[list[str]] = ["keys"]
    optional_params: ClassVar[list[str]] = ["report_dir", "campaign"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        with lp_session(self.launchpad) as lp:
            docs = [d for k in self["keys"] if (d := ResultStore(lp.db).get_by_task_key(k))]
        written = None
        if self.get("report_dir"):
            from interphase_dft.fw.execution import write_report

            written = write_report(docs, self["report_dir"])
        return FWAction(stored_data={"n_docs": len(docs), "report": written,
                                     "missing": len(self["keys"]) - len(docs)})


@explicit_serialize
class CountdownTask(FiretaskBase):
    """Cheap stand-in used by tests/Slurm checks: ``steps`` x ``seconds`` of sleep.

    Progress is checkpointed to ``<runs_dir>/<key[:12]>/checkpoint.json`` after every step;
    a rerun resumes from there (like the calculation runners do). Every start is logged in
    ``starts.txt`` and the stored document records the step it resumed from.
    """

    required_params: ClassVar[list[str]] = ["key", "runs_dir", "steps"]
    optional_params: ClassVar[list[str]] = ["seconds", "preset"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        return _run_cached(self, fw_spec)

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
