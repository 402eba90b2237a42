"""Shared validators: one check for the command line, the campaign spec and the builders.

Every function takes a raw value (a string from ``argparse``, a YAML scalar, a number from
Python), returns the canonical value and raises :class:`~interphase_dft.errors.InputError`
with a one-line message that names the problem and the fix. :func:`arg` turns any of them
into an ``argparse`` ``type=`` function, so a bad value stops the command while its
arguments are parsed, before any work starts.

Output paths are checked for what the command will do with them: a file is written into an
existing (or creatable) directory that accepts new files, never onto a directory; a
directory is made, or reused when it is a writable directory. The check creates and removes a
probe file, so read-only mounts and access-control lists are found as well as file modes.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from interphase_dft.errors import InputError

T = TypeVar("T")

#: Largest |h|, |k|, |l| of a Miller index after reduction to lowest terms. pymatgen's slab
#: search tries (2 x max|index| + 1)^3 normal vectors and the oriented cell grows with
#: h^2 + k^2 + l^2 (LiAl (3 2 2): 816 atoms); every surface the recipes use is at most
#: (1 1 1), and index 3 already covers the stepped surfaces (3 2 1), (3 3 1), (3 3 2).
MAX_MILLER = 3


def miller(values: Sequence[Any] | str, *, max_index: int = MAX_MILLER) -> tuple[int, int, int]:
    """Three integers, reduced to lowest terms (``2 0 0`` -> ``1 0 0``), at most ``max_index``.

    ``values`` may be a sequence (``(1, 1, 0)``, ``["1", "1", "0"]``) or a string
    (``"1 1 0"``, ``"110"`` is not accepted: give three numbers).
    """
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    try:
        items = list(values)
    except TypeError as exc:
        raise InputError(f"Miller index must be three integers, got {values!r}") from exc
    if len(items) != 3:
        raise InputError(f"Miller index needs exactly three integers (h k l), got {values!r}")
    out: list[int] = []
    for v in items:
        try:
            number = float(v)
            ok = not isinstance(v, bool) and math.isfinite(number) and number.is_integer()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"Miller indices must be integers, got {values!r}; e.g. use 1 1 1")
        out.append(int(number))
    if not any(out):
        raise InputError("Miller index (0 0 0) does not define a plane; use e.g. 1 0 0")
    divisor = math.gcd(*out)
    hkl = tuple(v // divisor for v in out)
    if max(abs(v) for v in hkl) > max_index:
        given = " ".join(str(v) for v in out)
        reduced = "" if divisor == 1 else f" (reduced from {given})"
        raise InputError(
            f"Miller index {' '.join(str(v) for v in hkl)}{reduced} is beyond the largest "
            f"supported index {max_index} (validation.MAX_MILLER: the slab search and the "
            f"oriented cell grow with h^2 + k^2 + l^2); use indices between -{max_index} "
            f"and {max_index}")
    return (hkl[0], hkl[1], hkl[2])


def phase(name: Any) -> str:
    """The canonical phase name of ``name`` (case-insensitive; the error suggests one)."""
    from interphase_dft.phases import resolve_phase

    return resolve_phase(name)


def host_phase(name: Any) -> str:
    """A phase that can host Li (binding energies, barriers): any phase except Li itself."""
    canonical = phase(name)
    if canonical == "Li":
        raise InputError("Li is the reference phase (computed by the prepare step), not a "
                         "host; give a host phase such as Al, LiAl, LPSC, Li2S, Li3P, LiCl "
                         "or P2S5")
    return canonical


def barrier_pair(phase_a: Any, phase_b: Any) -> tuple[str, str]:
    """Two different host phases A and B of a migration barrier across A|B."""
    a, b = host_phase(phase_a), host_phase(phase_b)
    if a == b:
        raise InputError(f"barrier {a}|{b} needs two different phases (the bulk hop of one "
                         "phase is its bulk reference hop, computed automatically)")
    return a, b


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return number


def positive(value: Any, what: str = "value") -> float:
    """A finite number > 0 (lengths in Angstrom, strains, areas)."""
    number = _number(value, what)
    if number <= 0:
        raise InputError(f"{what} must be > 0, got {value}")
    return number


def non_negative(value: Any, what: str = "value") -> float:
    """A finite number >= 0."""
    number = _number(value, what)
    if number < 0:
        raise InputError(f"{what} must be >= 0, got {value}")
    return number


def integer(value: Any, what: str = "value", minimum: int = 0) -> int:
    """An integer >= ``minimum``."""
    number = _number(value, what)
    if not number.is_integer():
        raise InputError(f"{what} must be an integer, got {value!r}")
    if number < minimum:
        raise InputError(f"{what} must be >= {minimum}, got {value}")
    return int(number)


def at_most(value: T, ceiling: Any, what: str, setting: str) -> T:
    """``value`` unless it is above ``ceiling`` (the setting ``setting`` names the ceiling)."""
    if value is not None and value > ceiling:  # type: ignore[operator]
        raise InputError(f"{what} {value} is above the ceiling {ceiling} ({setting}, which "
                         f"bounds the time and memory of a build); use at most {ceiling}, or "
                         f"raise {setting} on purpose")
    return value


# --- output paths -------------------------------------------------------------------------

def _probe(directory: Path, what: str) -> None:
    """Raise :class:`InputError` unless a file can be created in ``directory``."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what}: directory {directory} is not writable "
                         "(permissions or a read-only mount); choose another location")
    try:
        fd, probe = tempfile.mkstemp(prefix=".interphase-probe-", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {what}: directory {directory} does not accept new "
                         f"files ({exc.strerror or type(exc).__name__}); choose another "
                         "location") from None
    os.close(fd)
    os.remove(probe)


