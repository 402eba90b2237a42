"""``interphase-dft frames``: count and export the stored reference (DFT) frames.

Examples::

    interphase-dft frames count
    interphase-dft frames count --elements Al,Li
    interphase-dft frames export --format extxyz -o frames.xyz --elements Al --settings-hash 3f2a

Where the frames are read (first match wins): ``--db FILE`` (an ASE database); the LaunchPad
of ``--launchpad``/``$INTERPHASE_LAUNCHPAD`` (its MongoDB collection ``interphase_frames``,
or ``frames.db`` next to an embedded store); else ``<project>/.interphase/frames.db``.
``--elements`` selects frames with exactly that element set; ``--settings-hash`` takes a
prefix of the hash. See :mod:`interphase_dft.calc.frames`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from interphase_dft.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("frames", help="count or export the stored DFT frames",
                       description="count or export the stored reference (DFT) single points")
    actions = p.add_subparsers(dest="frames_action", metavar="ACTION", required=True)
    count = actions.add_parser("count", help="number of stored frames (per element set and "
                                             "settings hash)")
    export = actions.add_parser("export", help="write the frames for a training code")
    export.add_argument("--format", default="extxyz", choices=["extxyz"],
                        help="output format (default extxyz: energy, forces, stress)")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    for q, handler in ((count, _count), (export, _export)):
        q.add_argument("--db", type=Path, default=None, metavar="FILE",
                       help="an ASE database of frames (default: the LaunchPad's frames)")
        q.add_argument("--launchpad", default=None, metavar="FILE",
                       help="my_launchpad.yaml whose frames to read")
        q.add_argument("--elements", default=None,
                       help="exact element set, comma-separated (e.g. Al,Li)")
        q.add_argument("--settings-hash", default=None, help="settings hash or its prefix")
        q.set_defaults(func=handler)


def _store(args: argparse.Namespace) -> Any:
    from interphase_dft.calc.frames import FRAMES_DB, AseDbFrames, MongoFrames

    if args.db is not None:
        if not args.db.exists():
            raise InputError(f"no frame database {args.db}")
        return AseDbFrames(args.db)
    from interphase_dft.fw.launchpad import ENV_LAUNCHPAD, project_dir, resolve_launchpad

    if args.launchpad or os.environ.get(ENV_LAUNCHPAD):
        config = resolve_launchpad(args.launchpad)
        if config.kind == "embedded" and config.store_file is not None:
            return AseDbFrames(Path(config.store_file).parent / FRAMES_DB)
        from interphase_dft.fw.launchpad import open_launchpad

        return MongoFrames(open_launchpad(config).db)
    return AseDbFrames(project_dir() / ".interphase" / FRAMES_DB)


def _selected(args: argparse.Namespace) -> list[Any]:
    store = _store(args)
    frames = store.select(elements=args.elements)
    prefix = args.settings_hash or ""
    return [f for f in frames if f.settings_hash.startswith(prefix)]


def _count(args: argparse.Namespace) -> int:
    frames = _selected(args)
    groups: dict[tuple[str, str], int] = {}
    for f in frames:
        key = (f.elements, f.settings_hash[:12])
        groups[key] = groups.get(key, 0) + 1
    print(f"{len(frames)} frames")
    for (elements, shash), n in sorted(groups.items()):
        print(f"  {elements:20s} settings {shash}  {n}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ase.io import write

    frames = _selected(args)
    images = []
    for f in frames:
        atoms = f.atoms
        atoms.info.update({"frame_id": f.id, "settings_hash": f.settings_hash,
                           "work_key": f.work_key or "",
                           "engine": str(f.calculator.get("engine", ""))})
        images.append(atoms)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write(args.output, images, format=args.format)
    print(f"{len(images)} frames written to {args.output}")
    return 0
