"""Workflow commands: submit, run, status, qlaunch, rerun, campaign, results.

The LaunchPad is ``--launchpad FILE``, else ``$INTERPHASE_LAUNCHPAD``, else the embedded store
in ``./.interphase`` (see :mod:`interphase_dft.fw.launchpad`); only ``submit`` and ``campaign``
create a store. Every error message is redacted (:func:`interphase_dft.secrets.redact`).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from interphase_dft import validation as v
from interphase_dft.errors import InterphaseError
from interphase_dft.timelimit import check_hours, deadline_after, passed

RESULT_COLUMNS = ("kind", "phase", "mode", "interface", "binding_energy_atom",
                  "binding_energy_bcc", "barrier_forward", "barrier_reverse", "converged",
                  "preset", "work_key", "uid")


def register(sub: Any) -> None:
    def add(name: str, help_: str, handler: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--launchpad", default=None, metavar="FILE",
                       help="FireWorks my_launchpad.yaml (default: $INTERPHASE_LAUNCHPAD, else "
                            "the embedded store in ./.interphase)")
        p.set_defaults(func=_redacted(handler))
        return p

    def dry_run_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dry-run", action="store_true",
                       help="validate the spec and print the plan (one line per firework: "
                            "atoms, k-points, spin, DFT calls, core-hours, wall hours) and the "
                            "total core-hours; no LaunchPad is opened or created")
        p.add_argument("--ranks", type=v.arg(v.integer, "--ranks", minimum=1), default=None,
                       metavar="N", help="MPI ranks per firework for the dry run's wall hours "
                       "(default: the preset's, interphase_dft.cost.PRESET_RANKS)")

    def run_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
        p.add_argument("--hours", type=v.arg(check_hours), default=None,
                       metavar="H", help="time limit: workers take binding energies before "
                       "barriers, the cheapest first, and no firework after H hours; a "
                       "calculation running then stops at its next DFT call and the next run "
                       "continues it (default: no limit)")
        p.add_argument("--launch-dir", default="launches", type=v.arg(v.output_directory,
                                                                       "launch directory"),
                       help="where FireWorks launch directories go (default ./launches)")

    p = add("submit", "validate a campaign spec and add its missing work to the LaunchPad",
            _submit)
    p.add_argument("spec", help="campaign YAML (see workflows/)")
    p.add_argument("--runs-dir", default=None, type=v.arg(v.output_directory, "runs directory"),
                   help="calculation directories (default ./runs)")
    p.add_argument("--report", default=None, metavar="DIR",
                   type=v.arg(v.output_directory, "report directory"),
                   help="report directory written by the analysis step")
    dry_run_opts(p)
    run_opts(add("run", "run the queued fireworks locally until none is left", _run))
    add("status", "show the LaunchPad location and the state of every firework", _status)
    p = add("qlaunch", "submit queue (Slurm) jobs for READY fireworks (reservation mode)",
            _qlaunch)
    p.add_argument("--njobs", type=int, default=1, help="maximum number of jobs to submit")
    p.add_argument("--qadapter", default=None, help="queue adapter YAML (default: the "
                   "template shipped with the package, a copy of hpc/my_qadapter.yaml)")
    p.add_argument("--launch-dir", default="launches", type=v.arg(v.output_directory,
                                                                   "launch directory"),
                   help="job directories (default ./launches)")
    p.add_argument("--wait", action="store_true",
                   help="keep --njobs jobs busy until every firework has finished")
    p = add("rerun", "detect lost runs and/or rerun fizzled fireworks", _rerun)
    p.add_argument("--fizzled", action="store_true", help="rerun FIZZLED fireworks")
    p.add_argument("--lost", action="store_true", help="rerun lost RUNNING fireworks")
    p.add_argument("--expiration", type=float, default=None, metavar="S",
                   help="seconds without a heartbeat after which a RUNNING launch is lost. "
                        "Default: three heartbeat intervals of the launch's worker (recorded "
                        "in the launch; 4 h for workers that recorded none); never shorter "
                        "than that, so a firework whose worker still pings is kept")
    p = add("campaign", "submit a campaign, run it locally with progress and write the report",
            _campaign)
    p.add_argument("spec", help="campaign YAML (see workflows/)")
    p.add_argument("--report", default="report", metavar="DIR",
                   type=v.arg(v.output_directory, "report directory"), help="report directory")
    p.add_argument("--runs-dir", default=None, type=v.arg(v.output_directory, "runs directory"),
                   help="calculation directories (default ./runs)")
    run_opts(p)
    dry_run_opts(p)
    p = add("results", "list stored results", _results)
    p.add_argument("--kind", choices=("binding", "barrier", "references", "test"), default=None)
    p.add_argument("--phase", default=None)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def _redacted(handler: Any) -> Any:
    """``handler`` whose errors carry no secret (values read from LaunchPad files or the
    environment, URI credentials, ``password: ...``)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InterphaseError as exc:
            from interphase_dft.secrets import redact

            clean = redact(str(exc))
            if clean == str(exc):
                raise
            try:
                masked = type(exc)(clean)
            except TypeError:  # an error class with other constructor arguments
                masked = InterphaseError(clean)
            raise masked from None

    return run