def _existing_ancestor(path: Path, what: str) -> Path:
    """The nearest existing ancestor of ``path``; it must be a directory."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {what} {path}: {parent} is a file, not a "
                                 "directory")
            return parent
    raise InputError(f"cannot write {what} {path}: no existing parent directory")


def output_file(path: Any, what: str = "output file", *, create_parents: bool = False) -> Path:
    """An output file path that can be written: not a directory, in a writable directory.

    ``create_parents``: a missing parent directory is fine when it can be made (its nearest
    existing ancestor is writable); otherwise the parent must exist.
    """
    if path is None or not str(path).strip():
        raise InputError(f"{what} must be a non-empty path")
    p = Path(str(path)).expanduser().absolute()
    if p.is_dir():
        raise InputError(f"{what} {path} is an existing directory; give a file name, e.g. "
                         f"{Path(str(path)) / 'name'}")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{what} {path} exists and is read-only; choose another name")
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"cannot write {what} {path}: {parent} is a file, not a directory")
    if not parent.exists():
        if not create_parents:
            raise InputError(f"cannot write {what} {path}: directory {parent} does not "
                             "exist; create it first")
        parent = _existing_ancestor(p, what)
    _probe(parent, what)
    return p


def ase_output_file(path: Any) -> Path:
    """An output file ASE can write (format from the extension), see :func:`output_file`."""
    p = output_file(path, "output file")
    from ase.io.formats import filetype, ioformats

    try:
        fmt = filetype(str(p), read=False)
    except Exception:
        fmt = None
    if fmt not in ioformats or not ioformats[fmt].can_write:
        raise InputError(f"cannot write the file format of {path!r}; use e.g. .extxyz, .cif, "
                         ".traj, .vasp")
    return p


def json_output(path: Any) -> Path | str:
    """``'-'`` (standard output) or a JSON file that can be written (parents are made)."""
    if str(path) == "-":
        return "-"
    return output_file(path, "JSON file", create_parents=True)


def output_directory(path: Any, what: str = "output directory", *,
                     empty: bool = False) -> Path:
    """A directory that exists and is writable, or can be made (parents included).

    ``empty``: an existing directory must be empty (a new result directory).
    """
    if path is None or not str(path).strip():
        raise InputError(f"{what} must be a non-empty path")
    p = Path(str(path)).expanduser().absolute()
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{what} {path} is an existing file, not a directory; choose "
                             "another path")
        if empty and any(p.iterdir()):
            raise InputError(f"{path} exists and is not an empty directory; choose a new "
                             f"{what} or remove it")
        _probe(p, what)
        return p
    _probe(_existing_ancestor(p, what), what)
    return p


def new_directory(path: Any, what: str = "output directory") -> Path:
    """A directory to be created (or an existing empty one) whose parent exists."""
    p = output_directory(path, what, empty=True)
    if not p.exists() and not p.parent.is_dir():
        raise InputError(f"parent directory of {path} does not exist; create it first")
    return p


def store_directory(directory: Path) -> Path:
    """The embedded store's directory: every command that opens the store writes there (the
    lock file, the store, its backups)."""
    return output_directory(directory, "the embedded store")


def default_store(launchpad: str | None, *, create: bool = False) -> Path | None:
    """Check the directory of the default embedded store before it is opened or made.

    Nothing to check (None) when a LaunchPad file is given (``launchpad`` or
    ``$INTERPHASE_LAUNCHPAD``: check its store with :func:`store_directory` once the file is
    read) or when ``$INTERPHASE_HOME`` names no directory and the command does not ``create``
    a store (:func:`interphase_dft.fw.launchpad.project_dir` reports that).
    """
    from interphase_dft.fw.launchpad import ENV_HOME, ENV_LAUNCHPAD

    if launchpad or os.environ.get(ENV_LAUNCHPAD):
        return None
    home = os.environ.get(ENV_HOME)
    base = Path(home).expanduser().absolute() if home else Path.cwd()
    if home and not base.is_dir() and not create:
        return None
    return store_directory(base / ".interphase")


# --- argparse -------------------------------------------------------------------------------

def arg(check: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[str], T]:
    """An ``argparse`` ``type=`` function: ``check(text, *args, **kwargs)``, its
    :class:`InputError` reported by argparse as a one-line usage error (exit status 2)."""

    def convert(text: str) -> T:
        try:
            return check(text, *args, **kwargs)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert


class MillerAction(argparse.Action):
    """``--miller H K L`` (``nargs=3``) checked by :func:`miller` while the arguments are
    parsed: the value is the reduced ``(h, k, l)``; a bad index is a usage error (exit 2)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        try:
            setattr(namespace, self.dest, miller(values))
        except InputError as exc:
            parser.error(f"argument {option_string or self.dest}: {exc}")


