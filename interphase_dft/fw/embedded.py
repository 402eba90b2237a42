"""The embedded store: FireWorks' mongomock database in one JSON file, locked, backed up.

FireWorks' mongomock support (``fireworks[mongomock]``) keeps the whole database in memory and
reads/writes the JSON file named by ``MONGOMOCK_SERVERSTORE_FILE`` when a client is created /
finalised, so separate processes would overwrite each other. Here every LaunchPad operation is
a *transaction* (:class:`EmbeddedLaunchPad`): take an exclusive ``fcntl`` lock on
``launchpad.json.lock``, load the file, run the operation and, if the database changed, write
it atomically (temporary file, ``fsync``, rename).

Backups
    Before a write replaces the file, the version being replaced (it was just loaded, so it is
    good) becomes ``launchpad.json.1``; older versions move to ``.2`` and ``.3`` when they are
    at least :data:`BACKUP_SPACING_S` apart, so the rotation reaches back a few minutes
    rather than a few pings.
Damage
    An empty (0-byte), truncated or otherwise unreadable file is refused with a message that
    names the file, the newest good backup and the command that restores it
    (``interphase-dft store restore``); it is never replaced by an empty database.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interphase_dft.errors import StoreError

ENV_MONGOMOCK = "MONGOMOCK_SERVERSTORE_FILE"
STORE_KEY = "mongomock_serverstore_file"  # extra key in our YAML; FireWorks ignores it
DB_NAME = "interphase"
LOCK_TIMEOUT_S = 600.0
KEEP_BACKUPS = 3
BACKUP_SPACING_S = 60.0

_SWAP = threading.Lock()


def new_fireworks_launchpad(settings: dict[str, Any], embedded: bool) -> Any:
    """``fireworks.LaunchPad.from_dict(settings)`` on mongomock (``embedded``) or pymongo.

    FireWorks picks its client class once, at import, from ``MONGOMOCK_SERVERSTORE_FILE``;
    swapping it here makes both kinds usable in any process whatever was imported first.
    """
    import fireworks.core.launchpad as fw_lp

    if embedded:
        import mongomock.gridfs
        import mongomock_persistence

        mongomock.gridfs.enable_gridfs_integration()
        client_cls = mongomock_persistence.MongoClient
    else:
        import pymongo

        client_cls = pymongo.MongoClient
    with _SWAP:
        saved = fw_lp.MongoClient
        fw_lp.MongoClient = client_cls
        try:
            return fw_lp.LaunchPad.from_dict(settings)
        finally:
            fw_lp.MongoClient = saved


def backup_path(store: Path, number: int) -> Path:
    """``launchpad.json.<number>`` next to ``store``."""
    return store.with_name(f"{store.name}.{number}")


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


@dataclass
class StoreCheck:
    """What one store file (the store or a backup) holds."""

    path: Path
    problem: str = ""  # "" = a readable store
    size: int = 0
    mtime: float = 0.0
    states: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        if not self.path.exists():
            return f"{self.path}: missing"
        when = datetime.datetime.fromtimestamp(self.mtime).strftime("%Y-%m-%d %H:%M:%S")
        if self.problem:
            return f"{self.path}: {self.problem} ({self.size} bytes, {when})"
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        return (f"{self.path}: ok, {sum(self.states.values())} fireworks "
                f"({states or 'none'}), saved {when}")


def json_problem(text: str, size: int) -> str:
    """Why ``text`` is not a store file ("" if it is one), without quoting it."""
    if not text.strip():
        return "empty (0 bytes)" if size == 0 else "empty (only white space)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        end = len(text.rstrip())
        cut = (exc.pos >= end - 16 or exc.msg.startswith("Unterminated")
               or not text.rstrip().endswith("}"))  # the parser ran into the end of the file
        truncated = ", probably truncated" if cut else ""
        return (f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}"
                f"{truncated})")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        return "not a FireWorks database (JSON of another shape)"
    return ""


def check_file(path: Path, db_name: str = DB_NAME) -> StoreCheck:
    """Read ``path`` and say whether it is a usable store and what it holds."""
    if not path.exists():
        return StoreCheck(path, "missing")
    stat = path.stat()
    check = StoreCheck(path, size=stat.st_size, mtime=stat.st_mtime)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        check.problem = f"unreadable ({type(exc).__name__})"
        return check
    check.problem = json_problem(text, stat.st_size)
    if check.ok:
        docs = json.loads(text).get(db_name, {}).get("fireworks", {}).get("documents", [])
        check.states = Counter(str(pair[1].get("state")) for pair in docs
                               if isinstance(pair, list) and len(pair) == 2)
    return check


def backups(store: Path, db_name: str = DB_NAME) -> list[StoreCheck]:
    """The backups ``.1`` .. ``.3`` that exist, newest number first."""
    return [check_file(p, db_name) for n in range(1, KEEP_BACKUPS + 1)
            if (p := backup_path(store, n)).exists()]


def damaged_message(store: Path, problem: str, restore_cmd: str,
                    db_name: str = DB_NAME) -> str:
    """The refusal for a damaged store: the file, what is wrong, the backup, the command."""
    good = next((b for b in backups(store, db_name) if b.ok), None)
    msg = f"embedded store {store} is {problem}; it was not used and nothing was changed. "
    if good:
        return msg + (f"The last good copy is {good.describe().split(': ', 1)[1]} "
                      f"in {good.path}; restore it with: {restore_cmd} "
                      "(`interphase-dft store check` lists every copy)")
    return msg + (f"No usable backup ({store.name}.1-.{KEEP_BACKUPS}) exists: move the file "
                  f"aside (mv {store} {store}.damaged) and submit the campaign again "
                  "(interphase-dft submit SPEC); results stored only in it are lost")


def _push(store: Path, number: int) -> None:
    """Make room at backup slot ``number``: move it one slot up when the two are far enough
    apart in time (else the slot is simply overwritten by the caller)."""
    here, there = backup_path(store, number), backup_path(store, number + 1)
    if number >= KEEP_BACKUPS or not here.exists():
        return
    if there.exists() and here.stat().st_mtime - there.stat().st_mtime < BACKUP_SPACING_S:
        return
    _push(store, number + 1)
    os.replace(here, there)


def _keep_backup(store: Path) -> None:
    """The current ``store`` file becomes backup ``.1`` (older ones rotate)."""
    _push(store, 1)
    tmp = store.with_name(f".{store.name}.1.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(store, tmp)  # no copy: the replaced version keeps its inode
    except OSError:
        shutil.copy2(store, tmp)
    os.replace(tmp, backup_path(store, 1))


def write_store(store: Path, text: str, backup: bool = True) -> None:
    """Replace ``store`` by ``text`` atomically (fsync'ed), keeping the old file as ``.1``."""
    tmp = store.with_name(f".{store.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if backup and store.exists() and store.stat().st_size > 2:  # not a new "{}" store
            _keep_backup(store)
        os.replace(tmp, store)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(lock_file: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_file``."""
    fh = open(lock_file, "a+")  # noqa: SIM115 - closed below
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(f"embedded store {lock_file} stayed locked for {timeout:.0f}"
                                     " s; another process hangs inside a transaction, stop it"
                                     ) from None
                time.sleep(0.02)
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def load_store(store: Path, settings: dict[str, Any], restore_cmd: str) -> tuple[Any, str]:
    """A mongomock FireWorks LaunchPad on ``store`` and the file's text (hold the lock).

    Raises
    ------
    StoreError
        The file is missing, empty or damaged (message: file, backup, restore command).
    """
    db_name = str(settings.get("name", DB_NAME))
    if not store.exists():
        raise StoreError(damaged_message(store, "missing", restore_cmd, db_name))
    text = store.read_text(encoding="utf-8", errors="replace")
    problem = json_problem(text, store.stat().st_size) if len(text) < 3 else ""
    if problem:
        raise StoreError(damaged_message(store, problem, restore_cmd, db_name))
    os.environ[ENV_MONGOMOCK] = str(store)
    kwargs = {k: v for k, v in settings.items() if k != STORE_KEY}
    try:
        lp = new_fireworks_launchpad(kwargs, embedded=True)
    except Exception:
        problem = json_problem(text, store.stat().st_size) or "not a FireWorks database"
        raise StoreError(damaged_message(store, problem, restore_cmd, db_name)) from None
    lp.connection._store._finalizer.detach()  # never written outside the lock
    return lp, text


def initialise_ids(lp: Any) -> None:
    """Give a new, empty FireWorks database its id counters (what ``lpad reset`` does)."""
    if lp.fw_id_assigner.find_one({}) is None and lp.fireworks.find_one({}) is None:
        lp._restart_ids(1, 1)
        lp.tuneup()


class EmbeddedLaunchPad:
    """A LaunchPad stand-in whose every method call is a locked load-run-save transaction.

    Duck-types :class:`fireworks.LaunchPad` for ``rapidfire``, ``Rocket`` and the queue
    launcher (they only call methods). Use :meth:`session` for several operations at once.
    ``config`` is a :class:`interphase_dft.fw.launchpad.LaunchPadConfig` of kind embedded.
    """

    _local = threading.local()

    def __init__(self, config: Any) -> None:
        if config.kind != "embedded" or config.store_file is None:
            raise StoreError("EmbeddedLaunchPad needs an embedded LaunchPad configuration")
        self.config = config
        self.store_file = Path(config.store_file)
        self.lock_file = lock_path(self.store_file)
        self.logdir = config.settings.get("logdir")
        self.name = config.settings.get("name", DB_NAME)

    def __repr__(self) -> str:
        return f"EmbeddedLaunchPad({self.store_file})"

    @property
    def restore_command(self) -> str:
        return f"interphase-dft store restore --launchpad {self.config.yaml_path}"

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Yield a real LaunchPad on a fresh copy of the file, holding the lock; save on exit
        (only when something changed, keeping the replaced version as backup ``.1``). An
        exception (or a signal) inside the session discards its changes: a transaction."""
        if getattr(self._local, "depth", 0):
            raise StoreError("nested embedded LaunchPad session (would deadlock); reuse the "
                             "LaunchPad yielded by the outer session")
        self._local.depth = 1
        try:
            with locked(self.lock_file):
                lp, before = load_store(self.store_file, self.config.settings,
                                        self.restore_command)
                initialise_ids(lp)
                yield lp  # an exception from the caller ends here: nothing is written
                import bson.json_util

                after = bson.json_util.dumps(lp.connection._store.to_dict())
                if after != before:
                    write_store(self.store_file, after)
        finally:
            self._local.depth = 0

    def snapshot(self) -> Any:
        """A LaunchPad on a copy of the file, read under the lock and never written back."""
        with locked(self.lock_file):
            return load_store(self.store_file, self.config.settings, self.restore_command)[0]

    def get_logdir(self) -> str | None:
        return self.logdir

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.settings.items() if k != "password"}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        from fireworks import LaunchPad

        target = getattr(LaunchPad, name, None)
        if not callable(target):
            raise AttributeError(f"EmbeddedLaunchPad has no attribute {name!r}; open a "
                                 "session() to reach collections")

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.session() as lp:
                return getattr(lp, name)(*args, **kwargs)

        return call


def restore(store: Path, number: int | None = None, db_name: str = DB_NAME
            ) -> tuple[StoreCheck, Path | None]:
    """Replace ``store`` by backup ``number`` (default: the newest good one).

    The replaced file, if any, is kept as ``launchpad.json.replaced-<time>``. Returns the
    backup used and where the replaced file went.
    """
    with locked(lock_path(store)):
        if number is not None:
            if not 1 <= number <= KEEP_BACKUPS:
                raise StoreError(f"--from must be 1..{KEEP_BACKUPS}, got {number}")
            chosen = check_file(backup_path(store, number), db_name)
            if not chosen.ok:
                raise StoreError(f"backup {chosen.path} is {chosen.problem}; "
                                 "`interphase-dft store check` lists the usable copies")
        else:
            chosen = next((b for b in backups(store, db_name) if b.ok), None)  # type: ignore[assignment]
            if chosen is None:
                raise StoreError(f"no usable backup of {store} ({store.name}.1-."
                                 f"{KEEP_BACKUPS} missing or damaged)")
        moved = None
        if store.exists():
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            moved = store.with_name(f"{store.name}.replaced-{stamp}")
            os.replace(store, moved)
        write_store(store, chosen.path.read_text(encoding="utf-8"), backup=False)
    return chosen, moved