def _open(args: argparse.Namespace, create: bool = False) -> tuple[Any, Any]:
    from interphase_dft.fw.launchpad import open_launchpad, resolve_launchpad

    v.default_store(args.launchpad, create=create)  # before the store is made or opened
    config = resolve_launchpad(args.launchpad, create=create)
    if config.store_file is not None:
        v.store_directory(config.store_file.parent)
    return config, open_launchpad(config)


def _runs_dir(args: argparse.Namespace) -> Path:
    from interphase_dft.fw.launchpad import project_dir

    return Path(args.runs_dir).resolve() if args.runs_dir else project_dir() / "runs"


def _do_submit(args: argparse.Namespace, report: str | None) -> tuple[Any, Any]:
    from interphase_dft.campaign import load_spec
    from interphase_dft.fw.workflows import submit_campaign

    spec = load_spec(args.spec)  # validated before the LaunchPad is touched
    config, lp = _open(args, create=True)
    print(f"LaunchPad: {config.describe()}")
    rep = submit_campaign(lp, spec, _runs_dir(args), Path(report) if report else None)
    if rep.n_fireworks:
        print(f"submitted campaign {spec.name!r}: {rep.n_fireworks} fireworks "
              f"(fw_ids {rep.workflow_ids[0]}-{rep.workflow_ids[-1]}); "
              f"{rep.skipped_stored} results already stored, {rep.skipped_queued} queued")
    else:
        print(f"nothing to submit for {spec.name!r}: every result is stored or queued")
    return config, spec


