"""Shared helpers of the benchmarks: machine info, result JSON files and the README table.

Every benchmark writes ``<outdir>/<name>.json`` with the keys ``benchmark``, ``date``,
``git_commit``, ``machine`` (CPU model, cores, memory, load average at start), ``quick``,
``status`` (``complete``, ``partial``, ``timeout``, ``failed``, ``not available``),
``settings``, ``measurements`` (raw numbers), ``summary`` (a list of
``{"quantity", "value", "unit"}`` rows, the only part shown in the README table) and
``notes``. Times are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
QUICK_RESULTS = RESULTS / "quick"
WORK = BENCH_DIR / "work"
#: order of the benchmarks in ``run_all.py`` and in the table
ORDER = ("store", "accuracy", "gpaw_scaling", "neb_cost", "campaign")
TABLE_START = "<!-- bench:start -->"
TABLE_END = "<!-- bench:end -->"

if str(REPO) not in sys.path:  # scripts run as ``python benchmarks/bench_x.py``
    sys.path.insert(0, str(REPO))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 2)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, usable cores, memory (GB) and the load average (1, 5, 15 min) right now.

    A load average well above 0 at the start means the timings are contaminated by other
    work on the machine.
    """
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu_model": _cpu_model(),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "load_average_at_start": load,
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
    }


def git_commit(repo: Path = REPO) -> str:
    """``git rev-parse HEAD`` of ``repo`` (``+dirty`` when files are modified)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True, timeout=10).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    try:
        from interphase_dft.schemas import package_versions as versions

        return versions()
    except Exception:  # the benchmark still reports its numbers
        return {"python": platform.python_version()}


def portable(arg: str) -> str:
    """``arg`` with this checkout's path made relative and any other absolute path replaced
    by ``<path>`` (no machine's paths in committed results)."""
    root = str(REPO) + "/"
    arg = arg.replace(root, "")
    return re.sub(r"(?<![\w.])/[\w.-]+(/[\w.-]+)+", "<path>", arg)


def new_result(name: str, *, quick: bool, settings: dict[str, Any] | None = None,
               notes: Sequence[str] = ()) -> dict[str, Any]:
    """The skeleton of a result file (machine info taken now, i.e. at the start)."""
    return {
        "benchmark": name,
        "date": now(),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "versions": package_versions(),
        "quick": quick,
        "status": "running",
        "settings": settings or {},
        "measurements": {},
        "summary": [],
        "notes": list(notes),
        "command": " ".join([Path(sys.executable).name, *map(portable, sys.argv)]),
    }


def add_summary(result: dict[str, Any], quantity: str, value: Any, unit: str = "") -> None:
    """Append one row of the README table (``value`` a number, bool or short text)."""
    result["summary"].append({"quantity": quantity, "value": value, "unit": unit})


def write_result(result: dict[str, Any], outdir: str | Path, stem: str | None = None) -> Path:
    """Write ``result`` to ``outdir/<stem or benchmark>.json`` atomically; return the path."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{stem or result['benchmark']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def default_outdir(quick: bool) -> Path:
    """``benchmarks/results`` (full runs) or ``benchmarks/results/quick`` (``--quick``)."""
    return QUICK_RESULTS if quick else RESULTS


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark script accepts: ``--quick``, ``--out``, ``--workdir``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (test preset) to check the script end to end; results go "
                        "to benchmarks/results/quick/ unless --out is given")
    p.add_argument("--out", default=None, help="directory of the result JSON "
                   "(default benchmarks/results, or benchmarks/results/quick with --quick)")
    p.add_argument("--workdir", default=None, help="scratch directory for calculations "
                   "(default benchmarks/work/<name>[-quick])")
    return p


def resolve_dirs(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    """(outdir, workdir) from the parsed ``base_parser`` arguments."""
    out = Path(args.out) if args.out else default_outdir(args.quick)
    work = Path(args.workdir) if args.workdir else WORK / (name + ("-quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    return out.resolve(), work.resolve()


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall clock, perf_counter)."""

    def __enter__(self) -> Stopwatch:
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


# ----------------------------------------------------------------------------- table
def format_value(value: Any) -> str:
    """How a summary value is printed in the table (4 significant digits for floats)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def load_results(directory: str | Path) -> list[dict[str, Any]]:
    """Result files of ``directory`` (not recursive), in :data:`ORDER` then by name."""
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "benchmark" in data:
            out.append(data)
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(out, key=lambda d: (rank.get(d["benchmark"], len(ORDER)), d["benchmark"]))


def _machine_short(m: dict[str, Any]) -> str:
    load = m.get("load_average_at_start") or []
    load_txt = f", load {load[0]:.2f}" if load else ""
    return f"{m.get('nproc', '?')} cores{load_txt}"


def markdown_table(results: Iterable[dict[str, Any]]) -> str:
    """The README table: one row per summary entry of every result."""
    lines = ["| benchmark | quantity | value | unit | status | date (commit, machine) |",
             "|---|---|---|---|---|---|"]
    n = 0
    for res in results:
        when = (f"{str(res.get('date', ''))[:10]} ({str(res.get('git_commit', ''))[:8]}, "
                f"{_machine_short(res.get('machine') or {})})")
        status = str(res.get("status", "")) + (" (quick)" if res.get("quick") else "")
        rows = res.get("summary") or [{"quantity": "-", "value": None, "unit": ""}]
        for row in rows:
            lines.append(f"| {res['benchmark']} | {format_value(row.get('quantity'))} | "
                         f"{format_value(row.get('value'))} | {format_value(row.get('unit', ''))}"
                         f" | {status} | {when} |")
            n += 1
    if n == 0:
        lines.append("| (no results yet: run `make bench`) | | | | | |")
    return "\n".join(lines) + "\n"


def notes_block(results: Iterable[dict[str, Any]]) -> str:
    """Bullet list of every benchmark's notes (limits, how to reproduce)."""
    out: list[str] = []
    for res in results:
        for note in res.get("notes") or []:
            line = f"- **{res['benchmark']}**: {note}"
            if line not in out:  # two result files of one benchmark share their notes
                out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def replace_block(text: str, block: str) -> str:
    """Replace what lies between :data:`TABLE_START` and :data:`TABLE_END` in ``text``.

    Raises
    ------
    ValueError
        The markers are missing or in the wrong order.
    """
    i, j = text.find(TABLE_START), text.find(TABLE_END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"markers {TABLE_START} ... {TABLE_END} not found (in this order); "
                         "add them where the benchmark table should go")
    return text[: i + len(TABLE_START)] + "\n" + block.rstrip("\n") + "\n" + text[j:]
