"""``interphase-dft build {bulk,slab,interface,sites,hop}``: structures to files, summaries
to stdout.

Files are written to a temporary file in the target directory and renamed, so an error never
leaves a partial file; ``build hop`` writes its directory the same way. Any ASE format works
(by extension); extxyz keeps ``atoms.info``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import Any

from interphase_dft import validation as v
from interphase_dft.errors import InputError
from interphase_dft.validation import arg


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("build", help="build bulk cells, slabs, interfaces, Li sites")
    sub = parser.add_subparsers(dest="build_command", metavar="WHAT", required=True)

    p = sub.add_parser("bulk", help="conventional bulk cell of a phase")
    p.add_argument("phase", type=arg(v.phase))
    p.add_argument("--variant", choices=("conventional", "tetragonal"),
                   help="argyrodite cell (LPSC default tetragonal, Li6PS5Cl conventional)")
    _out(p)
    p.set_defaults(func=_bulk)

    p = sub.add_parser("slab", help="all terminations of an (hkl) slab")
    p.add_argument("phase", type=arg(v.phase))
    _miller(p, "--miller", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--layers", type=arg(v.integer, "--layers", 1),
                   help="thickness in d_hkl units (default 4)")
    g.add_argument("--thickness", type=arg(v.positive, "--thickness"),
                   help="minimum thickness, Angstrom")
    p.add_argument("--vacuum", type=arg(v.non_negative, "--vacuum"), default=7.5,
                   help="Angstrom each side (7.5)")
    p.add_argument("--fix", type=arg(v.integer, "--fix"), default=0,
                   help="bottom d_hkl units fixed (0)")
    p.add_argument("--termination", type=arg(v.integer, "--termination"), default=0,
                   help="index of the termination written with -o (0)")
    _out(p)
    p.set_defaults(func=_slab)

    p = sub.add_parser("interface", help="lattice-matched A|B interface cells")
    p.add_argument("phase_a", type=arg(v.phase))
    p.add_argument("phase_b", type=arg(v.phase))
    _miller(p, "--miller-a")
    _miller(p, "--miller-b")
    _limits(p, max_strain=0.05, max_atoms=120)
    p.add_argument("--max-area", type=arg(v.max_area), default=None,
                   help="largest in-plane area searched, Angstrom^2 (default: from --max-atoms; "
                   f"at most {v.ceilings().build_max_area}, budget.build_max_area)")
    p.add_argument("--layers-a", type=arg(v.integer, "--layers-a", 1), default=2)
    p.add_argument("--layers-b", type=arg(v.integer, "--layers-b", 1), default=2)
    p.add_argument("--gap", type=arg(v.positive, "--gap"), default=2.2, help="Angstrom (2.2)")
    p.add_argument("--vacuum", type=arg(v.non_negative, "--vacuum"), default=0.0,
                   help="0 = periodic (two interfaces)")
    p.add_argument("--strained-side", choices=("a", "b"), default="b")
    p.add_argument("--index", type=arg(v.integer, "--index"), default=0,
                   help="candidate written with -o (0)")
    _out(p)
    p.set_defaults(func=_interface)

    p = sub.add_parser("sites", help="symmetry-distinct Li sites (bulk or slab surface)")
    p.add_argument("phase", type=arg(v.host_phase))
    _miller(p, "--slab", help_text="surface sites of this slab instead of bulk interstitials")
    p.add_argument("--layers", type=arg(v.integer, "--layers", 1), default=4)
    p.add_argument("--min-dist", type=arg(v.positive, "--min-dist"), default=1.5,
                   help="Angstrom (1.5)")
    _out(p, help_text="write the host with every site as an X atom (extxyz keeps labels)")
    p.set_defaults(func=_sites)

    p = sub.add_parser("hop", help="endpoints of a Li hop across an A|B migration cell")
    p.add_argument("phase_a", type=arg(v.host_phase))
    p.add_argument("phase_b", type=arg(v.host_phase))
    p.add_argument("--mechanism", required=True, help="vacancy or interstitial")
    p.add_argument("--preset", default="laptop", help="settings preset (laptop)")
    _limits(p, max_strain=None, max_atoms=None)
    _miller(p, "--miller-a")
    _miller(p, "--miller-b")
    p.add_argument("-o", "--output", required=True, type=arg(v.new_directory),
                   help="new directory for initial.extxyz, final.extxyz and hop.json")
    p.set_defaults(func=_hop)


def _out(p: argparse.ArgumentParser, help_text: str = "output file (any ASE format)") -> None:
    p.add_argument("-o", "--output", type=arg(v.ase_output_file), help=help_text)


def _miller(p: argparse.ArgumentParser, flag: str, required: bool = False,
            help_text: str | None = None) -> None:
    """``flag H K L``: reduced to lowest terms, |index| <= validation.MAX_MILLER."""
    p.add_argument(flag, nargs=3, metavar=("H", "K", "L"), action=v.MillerAction,
                   required=required,
                   help=help_text or f"Miller index (|h|, |k|, |l| <= {v.MAX_MILLER} in "
                   "lowest terms)")


def _limits(p: argparse.ArgumentParser, *, max_strain: float | None,
            max_atoms: int | None) -> None:
    """``--max-strain`` and ``--max-atoms``, each at most its build ceiling."""
    c = v.ceilings()
    strain = f"default {max_strain}" if max_strain is not None else \
        "default: structure.interface_max_strain"
    atoms = f"default {max_atoms}" if max_atoms is not None else \
        "default: structure.interface_migration_max_atoms"
    p.add_argument("--max-strain", type=arg(v.max_strain), default=max_strain,
                   help=f"largest strain ({strain}; at most {c.build_max_strain}, "
                   "budget.build_max_strain)")
    p.add_argument("--max-atoms", type=arg(v.max_atoms), default=max_atoms,
                   help=f"largest cell ({atoms}; at most {c.build_max_atoms}, "
                   "budget.build_max_atoms)")


def write_atomic(path: str | os.PathLike[str], atoms: Any) -> None:
    """Write ``atoms`` to ``path`` via a temporary file + rename (no partial files).

    ``path`` is checked again (:func:`interphase_dft.validation.ase_output_file`): its
    directory may have changed while the structure was built.
    """
    from ase.io import write
    from ase.io.formats import filetype

    target = v.ase_output_file(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp",
                               dir=target.parent)
    os.close(fd)
    try:
        write(tmp, atoms, format=filetype(str(target), read=False))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _bulk(args: argparse.Namespace) -> int:
    from interphase_dft.phases import get_bulk, phase_info

    atoms = get_bulk(args.phase, variant=args.variant)
    info = phase_info(args.phase)
    a, b, c, al, be, ga = atoms.cell.cellpar()
    print(f"{info.name}: {atoms.get_chemical_formula()} ({len(atoms)} atoms), space group "
          f"{atoms.info['spacegroup']} (parent {info.spacegroup})")
    print(f"  cell a={a:.4f} b={b:.4f} c={c:.4f} A, angles {al:.2f} {be:.2f} {ga:.2f} deg")
    print(f"  metal={info.is_metal} needs_dispersion={info.needs_dispersion}")
    print(f"  source: {info.source}")
    if args.output:
        write_atomic(args.output, atoms)
        print(f"wrote {args.output}")
    return 0


def _slab(args: argparse.Namespace) -> int:
    from interphase_dft.builders.slabs import make_slabs
    from interphase_dft.phases import get_bulk

    name, bulk = args.phase, get_bulk(args.phase)
    v.slab_size(bulk, args.miller, layers=args.layers, thickness=args.thickness)
    terms = make_slabs(bulk, args.miller, layers=args.layers, thickness=args.thickness,
                       vacuum=args.vacuum, fixed_layers=args.fix, phase=name)
    print(f"{name} {tuple(terms[0].miller)}: {len(terms)} termination(s)")
    for k, t in enumerate(terms):
        print(f"  [{k}] top={t.termination:<10} atoms={len(t.atoms):<4} shift={t.shift:.4f} "
              f"symmetric={t.is_symmetric} polar={t.is_polar} dipole={t.dipole:+.3f} eA "
              f"stoich={t.stoichiometric} broken_bonds={t.broken_bonds:.4f}/A^2")
    _write_choice(args.output, [t.atoms for t in terms], args.termination, "termination")
    return 0


def _interface(args: argparse.Namespace) -> int:
    from interphase_dft.builders.interfaces import make_interfaces

    cands = make_interfaces(
        args.phase_a, args.phase_b, miller_a=args.miller_a, miller_b=args.miller_b,
        max_strain=args.max_strain, max_atoms=args.max_atoms, max_area=args.max_area, gap=args.gap,
        layers_a=args.layers_a, layers_b=args.layers_b, vacuum=args.vacuum,
        strained_side=args.strained_side)
    print(f"{len(cands)} candidate(s), sorted by (atoms, strain):")
    for k, c in enumerate(cands):
        print(f"  [{k}] atoms={c.n_atoms:<4} (A {c.n_atoms_a}, B {c.n_atoms_b}) "
              f"strain={100 * c.strain:.2f}% area={c.area:.1f} A^2 "
              f"A{c.miller_a}|B{c.miller_b} terminations {c.termination_a} | {c.termination_b}")
    _write_choice(args.output, [c.atoms for c in cands], args.index, "index")
    return 0


def _write_choice(path: str | None, structures: list, index: int, option: str) -> None:
    """Write ``structures[index]`` to ``path`` (atomically); ``option`` names the CLI flag."""
    if not path:
        return
    if not 0 <= index < len(structures):
        raise InputError(f"--{option} must be in 0..{len(structures) - 1}")
    write_atomic(path, structures[index].copy())
    print(f"wrote {option} {index} to {path}")


def _sites(args: argparse.Namespace) -> int:
    from interphase_dft.builders.sites import adsorption_sites, interstitial_sites
    from interphase_dft.builders.slabs import make_slabs
    from interphase_dft.phases import get_bulk

    name = args.phase
    bulk = get_bulk(name)
    if args.slab:
        v.slab_size(bulk, args.slab, layers=args.layers)
        host = make_slabs(bulk, args.slab, layers=args.layers, phase=name)[0].atoms
        sites = adsorption_sites(host, min_dist=args.min_dist)
        print(f"{name} {args.slab} surface: {len(sites)} site(s)")
    else:
        host = bulk
        sites = interstitial_sites(bulk, min_dist=args.min_dist)
        print(f"{name} bulk: {len(sites)} symmetry-distinct interstitial site(s)")
    for s in sites:
        x, y, z = s.position
        print(f"  {s.label:<16} {s.kind:<12} x{s.multiplicity:<3} at ({x:.3f}, {y:.3f}, {z:.3f}) A")
    if args.output:
        from ase import Atoms

        marked = host.copy()
        marked.set_constraint()
        marked += Atoms(["X"] * len(sites), positions=[s.position for s in sites])
        marked.info = {"phase": name, "site_labels": json.dumps([s.label for s in sites])}
        write_atomic(args.output, marked)
        print(f"wrote host + {len(sites)} X markers to {args.output}")
    return 0


def _hop(args: argparse.Namespace) -> int:
    """Build the hop, then write DIR through a temporary sibling directory and a rename."""
    from interphase_dft.builders.migration import migration_cell_for
    from interphase_dft.calc.presets import preset
    from interphase_dft.recipes.hop_setup import check_mechanism

    settings = preset(args.preset)
    names = list(v.barrier_pair(args.phase_a, args.phase_b))
    check_mechanism(names[0], names[1], args.mechanism)
    target = str(args.output)
    kw: dict[str, Any] = {"miller_a": args.miller_a, "miller_b": args.miller_b}
    if args.max_atoms is not None:
        kw["max_atoms"] = args.max_atoms
    if args.max_strain is not None:
        kw["max_strain"] = args.max_strain
    cell = migration_cell_for(names[0], names[1], settings, **kw)
    hop = _build_hop(cell, args.mechanism, settings)
    meta = {**hop.meta, "preset": settings.preset,
            "structure_settings": settings.structure.model_dump(mode="json")}
    _write_hop_dir(target, hop.initial, hop.final, meta)
    _print_hop(names, meta, target)
    return 0


def _build_hop(cell: Any, mechanism: str, settings: Any) -> Any:
    from interphase_dft.builders.hops import vacancy_hop
    from interphase_dft.builders.interstitial import guess_hop, interstitial_candidates

    if mechanism == "vacancy":
        return vacancy_hop(cell, max_hop=settings.structure.interface_max_hop)
    return guess_hop(interstitial_candidates(cell))


def _write_hop_dir(target: str, initial: Any, final: Any, meta: dict[str, Any]) -> None:
    """initial.extxyz, final.extxyz and hop.json written to a temporary sibling directory
    that is renamed to ``target`` (nothing is left behind on error)."""
    import shutil

    from ase.io import write

    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.",
                           dir=os.path.dirname(target))
    try:
        write(os.path.join(tmp, "initial.extxyz"), initial, format="extxyz")
        write(os.path.join(tmp, "final.extxyz"), final, format="extxyz")
        with open(os.path.join(tmp, "hop.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        os.chmod(tmp, 0o755)
        if os.path.isdir(target):
            os.rmdir(target)  # empty (checked by validation.new_directory)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _print_hop(names: list[str], meta: dict[str, Any], target: str) -> None:
    a, b = names
    refs = meta["bulk_li_host_A"]
    print(f"{a}|{b} {meta['mechanism']} hop: {meta['n_atoms']} atoms, "
          f"A{tuple(meta['miller_a'])}|B{tuple(meta['miller_b'])}, strain "
          f"{100 * meta['strain']:.2f}% on side {meta['strained_side'].upper()} "
          f"(limit {100 * meta['max_strain']:.1f}%)")
    print(f"  thickness A {meta['thickness_a_A']:.2f} A ({meta['planes_a']} planes), "
          f"B {meta['thickness_b_A']:.2f} A ({meta['planes_b']} planes); vacuum "
          f"{meta['vacuum_A']:.1f} A, dipole correction; {meta['n_fixed']} atoms fixed")
    print(f"  hop {meta['hop_distance_A']:.2f} A; shortest Li-host distance: initial "
          f"{meta['li_host_initial_A']:.2f} A ({meta['nearest_initial']}), final "
          f"{meta['li_host_final_A']:.2f} A ({meta['nearest_final']})")
    for name, ref in refs.items():
        print(f"  bulk {name}: nearest non-Li {ref['nearest_non_li']} A, nearest Li "
              f"{ref['nearest_li']} A")
    for key in ("initial", "final"):
        if meta.get(f"bulk_like_{key}") is False:
            print(f"  WARNING: the {key} Li's shortest Li-host distance is not within "
                  f"{100 * meta['bulk_tolerance']:.0f} % of a bulk value of its phase")
    if not meta.get("relaxed", False) and meta["mechanism"] == "interstitial":
        print("  endpoints are UNRELAXED guesses (largest-clearance candidates): relax them at "
              "the barrier's level (interphase_dft.recipes.interstitial.interstitial_path)")
    print(f"wrote {target}/initial.extxyz, final.extxyz, hop.json")
