"""Cost of a certified barrier: plain DFT climbing-image NEB vs the surrogate path vs the
active-learning loop (issue 17, item 5).

For every hop (``Li2S:vacancy``, the validation hop with a saddle, or an interface ``A|B``:
the migration cell and endpoints of :func:`interphase_dft.recipes.barrier.interface_hop`),
:func:`interphase_dft.recipes.barrier.neb_barrier` with the preset's DFT settings in up to
four ways (``--modes``):

* ``plain`` (a): DFT-relaxed endpoints, DFT climbing-image NEB (ODE) started from IDPP;
* ``ml`` (b): the same endpoints (copied), CHGNet converges the band, DFT single points check
  it, then the same DFT climbing-image NEB to the same ``neb.fmax``;
* ``al`` (c): the active-learning loop (surrogate endpoints and band, DFT single points with
  the climbing image first, CHGNet fine-tuned on them, repeated until certified);
* ``level``: the preset's own level when it is none of the above.

Reported per hop and run: the DFT force calls including endpoints, the barrier, the stage,
the wall time (fine-tuning included); per hop ``dft_call_ratio`` (a/c) next to
``barrier_difference_eV`` (c - a). Goal (issue 17): >= 5x fewer DFT force calls with the
barrier within 0.03 eV of (a) and a certified saddle; when it is missed the JSON says what
limits it.

Usage::

    python benchmarks/bench_neb_cost.py                          # laptop, Li2S:vacancy, Al|LiCl
    python benchmarks/bench_neb_cost.py --hops "LiAl|LiCl" --preset laptop
    python benchmarks/bench_neb_cost.py --hops "Li2S:vacancy"    # the validation hop (saddle)
    python benchmarks/bench_neb_cost.py --hops "Li2S:vacancy" --modes plain,al
    python benchmarks/bench_neb_cost.py --quick                  # test preset, Al|Li2S, 2 steps
    python benchmarks/bench_neb_cost.py --hops "Li2S:vacancy" --modes finish-cineb,finish-prfo
                                        # the loop's two DFT finishes after one round

The finish runs (``finish-cineb``, ``finish-prfo``) stop the loop after one round
(``neb.al_max_rounds = 1``) and finish the same band with a DFT CI-NEB or with the P-RFO
saddle search (``neb.al_finish``); the summary gives both DFT call counts and the barrier
difference.
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
#: the Li2S validation hop (a real saddle, 23 atoms) and a small laptop interface hop (14+1
#: atoms, no saddle in DFT); the laptop interface hops of the campaign are monotonic or pass
#: through an interface minimum, so they cannot show what the surrogate path saves
DEFAULT_HOPS = "Li2S:vacancy,Al|LiCl"
#: the Li2S charged-vacancy hop of docs/validation.md (23 atoms, a real saddle), as a hop name
VACANCY_HOP = "Li2S:vacancy"
GOAL_RATIO = 5.0
GOAL_BARRIER_EV = 0.03
#: quick mode: two images, two steps (one image + ODE + climb crashes in ASE): a few minutes
QUICK_OVERRIDES = {"relax": {"steps": 2}, "neb": {"steps": 2, "n_images": 2}}


def _neb_steps(workdir: Path, sub: str = "neb") -> int | None:
    path = workdir / sub / "neb.json"
    try:
        return int(json.loads(path.read_text())["steps"])
    except (OSError, KeyError, ValueError):
        return None


#: (run name, overrides on top of the preset + FULL_DFT_OVERRIDES; None = the preset's level):
#: (a) plain DFT CI-NEB from IDPP with DFT-relaxed endpoints, (b) the surrogate path refined by
#: DFT CI-NEB, (c) the active-learning loop (surrogate endpoints and band, DFT single points,
#: fine-tuning; it certifies the endpoints itself), and the preset's own level when cheaper
RUNS = (("plain", {"neb": {"ml_prestage": False}}), ("ml", {"neb": {"ml_prestage": True}}),
        ("al", {"relax": {"dft_relax": False}, "neb": {"active_learning": True}}),
        ("level", None),
        # the two DFT finishes of the loop side by side: one round, then the finish
        ("finish-cineb", {"relax": {"dft_relax": False, "ml_prerelax": True}, "neb": {
            "active_learning": True, "al_max_rounds": 1, "al_finish": "ci-neb"}}),
        ("finish-prfo", {"relax": {"dft_relax": False, "ml_prerelax": True}, "neb": {
            "active_learning": True, "al_max_rounds": 1, "al_finish": "prfo"}}))
#: the runs measured unless --modes names others (the finish comparison is asked for)
DEFAULT_MODES = ("plain", "ml", "al", "level")
FINISHES = ("finish-cineb", "finish-prfo")
#: the runs a hop needs before it is assessed
ASSESSED = ("plain", "al")


def run_settings(settings: Any, extra: dict[str, Any] | None) -> Any:
    """Settings of one run: ``extra`` on top of full DFT, or the preset's level (None)."""
    if extra is None:
        return settings
    from interphase_dft.calc.presets import FULL_DFT_OVERRIDES

    return settings.with_overrides(FULL_DFT_OVERRIDES).with_overrides(extra)


