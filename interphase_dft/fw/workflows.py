"""Fireworks and workflows from a campaign's work items, and their submission.

Campaign graph: ``prepare`` (Li references) -> binding, barrier and bulk-barrier fireworks
-> ``analysis``. Every firework is built from one :class:`interphase_dft.campaign.WorkItem`:
its task carries the item's full settings, its spec the item's ``work_key``. Work whose key is
stored or queued is left out, so submitting the same spec twice adds nothing new.

Continuing over-budget work: a barrier stopped by its cost ceiling is stored with the status
``'not certified: over budget'`` and its firework COMPLETES. Submitting the spec again with a
larger ``budget`` in its ``overrides`` (the budget is not part of the work key) adds a new
firework for exactly those items whose spent DFT calls and hours the new budget exceeds; it
runs in the same work directory, continues from the checkpoints and replaces the stored
document. With a budget that leaves no room the item is left as it is.

Cost and order: every firework's spec carries ``cost`` (:meth:`interphase_dft.cost.
CostEstimate.spec`: ``seconds`` on the preset's ranks, ``core_hours``, ``dft_calls``,
``basis``) and ``_priority`` = its estimated seconds (at least 1; the analysis 0). FireWorks
checks out the READY firework with the highest ``spec._priority`` first
(``LaunchPad._get_a_fw_to_run`` sorts by it, descending), so the longest work starts first and
parallel workers finish together. The estimate is calibrated from the wall times of the
results already in the store (:func:`store_calibration`) when there are any.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fireworks import FiretaskBase, Firework, Workflow

from interphase_dft.barrier_status import CONTINUABLE_QUERY
from interphase_dft.calc.budget import has_room
from interphase_dft.calc.settings import BudgetSettings
from interphase_dft.campaign import CampaignSpec, WorkItem
from interphase_dft.cost import Calibration, CostEstimate, estimate, item_from_document
from interphase_dft.fw.launchpad import lp_session
from interphase_dft.fw.status import DEAD
from interphase_dft.fw.tasks import (
    AnalysisTask,
    BindingEnergyTask,
    BulkBarrierTask,
    MigrationBarrierTask,
    ReferencesTask,
)
from interphase_dft.store import ResultStore

TASKS: dict[str, type[FiretaskBase]] = {
    "references": ReferencesTask, "binding": BindingEnergyTask,
    "barrier": MigrationBarrierTask, "bulk_barrier": BulkBarrierTask,
}


#: the analysis firework: no DFT, a report from the stored documents
ANALYSIS_COST = {"seconds": 30.0, "core_hours": 30.0 / 3600, "dft_calls": 0,
                 "basis": "analysis: report from the stored documents, no DFT"}


def priority(cost: CostEstimate) -> int:
    """``spec._priority`` of a work firework: its estimated wall seconds (>= 1), so the
    longest READY firework is checked out first."""
    return max(1, round(cost.seconds))


def work_firework(item: WorkItem, runs_dir: Path, campaign: str = "",
                  calibration: Calibration | None = None) -> Firework:
    """The firework computing ``item``: its task carries the item's parameters, full settings
    and work key; its calculation directory is ``<runs_dir>/<work_key[:12]>``; its spec the
    estimated ``cost`` and the ``_priority`` that orders it (:func:`priority`)."""
    task = TASKS[item.kind](**item.params, settings=item.settings.model_dump(mode="json"),
                            work_key=item.work_key, runs_dir=str(Path(runs_dir).resolve()))
    cost = estimate(item, calibration)
    spec = {"work_key": item.work_key, "_add_launchpad_and_fw_id": True, "campaign": campaign,
            "kind": item.kind, "cost": cost.spec(), "_priority": priority(cost)}
    return Firework([task], spec=spec, name=item.name)


def campaign_workflow(spec: CampaignSpec, runs_dir: Path, skip: set[str] | None = None,
                      report_dir: Path | None = None,
                      calibration: Calibration | None = None) -> Workflow | None:
    """The campaign as one Workflow, or None when every result is stored or queued.

    Parameters
    ----------
    spec : validated campaign
    runs_dir : directory of the calculation work directories (shared file system on HPC)
    skip : work keys to leave out (stored results and fireworks already in the LaunchPad)
    report_dir : where the analysis firework writes the report (None = no report files)
    calibration : prefactor of the cost estimates (None = the default of interphase_dft.cost)
    """
    skip = skip or set()
    work = [work_firework(item, runs_dir, spec.name, calibration) for item in spec.results()
            if item.work_key not in skip]
    if not work:
        return None
    fws: list[Firework] = list(work)
    links: dict[Firework, list[Firework]] = {}
    prepare_item = next(item for item in spec.work() if item.kind == "references")
    if prepare_item.work_key not in skip:
        prepare = work_firework(prepare_item, runs_dir, spec.name, calibration)
        fws.insert(0, prepare)
        links[prepare] = list(work)
    if spec.analysis:
        task = AnalysisTask(campaign=spec.to_dict(),
                            report_dir=str(Path(report_dir).resolve()) if report_dir else "")
        analysis = Firework([task], name=f"analysis:{spec.name}",
                            spec={"_add_launchpad_and_fw_id": True, "campaign": spec.name,
                                  "kind": "analysis", "cost": dict(ANALYSIS_COST),
                                  "_priority": 0})
        fws.append(analysis)
        for fw in work:
            links[fw] = [analysis]
    return Workflow(fws, links_dict=links, name=f"campaign:{spec.name}",
                    metadata={"campaign": spec.name, "preset": spec.preset})


@dataclass
class SubmitReport:
    """What :func:`submit_campaign` added and left out (``continued``: over-budget results
    resubmitted to continue)."""

    workflow_ids: list[int]
    n_fireworks: int
    skipped_stored: int
    skipped_queued: int
    continued: int = 0


def _firework_keys(lp: Any) -> tuple[set[str], set[str]]:
    """Work keys of the fireworks that are active (not COMPLETED, FIZZLED or DEFUSED) and of
    the COMPLETED ones."""
    active: set[str] = set()
    completed: set[str] = set()
    for d in lp.fireworks.find({"spec.work_key": {"$exists": True},
                                "state": {"$nin": list(DEAD)}},
                               {"spec.work_key": True, "state": True}):
        (completed if d["state"] == "COMPLETED" else active).add(d["spec"]["work_key"])
    return active, completed


def _has_room(budget: BudgetSettings, doc: dict[str, Any]) -> bool:
    """True when ``budget`` allows more than the stored over-budget ``doc`` spent (the
    barrier or the binding ceilings, by the document's kind)."""
    kind = "binding" if doc.get("kind") == "binding" else "barrier"
    return has_room(budget, doc.get("budget") or {}, kind)


def _wall_seconds(lp: Any, doc: dict[str, Any]) -> float:
    """Wall seconds of the firework that stored ``doc``: its COMPLETED launch's
    ``runtime_secs``, else the sum of the document's stage ``timings`` (0 = unknown)."""
    fw_id = doc.get("_fw_id")
    if fw_id is not None:
        launch = lp.launches.find_one({"fw_id": fw_id, "state": "COMPLETED"},
                                      {"runtime_secs": True}, sort=[("launch_id", -1)])
        if launch and launch.get("runtime_secs"):
            return float(launch["runtime_secs"])
    return float(sum((doc.get("timings") or {}).values()))


def store_calibration(lp: Any) -> Calibration | None:
    """:meth:`Calibration.fit` to every stored result whose work item and wall time are
    known (:func:`interphase_dft.cost.item_from_document`, :func:`_wall_seconds`); None when
    there is none. ``lp`` is an open LaunchPad (inside :func:`lp_session`)."""
    fields = ("kind", "phase", "mode", "phase_a", "phase_b", "mechanism", "settings",
              "timings", "_fw_id")
    samples = []
    for doc in ResultStore(lp.db).coll.find({"work_key": {"$nin": [None, ""]}},
                                            {f: True for f in fields}):
        item = item_from_document(doc)
        seconds = _wall_seconds(lp, doc) if item is not None else 0.0
        if item is not None and seconds > 0:
            samples.append((item, seconds))
    return Calibration.fit(samples)


def submit_campaign(launchpad: Any, spec: CampaignSpec, runs_dir: Path,
                    report_dir: Path | None = None) -> SubmitReport:
    """Add the fireworks of ``spec`` whose results are neither stored nor queued.

    A stored over-budget result (:data:`interphase_dft.schemas.CONTINUABLE_QUERY`) whose
    firework is not active and for which the budget of ``spec`` has room (:func:`has_room`)
    counts as neither: it is resubmitted with the settings (and budget) of ``spec`` and
    continues in the same work directory.
    """
    with lp_session(launchpad) as lp:
        store = ResultStore(lp.db)
        store.ensure_indexes()
        stored = store.keys()
        open_ = {k for k in store.keys(where=CONTINUABLE_QUERY)
                 if _has_room(spec.settings().budget, store.get(k) or {})}
        active, completed = _firework_keys(lp)
        final = stored - open_
        skip = final | active | (completed - open_)
        wf = campaign_workflow(spec, runs_dir, skip=skip, report_dir=report_dir,
                               calibration=store_calibration(lp))
        mine = {item.work_key for item in spec.results()}
        n_stored = len(mine & final)
        n_queued = len((mine & (active | completed)) - stored)
        n_continued = len((mine & open_) - active)
        if wf is None:
            return SubmitReport([], 0, n_stored, n_queued, n_continued)
        id_map = lp.add_wf(wf)
    return SubmitReport(sorted(id_map.values()), len(wf.fws), n_stored, n_queued, n_continued)
