"""GPAW parallel scaling: one single point with the preset's settings on 1 and 2 MPI ranks.

The cell is the 50-atom LPSC approximant (the 25-atom tetragonal cell of the phase library
doubled along c: Li22P4S18Cl6, 6.97 x 6.97 x 19.7 Angstrom), PW 300 eV and the k-point
density of the ``laptop`` preset (2x2x1 mesh), built with the project's calculator factory
(:func:`interphase_dft.calc.factory.factory_for`, symmetry on because nothing moves). Each run
is a separate process ``gpaw -P N python bench_gpaw_scaling.py --worker ...`` with
``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1`` (otherwise the "serial" run already uses every
core through threaded BLAS). Measured per run: total wall time of the single point (including
setup), number of SCF iterations, the SCF loop duration and time per iteration that GPAW
prints, and GPAW's parallelisation (k-points/domains/bands).

Usage::

    python benchmarks/bench_gpaw_scaling.py              # 50 atoms, ranks 1 and 2 (~10 min)
    python benchmarks/bench_gpaw_scaling.py --quick      # 8-atom LiCl, test preset
    python benchmarks/bench_gpaw_scaling.py --ranks 1 2 4
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_summary, base_parser, new_result, resolve_dirs, write_result

NAME = "gpaw_scaling"
#: (phase, repeat) of the benchmark cell: full and quick
CELLS = {"full": ("LPSC", (1, 1, 2)), "quick": ("LiCl", (1, 1, 1))}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
NOTES = [
    "GPAW distributes k-points first (the 2x2x1 mesh of the 50-atom cell has few irreducible "
    "k-points), then real-space domains, then bands (parallel={'band': n}). With 2 ranks the "
    "k-point split is nearly ideal; beyond the number of irreducible k-points the extra "
    "ranks go to domain decomposition, whose efficiency drops for ~50-atom cells (roughly "
    "60-80 % at 4-8 ranks, less beyond), so laptops gain little above 4 ranks.",
    "On HPC nodes: run one MPI rank per core (srun / mpiexec, OMP_NUM_THREADS=1); Gamma-only "
    "cells (>= gamma_only_atoms) cannot use k-point parallelism, so use domains plus band "
    "parallelisation for 100-400 atom production cells.",
    "Timing includes setup (PAW setups, plane-wave basis, initial guess); 'time per SCF "
    "iteration' is GPAW's own 'SCF loop duration / steps'.",
]


def build_cell(phase: str, repeat: tuple[int, int, int]) -> Any:
    from interphase_dft.phases import get_bulk

    atoms = get_bulk(phase).repeat(repeat)
    atoms.info["phase"] = phase
    return atoms


def worker(preset_name: str, phase: str, repeat: tuple[int, int, int], out: Path) -> None:
    """Run inside ``gpaw -P N python``: one single point, timings to ``out`` (rank 0)."""
    from ase.parallel import world

    from interphase_dft.calc.factory import factory_for, gpaw_parameters
    from interphase_dft.calc.presets import preset
    from interphase_dft.phases import is_metal

    settings = preset(preset_name)
    atoms = build_cell(phase, repeat)
    metal = is_metal(phase)
    txt = out.with_suffix(".txt")
    factory = factory_for(settings, is_metal=metal, moving=False, txt=str(txt))
    t0 = time.perf_counter()
    atoms.calc = factory(atoms)
    energy = atoms.get_potential_energy()
    t_energy = time.perf_counter() - t0
    atoms.get_forces()
    t_total = time.perf_counter() - t0
    if world.rank == 0:
        params = gpaw_parameters(settings, atoms, moving=False, is_metal=metal)
        data = {"ranks": world.size, "energy_eV": float(energy), "n_atoms": len(atoms),
                "formula": atoms.get_chemical_formula(), "kpts": params["kpts"],
                "energy_wall_s": t_energy, "total_wall_s": t_total, **parse_log(txt)}
        out.write_text(json.dumps(data, indent=1))
    world.barrier()


def parse_log(txt: Path) -> dict[str, Any]:
    """SCF iterations, SCF loop time and parallelisation from a GPAW text log."""
    text = txt.read_text() if txt.exists() else ""
    out: dict[str, Any] = {"scf_iterations": len(re.findall(r"^\|?iter:", text, re.M))}
    m = re.search(r"SCF loop duration:\s*([\d.]+)\s*s\s*\(([\d.]+)\s*s/step\)", text)
    if m:
        out["scf_loop_s"] = float(m.group(1))
        out["scf_s_per_iteration"] = float(m.group(2))
    par = re.search(r"Parallelization:\s*\n((?:\s+\w+:\s*\d+\s*\n)+)", text)
    if par:
        out["parallelization"] = {k: int(v) for k, v in
                                  re.findall(r"(\w+):\s*(\d+)", par.group(1))}
    m = re.search(r"Number of k-points:\s*(\d+)", text)
    if m:
        out["kpoints_total"] = int(m.group(1))
    m = re.search(r"Number of irreducible k-points:\s*(\d+)", text)
    if m:
        out["kpoints_irreducible"] = int(m.group(1))
    return out


def run_ranks(ranks: int, preset_name: str, phase: str, repeat: tuple[int, int, int],
              workdir: Path, timeout: float) -> dict[str, Any]:
    """One ``gpaw -P ranks python`` process; its measurements (or an error)."""
    out = workdir / f"sp-{phase}-{ranks}ranks.json"
    out.unlink(missing_ok=True)
    gpaw = Path(sys.executable).with_name("gpaw")
    cmd = [str(gpaw), "-P", str(ranks), "python", "--", str(Path(__file__).resolve()),
           "--worker",
           "--preset", preset_name, "--phase", phase, "--repeat", *map(str, repeat),
           "--worker-out", str(out)]
    env = {**os.environ, **THREAD_ENV}
    if os.geteuid() == 0:
        env.update(ROOT_ENV)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        return {"ranks": ranks, "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}",
                "process_wall_s": wall}
    data = json.loads(out.read_text())
    data["process_wall_s"] = wall
    return data


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--preset", default=None, help="default laptop (--quick: test)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--phase", default=None, help="phase of the cell (default LPSC; quick LiCl)")
    p.add_argument("--repeat", type=int, nargs=3, default=None)
    p.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    p.add_argument("--worker", action="store_true", help=argparse_hidden())
    p.add_argument("--worker-out", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    cell_phase, cell_repeat = CELLS["quick" if args.quick else "full"]
    phase = args.phase or cell_phase
    repeat = tuple(args.repeat) if args.repeat else cell_repeat
    preset_name = args.preset or ("test" if args.quick else "laptop")
    if args.worker:
        worker(preset_name, phase, repeat, Path(args.worker_out))
        return 0
    outdir, workdir = resolve_dirs(args, NAME)
    result = new_result(NAME, quick=args.quick, settings={
        "preset": preset_name, "phase": phase, "repeat": list(repeat), "ranks": args.ranks,
        "thread_env": THREAD_ENV, "launcher": "gpaw -P N python"}, notes=NOTES)
    runs = []
    for n in args.ranks:
        r = run_ranks(n, preset_name, phase, repeat, workdir, args.timeout)
        runs.append(r)
        print(f"{NAME}: {n} rank(s): " + (r.get("error") or
              f"{r['total_wall_s']:.1f} s, {r['scf_iterations']} SCF iterations"), flush=True)
        result["measurements"] = {"runs": runs}
        write_result(result, outdir)  # partial results survive an interruption
    ok = [r for r in runs if "error" not in r]
    base = next((r for r in ok if r["ranks"] == min(args.ranks)), None)
    if ok:
        r0 = ok[0]
        add_summary(result, "cell", f"{r0['formula']} ({r0['n_atoms']} atoms), "
                    f"k {r0['kpts']['size']}", "")
    for r in ok:
        add_summary(result, f"total, {r['ranks']} rank(s)", r["total_wall_s"], "s")
        add_summary(result, f"per SCF iteration, {r['ranks']} rank(s)",
                    r.get("scf_s_per_iteration"), "s")
        if base is not None and r is not base:
            speedup = base["total_wall_s"] / r["total_wall_s"]
            eff = speedup * base["ranks"] / r["ranks"]
            r["speedup"], r["efficiency"] = speedup, eff
            add_summary(result, f"speed-up {base['ranks']}->{r['ranks']} ranks (total)",
                        speedup, "x")
            add_summary(result, f"parallel efficiency at {r['ranks']} ranks", eff, "")
            if base.get("scf_s_per_iteration") and r.get("scf_s_per_iteration"):
                add_summary(result, f"speed-up per SCF iteration at {r['ranks']} ranks",
                            base["scf_s_per_iteration"] / r["scf_s_per_iteration"], "x")
        if abs(r["energy_eV"] - ok[0]["energy_eV"]) > 1e-3:
            result["notes"].append(f"energy on {r['ranks']} ranks differs from "
                                   f"{ok[0]['ranks']} rank(s) by more than 1 meV")
    result["status"] = "complete" if len(ok) == len(runs) else "failed"
    if len(ok) < len(runs):
        result["notes"].append("some runs failed: see measurements.runs[].error")
    path = write_result(result, outdir)
    print(f"{NAME}: wrote {path}")
    return 0 if ok else 1


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