def run_hop(hop: str, settings: Any, workdir: Path, fresh: bool,
            modes: tuple[str, ...] = tuple(m for m, _ in RUNS)) -> Iterator[dict[str, Any]]:
    """Plain DFT, ML-accelerated DFT, the active-learning loop and the preset's own level for
    one hop (the runs named in ``modes``).

    Yields the (growing) measurements after each run.
    """
    from interphase_dft import phases
    from interphase_dft.analysis.tables import dft_force_calls
    from interphase_dft.recipes.barrier import (
        HopOptions,
        interface_hop,
        interface_hop_options,
        neb_barrier,
    )

    t0 = time.perf_counter()
    if hop.strip() == VACANCY_HOP:  # the validation hop (docs/validation.md): has a saddle
        from interphase_dft.builders.neb import li2s_vacancy_hop

        initial, final, meta = li2s_vacancy_hop()
        name = VACANCY_HOP
        options = HopOptions(is_metal=False, dispersion=False,
                             calc_extra={"charge": meta["charge"]})
        phase_a = phase_b = "Li2S"
    else:
        phase_a, phase_b = (phases.resolve_phase(x.strip()) for x in hop.split("|"))
        initial, final, meta = interface_hop(phase_a, phase_b, settings)
        name = f"{phase_a}|{phase_b}"
        options = interface_hop_options(phase_a, phase_b)
    hopdir = workdir / name.replace("|", "_").replace(":", "_")
    if fresh and hopdir.exists():
        shutil.rmtree(hopdir)
    out: dict[str, Any] = {"hop": name, "n_atoms": len(initial), "interface": meta,
                           "build_s": time.perf_counter() - t0, "runs": {}}
    for mode, extra in RUNS:
        if mode not in modes:
            continue
        s = run_settings(settings, extra)
        if mode == "level" and (s.neb.active_learning or (s.neb.dft_refine
                                                          and s.relax.dft_relax)):
            continue  # the preset's level is one of the runs above
        wd = hopdir / mode
        if mode == "ml":  # same DFT-relaxed endpoints as the plain run
            for end in ("initial", "final"):
                src, dst = hopdir / "plain" / end, wd / end
                if src.exists() and not dst.exists():
                    shutil.copytree(src, dst)
        t0 = time.perf_counter()
        doc = neb_barrier(initial, final, s, wd, options, label=f"{name}-{mode}",
                          phase_a=phase_a, phase_b=phase_b, interface_meta=meta)
        wall = time.perf_counter() - t0
        calls = dict(doc.force_calls)
        band_calls = calls.get("dft_neb", 0) + calls.get("dft_ml_path_check", 0)
        dft_total = dft_force_calls(doc)  # the report's count: surrogate calls excluded
        out["runs"][mode] = {
            "wall_s": wall, "timings": dict(doc.timings), "force_calls": calls,
            "dft_band_calls": band_calls, "dft_total_calls_incl_endpoints": dft_total,
            "band_wall_s": doc.timings.get("dft_neb", 0.0) + doc.timings.get("ml_neb", 0.0),
            "dft_neb_steps": _neb_steps(wd), "ml_neb_steps": _neb_steps(wd, "neb-ml"),
            "barrier_forward": doc.barrier_forward,
            "barrier_reverse": doc.barrier_reverse, "converged": doc.converged,
            "band_continuous": doc.band_continuous,
            "fmax_final": doc.fmax_final, "stage": doc.stage, "ml_barrier": doc.ml_barrier,
            "ml_fallback_reason": doc.ml_fallback_reason, "warnings": list(doc.warnings),
            "energies": list(doc.energies), "geometry": doc.calculator.get("geometry"),
            "active_learning": doc.active_learning,
        }
        print(f"{NAME}: {name} {mode}: barrier {doc.barrier_forward:.3f} eV, "
              f"{band_calls} DFT band calls ({dft_total} with endpoints), {wall:.0f} s",
              flush=True)
        yield out


