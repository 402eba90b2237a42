"""Run every benchmark, write ``benchmarks/results/*.json`` and regenerate the benchmark table.

Entry point of ``make bench``. Each benchmark runs as its own process (own process group)
with a wall-time limit; a benchmark that hits its limit is stopped and its JSON is marked
``status: timeout`` (keeping whatever partial measurements it had written). Then the table
is written between the ``bench:start``/``bench:end`` markers of ``benchmarks/README.md``
(the only file that carries it; the top-level README links there) and printed.

Profiles
    ``hour`` (default, what ``make bench`` runs): sized for <= 60 min on an idle 2-core
    machine (limits below add up to 60 min; measured about 50 min). The NEB comparison uses the
    laptop preset with ``dft.kpt_density = 1.0`` (2x2x1 k-points instead of 4x4x2 for the
    10-14 atom interface cells) and the campaign a one-surface subset of the laptop campaign.
    ``full``: laptop preset everywhere, the Li2S vacancy-hop barrier in ``accuracy`` and the
    whole ``workflows/laptop.yaml``, no limits;
    several hours on 2 cores (NEB alone: roughly 1-2 h per hop and method).

Usage::

    python benchmarks/run_all.py                 # = make bench
    python benchmarks/run_all.py --quick         # tiny sizes -> benchmarks/results/quick/
    python benchmarks/run_all.py --only store accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    ORDER,
    REPO,
    default_outdir,
    machine_info,
    new_result,
    write_result,
)

#: per benchmark: (extra arguments, wall-time limit in s) of the one-hour profile
#: (measured on this 2-core machine, 2026-11-28: store 331 s, accuracy 17 s, gpaw_scaling 233 s,
#: campaign 160 s, neb_cost about 2200 s; the neb_cost limit had been 1680 s and cut it off)
HOUR: dict[str, tuple[list[str], float]] = {
    "store": ([], 420.0),
    "accuracy": ([], 120.0),
    "gpaw_scaling": ([], 360.0),
    "neb_cost": (["--overrides", json.dumps({"dft": {"kpt_density": 1.0}})], 2400.0),
    "campaign": (["--timeout", "240"], 300.0),
}
FULL: dict[str, tuple[list[str], float]] = {
    "store": ([], 0.0),
    "accuracy": (["--li2s-barrier", "--level-check", "Al"], 0.0),
    "gpaw_scaling": ([], 0.0),
    "neb_cost": ([], 0.0),
    "campaign": (["--spec", str(REPO / "workflows" / "laptop.yaml"), "--timeout", "0"], 0.0),
}
#: limits of --quick runs (tiny sizes; generous because other work may share the machine)
QUICK_LIMIT = 900.0


def script(name: str) -> Path:
    return BENCH_DIR / f"bench_{name}.py"


def _stop_group(proc: subprocess.Popen) -> None:
    """Terminate the benchmark's own process group (started with start_new_session)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_one(name: str, args: list[str], limit: float, outdir: Path,
            quick: bool) -> dict[str, Any]:
    """Run one benchmark script; make sure ``outdir/<name>.json`` describes what happened."""
    path = outdir / f"{name}.json"
    before = path.stat().st_mtime if path.exists() else None
    cmd = [sys.executable, str(script(name)), "--out", str(outdir), *args]
    if quick:
        cmd.append("--quick")
    print(f"run_all: {name}: {' '.join(cmd[1:])} (limit {limit:.0f} s)" if limit
          else f"run_all: {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    timed_out = False
    try:
        proc.wait(timeout=limit or None)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop_group(proc)
    except KeyboardInterrupt:
        _stop_group(proc)
        raise
    wall = time.perf_counter() - t0
    fresh = path.exists() and path.stat().st_mtime != before
    if fresh:
        data = json.loads(path.read_text())
    else:  # nothing written by this run: a stub that says so
        data = new_result(name, quick=quick)
        data["status"] = "failed"
    if timed_out:
        data["status"] = "timeout"
        data["notes"] = [*data.get("notes", []),
                         f"stopped by run_all.py after its {limit:.0f} s limit; measurements "
                         "are whatever the benchmark had written by then"]
    elif proc.returncode != 0 and data.get("status") not in ("failed", "partial"):
        data["status"] = "failed"
    if proc.returncode not in (0, None) and not timed_out:
        data.setdefault("notes", []).append(f"benchmark process exited with {proc.returncode}")
    data["run_all"] = {"wall_s": wall, "limit_s": limit, "returncode": proc.returncode,
                       "timed_out": timed_out}
    write_result(data, outdir)
    print(f"run_all: {name}: {data['status']} in {wall:.0f} s", flush=True)
    return data


def publish(outdir: Path, *, to_readme: bool) -> str:
    """Write the table of ``outdir``'s results; return it.

    ``to_readme``: into ``benchmarks/README.md`` (the only file that carries the table);
    otherwise (quick runs, ``--out``, ``--no-readme``) into ``outdir/README.md``.
    """
    import update_readme

    if to_readme:
        table = update_readme.update(update_readme.BENCH_README, outdir)
        print(f"run_all: table written into {update_readme.BENCH_README}")
        return table
    table = update_readme.render(outdir)
    (outdir / "README.md").write_text("# Benchmark results (not for benchmarks/README.md)"
                                      "\n\n" + table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes; results go to "
                   "benchmarks/results/quick/ and benchmarks/README.md is left alone")
    p.add_argument("--profile", choices=("hour", "full"), default="hour")
    p.add_argument("--only", nargs="+", choices=ORDER, default=None)
    p.add_argument("--skip", nargs="+", choices=ORDER, default=[])
    p.add_argument("--out", default=None, help="results directory")
    p.add_argument("--no-readme", action="store_true",
                   help="do not touch benchmarks/README.md")
    args = p.parse_args(argv)
    outdir = Path(args.out).resolve() if args.out else default_outdir(args.quick)
    outdir.mkdir(parents=True, exist_ok=True)
    profile = FULL if args.profile == "full" else HOUR
    names = [n for n in (args.only or ORDER) if n not in args.skip]
    m = machine_info()
    print(f"run_all: {m['cpu_model']}, {m['nproc']} cores, {m['memory_gb']} GB, load average "
          f"{m['load_average_at_start']}; profile {args.profile}{' (quick)' if args.quick else ''}"
          f"; results in {outdir}", flush=True)
    if m["load_average_at_start"] and m["load_average_at_start"][0] > 0.5 * m["nproc"]:
        print("run_all: warning: the machine is busy; wall times will be contaminated",
              flush=True)
    statuses = {}
    for name in names:
        extra, limit = profile[name]
        statuses[name] = run_one(name, [] if args.quick else extra,
                                 QUICK_LIMIT if args.quick else limit, outdir,
                                 args.quick)["status"]
    table = publish(outdir, to_readme=not (args.quick or args.no_readme or args.out))
    print(table, end="")
    bad = {k: v for k, v in statuses.items() if v not in ("complete",)}
    if bad:
        print(f"run_all: not complete: {bad}")
    return 0 if all(v in ("complete", "partial", "timeout") for v in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
