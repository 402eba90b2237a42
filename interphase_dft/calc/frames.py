"""The frame store: every reference (DFT) single point the package computes, kept for training.

A *frame* is one evaluated geometry: structure (symbols, positions, cell, pbc, fixed atoms),
energy (eV), forces (eV/Angstrom), stress (eV/Angstrom^3, where computed), the settings hash
of the calculator that computed it, the calculator description, the package versions and the
work key it belongs to (when known). Later hops fine-tune the surrogate from the stored
frames of the same elements and settings hash (:mod:`interphase_dft.calc.finetune`).

Backends
--------
- :class:`AseDbFrames`: an ASE database (SQLite), e.g. ``<project>/.interphase/frames.db``
  next to the embedded LaunchPad file (which never holds frames); ``ase db frames.db`` and its
  web view work on it. Key-value pairs: ``settings_hash`` (stored as ``'sha256:<hex>'``),
  ``elements``, ``work_key`` (``'key:<hex>'``; ASE refuses strings that read as numbers),
  ``frame_key``, ``engine``; ``data``: ``calculator``, ``versions``.
- :class:`MongoFrames`: the collection ``interphase_frames`` of the LaunchPad's MongoDB;
  arrays are stored compactly as little-endian float64 bytes (a 200-atom frame is about
  10 kB, far below MongoDB's 16 MB document limit).

Hook
----
No global state: a sink (anything with :meth:`FrameSink.add`) is handed to
:func:`recording`, which wraps a calculator factory; every evaluation of the wrapped
calculators is added once. Only reference factories are wrapped, never the surrogate.
A frame is identified by ``frame_key`` = structure hash + settings hash: the same geometry
computed twice with the same settings is stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms

from interphase_dft.calc.guard import CalcFactory
from interphase_dft.calc.wrapped import WrappedCalculator, WrappingFactory
from interphase_dft.constraints import fixed_indices
from interphase_dft.schemas import package_versions, settings_hash, structure_hash

log = logging.getLogger("interphase_dft.calc")

#: MongoDB collection of the frames (in the LaunchPad's database)
FRAMES_COLLECTION = "interphase_frames"
#: file name of the ASE database next to the embedded LaunchPad file or in a work directory
FRAMES_DB = "frames.db"
#: prefixes of the hashes in the ASE database (its key-value pairs refuse number-like strings)
SHA, KEY = "sha256:", "key:"
#: description keys that do not change energies or forces (left out of the settings hash)
NOT_PHYSICS = ("symmetry",)


def frame_settings_hash(description: dict[str, Any]) -> str:
    """Settings hash of a calculator description (``factory.description``): equal hashes mean
    one Hamiltonian (engine, DFT settings, smearing class, spin, dispersion)."""
    return settings_hash({k: v for k, v in description.items() if k not in NOT_PHYSICS})


def element_key(elements: Iterable[str]) -> str:
    """Canonical element set, e.g. ``'Al-Li'`` (sorted, unique)."""
    return "-".join(sorted(set(elements)))


@dataclass
class Frame:
    """One stored reference single point.

    Attributes
    ----------
    atoms
        Structure with a SinglePointCalculator holding energy (eV), forces (eV/Angstrom) and
        stress (eV/Angstrom^3) when computed; fixed atoms as ``FixAtoms``.
    settings_hash, work_key, calculator, versions
        Provenance (see the module docstring).
    id
        Backend id (ASE db row id, MongoDB ObjectId as str); None before storing.
    """

    atoms: Atoms
    settings_hash: str
    calculator: dict[str, Any] = field(default_factory=dict)
    work_key: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    id: str | None = None

    @property
    def frame_key(self) -> str:
        return structure_hash(self.atoms)[:24] + "-" + self.settings_hash[:24]

    @property
    def elements(self) -> str:
        return element_key(self.atoms.get_chemical_symbols())


@runtime_checkable
class FrameSink(Protocol):
    """Where reference frames go: ``add`` stores a frame once and returns its id."""

    def add(self, frame: Frame) -> str: ...


class FrameStore(FrameSink, Protocol):
    """A sink that can be queried (both backends)."""

    def select(self, elements: str | None = None,
               settings_hash: str | None = None) -> list[Frame]: ...

    def count(self, elements: str | None = None, settings_hash: str | None = None) -> int: ...


def with_results(atoms: Atoms, results: dict[str, Any]) -> Atoms:
    """Copy of ``atoms`` (FixAtoms kept) carrying ``results`` in a SinglePointCalculator."""
    out = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell,
                pbc=atoms.pbc)
    if fixed_indices(atoms):
        out.set_constraint(FixAtoms(indices=fixed_indices(atoms)))
    keep = {k: results[k] for k in ("energy", "free_energy", "forces", "stress", "magmom")
            if k in results}
    out.calc = SinglePointCalculator(out, **keep)
    return out


class AseDbFrames:
    """Frames in an ASE database (SQLite file); see the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _db(self) -> Any:
        import ase.db

        # serial: the package writes frames on MPI rank 0 only; ase.db's default (write on the
        # master and broadcast the result) would be a collective the other ranks never join
        return ase.db.connect(str(self.path), type="db", serial=True)

    def add(self, frame: Frame) -> str:
        db = self._db()
        key = frame.frame_key
        for row in db.select(frame_key=key, limit=1):
            return str(row.id)
        kvp = {"settings_hash": SHA + frame.settings_hash, "elements": frame.elements,
               "frame_key": key, "engine": str(frame.calculator.get("engine", ""))}
        if frame.work_key:
            kvp["work_key"] = KEY + frame.work_key
        data = {"calculator": frame.calculator, "versions": frame.versions}
        return str(db.write(frame.atoms, key_value_pairs=kvp, data=data))

    def _query(self, elements: str | None, settings_hash: str | None) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if elements:
            q["elements"] = element_key(elements.replace(",", "-").split("-"))
        if settings_hash:
            q["settings_hash"] = SHA + settings_hash
        return q

    def select(self, elements: str | None = None,
               settings_hash: str | None = None) -> list[Frame]:
        if not self.path.exists():
            return []
        out = []
        for row in self._db().select(**self._query(elements, settings_hash)):
            atoms = row.toatoms()
            data = row.get("data", {}) or {}
            work_key = row.get("work_key")
            out.append(Frame(atoms, row.settings_hash.removeprefix(SHA),
                             dict(data.get("calculator", {})),
                             work_key.removeprefix(KEY) if work_key else None,
                             dict(data.get("versions", {})), str(row.id)))
        return out

    def count(self, elements: str | None = None, settings_hash: str | None = None) -> int:
        if not self.path.exists():
            return 0
        return int(self._db().count(**self._query(elements, settings_hash)))


