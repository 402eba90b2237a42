"""Cost of a converged barrier: plain DFT climbing-image NEB vs the ML-accelerated path.

For every interface hop A|B: the smallest interface cell within the preset's structure limits
(the same choice as :func:`interphase_dft.recipes.barrier.migration_barrier`), endpoints Li in
A and Li in B next to the interface, then :func:`interphase_dft.recipes.barrier.neb_barrier`
twice with identical settings except ``neb.ml_prestage``:

* ``plain``: DFT climbing-image NEB started from the IDPP band;
* ``ml``: CHGNet converges the band first, DFT single points check it, then the same DFT
  climbing-image NEB to the same ``neb.fmax``.

Both runs start from the *same* relaxed endpoints (the plain run's endpoint checkpoints are
copied into the ML run's directory), so the endpoint relaxations are counted once and the
comparison is about the band. Reported per hop: DFT force calls of the band (plain:
``dft_neb``; ML: ``dft_ml_path_check + dft_neb``), wall time of the band stage, DFT NEB
optimizer steps, both barriers and their difference. Goal (issue 6): >= 5x fewer DFT force
calls with the barrier within 0.03 eV of the plain result; when it is missed the JSON says what
limits it.

Usage::

    python benchmarks/bench_neb_cost.py                          # laptop, Al|Li2S and Al|LiCl
    python benchmarks/bench_neb_cost.py --hops "LiAl|LiCl" --preset laptop
    python benchmarks/bench_neb_cost.py --quick                  # test preset, Al|Li2S, 2 steps
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_summary, base_parser, new_result, resolve_dirs, write_result

NAME = "neb_cost"
#: the two smallest interface cells with the laptop structure limits (10 and 14 atoms + Li)
DEFAULT_HOPS = "Al|Li2S,Al|LiCl"
GOAL_RATIO = 5.0
GOAL_BARRIER_EV = 0.03
#: quick mode: two images, two steps (one image + ODE + climb crashes in ASE): a few minutes
QUICK_OVERRIDES = {"relax": {"steps": 2}, "neb": {"steps": 2, "n_images": 2}}


def interface_cell(a: str, b: str, settings: Any) -> Any:
    """The smallest interface candidate (fewest atoms, then strain), as the recipe picks it."""
    from interphase_dft.build.interfaces import make_interfaces

    st = settings.structure
    cands = make_interfaces(a, b, max_strain=st.interface_max_strain,
                            max_atoms=st.interface_max_atoms, gap=st.interface_gap,
                            layers_a=st.interface_layers, layers_b=st.interface_layers,
                            vacuum=st.interface_vacuum)
    return min(cands, key=lambda c: (c.n_atoms, c.strain))


def endpoints(cand: Any) -> tuple[Any, Any, str]:
    """(initial, final, builder): the project's builder if present, else the fallback below."""
    try:
        from interphase_dft.build.neb import interface_endpoints
    except ImportError:
        initial, final = fallback_endpoints(cand.atoms)
        return initial, final, "benchmarks.bench_neb_cost.fallback_endpoints"
    initial, final = interface_endpoints(cand.atoms)  # defaults, as migration_barrier
    return initial, final, "interphase_dft.build.neb.interface_endpoints"


def fallback_endpoints(atoms: Any) -> tuple[Any, Any]:
    """Li in the A void nearest the A|B interface and in the nearest B void beyond it.

    The far (bottom) half of the A slab is fixed. Used only while
    ``interphase_dft.build.neb`` is not available.
    """
    import numpy as np
    from ase.constraints import FixAtoms
    from ase.geometry import find_mic

    from interphase_dft.build.sites import void_points

    side = atoms.arrays["side"]
    z = atoms.positions[:, 2]
    za, zb = z[side == 0], z[side == 1]
    z_iface = 0.5 * (za.max() + zb.min())
    voids = void_points(atoms, min_dist=1.6)
    in_a = voids[(voids[:, 2] < z_iface) & (voids[:, 2] > za.min())]
    in_b = voids[(voids[:, 2] > z_iface) & (voids[:, 2] < zb.max())]
    if not len(in_a) or not len(in_b):
        raise RuntimeError("no Li void on one side of the interface; use a thicker cell")
    pa = in_a[np.argmin(np.abs(in_a[:, 2] - z_iface))]
    d, _ = find_mic(in_b - pa, atoms.cell, atoms.pbc)
    pb = pa + d[np.argmin(np.linalg.norm(d, axis=1))]
    host = atoms.copy()
    host.set_constraint(FixAtoms(indices=np.where((side == 0) & (z < 0.5 * (za.min()
                                                                             + za.max())))[0]))
    out = []
    for p in (pa, pb):
        im = host.copy()
        im.set_constraint([c.copy() for c in host.constraints])
        im.append("Li")
        im.positions[-1] = p
        out.append(im)
    return out[0], out[1]


