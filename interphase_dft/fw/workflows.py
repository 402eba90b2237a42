"""Workflow builders: one binding energy, one barrier, or a whole campaign with dependencies.

Campaign graph: ``prepare`` (Li references) -> binding fireworks and barrier fireworks ->
``analysis``. Work whose key is in ``skip`` (already stored, or queued in the LaunchPad) is
left out, so submitting the same spec twice adds nothing new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fireworks import Firework, Workflow

from interphase_dft.calc.settings import CalcSettings
from interphase_dft.campaign import CampaignSpec, work_key
from interphase_dft.fw.tasks import (
    AnalysisTask,
    BindingEnergyTask,
    MigrationBarrierTask,
    ReferencesTask,
)


def _spec(key: str, campaign: str, kind: str) -> dict[str, Any]:
    return {"_task_key": key, "_add_launchpad_and_fw_id": True, "campaign": campaign,
            "kind": kind}


def _common(settings: CalcSettings, overrides: dict[str, Any] | None, key: str,
            runs_dir: Path) -> dict[str, Any]:
    return {"preset": settings.preset, "overrides": overrides or {}, "key": key,
            "runs_dir": str(Path(runs_dir).resolve())}


def references_firework(settings: CalcSettings, overrides: dict[str, Any] | None,
                        runs_dir: Path, campaign: str = "") -> Firework:
    key = work_key("references", settings)
    task = ReferencesTask(**_common(settings, overrides, key, runs_dir))
    return Firework([task], spec=_spec(key, campaign, "references"), name="prepare:references")


def binding_firework(phase: str, mode: str, settings: CalcSettings,
                     overrides: dict[str, Any] | None, runs_dir: Path,
                     campaign: str = "") -> Firework:
    """Firework computing the Li binding energy of ``phase`` (``mode`` surface|bulk)."""
    key = work_key("binding", settings, phase=phase, mode=mode)
    task = BindingEnergyTask(phase=phase, mode=mode, **_common(settings, overrides, key, runs_dir))
    return Firework([task], spec=_spec(key, campaign, "binding"), name=f"binding:{phase}:{mode}")


def barrier_firework(phase_a: str, phase_b: str, settings: CalcSettings,
                     overrides: dict[str, Any] | None, runs_dir: Path,
                     campaign: str = "") -> Firework:
    """Firework computing the Li migration barrier across ``phase_a|phase_b``."""
    key = work_key("barrier", settings, phase_a=phase_a, phase_b=phase_b)
    task = MigrationBarrierTask(phase_a=phase_a, phase_b=phase_b,
                                **_common(settings, overrides, key, runs_dir))
    return Firework([task], spec=_spec(key, campaign, "barrier"),
                    name=f"barrier:{phase_a}|{phase_b}")


def campaign_keys(spec: CampaignSpec) -> list[str]:
    """Work keys of all binding and barrier results of ``spec``."""
    s = spec.settings()
    keys = [work_key("binding", s, phase=p, mode=m) for p, m in spec.binding_jobs()]
    keys += [work_key("barrier", s, phase_a=b.a, phase_b=b.b) for b in spec.barriers]
    return keys


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
    settings, ov = spec.settings(), spec.overrides
    work = [binding_firework(p, m, settings, ov, runs_dir, spec.name)
            for p, m in spec.binding_jobs()]
    work += [barrier_firework(b.a, b.b, settings, ov, runs_dir, spec.name) for b in spec.barriers]
    work = [fw for fw in work if fw.spec["_task_key"] not in skip]
    if not work:
        return None
    fws, links = list(work), {}
    prepare = references_firework(settings, ov, runs_dir, spec.name)
    if prepare.spec["_task_key"] not in skip:
        fws.insert(0, prepare)
        links[prepare] = list(work)
    if spec.analysis:
        analysis = Firework(
            [AnalysisTask(keys=campaign_keys(spec), campaign=spec.name,
                          report_dir=str(Path(report_dir).resolve()) if report_dir else "")],
            spec={"_add_launchpad_and_fw_id": True, "campaign": spec.name, "kind": "analysis"},
            name=f"analysis:{spec.name}")
        fws.append(analysis)
        for fw in work:
            links[fw] = [analysis]
    return Workflow(fws, links_dict=links, name=f"campaign:{spec.name}",
                    metadata={"campaign": spec.name, "preset": spec.preset})
