"""LaunchPad configuration: the embedded file store (default) or a real MongoDB.

Which LaunchPad is used (first match wins):

1. ``--launchpad FILE`` on the command line (a standard FireWorks ``my_launchpad.yaml``);
2. the environment variable ``INTERPHASE_LAUNCHPAD`` (path of such a file);
3. the embedded store of the project: ``<project>/.interphase/launchpad.json`` with a generated
   ``<project>/.interphase/my_launchpad.yaml`` (``<project>`` = ``$INTERPHASE_HOME`` or the
   current directory). A ``$INTERPHASE_HOME`` that does not exist is an error, except for the
   commands that create a store on purpose (``submit``, ``campaign``).

Embedded store
    See :mod:`interphase_dft.fw.embedded`: every operation is a locked load-run-save
    transaction on the JSON file (safe for several local workers and Slurm jobs), the replaced
    version is kept as a backup (``launchpad.json.1`` .. ``.3``) and a damaged file is refused
    with the command that restores it. FireWorks' own CLI works on the same file (when no
    worker runs)::

        MONGOMOCK_SERVERSTORE_FILE=$PWD/.interphase/launchpad.json \
            lpad -l .interphase/my_launchpad.yaml get_wflows

MongoDB
    Any ``my_launchpad.yaml`` FireWorks accepts (host/port/username/password/authsource, or
    ``uri_mode: true`` with a ``mongodb://``/``mongodb+srv://`` URI, TLS options in
    ``mongoclient_kwargs``). A server that does not answer fails within
    ``serverSelectionTimeoutMS`` (default here 5000 ms).

Credentials are never printed: every secret read from a LaunchPad file (its raw text, so a
malformed file too) or the environment is registered and masked by :func:`redact`; errors
about a LaunchPad file name the file, line and column, never its content
(:mod:`interphase_dft.secrets`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interphase_dft.errors import InputError, StoreError
from interphase_dft.fw.embedded import (
    DB_NAME,
    ENV_MONGOMOCK,
    STORE_KEY,
    EmbeddedLaunchPad,
    backups,
    damaged_message,
    initialise_ids,
    new_fireworks_launchpad,
)
from interphase_dft.secrets import (
    redact,
    register_secrets,
    secrets_in_mapping,
    secrets_in_text,
    yaml_error_message,
)

__all__ = ["DB_NAME", "ENV_HOME", "ENV_LAUNCHPAD", "ENV_MONGOMOCK", "STORE_KEY",
           "EmbeddedLaunchPad", "LaunchPadConfig", "get_launchpad", "init_embedded",
           "lp_session", "open_launchpad", "project_dir", "redact", "resolve_launchpad"]

ENV_LAUNCHPAD = "INTERPHASE_LAUNCHPAD"
ENV_HOME = "INTERPHASE_HOME"
TIMEOUT_MS = 5000


@dataclass(frozen=True)
class LaunchPadConfig:
    """Where the LaunchPad lives. ``settings`` holds the YAML content (may hold secrets)."""

    kind: str  # "embedded" | "mongodb"
    yaml_path: Path | None
    store_file: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secrets_in_mapping(self.settings))

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


def project_dir(create: bool = False) -> Path:
    """``$INTERPHASE_HOME`` (made if ``create``), else the current directory.

    Raises
    ------
    StoreError
        ``$INTERPHASE_HOME`` names no existing directory and ``create`` is false.
    """
    home = os.environ.get(ENV_HOME)
    if not home:
        return Path.cwd().resolve()
    path = Path(home).expanduser().resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        raise StoreError(f"{ENV_HOME}={home} is not an existing directory, so it holds no "
                         "store; correct the variable, or create a store there on purpose "
                         "with `interphase-dft submit SPEC`")
    return path


def _store_file(store: Path, restore_cmd: str) -> None:
    """Create an empty store ``store`` ({}), unless backups say one existed (refuse then)."""
    if store.exists():
        if store.stat().st_size == 0:
            raise StoreError(damaged_message(store, "empty (0 bytes)", restore_cmd))
        return
    if backups(store):
        raise StoreError(damaged_message(store, "missing", restore_cmd))
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("{}")


def init_embedded(directory: str | Path | None = None) -> LaunchPadConfig:
    """The embedded store in ``directory`` (default ``<project>/.interphase``), made if new.

    A new store file starts as ``{}``; an empty (0-byte) one, or a missing one whose backups
    exist, is refused (:class:`StoreError` with the restore command).
    """
    directory = Path(directory) if directory else project_dir() / ".interphase"
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "launchpad.json"
    yaml_path = directory / "my_launchpad.yaml"
    _store_file(store, f"interphase-dft store restore --launchpad {yaml_path}")
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


def read_launchpad_file(yaml_path: Path) -> dict[str, Any]:
    """The settings of a LaunchPad YAML file; its secrets are registered before parsing.

    Raises
    ------
    InputError
        Not found, unreadable, not YAML or not a mapping with ``host`` (the message names the
        file, line and column, never the content).
    """
    if not yaml_path.is_file():
        raise InputError(f"LaunchPad file {yaml_path} not found; give a FireWorks "
                         "my_launchpad.yaml (see hpc/my_launchpad.yaml) or omit --launchpad "
                         "to use the embedded store")
    try:
        text = yaml_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"LaunchPad file {yaml_path} cannot be read ({type(exc).__name__})"
                         ) from None
    register_secrets(secrets_in_text(text))
    try:
        settings = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(yaml_error_message(yaml_path, exc)) from None
    register_secrets(secrets_in_mapping(settings))
    if not isinstance(settings, dict) or "host" not in settings:
        raise InputError(f"LaunchPad file {yaml_path} needs a mapping with at least 'host' "
                         "(and 'port', 'name'); see hpc/my_launchpad.yaml")
    return settings


def resolve_launchpad(path: str | Path | None = None, create: bool = False) -> LaunchPadConfig:
    """The LaunchPad to use: ``path``, else ``$INTERPHASE_LAUNCHPAD``, else the embedded store.

    ``create``: the command makes a store on purpose (a missing ``$INTERPHASE_HOME`` is made).
    """
    path = path or os.environ.get(ENV_LAUNCHPAD)
    if not path:
        return init_embedded(project_dir(create=create) / ".interphase")
    yaml_path = Path(path).expanduser().resolve()
    settings = read_launchpad_file(yaml_path)
    store = settings.get(STORE_KEY)
    if store:
        store_path = Path(str(store)).expanduser()
        if not store_path.is_absolute():
            store_path = (yaml_path.parent / store_path).resolve()
        _store_file(store_path, f"interphase-dft store restore --launchpad {yaml_path}")
        return LaunchPadConfig("embedded", yaml_path, store_path, settings)
    return LaunchPadConfig("mongodb", yaml_path, None, settings)


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
        lp = new_fireworks_launchpad(settings, embedded=False)
        lp.connection.admin.command("ping")
        lp.db.list_collection_names()  # authentication/authorisation on the database
        initialise_ids(lp)
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
    return EmbeddedLaunchPad(config).snapshot()


@contextlib.contextmanager
def lp_session(launchpad: Any) -> Iterator[Any]:
    """Yield a LaunchPad with ``.db``: a session of an embedded one, or ``launchpad`` itself."""
    if isinstance(launchpad, EmbeddedLaunchPad):
        with launchpad.session() as lp:
            yield lp
    else:
        yield launchpad