def _submit(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    _do_submit(args, args.report)
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    """Print the plan of ``args.spec`` with its estimated cost; no LaunchPad is touched."""
    from interphase_dft.campaign import load_spec
    from interphase_dft.cost import estimate, preset_ranks

    spec = load_spec(args.spec)  # InputError names the file, line and fix
    items = spec.work()
    ranks = args.ranks or preset_ranks(items[0].settings)
    rows = [(item.name, estimate(item, ranks=ranks)) for item in items]
    width = max(len(name) for name, _ in [*rows, (f"analysis:{spec.name}", None)])
    print(f"dry run of campaign {spec.name!r} (preset {spec.preset}, {len(items)} work items"
          f"{' + analysis' if spec.analysis else ''}); no LaunchPad opened")
    print(f"{'firework':{width}s}  {'atoms':>5s}  {'k-pts':>5s}  {'spin':>4s}  "
          f"{'DFT calls':>9s}  {'to finish':>9s}  {'core-h':>9s}  {f'wall-h@{ranks}':>9s}")
    for name, e in rows:
        print(f"{name:{width}s}  {e.atoms:5d}  {e.kpts:5d}  {e.spin:4d}  {e.dft_calls:9d}  "
              f"{e.needed_calls:9d}  {e.core_hours:9.2f}  {e.seconds / 3600:9.2f}")
    if spec.analysis:
        print(f"{f'analysis:{spec.name}':{width}s}  {'-':>5s}  {'-':>5s}  {'-':>4s}  "
              f"{0:9d}  {0:9d}  {0:9.2f}  {0:9.2f}")
    total = sum(e.core_hours for _, e in rows)
    longest = max(rows, key=lambda r: r[1].seconds)
    print(f"total: {total:.1f} core-hours, {sum(e.dft_calls for _, e in rows)} DFT calls; "
          f"longest firework {longest[0]} {longest[1].seconds / 3600:.1f} h on {ranks} ranks "
          "(uncalibrated estimate, see interphase_dft/cost.py; a real submit leaves out "
          "stored and queued work)")
    early = [(item, e) for item, (_, e) in zip(items, rows, strict=True) if e.stops_early]
    if early:
        need: dict[str, int] = {}
        for item, e in early:
            key = "binding_max_dft_calls" if item.kind == "binding" else "max_dft_calls"
            need[key] = max(need.get(key, 0), e.needed_calls)
        print(f"{len(early)} work item(s) stop at their DFT-call ceiling before they finish "
              "('over budget'; 'DFT calls' is what they spend, 'to finish' what finishing "
              "takes): " + ", ".join(f"{i.name} {e.dft_calls}/{e.needed_calls}"
                                     for i, e in early)
              + ". To let them finish, raise the ceiling in the spec (overrides: {budget: {"
              + ", ".join(f"{k}: {v}" for k, v in need.items()) + "}}) and budget the hours "
              "from the 'to finish' calls")
    return 0


def _continue_command(args: argparse.Namespace) -> str:
    """The command that continues an interrupted ``run`` or ``campaign``."""
    spec = getattr(args, "spec", None)
    cmd = f"interphase-dft campaign {spec}" if spec else "interphase-dft run"
    if getattr(args, "hours", None):
        cmd += f" --hours {args.hours:g}"
    if args.launchpad:
        cmd += f" --launchpad {args.launchpad}"
    if args.workers != 1:
        cmd += f" --workers {args.workers}"
    return cmd


def _work(args: argparse.Namespace, config: Any) -> Counter[str] | int:
    """Run the local workers; a signal stops them (fireworks requeued): exit 128 + signal."""
    from interphase_dft.fw.pool import RunStopped, run_workers

    hours = getattr(args, "hours", None)
    args.deadline = deadline_after(hours) if hours else None
    try:
        return run_workers(config, workers=args.workers, launch_root=Path(args.launch_dir),
                           deadline=args.deadline)
    except RunStopped as exc:
        print(f"{exc}; continue with `{_continue_command(args)}`", file=sys.stderr)
        return 128 + exc.signum


def _unfinished(counts: Counter[str], args: argparse.Namespace) -> int:
    """0 if every firework finished or the time limit (``--hours``) stopped a run that left
    only READY/WAITING work, else 1; with what is left and what to do."""
    from interphase_dft.fw.status import progress_line

    left = Counter({s: n for s, n in counts.items()
                    if s not in ("COMPLETED", "DEFUSED", "ARCHIVED", "PAUSED")})
    if not left:
        return 0
    if passed(getattr(args, "deadline", None)) and set(left) <= {"READY", "WAITING"}:
        print(f"time limit of {args.hours:g} h reached: {progress_line(left)} left for the "
              f"next run (`{_continue_command(args)}`, or `make demo` again); it continues "
              "what stopped from its checkpoints")
        return 0
    hints = []
    if left.get("FIZZLED"):
        hints.append("FIZZLED: fix the cause (launch directories, worker logs), then "
                     "`interphase-dft rerun --fizzled`")
    if left.get("RUNNING") or left.get("RESERVED"):
        hints.append("RUNNING/RESERVED: held by a worker or job elsewhere (`interphase-dft "
                     "status` shows its last heartbeat); lost after three missed heartbeats: "
                     "`interphase-dft rerun --lost`")
    if left.get("READY") or left.get("WAITING"):
        hints.append(f"READY/WAITING: `{_continue_command(args)}`")
    print(f"not finished: {progress_line(left)}. " + "; ".join(hints), file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    config, _ = _open(args)
    print(f"LaunchPad: {config.describe()}")
    counts = _work(args, config)
    return counts if isinstance(counts, int) else _unfinished(counts, args)


def _status(args: argparse.Namespace) -> int:
    from interphase_dft.fw.status import firework_rows, heartbeats, status_summary

    config, lp = _open(args)
    print(f"LaunchPad: {config.describe()}")
    rows = firework_rows(lp)
    beats = heartbeats(lp)
    if not rows:
        print("no fireworks; submit a campaign with `interphase-dft submit SPEC`")
    for r in rows:
        jobs = f"  jobs {','.join(r['reservation_ids'])}" if r["reservation_ids"] else ""
        beat = f"  [{beats[r['fw_id']]}]" if r["fw_id"] in beats else ""
        print(f"{r['fw_id']:5d}  {r['state']:10s} {r['name']}{jobs}{beat}")
    if rows:
        print(status_summary(lp))
    return 0


def _qlaunch(args: argparse.Namespace) -> int:
    from interphase_dft.fw.queue import drive_queue, make_qadapter, qlaunch

    config, lp = _open(args)
    print(f"LaunchPad: {config.describe()}")
    qadapter = make_qadapter(config, Path(args.qadapter) if args.qadapter else None)
    if args.wait:
        counts = drive_queue(lp, qadapter, Path(args.launch_dir), njobs=args.njobs)
        return 1 if counts.get("FIZZLED") else 0
    ids = qlaunch(lp, qadapter, Path(args.launch_dir), njobs=args.njobs)
    print(f"submitted {len(ids)} job(s): {', '.join(ids) or '-'}" if ids
          else "no READY fireworks to submit")
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from interphase_dft.fw.status import detect_and_rerun

    _, lp = _open(args)
    lost = args.lost or not args.fizzled
    out = detect_and_rerun(lp, args.expiration, lost=lost, fizzled=args.fizzled)
    print(f"rerun: lost {out['lost'] or '-'}, fizzled {out['fizzled'] or '-'}")
    if out["lost"] or out["fizzled"]:
        print("requeued (READY); they resume from their checkpoints: `interphase-dft run` "
              "or `interphase-dft qlaunch`")
    return 0


def _campaign(args: argparse.Namespace) -> int:
    from interphase_dft.analysis.report import write_report
    from interphase_dft.fw.launchpad import lp_session
    from interphase_dft.store import ResultStore

    if args.dry_run:
        return _dry_run(args)
    config, spec = _do_submit(args, None)
    counts = _work(args, config)
    if isinstance(counts, int):
        return counts
    items = spec.results()
    with lp_session(_open(args)[1]) as lp:
        store = ResultStore(lp.db)
        docs = [d for item in items if (d := store.get(item.work_key))]
    missing = len(items) - len(docs)
    print(f"{len(docs)} results stored, {missing} missing")
    if args.report:
        print(f"report: {write_report(docs, Path(args.report), campaign=spec)}")
    unfinished = _unfinished(counts, args)
    # within a time limit a missing result is work left for the next run, not a failure
    return 1 if unfinished or (missing and not passed(args.deadline)) else 0


def _results(args: argparse.Namespace) -> int:
    from interphase_dft.fw.launchpad import lp_session
    from interphase_dft.phases import resolve_phase
    from interphase_dft.store import ResultStore

    phase = resolve_phase(args.phase) if args.phase else None
    _, lp = _open(args)
    with lp_session(lp) as db_lp:
        docs = ResultStore(db_lp.db).find(kind=args.kind, phase=phase)
    print(format_results(docs, args.format), end="")
    return 0


def format_results(docs: list[dict[str, Any]], fmt: str) -> str:
    """Render result documents as a table, JSON or CSV (credentials are never stored)."""
    rows = [{c: _cell(d, c) for c in RESULT_COLUMNS} for d in docs]
    if fmt == "json":
        return json.dumps([{k: v for k, v in d.items() if not k.startswith("_")} for d in docs],
                          indent=1, default=str) + os.linesep
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if not rows:
        return "no results stored\n"
    cols = [c for c in RESULT_COLUMNS if any(r[c] != "" for r in rows)]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def _cell(doc: dict[str, Any], col: str) -> Any:
    if col == "preset":
        return (doc.get("settings") or {}).get("preset", "")
    value = doc.get(col, "")
    if isinstance(value, float):
        return f"{value:.4f}"
    if col in ("work_key", "uid") and value:
        return str(value)[:12]
    return "" if value is None else value