def _ratio(num: int | None, den: int | None) -> float | None:
    return num / den if num and den else None


def assess(hop: dict[str, Any], n_images: int) -> dict[str, Any]:
    """Per hop: ``dft_call_ratio`` (a/c: DFT force calls of the plain run, endpoints included,
    over those of the active-learning loop) next to ``barrier_difference_eV`` (c - a); the
    surrogate-path run (b) likewise; the goal verdict and what limits it."""
    runs = hop["runs"]
    p, al, ml = runs["plain"], runs["al"], runs.get("ml")
    total = "dft_total_calls_incl_endpoints"
    ratio = _ratio(p[total], al[total])
    diff = al["barrier_forward"] - p["barrier_forward"]
    certified = al["stage"] == "dft-certified"
    met = bool(ratio and ratio >= GOAL_RATIO and abs(diff) <= GOAL_BARRIER_EV
               and p["converged"] and certified)
    limits = []
    if not p["converged"]:
        limits.append("the plain DFT NEB did not converge within neb.steps (see warnings)")
    if not certified:
        limits.append(f"the active-learning loop ended '{al['stage']}'")
    record = al.get("active_learning") or {}
    if ratio is not None and ratio < GOAL_RATIO:
        limits.append(
            f"the loop needed {record.get('rounds', '?')} rounds and {al[total]} DFT calls: "
            f"each round costs up to {n_images + 2} single points (images and endpoints) and "
            "certification needs two rounds whose barriers agree, so a 5x saving needs a "
            f"plain run of >= {5 * 2 * (n_images + 2)} calls")
    e = p.get("energies") or []
    if len(e) > 2 and max(e[1:-1]) <= max(e[0], e[-1]):
        limits.append(f"the plain DFT band has no saddle (no intermediate image above both "
                      f"endpoints: {', '.join(f'{x:.3f}' for x in e)} eV)")
    if abs(diff) > GOAL_BARRIER_EV:
        limits.append(f"barriers differ by {diff:+.3f} eV: the two bands converged to "
                      "different saddles or endpoints, or fmax is too loose for 0.03 eV")
    out = {"dft_call_ratio": ratio, "barrier_difference_eV": diff, "goal_met": met,
           "limits": limits}
    if ml is not None:
        out["ml_dft_call_ratio"] = _ratio(p[total], ml[total])
        out["ml_barrier_difference_eV"] = ml["barrier_forward"] - p["barrier_forward"]
    return out


def _finish_rows(result: dict[str, Any], hop: str, runs: dict[str, Any]) -> None:
    """The CI-NEB and P-RFO finishes after the same single round: DFT calls and barriers."""
    ci, pr = runs["finish-cineb"], runs["finish-prfo"]
    total = "dft_total_calls_incl_endpoints"
    add_summary(result, f"{hop}: finish after one round, DFT calls of the whole loop "
                "ci-neb / prfo", f"{ci[total]} / {pr[total]}", "")
    add_summary(result, f"{hop}: finish, barrier prfo - ci-neb",
                pr["barrier_forward"] - ci["barrier_forward"], "eV")
    add_summary(result, f"{hop}: finish, stages ci-neb / prfo",
                f"{ci['stage']} / {pr['stage']}", "")


