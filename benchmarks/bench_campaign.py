"""Campaign wall time split by stage: build, references, relaxations, binding energies, NEB,
report.

The spec is submitted to a fresh embedded store in a scratch directory and run by the
project's own execution API (:func:`interphase_dft.fw.workflows.submit_campaign` and
:func:`run_workers`, i.e. what ``interphase-dft campaign`` does), then the report is written
with :func:`interphase_dft.analysis.report.write_report`. Stages:

* ``build``: spec validation, workflow construction and submission, plus the interface cells
  of every barrier (:func:`make_interfaces` + :func:`interface_endpoints`), measured here;
* ``references``: the prepare firework (isolated Li atom and bcc Li);
* ``relaxations``: host relaxations of the binding recipes (``timings['host']``) and NEB
  endpoint relaxations (``timings['endpoints']``);
* ``binding energies``: the surrogate screening of the sites (``timings['ml_screen']``) and
  the Li-site calculations (``timings['site-*']``);
* ``NEB``: ``timings['ml_neb'] + timings['dft_neb']`` of the barrier documents (``ml_neb``
  includes the DFT single points on the surrogate path);
* ``report``: the analysis firework plus :func:`write_report`, measured here.

Firework wall times come from FireWorks' launch records (``runtime_secs``). Stage times are
worker-seconds: with parallel workers their sum exceeds the wall time.

``--from-project DIR`` measures a campaign that already ran (a clone where ``make demo``
finished, with ``demo.start``/``demo.end`` holding Unix times around it) from its store.

Usage::

    python benchmarks/bench_campaign.py                       # benchmarks/campaign_bench.yaml
    python benchmarks/bench_campaign.py --spec workflows/laptop.yaml --timeout 0   # hours
    python benchmarks/bench_campaign.py --quick               # workflows/test.yaml
    python benchmarks/bench_campaign.py --from-project /path/to/clone   # after `make demo`
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    REPO,
    Stopwatch,
    add_summary,
    base_parser,
    git_commit,
    new_result,
    resolve_dirs,
    write_result,
)

NAME = "campaign"
DEFAULT_SPEC = BENCH_DIR / "campaign_bench.yaml"
QUICK_SPEC = REPO / "workflows" / "test.yaml"
STAGES = ("build", "references", "relaxations", "binding energies", "NEB", "report")


def stage_of_timing(kind: str, key: str) -> str | None:
    """Stage of one ``timings`` entry of a result document (None = not a stage time)."""
    if kind == "barrier":
        return {"endpoints": "relaxations", "ml_neb": "NEB", "dft_neb": "NEB"}.get(key)
    if kind == "binding":
        if key == "host":
            return "relaxations"
        if key.startswith("site") or key == "ml_screen":
            return "binding energies"
        if key == "references":
            return "references"
    return None


def aggregate(docs: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per stage summed over the documents' ``timings``."""
    out: dict[str, float] = defaultdict(float)
    for d in docs:
        for key, sec in (d.get("timings") or {}).items():
            stage = stage_of_timing(str(d.get("kind")), key)
            if stage:
                out[stage] += float(sec)
    return dict(out)


def build_structures(spec: Any) -> float:
    """Seconds to build every barrier's interface cell and NEB endpoints (as the recipe)."""
    from interphase_dft.recipes.barrier import interface_hop

    settings = spec.settings()
    with Stopwatch() as sw:
        for b in spec.barriers:
            interface_hop(b.a, b.b, settings, mechanism=b.mechanism)
    return sw.seconds


def launch_times(lp: Any) -> list[dict[str, Any]]:
    """Name, state and runtime (s) of every firework's last launch."""
    from interphase_dft.fw.launchpad import lp_session

    rows = []
    with lp_session(lp) as s:
        for fw in s.fireworks.find({}, {"fw_id": 1, "name": 1, "state": 1, "launches": 1}):
            runtime = 0.0
            for launch in s.launches.find({"launch_id": {"$in": fw.get("launches", [])}},
                                          {"runtime_secs": 1}):
                runtime = float(launch.get("runtime_secs") or 0.0)
            rows.append({"fw_id": fw["fw_id"], "name": fw["name"], "state": fw["state"],
                         "runtime_s": runtime})
    return sorted(rows, key=lambda r: r["fw_id"])