# --- build ceilings -------------------------------------------------------------------------

def ceilings(settings: Any = None) -> Any:
    """The build ceilings (``build_*`` of :class:`~interphase_dft.calc.settings.BudgetSettings`)
    of ``settings`` (a ``CalcSettings`` or ``BudgetSettings``; None = the defaults)."""
    from interphase_dft.calc.settings import BudgetSettings

    budget = getattr(settings, "budget", settings)
    return budget if isinstance(budget, BudgetSettings) else BudgetSettings()


def max_atoms(value: Any, settings: Any = None) -> int:
    """A largest cell size (``--max-atoms``): an integer >= 2, at most
    ``budget.build_max_atoms``."""
    return at_most(integer(value, "max_atoms", 2), ceilings(settings).build_max_atoms,
                   "max_atoms", "budget.build_max_atoms")


def max_area(value: Any, settings: Any = None) -> float:
    """A largest in-plane area (``--max-area``, Angstrom^2): > 0, at most
    ``budget.build_max_area``."""
    return at_most(positive(value, "max_area"), ceilings(settings).build_max_area,
                   "max_area (Angstrom^2)", "budget.build_max_area")


def max_strain(value: Any, settings: Any = None) -> float:
    """A lattice-match strain limit (``--max-strain``, 0.05 = 5 %): > 0, at most
    ``budget.build_max_strain``."""
    return at_most(positive(value, "max_strain"), ceilings(settings).build_max_strain,
                   "max_strain", "budget.build_max_strain")


#: the checks of the lattice-match limits, by keyword
LIMIT_CHECKS: dict[str, Callable[[Any, Any], Any]] = {
    "max_atoms": max_atoms, "max_area": max_area, "max_strain": max_strain}


def build_limits(settings: Any = None, **limits: Any) -> None:
    """Refuse lattice-match ``limits`` (``max_atoms``, ``max_area``, ``max_strain``; None =
    not given) outside their range or above the build ceilings of ``settings``."""
    for name, value in limits.items():
        if value is not None:
            LIMIT_CHECKS[name](value, settings)


def slab_atoms(bulk: Any, hkl: Sequence[int], *, layers: int | None = None,
               thickness: float | None = None) -> int:
    """Atoms of the (hkl) slab of ``bulk`` before pymatgen reduces it to a primitive cell
    (the cost of cutting it): atoms of the oriented cell x the repeats
    ``SlabGenerator.get_slab`` stacks for ``layers`` d_hkl units (default 4) or ``thickness``
    Angstrom. Computed from the oriented cell only, in a fraction of a second."""
    import numpy as np
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = AseAtomsAdaptor.get_structure(bulk)
    in_planes = thickness is None
    size = float(layers if layers is not None else 4) if in_planes else float(thickness or 0)
    hkl = miller(hkl)
    gen = SlabGenerator(structure, hkl, min_slab_size=1.0, min_vacuum_size=1.0,
                        in_unit_planes=True, primitive=False, lll_reduce=False,
                        reorient_lattice=False, max_normal_search=max(abs(x) for x in hkl))
    a, b, c = np.asarray(gen.oriented_unit_cell.lattice.matrix)
    normal = np.cross(a, b)
    height = abs(float(np.dot(c, normal / np.linalg.norm(normal))))
    per = round(height / structure.lattice.d_hkl(hkl), 8) if in_planes else height
    return len(gen.oriented_unit_cell) * max(1, math.ceil(size / per))


def slab_size(bulk: Any, hkl: Sequence[int], *, layers: int | None = None,
              thickness: float | None = None, settings: Any = None) -> int:
    """:func:`slab_atoms`, refused above ``budget.build_max_atoms``."""
    n = slab_atoms(bulk, hkl, layers=layers, thickness=thickness)
    ceiling = ceilings(settings).build_max_atoms
    if n > ceiling:
        h, k, l_ = miller(hkl)
        raise InputError(f"the ({h} {k} {l_}) slab would have about {n} atoms before "
                         f"reduction, above the ceiling {ceiling} (budget.build_max_atoms); "
                         "use fewer layers, a smaller thickness or a lower Miller index")
    return n
