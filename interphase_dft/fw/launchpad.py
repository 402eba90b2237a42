"""LaunchPad configuration: the embedded file store (default) or a real MongoDB.

Which LaunchPad is used (first match wins):

1. ``--launchpad FILE`` on the command line (a standard FireWorks ``my_launchpad.yaml``);
2. the environment variable ``INTERPHASE_LAUNCHPAD`` (path of such a file);
3. the embedded store of the project: ``<project>/.interphase/launchpad.json`` with a generated
   ``<project>/.interphase/my_launchpad.yaml`` (``<project>`` = ``$INTERPHASE_HOME`` or the
   current directory).

Embedded store
    FireWorks' mongomock support (``fireworks[mongomock]``) keeps the whole database in
    memory and reads/writes the JSON file named by ``MONGOMOCK_SERVERSTORE_FILE`` when a client
    is created / finalised. Separate processes therefore overwrite each other. Here every
    LaunchPad operation is a *transaction* (:class:`EmbeddedLaunchPad`): take an exclusive
    ``fcntl`` lock on ``launchpad.json.lock``, load the file, run the operation, write the file
    atomically, release the lock. Workers in separate processes (local or Slurm jobs) are then
    safe, and states such as RUNNING reach the file at once (lost-run detection works).
    FireWorks' own CLI works on the same file (when no worker runs)::

        MONGOMOCK_SERVERSTORE_FILE=$PWD/.interphase/launchpad.json \
            lpad -l .interphase/my_launchpad.yaml get_wflows

MongoDB
    Any ``my_launchpad.yaml`` FireWorks accepts (host/port/username/password/authsource, or
    ``uri_mode: true`` with a ``mongodb://``/``mongodb+srv://`` URI, TLS options in
    ``mongoclient_kwargs``). A server that does not answer fails within
    ``serverSelectionTimeoutMS`` (default here 5000 ms). Credentials are never printed:
    :func:`redact` is applied to every message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interphase_dft.errors import InputError, StoreError

ENV_LAUNCHPAD = "INTERPHASE_LAUNCHPAD"
ENV_HOME = "INTERPHASE_HOME"
ENV_MONGOMOCK = "MONGOMOCK_SERVERSTORE_FILE"
STORE_KEY = "mongomock_serverstore_file"  # extra key in our YAML; FireWorks ignores it
DB_NAME = "interphase"
TIMEOUT_MS = 5000
LOCK_TIMEOUT_S = 600.0

_URI_CRED = re.compile(r"(mongodb(?:\+srv)?://)([^:/@\s]+):([^@\s]*)@")
_KV_CRED = re.compile(r"(?i)((?:password|passwd|pwd)['\"]?\s*[:=]\s*['\"]?)([^'\"\s,}&]+)")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Replace passwords in ``text``: ``mongodb://user:***@host``, ``password: ***``."""
    out = _URI_CRED.sub(r"\1\2:***@", str(text))
    out = _KV_CRED.sub(r"\1***", out)
    for secret in secrets:
        if secret and len(secret) >= 3:
            out = out.replace(secret, "***")
    return out


@dataclass(frozen=True)
class LaunchPadConfig:
    """Where the LaunchPad lives. ``settings`` holds the YAML content (may hold secrets)."""

    kind: str  # "embedded" | "mongodb"
    yaml_path: Path | None
    store_file: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [str(self.settings.get("password") or "")]
        host = str(self.settings.get("host") or "")
        match = _URI_CRED.search(host)
        if match:
            found.append(match.group(3))
        return tuple(s for s in found if s)

    def describe(self) -> str:
        """One line naming the store, without credentials."""
        if self.kind == "embedded":
            return f"embedded store {self.store_file} (LaunchPad file {self.yaml_path})"
        s = self.settings
        if s.get("uri_mode"):
            where = str(s.get("host"))
        else:
            user = f"{s['username']}:***@" if s.get("username") else ""
            where = f"mongodb://{user}{s.get('host', 'localhost')}:{s.get('port', 27017)}"
        return redact(f"MongoDB {where} database {s.get('name')} (LaunchPad file "
                      f"{self.yaml_path})", self.secrets)