def measure_store(lp: Any, spec: Any, m: dict[str, Any], *,
                  queued_keys: bool = False) -> list[dict[str, Any]]:
    """Launch records and result documents of ``spec`` in ``lp`` into ``m``; the documents.

    ``queued_keys``: take the work keys from the LaunchPad's binding and barrier fireworks
    (a campaign run by an older commit, whose settings hash differs from today's) instead of
    recomputing them from ``spec``.
    """
    from interphase_dft.fw.launchpad import lp_session
    from interphase_dft.store import ResultStore

    m["fireworks"] = launch_times(lp)
    with lp_session(lp) as s:
        store = ResultStore(s.db)
        if queued_keys:
            keys = sorted({fw["spec"]["work_key"] for fw in s.fireworks.find(
                {"spec.kind": {"$in": ["binding", "barrier"]}}, {"spec": 1})})
        else:
            keys = [item.work_key for item in spec.results()]
        docs = [d for k in keys if (d := store.get(k))]
        m["n_results"] = len(docs)
        m["n_expected"] = len(keys)
    m["doc_timings"] = [{"kind": d.get("kind"), "name": d.get("phase") or d.get("interface"),
                         "timings": d.get("timings", {}), "force_calls": d.get("force_calls", {})}
                        for d in docs]
    return docs