def _neb_steps(workdir: Path, sub: str = "neb") -> int | None:
    path = workdir / sub / "neb.json"
    try:
        return int(json.loads(path.read_text())["steps"])
    except (OSError, KeyError, ValueError):
        return None


def run_hop(hop: str, settings: Any, workdir: Path,
            fresh: bool) -> Iterator[dict[str, Any]]:
    """Plain, then ML-accelerated NEB of one hop; yields the (growing) measurements after each."""
    from interphase_dft import phases
    from interphase_dft.recipes.barrier import neb_barrier

    a, b = (phases.resolve_phase(x.strip()) for x in hop.split("|"))
    hopdir = workdir / f"{a}_{b}"
    if fresh and hopdir.exists():
        shutil.rmtree(hopdir)
    t0 = time.perf_counter()
    cand = interface_cell(a, b, settings)
    initial, final, builder = endpoints(cand)
    out: dict[str, Any] = {
        "hop": f"{a}|{b}", "n_atoms": len(initial), "endpoint_builder": builder,
        "interface": {"miller_a": list(cand.miller_a), "miller_b": list(cand.miller_b),
                      "strain": cand.strain, "cell_A": cand.atoms.cell.lengths().tolist()},
        "build_s": time.perf_counter() - t0, "runs": {},
    }
    ia, ib = phases.phase_info(a), phases.phase_info(b)
    kw = dict(is_metal=ia.is_metal or ib.is_metal,
              dispersion=ia.needs_dispersion or ib.needs_dispersion, phase_a=a, phase_b=b)
    for mode, ml in (("plain", False), ("ml", True)):
        s = settings.with_overrides({"neb": {"ml_prestage": ml}})
        wd = hopdir / mode
        if ml:  # same relaxed endpoints as the plain run
            for end in ("initial", "final"):
                src, dst = hopdir / "plain" / end, wd / end
                if src.exists() and not dst.exists():
                    shutil.copytree(src, dst)
        t0 = time.perf_counter()
        doc = neb_barrier(initial, final, s, wd, label=f"{a}|{b}-{mode}", **kw)
        wall = time.perf_counter() - t0
        calls = dict(doc.force_calls)
        band_calls = calls.get("dft_neb", 0) + calls.get("dft_ml_path_check", 0)
        out["runs"][mode] = {
            "wall_s": wall, "timings": dict(doc.timings), "force_calls": calls,
            "dft_band_calls": band_calls,
            "dft_total_calls_incl_endpoints": sum(calls.values()),
            "band_wall_s": doc.timings.get("dft_neb", 0.0) + doc.timings.get("ml_neb", 0.0),
            "dft_neb_steps": _neb_steps(wd), "ml_neb_steps": _neb_steps(wd, "neb-ml"),
            "barrier_forward": doc.barrier_forward,
            "barrier_reverse": doc.barrier_reverse, "converged": doc.converged,
            "fmax_final": doc.fmax_final, "stage": doc.stage, "ml_barrier": doc.ml_barrier,
            "ml_fallback_reason": doc.ml_fallback_reason, "warnings": list(doc.warnings),
            "energies": list(doc.energies),
        }
        print(f"{NAME}: {a}|{b} {mode}: barrier {doc.barrier_forward:.3f} eV, "
              f"{band_calls} DFT band calls, {wall:.0f} s", flush=True)
        yield out


def assess(hop: dict[str, Any], n_images: int) -> dict[str, Any]:
    """Ratio, barrier difference, goal verdict and what limits it."""
    p, m = hop["runs"]["plain"], hop["runs"]["ml"]
    ratio = p["dft_band_calls"] / m["dft_band_calls"] if m["dft_band_calls"] else None
    diff = m["barrier_forward"] - p["barrier_forward"]
    met = bool(ratio and ratio >= GOAL_RATIO and abs(diff) <= GOAL_BARRIER_EV
               and p["converged"] and m["converged"])
    limits = []
    if not (p["converged"] and m["converged"]):
        limits.append("a NEB did not converge within neb.steps (see warnings)")
    if m["ml_fallback_reason"]:
        limits.append(f"ML path rejected ({m['ml_fallback_reason']}), so the DFT NEB started "
                      "from IDPP as in the plain run")
    if ratio is not None and ratio < GOAL_RATIO and not m["ml_fallback_reason"]:
        steps = m.get("dft_neb_steps")
        limits.append(
            f"the DFT refinement from the CHGNet path still took {steps} optimizer steps x "
            f"{n_images} images (+ {n_images} check single points), i.e. the CHGNet band was "
            "not close enough to the DFT band (CHGNet's softened energy surface moves the "
            f"saddle); the cheapest possible ML run costs {2 * n_images} DFT calls (check + "
            f"one step), so a 5x saving needs a plain "
            f"run of >= {10 * n_images} calls")
    if abs(diff) > GOAL_BARRIER_EV:
        limits.append(f"barriers differ by {diff:+.3f} eV: the two bands converged to "
                      "different saddles or fmax is too loose for 0.03 eV agreement")
    return {"dft_call_ratio": ratio, "barrier_difference_eV": diff, "goal_met": met,
            "limits": limits}