def project_dir() -> Path:
    return Path(os.environ.get(ENV_HOME) or Path.cwd()).resolve()


def init_embedded(directory: str | Path | None = None) -> LaunchPadConfig:
    """Create (if needed) the embedded store in ``directory``.

    The default directory is ``<project>/.interphase``; the store file starts as ``{}``.
    """
    directory = Path(directory) if directory else project_dir() / ".interphase"
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "launchpad.json"
    if not store.exists() or store.stat().st_size == 0:
        store.write_text("{}")
    yaml_path = directory / "my_launchpad.yaml"
    settings = {"host": "localhost", "port": 27017, "name": DB_NAME, STORE_KEY: str(store),
                "strm_lvl": "WARNING"}
    if not yaml_path.exists():
        yaml_path.write_text(
            "# Embedded FireWorks store written by interphase-dft. FireWorks' own CLI needs\n"
            f"#   export {ENV_MONGOMOCK}={store}\n"
            f"#   lpad -l {yaml_path} get_wflows\n"
            "# host/port are required by FireWorks but unused with the mongomock store.\n"
            + yaml.safe_dump(settings, sort_keys=False)
        )
    return LaunchPadConfig("embedded", yaml_path, store, settings)


def resolve_launchpad(path: str | Path | None = None) -> LaunchPadConfig:
    """The LaunchPad to use: ``path``, else ``$INTERPHASE_LAUNCHPAD``, else the embedded store."""
    path = path or os.environ.get(ENV_LAUNCHPAD)
    if not path:
        return init_embedded()
    yaml_path = Path(path).expanduser().resolve()
    if not yaml_path.is_file():
        raise InputError(f"LaunchPad file {yaml_path} not found; give a FireWorks "
                         "my_launchpad.yaml (see hpc/my_launchpad.yaml) or omit --launchpad "
                         "to use the embedded store")
    try:
        settings = yaml.safe_load(yaml_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"LaunchPad file {yaml_path} is not valid YAML: "
                         f"{redact(str(exc))}") from None
    if not isinstance(settings, dict) or "host" not in settings:
        raise InputError(f"LaunchPad file {yaml_path} needs at least 'host' (and 'port', "
                         "'name'); see hpc/my_launchpad.yaml")
    store = settings.get(STORE_KEY)
    if store:
        store_path = Path(str(store)).expanduser()
        if not store_path.is_absolute():
            store_path = (yaml_path.parent / store_path).resolve()
        if not store_path.exists():
            store_path.parent.mkdir(parents=True, exist_ok=True)
            store_path.write_text("{}")
        return LaunchPadConfig("embedded", yaml_path, store_path, settings)
    return LaunchPadConfig("mongodb", yaml_path, None, settings)


_SWAP = threading.Lock()


def _new_launchpad(settings: dict[str, Any], embedded: bool) -> Any:
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