def stage_split(docs: list[dict[str, Any]], m: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage from the documents, the launch records and the measured extras."""
    stages = {s: 0.0 for s in STAGES}
    stages.update(aggregate(docs))
    stages["build"] = m.get("submit_s", 0.0) + m.get("build_structures_s", 0.0)
    fw_time = {r["name"]: r["runtime_s"] for r in m["fireworks"]}
    stages["references"] += sum(t for n, t in fw_time.items() if n.startswith("prepare"))
    stages["report"] = (sum(t for n, t in fw_time.items() if n.startswith("analysis"))
                        + m.get("write_report_s", 0.0))
    m["fireworks_total_s"] = sum(fw_time.values())
    return stages


def run(spec_path: Path, workdir: Path, workers: int, timeout: float | None) -> dict[str, Any]:
    """Submit and run the campaign in a fresh store under ``workdir``; raw measurements."""
    from interphase_dft.analysis.report import write_report
    from interphase_dft.campaign import load_spec
    from interphase_dft.fw.launchpad import init_embedded, open_launchpad
    from interphase_dft.fw.pool import run_workers
    from interphase_dft.fw.workflows import submit_campaign

    root = workdir / time.strftime("run-%Y%m%d-%H%M%S")
    root.mkdir(parents=True)
    m: dict[str, Any] = {"root": str(root), "spec": str(spec_path)}
    with Stopwatch() as sw:
        spec = load_spec(spec_path)
        config = init_embedded(root / ".interphase")
        lp = open_launchpad(config)
        sub = submit_campaign(lp, spec, root / "runs", report_dir=None)
    m["submit_s"] = sw.seconds
    m["n_fireworks"] = sub.n_fireworks
    m["build_structures_s"] = build_structures(spec)
    m["timed_out"] = False
    with Stopwatch() as sw:
        try:
            counts = run_workers(config, workers=workers, launch_root=root / "launches",
                                 progress=lambda line: print(f"{NAME}: {line}", flush=True),
                                 timeout=timeout or None)
            m["states"] = dict(counts)
        except TimeoutError as exc:
            m["timed_out"] = True
            m["timeout_message"] = str(exc)
    m["run_workers_s"] = sw.seconds
    docs = measure_store(lp, spec, m)
    with Stopwatch() as sw:
        m["report_path"] = str(write_report(docs, root / "report", campaign=spec))
    m["write_report_s"] = sw.seconds
    m["stages_s"] = stage_split(docs, m)
    return m


def _as_time(value: Any) -> datetime:
    """A launch time as stored (datetime, or ISO text in the embedded store)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def demo_passes(project: Path) -> dict[str, float]:
    """Wall time of each ``make demo`` pass run in ``project``, seconds, by pass name.

    A pass ``NAME`` is a pair of files ``NAME.start``/``NAME.end`` holding Unix times
    (``demo.start``/``demo.end``, then ``demo2.*``, ... when a run was stopped and resumed);
    a pass without its end file is skipped.
    """
    out = {}
    for start in sorted(project.glob("demo*.start")):
        end = start.with_suffix(".end")
        try:
            out[start.stem] = float(end.read_text()) - float(start.read_text())
        except (OSError, ValueError):
            continue
    return out


def from_project(project: Path, spec_path: Path) -> dict[str, Any]:
    """Measurements of a campaign already run in ``project`` (e.g. a finished ``make demo``).

    The embedded store ``project/.interphase`` gives the launch records and documents; the
    total wall time is the sum of the ``make demo`` passes (:func:`demo_passes`) when present,
    else the span of the FireWorks launches.
    """
    from interphase_dft.campaign import load_spec
    from interphase_dft.fw.launchpad import init_embedded, lp_session, open_launchpad

    spec = load_spec(spec_path)
    store_dir = project / ".interphase"
    if not (store_dir / "launchpad.json").exists():
        raise SystemExit(f"{NAME}: no embedded store in {store_dir}; run the campaign first")
    m: dict[str, Any] = {"root": str(project), "spec": str(spec_path), "timed_out": False,
                         "measured_from": "existing project store"}
    m["build_structures_s"] = build_structures(spec)
    lp = open_launchpad(init_embedded(store_dir))
    docs = measure_store(lp, spec, m, queued_keys=True)
    m["n_fireworks"] = len(m["fireworks"])
    m["states"] = dict(Counter(r["state"] for r in m["fireworks"]))
    with lp_session(lp) as s:
        times = [(ln.get("time_start"), ln.get("time_end")) for ln in s.launches.find(
            {}, {"time_start": 1, "time_end": 1})]
    starts = [_as_time(t) for t, _ in times if t]
    ends = [_as_time(t) for _, t in times if t]
    if starts and ends:
        m["launch_span_s"] = (max(ends) - min(starts)).total_seconds()
    passes = demo_passes(project)
    if passes:
        m["passes_s"] = passes
        m["wall_s"] = float(sum(passes.values()))
        m["wall_source"] = (f"sum of {len(passes)} `make demo` pass(es) "
                            f"({', '.join(passes)}: start/end files, bootstrap included)")
    else:
        m["wall_s"] = m.get("launch_span_s", 0.0)
        m["wall_source"] = "first launch start to last launch end"
    m["stages_s"] = stage_split(docs, m)
    return m


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--spec", default=None, help=f"campaign YAML (default {DEFAULT_SPEC.name}; "
                   "--quick: workflows/test.yaml)")
    p.add_argument("--workers", type=int, default=1, help="parallel local workers (default 1: "
                   "GPAW already uses the cores it is given)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="stop the workers after this many seconds and report what finished "
                        "(0 = no limit)")
    p.add_argument("--from-project", type=Path, default=None, metavar="DIR",
                   help="measure a campaign already run in DIR (a clone where `make demo` "
                        "finished; default spec workflows/laptop.yaml) instead of running one")
    args = p.parse_args(argv)
    outdir, workdir = resolve_dirs(args, NAME)
    if args.from_project and not args.spec:
        args.spec = str(REPO / "workflows" / "laptop.yaml")
    spec = Path(args.spec) if args.spec else (QUICK_SPEC if args.quick else DEFAULT_SPEC)
    result = new_result(NAME, quick=args.quick, settings={
        "spec": str(spec.resolve().relative_to(REPO)) if spec.resolve().is_relative_to(REPO)
        else str(spec), "spec_text": spec.read_text(), "workers": args.workers,
        "timeout_s": args.timeout, "store": "embedded (fresh, in the work directory)"})
    if args.from_project:
        m = from_project(args.from_project.resolve(), spec)
        m["total_s"] = m["wall_s"]
        result["settings"].update(store=f"embedded, {args.from_project}/.interphase",
                                  workers="as run (make demo: 2)", timeout_s=None)
        # the commit that ran the campaign, not the one that measured it
        result["git_commit"] = git_commit(args.from_project.resolve())
        result["measured_with"] = git_commit()
    else:
        with Stopwatch() as total:
            m = run(spec, workdir, args.workers, args.timeout)
        m["total_s"] = total.seconds
    result["measurements"] = m
    # the table names the campaign: the one-hour subset and the full laptop campaign both appear
    pre = f"{spec.name}{' (make demo)' if args.from_project else ''}: "
    for stage in STAGES:
        add_summary(result, f"{pre}stage: {stage}", m["stages_s"].get(stage, 0.0), "s")
    add_summary(result, f"{pre}total wall time", m["total_s"], "s")
    add_summary(result, f"{pre}results stored / expected",
                f"{m['n_results']} / {m['n_expected']}", "")
    result["notes"].append(
        "Stage times of relaxations, binding energies and NEB come from the result documents' "
        "`timings` (wall clock inside the recipes); references and report from FireWorks' "
        "launch records; build and report writing are measured by the benchmark. Stage times "
        "are summed over the parallel workers (worker-seconds), so with 2 workers their sum "
        "can exceed the total wall time.")
    if args.spec is None and not args.quick and not args.from_project:
        result["notes"].append(
            "Default spec benchmarks/campaign_bench.yaml is a one-hour subset of "
            "workflows/laptop.yaml (laptop preset, Al surface only, no barrier: NEB = 0 s "
            "here, see neb_cost). The full laptop campaign (7 surfaces + 3 interface "
            "barriers, about 2 h on 2 cores) is measured after `make demo` with "
            "`python benchmarks/bench_campaign.py --from-project DIR`, which writes "
            "campaign_laptop.json (the laptop.yaml rows of the table).")
    if m["timed_out"]:
        result["status"] = "partial"
        result["notes"].append(f"stopped after the {args.timeout:.0f} s timeout: only the "
                               "fireworks that finished are counted")
    else:
        done = m.get("states", {}).get("COMPLETED", 0)
        result["status"] = "complete" if done == m["n_fireworks"] else "failed"
    path = write_result(result, outdir, stem=f"{NAME}_laptop" if args.from_project else None)
    print(f"{NAME}: total {m['total_s']:.0f} s; wrote {path}")
    return 0 if result["status"] != "failed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