def _pack(a: Any) -> dict[str, Any]:
    arr = np.ascontiguousarray(np.asarray(a, dtype="<f8"))
    return {"shape": list(arr.shape), "f8": arr.tobytes()}


def _unpack(d: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(bytes(d["f8"]), dtype="<f8").reshape(d["shape"]).copy()


class MongoFrames:
    """Frames in the collection ``interphase_frames`` of a (Mongo or mongomock) database."""

    def __init__(self, db: Any, collection: str = FRAMES_COLLECTION) -> None:
        self.coll = db[collection]
        self.coll.create_index("frame_key", unique=True)
        self.coll.create_index([("elements", 1), ("settings_hash", 1)])

    def add(self, frame: Frame) -> str:
        key = frame.frame_key
        found = self.coll.find_one({"frame_key": key}, {"_id": 1})
        if found is not None:
            return str(found["_id"])
        a = frame.atoms
        res = a.calc.results if a.calc is not None else {}
        doc: dict[str, Any] = {
            "frame_key": key, "settings_hash": frame.settings_hash, "elements": frame.elements,
            "work_key": frame.work_key, "calculator": frame.calculator,
            "versions": frame.versions, "numbers": a.numbers.tolist(),
            "pbc": a.pbc.tolist(), "fixed": fixed_indices(a), "positions": _pack(a.positions),
            "cell": _pack(a.cell[:]), "energy": float(res["energy"]),
            "free_energy": float(res.get("free_energy", res["energy"])),
            "forces": _pack(res["forces"]),
        }
        if "stress" in res:
            doc["stress"] = _pack(res["stress"])
        return str(self.coll.insert_one(doc).inserted_id)

    def _query(self, elements: str | None, settings_hash: str | None) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if elements:
            q["elements"] = element_key(elements.replace(",", "-").split("-"))
        if settings_hash:
            q["settings_hash"] = settings_hash
        return q

    def select(self, elements: str | None = None,
               settings_hash: str | None = None) -> list[Frame]:
        out = []
        for d in self.coll.find(self._query(elements, settings_hash)).sort("_id", 1):
            atoms = Atoms(numbers=d["numbers"], positions=_unpack(d["positions"]),
                          cell=_unpack(d["cell"]), pbc=d["pbc"])
            if d.get("fixed"):
                atoms.set_constraint(FixAtoms(indices=d["fixed"]))
            results = {"energy": d["energy"], "free_energy": d.get("free_energy", d["energy"]),
                       "forces": _unpack(d["forces"])}
            if "stress" in d:
                results["stress"] = _unpack(d["stress"])
            out.append(Frame(with_results(atoms, results), d["settings_hash"],
                             d.get("calculator", {}), d.get("work_key"),
                             d.get("versions", {}), str(d["_id"])))
        return out

    def count(self, elements: str | None = None, settings_hash: str | None = None) -> int:
        return int(self.coll.count_documents(self._query(elements, settings_hash)))


def frames_for_launchpad(launchpad: Any) -> FrameStore:
    """The frame store of a LaunchPad: ``frames.db`` next to an embedded store's JSON file
    (never inside it), else the ``interphase_frames`` collection of its MongoDB (``.db``)."""
    store_file = getattr(launchpad, "store_file", None)
    if store_file is not None:
        return AseDbFrames(Path(store_file).parent / FRAMES_DB)
    return MongoFrames(launchpad.db)


def open_frames(path: Path | str) -> AseDbFrames:
    """The ASE-database frame store at ``path`` (a ``.db`` file or a directory holding
    ``frames.db``)."""
    p = Path(path)
    return AseDbFrames(p if p.suffix == ".db" else p / FRAMES_DB)


class RecordingCalculator(WrappedCalculator):
    """Energy, forces (and stress when asked) of ``inner``; every finite result is added to
    the sink as a :class:`Frame` of the factory's settings."""

    def __init__(self, inner: Calculator, owner: RecordingFactory) -> None:
        super().__init__(inner)
        self.owner = owner

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        self.results = results = self.evaluate(properties)
        if np.isfinite(results["energy"]) and np.all(np.isfinite(results["forces"])):
            self.owner.store(self.atoms, results)


@dataclass(frozen=True)
class RecordingFactory(WrappingFactory):
    """``factory(atoms, attempt, label)`` whose calculators add every evaluation to ``sink``.

    ``description`` and ``paired()`` are those of the wrapped factory
    (:class:`~interphase_dft.calc.wrapped.WrappingFactory`; the paired variant records into
    the same sink and ``ids``), so checkpoint fingerprints are unchanged. ``ids`` collects the
    ids of the frames added through it.
    """

    inner: CalcFactory
    sink: FrameSink
    work_key: str | None = None
    ids: list[str] = field(default_factory=list, compare=False)

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> Calculator:
        return RecordingCalculator(self.inner(atoms, attempt=attempt, label=label), self)

    def rewrap(self, inner: CalcFactory) -> RecordingFactory:
        return replace(self, inner=inner)

    def store(self, atoms: Atoms, results: dict[str, Any]) -> str | None:
        """Add one frame (a failing store is a warning, never a failed calculation)."""
        desc = self.description
        frame = Frame(with_results(atoms, results), frame_settings_hash(desc), desc,
                      self.work_key, package_versions())
        try:
            fid = self.sink.add(frame)
        except Exception as exc:  # the calculation stands without its frame
            log.warning("frame of %s not stored: %s", atoms.get_chemical_formula(), exc)
            return None
        self.ids.append(fid)
        return fid


def recording(factory: CalcFactory, sink: FrameSink | None,
              work_key: str | None = None) -> CalcFactory:
    """``factory`` wrapped so its evaluations go to ``sink``; unchanged when ``sink`` is None.

    Wrap reference (DFT) factories only: surrogate frames are never stored.
    """
    if sink is None:
        return factory
    return RecordingFactory(factory, sink, work_key)