def summarise(result: dict[str, Any], hops_out: list[dict[str, Any]], n_images: int,
              base_notes: list[str]) -> int:
    """Rebuild summary rows and notes from the hops measured so far; completed hop count."""
    result["summary"], result["notes"] = [], list(base_notes)
    total = "dft_total_calls_incl_endpoints"
    n_ok = 0
    for h in hops_out:
        hop = h["hop"]
        runs = h.get("runs", {})
        if "error" in h:
            add_summary(result, f"{hop}: error", h["error"][:160], "")
        for mode, run in runs.items():
            add_summary(result, f"{hop} ({h['n_atoms']} atoms): {mode} ({run['stage']}): "
                        "DFT calls incl. endpoints / barrier / wall",
                        f"{run[total]} / {run['barrier_forward']:.3f} eV / "
                        f"{run['wall_s']:.0f} s", "")
        if "error" in h:
            continue
        if set(FINISHES) <= set(runs):  # a hop is complete with either comparison
            _finish_rows(result, hop, runs)
        n_ok += set(FINISHES) <= set(runs) or set(ASSESSED) <= set(runs)
        if not set(ASSESSED) <= set(runs):
            continue
        h["assessment"] = a = assess(h, n_images)
        add_summary(result, f"{hop}: DFT call ratio plain / active learning",
                    a["dft_call_ratio"], "x")
        add_summary(result, f"{hop}: barrier active learning - plain",
                    a["barrier_difference_eV"], "eV")
        if "ml_dft_call_ratio" in a:
            add_summary(result, f"{hop}: DFT call ratio plain / surrogate path + DFT NEB",
                        a["ml_dft_call_ratio"], "x")
        add_summary(result, f"{hop}: goal (>= 5x, <= 0.03 eV, certified) met",
                    a["goal_met"], "")
        for limit in a["limits"]:
            result["notes"].append(f"{hop}: limited by: {limit}")
    return n_ok


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--hops", default=None, help=f"comma-separated A|B or {VACANCY_HOP} "
                   f"(default {DEFAULT_HOPS};"
                   " --quick: Al|Li2S)")
    p.add_argument("--preset", default=None, help="default laptop (--quick: test)")
    p.add_argument("--overrides", default=None, metavar="JSON",
                   help='settings overrides, e.g. \'{"dft": {"kpt_density": 1.0}}\' '
                        "(run_all.py's one-hour profile uses this)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES),
                   help="comma-separated runs: plain (a), ml (b), al (c), level, and the two "
                        "finishes of the loop after one round, finish-cineb and finish-prfo "
                        f"(default {','.join(DEFAULT_MODES)}; assessed when "
                        f"{' and '.join(ASSESSED)} ran)")
    p.add_argument("--keep", action="store_true",
                   help="reuse checkpoints in the work directory (default: start fresh so the "
                        "timings mean something)")
    args = p.parse_args(argv)
    from interphase_dft.calc.presets import preset

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = set(modes) - {m for m, _ in RUNS}
    if unknown:
        p.error(f"unknown --modes {sorted(unknown)}; choose from {[m for m, _ in RUNS]}")

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
        "DFT force calls include the endpoints: (a) plain counts its DFT endpoint relaxations "
        "and its CI-NEB; (b) shares (a)'s relaxed endpoints (copied, their calls counted "
        "again) and counts its path check and CI-NEB; (c) counts every reference single "
        "point of the loop (endpoints and images of every round) and its final CI-NEB when "
        "there is one. Wall times include fine-tuning.")
    if args.quick:
        result["notes"].append(f"quick mode: test preset with {QUICK_OVERRIDES}, so the bands "
                               "are NOT converged; the numbers only prove the script works")
    base_notes = list(result["notes"])
    hops_out: list[dict[str, Any]] = []
    result["measurements"] = {"hops": hops_out}
    for hop in hops:
        current = None
        try:
            for current in run_hop(hop, settings, workdir, fresh=not args.keep, modes=modes):
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
