"""Secrets never echoed: redaction by value and by pattern, safe LaunchPad-file errors.

Every password, URI credential and token that interphase-dft reads, from a LaunchPad file
(scanned line by line as raw text, so a malformed file is covered too) or from the
environment, is *registered*; :func:`redact` masks every registered value wherever it appears
and, in addition, anything shaped like ``mongodb://user:***@``, ``password: ***`` or
``password=***``. Errors about a LaunchPad file name the file, the line and the column and say
what is wrong; they never quote the file (:func:`yaml_error_message`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "***"
#: registered values shorter than this are not masked (they would mangle ordinary words)
MIN_SECRET_LEN = 3

_URI_CRED = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^:/@\s]+):([^@\s]*)@")
_KV_CRED = re.compile(r"(?i)((?:password|passwd|pwd|token|secret|api_?key)['\"]?\s*[:=]\s*"
                      r"['\"]?)([^'\"\s,}&]+)")
#: a key (YAML/JSON/INI/URI option) whose value is a secret
_SECRET_KEY = re.compile(r"(?i)(password|passwd|pwd|passphrase|token|secret|api_?key"
                         r"|credential|private_?key)")
_LINE_KEY = re.compile(r"^\s*(?:-\s*)?['\"]?([A-Za-z0-9_.-]+)['\"]?\s*[:=](?:\s+|$)(.*)$")
#: environment variables that hold secrets (``PWD``/``OLDPWD`` are directories)
_ENV_NAME = re.compile(r"(?i)(PASSWORD|PASSWD|PASSPHRASE|TOKEN|SECRET|API_?KEY|CREDENTIAL)")
_ENV_NOT_SECRET = frozenset({"PWD", "OLDPWD"})

_KNOWN: set[str] = set()
_LOCK = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values in every later :func:`redact` (values under 3 characters ignored)."""
    with _LOCK:
        _KNOWN.update(v for v in values if v and len(v) >= MIN_SECRET_LEN)


def known_secrets() -> tuple[str, ...]:
    """The registered values, longest first (so a value containing another is masked whole)."""
    with _LOCK:
        return tuple(sorted(_KNOWN, key=len, reverse=True))


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and credential-shaped substring masked.

    Parameters
    ----------
    text
        Any message (converted with ``str``).
    secrets
        Further values to mask (besides the registered ones and the environment's).
    """
    out = str(text)
    scan_environment()
    extra = [s for s in secrets if s and len(s) >= MIN_SECRET_LEN]
    for value in sorted({*extra, *known_secrets()}, key=len, reverse=True):
        out = out.replace(value, MASK)
    out = _URI_CRED.sub(rf"\1\2:{MASK}@", out)
    return _KV_CRED.sub(rf"\1{MASK}", out)


def _pieces(value: str) -> set[str]:
    """A value, without quotes, and each of its whitespace-separated words (also without
    punctuation and YAML indicators such as the alias ``*``, which parsers quote alone)."""
    value = value.strip()
    out = {value, value.strip("'\"")}
    for word in value.split():
        out.add(word)
        out.add(word.strip("'\",;:[]{}()*&!|>"))
    return {p for p in out if len(p) >= MIN_SECRET_LEN}


def secrets_in_text(text: str) -> set[str]:
    """Secret values found line by line in raw (possibly malformed) configuration text.

    Covers ``key: value`` / ``key=value`` lines whose key names a password, token or secret
    (the whole rest of the line, e.g. ``password: Xy: S3cret`` gives ``Xy: S3cret`` and its
    words), a value on the following, more indented lines when the key line has none (or a
    block-scalar indicator ``|``/``>``), ``key=value`` pairs inside URIs, and URI credentials
    ``scheme://user:PASSWORD@`` anywhere.
    """
    found: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        for match in _URI_CRED.finditer(line):
            found |= _pieces(match.group(3))
        for match in _KV_CRED.finditer(line):
            found |= _pieces(match.group(2))
        key = _LINE_KEY.match(line)
        if not key or not _SECRET_KEY.search(key.group(1)):
            continue
        rest = key.group(2).strip()
        if rest and rest not in ("|", ">", "|-", ">-", "|+", ">+"):
            found |= _pieces(rest)
            continue
        indent = len(line) - len(line.lstrip())
        for follow in lines[i + 1:]:  # the value continues on more indented lines
            if not follow.strip():
                continue
            if len(follow) - len(follow.lstrip()) <= indent and not follow.lstrip().startswith(
                    ("'", '"')):
                break
            found |= _pieces(follow)
    return found


def secrets_in_mapping(data: object) -> set[str]:
    """Secret values of a parsed configuration (nested dicts/lists; secret-named keys, URIs)."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(value, (str, int, float)) and _SECRET_KEY.search(str(key)):
                found |= _pieces(str(value))
            found |= secrets_in_mapping(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            found |= secrets_in_mapping(value)
    elif isinstance(data, str):
        found |= secrets_in_text(data)
    return found


def scan_environment(environ: Mapping[str, str] | None = None) -> None:
    """Register secret-named environment variables and URI credentials in any variable."""
    env = os.environ if environ is None else environ
    values: set[str] = set()
    for name, value in env.items():
        if name.upper() in _ENV_NOT_SECRET or not value:
            continue
        if _ENV_NAME.search(name):
            values |= _pieces(value)
        if "://" in value:
            values |= {m.group(3) for m in _URI_CRED.finditer(value)}
    register_secrets(values)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _no_quotes(text: str | None) -> str:
    """Parser wording with any quoted fragment of the file (> 2 characters) removed."""
    if not text:
        return ""

    def keep(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        return match.group(0) if len(inner) <= 2 or inner.startswith("<") else "'...'"

    return _QUOTED.sub(keep, text)


def yaml_error_message(path: Path, exc: Exception) -> str:
    """``FILE: line L, column C: what is wrong`` for a YAML error, without the file's content.

    PyYAML's own message quotes the offending line (a snippet that may hold a password, cut
    so that no pattern recognises it) and may name an alias or escape taken from the file;
    here only the marks and the parser's wording (quoted fragments removed) are used.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "position unknown"
    problem = _no_quotes(getattr(exc, "problem", None)) or type(exc).__name__
    context = _no_quotes(getattr(exc, "context", None))
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        context += f" started at line {context_mark.line + 1}, column {context_mark.column + 1}"
    what = f"{problem} ({context})" if context else problem
    return redact(f"LaunchPad file {path}: {where}: {what} (not valid YAML; the content is "
                  "not shown because it may hold a password)")