class EmbeddedLaunchPad:
    """A LaunchPad stand-in whose every method call is a locked load-run-save transaction.

    Duck-types :class:`fireworks.LaunchPad` for ``rapidfire``, ``Rocket`` and the queue
    launcher (they only call methods). Use :meth:`session` for several operations at once.
    """

    _local = threading.local()

    def __init__(self, config: LaunchPadConfig) -> None:
        if config.kind != "embedded" or config.store_file is None:
            raise StoreError("EmbeddedLaunchPad needs an embedded LaunchPad configuration")
        self.config = config
        self.store_file = Path(config.store_file)
        self.lock_file = self.store_file.with_name(self.store_file.name + ".lock")
        self.logdir = config.settings.get("logdir")
        self.name = config.settings.get("name", DB_NAME)

    def __repr__(self) -> str:
        return f"EmbeddedLaunchPad({self.store_file})"

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Yield a real LaunchPad on a fresh copy of the file, holding the lock; save on exit."""
        if getattr(self._local, "depth", 0):
            raise StoreError("nested embedded LaunchPad session (would deadlock); reuse the "
                             "LaunchPad yielded by the outer session")
        self._local.depth = 1
        try:
            with _locked(self.lock_file):
                os.environ[ENV_MONGOMOCK] = str(self.store_file)
                kwargs = {k: v for k, v in self.config.settings.items() if k != STORE_KEY}
                lp = _new_launchpad(kwargs, embedded=True)
                _initialise(lp)
                store = lp.connection._store
                try:
                    yield lp
                finally:
                    store._finalizer.detach()  # never write outside the lock
                    _atomic_write(self.store_file, store)
        finally:
            self._local.depth = 0

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


def _initialise(lp: Any) -> None:
    """Give a new, empty FireWorks database its id counters (what ``lpad reset`` does)."""
    if lp.fw_id_assigner.find_one({}) is None and lp.fireworks.find_one({}) is None:
        lp._restart_ids(1, 1)
        lp.tuneup()


def _atomic_write(path: Path, store: Any) -> None:
    import bson.json_util

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(bson.json_util.dumps(store.to_dict()))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(lock_file: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    import time

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


def open_launchpad(config: LaunchPadConfig | None = None) -> Any:
    """An :class:`EmbeddedLaunchPad` or a connected ``fireworks.LaunchPad`` (checked quickly).

    Raises
    ------
    StoreError
        MongoDB unreachable or authentication failed (message without credentials).
    """
    config = config or resolve_launchpad()
    if config.kind == "embedded":
        return EmbeddedLaunchPad(config)
    settings = dict(config.settings)
    settings.pop(STORE_KEY, None)
    kwargs = dict(settings.get("mongoclient_kwargs") or {})
    kwargs.setdefault("serverSelectionTimeoutMS", TIMEOUT_MS)
    kwargs.setdefault("connectTimeoutMS", TIMEOUT_MS)
    settings["mongoclient_kwargs"] = kwargs
    settings.setdefault("strm_lvl", "WARNING")
    try:
        lp = _new_launchpad(settings, embedded=False)
        lp.connection.admin.command("ping")
        lp.db.list_collection_names()  # authentication/authorisation on the database
        _initialise(lp)
    except Exception as exc:
        reason = str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0]
        raise StoreError(
            f"cannot use {config.describe()}: {redact(reason, config.secrets)[:300]}. "
            "Check host, port, user, password, TLS options and that the server runs "
            "(a local test needs no MongoDB: omit --launchpad for the embedded store)"
        ) from None
    return lp


def get_launchpad(path: str | Path | None = None) -> Any:
    """A LaunchPad with ``.db`` for reading (``--launchpad`` / env / embedded default).

    For the embedded store this is a *read-only snapshot*: loaded under the lock, never
    written back (use :func:`open_launchpad` + :func:`lp_session` to modify).
    """
    config = resolve_launchpad(path)
    if config.kind != "embedded":
        return open_launchpad(config)
    with _locked(Path(str(config.store_file)).with_name(Path(str(config.store_file)).name
                                                       + ".lock")):
        os.environ[ENV_MONGOMOCK] = str(config.store_file)
        kwargs = {k: v for k, v in config.settings.items() if k != STORE_KEY}
        lp = _new_launchpad(kwargs, embedded=True)
        lp.connection._store._finalizer.detach()
    return lp


@contextlib.contextmanager
def lp_session(launchpad: Any) -> Iterator[Any]:
    """Yield a LaunchPad with ``.db``: a session of an embedded one, or ``launchpad`` itself."""
    if isinstance(launchpad, EmbeddedLaunchPad):
        with launchpad.session() as lp:
            yield lp
    else:
        yield launchpad
