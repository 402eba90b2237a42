"""Fireworks and workflows from a campaign's work items, and their submission.

Campaign graph: ``prepare`` (Li references) -> binding fireworks and barrier fireworks ->
``analysis``. Every firework is built from one :class:`interphase_dft.campaign.WorkItem`: its
task carries the item's full settings, its spec the item's ``work_key``. Work whose key is
stored or queued is left out, so submitting the same spec twice adds nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fireworks import FiretaskBase, Firework, Workflow

from interphase_dft.campaign import CampaignSpec, WorkItem
from interphase_dft.fw.launchpad import lp_session
from interphase_dft.fw.status import queued_work_keys
from interphase_dft.fw.tasks import (
    AnalysisTask,
    BindingEnergyTask,
    MigrationBarrierTask,
    ReferencesTask,
)
from interphase_dft.store import ResultStore

TASKS: dict[str, type[FiretaskBase]] = {
    "references": ReferencesTask, "binding": BindingEnergyTask,
    "barrier": MigrationBarrierTask,
}


def work_firework(item: WorkItem, runs_dir: Path, campaign: str = "") -> Firework:
    """The firework computing ``item``: its task carries the item's parameters, full settings
    and work key; its calculation directory is ``<runs_dir>/<work_key[:12]>``."""
    task = TASKS[item.kind](**item.params, settings=item.settings.model_dump(mode="json"),
                            work_key=item.work_key, runs_dir=str(Path(runs_dir).resolve()))
    spec = {"work_key": item.work_key, "_add_launchpad_and_fw_id": True, "campaign": campaign,
            "kind": item.kind}
    return Firework([task], spec=spec, name=item.name)


def campaign_workflow(spec: CampaignSpec, runs_dir: Path, skip: set[str] | None = None,
                      report_dir: Path | None = None) -> Workflow | None:
    """The campaign as one Workflow, or None when every result is stored or queued.

    Parameters
    ----------
    spec : validated campaign
    runs_dir : directory of the calculation work directories (shared file system on HPC)
    skip : work keys to leave out (stored results and fireworks already in the LaunchPad)
    report_dir : where the analysis firework writes the report (None = no report files)
    """
    skip = skip or set()
    work = [work_firework(item, runs_dir, spec.name) for item in spec.results()
            if item.work_key not in skip]
    if not work:
        return None
    fws: list[Firework] = list(work)
    links: dict[Firework, list[Firework]] = {}
    prepare_item = next(item for item in spec.work() if item.kind == "references")
    if prepare_item.work_key not in skip:
        prepare = work_firework(prepare_item, runs_dir, spec.name)
        fws.insert(0, prepare)
        links[prepare] = list(work)
    if spec.analysis:
        task = AnalysisTask(campaign=spec.to_dict(),
                            report_dir=str(Path(report_dir).resolve()) if report_dir else "")
        analysis = Firework([task], name=f"analysis:{spec.name}",
                            spec={"_add_launchpad_and_fw_id": True, "campaign": spec.name,
                                  "kind": "analysis"})
        fws.append(analysis)
        for fw in work:
            links[fw] = [analysis]
    return Workflow(fws, links_dict=links, name=f"campaign:{spec.name}",
                    metadata={"campaign": spec.name, "preset": spec.preset})


@dataclass
class SubmitReport:
    """What :func:`submit_campaign` added and left out."""

    workflow_ids: list[int]
    n_fireworks: int
    skipped_stored: int
    skipped_queued: int


def submit_campaign(launchpad: Any, spec: CampaignSpec, runs_dir: Path,
                    report_dir: Path | None = None) -> SubmitReport:
    """Add the fireworks of ``spec`` whose results are neither stored nor queued."""
    with lp_session(launchpad) as lp:
        store = ResultStore(lp.db)
        store.ensure_indexes()
        stored = store.keys()
        queued = queued_work_keys(lp)
        wf = campaign_workflow(spec, runs_dir, skip=stored | queued, report_dir=report_dir)
        mine = {item.work_key for item in spec.results()}
        n_stored, n_queued = len(mine & stored), len((mine & queued) - stored)
        if wf is None:
            return SubmitReport([], 0, n_stored, n_queued)
        id_map = lp.add_wf(wf)
    return SubmitReport(sorted(id_map.values()), len(wf.fws), n_stored, n_queued)