def summarise(result: dict[str, Any], hops_out: list[dict[str, Any]], n_images: int,
              base_notes: list[str]) -> int:
    """Rebuild summary rows and notes from the hops measured so far; completed hop count."""
    result["summary"], result["notes"] = [], list(base_notes)
    n_ok = 0
    for h in hops_out:
        hop = h["hop"]
        runs = h.get("runs", {})
        if "error" in h:
            add_summary(result, f"{hop}: error", h["error"][:160], "")
        if "plain" in runs and "ml" not in runs:
            pl = runs["plain"]
            add_summary(result, f"{hop} ({h['n_atoms']} atoms): DFT band calls plain",
                        pl["dft_band_calls"], "calls")
            add_summary(result, f"{hop}: barrier plain", pl["barrier_forward"], "eV")
        if "error" in h or len(runs) != 2:
            continue
        n_ok += 1
        h["assessment"] = a = assess(h, n_images)
        pl, ml = runs["plain"], runs["ml"]
        add_summary(result, f"{hop} ({h['n_atoms']} atoms): DFT band calls plain / ML",
                    f"{pl['dft_band_calls']} / {ml['dft_band_calls']}", "calls")
        add_summary(result, f"{hop}: DFT call ratio", a["dft_call_ratio"], "x")
        add_summary(result, f"{hop}: band wall time plain / ML",
                    f"{pl['band_wall_s']:.0f} / {ml['band_wall_s']:.0f}", "s")
        add_summary(result, f"{hop}: barrier plain", pl["barrier_forward"], "eV")
        add_summary(result, f"{hop}: barrier ML - plain", a["barrier_difference_eV"], "eV")
        add_summary(result, f"{hop}: goal (>= 5x, <= 0.03 eV) met", a["goal_met"], "")
        for limit in a["limits"]:
            result["notes"].append(f"{hop}: limited by: {limit}")
    return n_ok


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--hops", default=None, help=f"comma-separated A|B (default {DEFAULT_HOPS};"
                   " --quick: Al|Li2S)")
    p.add_argument("--preset", default=None, help="default laptop (--quick: test)")
    p.add_argument("--overrides", default=None, metavar="JSON",
                   help='settings overrides, e.g. \'{"dft": {"kpt_density": 1.0}}\' '
                        "(run_all.py's one-hour profile uses this)")
    p.add_argument("--keep", action="store_true",
                   help="reuse checkpoints in the work directory (default: start fresh so the "
                        "timings mean something)")
    args = p.parse_args(argv)
    from interphase_dft.calc.settings import preset

    outdir, workdir = resolve_dirs(args, NAME)
    preset_name = args.preset or ("test" if args.quick else "laptop")
    overrides = json.loads(args.overrides) if args.overrides else {}
    if args.quick:
        overrides = {**QUICK_OVERRIDES, **overrides}
    settings = preset(preset_name, overrides or None)
    hops = [h.strip() for h in (args.hops or ("Al|Li2S" if args.quick else DEFAULT_HOPS))
            .split(",") if h.strip()]
    result = new_result(NAME, quick=args.quick, settings={
        "preset": preset_name, "overrides": overrides, "hops": hops,
        "neb": settings.neb.model_dump(), "relax": settings.relax.model_dump(),
        "dft": settings.dft.model_dump(), "goal": {"dft_call_ratio": GOAL_RATIO,
                                                    "barrier_within_eV": GOAL_BARRIER_EV}})
    result["notes"].append(
        "DFT force calls count the band only (both runs share the same relaxed endpoints, "
        "whose calls are listed under force_calls.endpoint_*); the ML run's count includes "
        "the DFT single points that check the surrogate path (they seed the first DFT band).")
    if args.quick:
        result["notes"].append(f"quick mode: test preset with {QUICK_OVERRIDES}, so the bands "
                               "are NOT converged; the numbers only prove the script works")
    base_notes = list(result["notes"])
    hops_out: list[dict[str, Any]] = []
    result["measurements"] = {"hops": hops_out}
    for hop in hops:
        current = None
        try:
            for current in run_hop(hop, settings, workdir, fresh=not args.keep):
                if current not in hops_out:
                    hops_out.append(current)
                result["status"] = "partial"
                summarise(result, hops_out, settings.neb.n_images, base_notes)
                write_result(result, outdir)
        except Exception as exc:  # record and continue with the next hop
            entry = current if current is not None else {"hop": hop}
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()[-3000:]
            print(f"{NAME}: {hop} failed: {entry['error']}", flush=True)
            if entry not in hops_out:
                hops_out.append(entry)
            summarise(result, hops_out, settings.neb.n_images, base_notes)
            write_result(result, outdir)
    ok = summarise(result, hops_out, settings.neb.n_images, base_notes)
    result["status"] = "complete" if ok == len(hops) else "failed"
    path = write_result(result, outdir)
    print(f"{NAME}: wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
