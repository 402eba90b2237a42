"""``interphase-dft binding``, ``barrier`` and ``bulk-barrier``: one calculation, run locally.

Examples::

    interphase-dft binding LiCl --mode bulk --preset test --workdir runs/licl
    interphase-dft binding Al --preset laptop --set dft.ecut=400 --json al.json
    interphase-dft barrier LiAl Li2S --mechanism vacancy --preset laptop --json barrier.json
    interphase-dft bulk-barrier Li2S --preset laptop

Rerunning the same command with the same ``--workdir`` resumes from the checkpoints; a
barrier that ended over budget continues with a larger one, e.g.
``--set budget.max_dft_calls=40`` (the budget is not part of the work).

Exit status of ``barrier``/``bulk-barrier``: 0 when the band is certified ('saddle'), has no
saddle (its reaction energy is the result) or an endpoint is not a minimum (no barrier in
that direction), 1 for bad input (nothing written) and for an uncertified band (not
converged, unrelaxed endpoints, over budget; the document is written).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from interphase_dft import validation as v
from interphase_dft.calc.presets import PRESETS
from interphase_dft.errors import InputError


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``['dft.ecut=400', 'neb.climb=false']`` -> nested dict with JSON-parsed values."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE (e.g. dft.ecut=400), got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"true": True, "false": False}.get(raw.lower(), raw)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def add_common(p: argparse.ArgumentParser, *, json: bool = True) -> None:
    """The options of a one-calculation command: preset, overrides, work directory, the
    result's JSON file (``json``) and quiet."""
    p.add_argument("--preset", default="laptop", choices=list(PRESETS),
                   help="settings preset (default: laptop)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set dft.ecut=400 (repeatable)")
    p.add_argument("--workdir", type=v.arg(v.output_directory, "work directory"), default=None,
                   help="checkpoint directory (default: runs/<command>-<names>-<preset>)")
    if json:
        p.add_argument("--json", dest="json_file", type=v.arg(v.json_output), default=None,
                       help="write the result document to this JSON file ('-' = print it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def register(subparsers: Any) -> None:
    """Add the ``binding`` and ``barrier`` sub-commands."""
    p = subparsers.add_parser("binding", help="Li binding energy of one phase (one calculation)")
    p.add_argument("phase", type=v.arg(v.host_phase),
                   help="Al, LiAl, LPSC, Li2S, Li3P, LiCl or P2S5")
    p.add_argument("--mode", choices=["surface", "bulk"], default="surface")
    p.add_argument("--ml-prerelax", action="store_true",
                   help="pre-relax with the ML surrogate before DFT "
                   "(same as --set relax.ml_prerelax=true)")
    add_common(p)
    p.set_defaults(func=run_binding)

    p = subparsers.add_parser("barrier", help="Li migration barrier across the A|B interface")
    p.add_argument("phase_a", type=v.arg(v.host_phase))
    p.add_argument("phase_b", type=v.arg(v.host_phase))
    p.add_argument("--mechanism", default="vacancy",
                   help="vacancy (Li lattice site of A -> vacant site of B; default) or "
                   "interstitial (relaxed minima A -> interface -> B)")
    add_common(p)
    p.set_defaults(func=run_barrier)

    p = subparsers.add_parser("bulk-barrier", help="bulk reference Li hop of one phase")
    p.add_argument("phase", type=v.arg(v.host_phase))
    add_common(p)
    p.set_defaults(func=run_bulk_barrier)


def settings_of(args: argparse.Namespace) -> Any:
    """The settings of ``--preset`` with the ``--set`` overrides."""
    from interphase_dft.calc.presets import preset

    return preset(args.preset, parse_overrides(args.overrides))


def progress_logging(args: argparse.Namespace) -> None:
    """Progress lines from MPI rank 0 only (every rank runs the same recipe); the other
    ranks still print errors."""
    from ase.parallel import world

    if not args.quiet:
        logging.basicConfig(level=logging.INFO if world.rank == 0 else logging.ERROR,
                            format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def _emit(doc: Any, json_file: Path | None, summary: str) -> None:
    from ase.parallel import world

    if world.rank != 0:
        return
    text = doc.model_dump_json(indent=1)
    if json_file is not None and str(json_file) == "-":
        print(text)
        return
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(text)
    print(summary)


def _frames(workdir: Path) -> Any:
    """The frame store of a local run: ``<workdir>/frames.db`` (MPI rank 0 only)."""
    from ase.parallel import world

    from interphase_dft.calc.frames import open_frames

    return open_frames(workdir) if world.rank == 0 else None


def run_binding(args: argparse.Namespace) -> int:
    from interphase_dft.phases import resolve_phase
    from interphase_dft.recipes.binding import binding_energy

    progress_logging(args)
    settings = settings_of(args)
    if args.ml_prerelax:
        settings = settings.with_overrides({"relax": {"ml_prerelax": True}})
    phase = resolve_phase(args.phase)
    workdir = args.workdir or v.output_directory(
        Path("runs") / f"binding-{phase}-{args.mode}-{settings.preset}", "work directory")
    doc = binding_energy(phase, settings, mode=args.mode, workdir=workdir)
    _emit(doc, args.json_file, format_binding(doc))
    return 0


def run_barrier(args: argparse.Namespace) -> int:
    from interphase_dft.recipes.barrier import migration_barrier
    from interphase_dft.recipes.hop_setup import check_mechanism

    a, b = v.barrier_pair(args.phase_a, args.phase_b)
    check_mechanism(a, b, args.mechanism)  # bad input: InputError before anything is written
    settings = settings_of(args)
    progress_logging(args)
    workdir = args.workdir or v.output_directory(
        Path("runs") / f"barrier-{a}-{b}-{args.mechanism}-{settings.preset}", "work directory")
    doc = migration_barrier(a, b, settings, workdir=workdir, mechanism=args.mechanism,
                            frames=_frames(workdir))
    _emit(doc, args.json_file, format_barrier(doc))
    return _barrier_status(doc)


def run_bulk_barrier(args: argparse.Namespace) -> int:
    from interphase_dft.phases import resolve_phase
    from interphase_dft.recipes.barrier import bulk_reference_barrier

    phase = resolve_phase(args.phase)
    settings = settings_of(args)
    progress_logging(args)
    workdir = args.workdir or v.output_directory(
        Path("runs") / f"bulk-barrier-{phase}-{settings.preset}", "work directory")
    doc = bulk_reference_barrier(phase, settings, workdir=workdir, frames=_frames(workdir))
    _emit(doc, args.json_file, format_barrier(doc))
    return _barrier_status(doc)


def _barrier_status(doc: Any) -> int:
    """0 for a certified band, a reaction energy or an endpoint that is not a minimum (each a
    finished result), 1 (with the reason on stderr) else."""
    import sys

    from interphase_dft.barrier_status import FINISHED_STATUSES

    if doc.saddle in FINISHED_STATUSES:
        return 0
    print(f"interphase-dft: no barrier reported for {doc.interface} ({doc.mechanism}): "
          f"{doc.saddle}; {doc.saddle_note}", file=sys.stderr)
    return 1


def format_binding(doc: Any) -> str:
    """Readable summary of a :class:`BindingEnergyDoc`."""
    r = doc.references
    lines = [
        f"Li binding energy of {doc.phase} ({doc.mode} mode, preset {doc.settings['preset']})",
        f"  references: Li atom {r.li_atom:.4f} eV, bcc Li {r.li_bcc_per_atom:.4f} eV/atom "
        f"(cohesive {r.cohesive_energy:.3f} eV); dispersion {doc.calculator.get('dispersion')}",
    ]
    if not doc.complete:  # a cost ceiling stopped it: no binding energy to show
        lines.append(f"  {doc.status}: {doc.status_note}")
        lines += [f"  warning: {w}" for w in doc.warnings]
        return "\n".join(lines)
    lines += [
        f"  host energy {doc.host_energy:.4f} eV ({doc.host_structure.formula})",
        f"  {'site':<16}{'kind':<14}{'E_b(atom)':>11}{'E_b(bcc)':>11}  conv  moved/A",
    ]
    for s in sorted(doc.sites, key=lambda s: s.energy):
        mark = " *" if s.label == doc.lowest_site else ""
        lines.append(f"  {s.label:<16}{s.site_kind:<14}{s.binding_energy_atom:>11.3f}"
                     f"{s.binding_energy_bcc:>11.3f}  {'yes' if s.converged else 'NO ':<4}"
                     f"{s.li_displacement:>7.2f}{mark}")
    lines.append(f"  lowest site {doc.lowest_site}: E_b = {doc.binding_energy_atom:.3f} eV "
                 f"(atom), {doc.binding_energy_bcc:.3f} eV (bcc)")
    lines += [f"  warning: {w}" for w in doc.warnings]
    return "\n".join(lines)


def _ev(value: float | None, unit: str = "eV") -> str:
    return "-" if value is None else f"{value:.3f} {unit}"


def format_barrier(doc: Any) -> str:
    """Readable summary of a :class:`BarrierDoc`: its status first, barriers only when
    certified."""
    lines = [
        f"Li migration {doc.interface}, mechanism {doc.mechanism} (stage {doc.stage}, preset "
        f"{doc.settings['preset']})",
        f"  status: {doc.saddle}" + (f" ({doc.saddle_note})" if doc.saddle_note else ""),
        f"  barrier forward {_ev(doc.barrier_forward)}, reverse {_ev(doc.barrier_reverse)}, "
        f"E_KRA {_ev(doc.e_kra)}, reaction energy {_ev(doc.reaction_energy)}",
        f"  hop {_ev(doc.hop_distance, 'A')}; endpoint forces "
        + (", ".join(f"{k} {v:.3f}" for k, v in doc.endpoint_fmax.items()) or "-")
        + f" eV/A; saddle force {_ev(doc.saddle_fmax, 'eV/A')}",
        f"  converged {doc.converged} (fmax {_ev(doc.fmax_final, 'eV/A')}), climbing image "
        f"{doc.climbing_image}, force calls {doc.force_calls}",
        "  profile (eV): " + (" ".join(f"{e:.3f}" for e in doc.energies) or "-"),
    ]
    if doc.budget:
        b = doc.budget
        lines.append(f"  budget: {b.get('dft_calls')} of {b.get('max_dft_calls')} DFT calls, "
                     f"{b.get('dft_hours')} of {b.get('max_dft_hours')} h")
    if doc.ml_barrier is not None:
        lines.append(f"  ML surrogate barrier {doc.ml_barrier:.3f} eV (not a DFT number)")
    if doc.ml_fallback_reason:
        lines.append(f"  ML path rejected: {doc.ml_fallback_reason}")
    lines += [f"  warning: {w}" for w in doc.warnings]
    return "\n".join(lines)
