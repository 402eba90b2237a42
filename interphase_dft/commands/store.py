"""Store commands: ``store check`` and ``store restore`` for the embedded store.

The embedded store keeps the version each write replaced as ``launchpad.json.1`` (older ones as
``.2``, ``.3``; see :mod:`interphase_dft.fw.embedded`). ``check`` says which copies are
readable and what they hold; ``restore`` puts a good copy back (the replaced file is kept as
``launchpad.json.replaced-<time>``). A MongoDB LaunchPad has its own backups (``mongodump``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interphase_dft.errors import StoreError


def register(sub: Any) -> None:
    p = sub.add_parser("store", help="check or restore the embedded FireWorks store",
                       description="check or restore the embedded FireWorks store "
                                   "(launchpad.json and its backups .1-.3)")
    actions = p.add_subparsers(dest="store_action", metavar="ACTION", required=True)
    for name, help_, handler in (
            ("check", "say which copies of the store are readable and what they hold", _check),
            ("restore", "replace the store by its newest good backup (or --from N)", _restore)):
        q = actions.add_parser(name, help=help_, description=help_)
        q.add_argument("--launchpad", default=None, metavar="FILE",
                       help="the store's my_launchpad.yaml (default: $INTERPHASE_LAUNCHPAD, "
                            "else ./.interphase, or $INTERPHASE_HOME/.interphase)")
        q.set_defaults(func=handler)
    q.add_argument("--from", dest="number", type=int, default=None, metavar="N",
                   help="use backup N (1 = newest) instead of the newest good one")


def _store_file(args: argparse.Namespace) -> tuple[Path, str]:
    """The embedded store file and database name, without opening (it may be damaged)."""
    import os

    from interphase_dft.fw.embedded import DB_NAME, STORE_KEY
    from interphase_dft.fw.launchpad import ENV_LAUNCHPAD, project_dir, read_launchpad_file

    path = args.launchpad or os.environ.get(ENV_LAUNCHPAD)
    if not path:
        return project_dir() / ".interphase" / "launchpad.json", DB_NAME
    yaml_path = Path(path).expanduser().resolve()
    settings = read_launchpad_file(yaml_path)
    if not settings.get(STORE_KEY):
        raise StoreError(f"LaunchPad file {yaml_path} names a MongoDB server, not an embedded "
                         "store; MongoDB keeps its own backups (mongodump/mongorestore)")
    store = Path(str(settings[STORE_KEY])).expanduser()
    if not store.is_absolute():
        store = (yaml_path.parent / store).resolve()
    return store, str(settings.get("name", DB_NAME))


def _check(args: argparse.Namespace) -> int:
    from interphase_dft.fw.embedded import backups, check_file

    store, db_name = _store_file(args)
    current = check_file(store, db_name)
    print(current.describe())
    copies = backups(store, db_name)
    for copy in copies:
        print(copy.describe())
    if not copies:
        print(f"no backups yet ({store.name}.1-.3 are written when the store changes)")
    if current.ok:
        return 0
    good = next((c for c in copies if c.ok), None)
    cmd = "interphase-dft store restore" + (f" --launchpad {args.launchpad}"
                                            if args.launchpad else "")
    print(f"the store is {current.problem}: " + (f"restore {good.path} with `{cmd}`" if good
                                                 else "no usable backup"))
    return 1


def _restore(args: argparse.Namespace) -> int:
    from interphase_dft.fw.embedded import restore
    from interphase_dft.validation import store_directory

    store, db_name = _store_file(args)
    store_directory(store.parent)  # the restored copy and the replaced file are written there
    chosen, moved = restore(store, args.number, db_name)
    print(f"restored {store} from {chosen.describe()}")
    if moved:
        print(f"the replaced file is kept as {moved}")
    print("changes made after that copy was saved are lost; fireworks that were RUNNING are "
          "requeued by `interphase-dft rerun --lost` once their heartbeats stop")
    return 0
