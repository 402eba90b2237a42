"""Settings sensitivity of a stored barrier: its stationary images recomputed with changed
electronic settings (or a wider vacuum), the barrier metrics at both levels side by side.

Energies in eV, forces in eV/Angstrom, lengths in Angstrom.

Rules
-----
- **Stationary images**: the endpoints of every hop of the path (``segments``; the initial and
  final image for one hop) and, between each pair, the highest interior image (the climbing
  image). A hop without interior images contributes its endpoints only.
- Each stationary image is a **single point at its stored geometry** with the stored settings
  changed by ``changes`` (``dft`` fields only: nothing else acts on a single point) and,
  optionally, the cell widened along z by ``vacuum`` (atoms unchanged; slab cells only). The
  geometries are not relaxed again, so a change measures the electronic convergence of the
  energies at fixed geometry, the first-order change of the barrier. The force on each image
  at the changed settings is reported: a climbing image whose force exceeds ``neb.fmax`` there
  has moved and only a new band gives its barrier.
- **Reproduction**: the images in ``reproduce`` are also recomputed with the stored settings
  and cell; their difference from the stored energy (SCF noise, code versions) bounds which
  changes mean something.
- **Metrics** (both levels, from the stationary energies relative to the initial image):
  barrier_forward and barrier_reverse as energetic spans (:mod:`interphase_dft.span`), the
  reaction energy, E_KRA = E_saddle - (E_initial + E_final)/2 with the highest interior
  stationary image as the saddle, and that image's index.
- Every single point is a checkpointed :func:`~interphase_dft.calc.runners.static` under
  ``workdir``, labelled by the changes: an interrupted check resumes, a different change
  starts its own files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from ase import Atoms

from interphase_dft.calc.checkpoint import info
from interphase_dft.calc.settings import CalcSettings, flatten
from interphase_dft.errors import InputError
from interphase_dft.schemas import BarrierDoc
from interphase_dft.span import span_barriers

log = logging.getLogger(__name__)

#: settings groups a single point depends on
SINGLE_POINT_GROUPS = ("dft",)

#: ``factory_of(settings) -> calculator factory`` (GPAW from the document's calculator)
FactoryOf = Callable[[CalcSettings], Any]


@dataclass
class Level:
    """Energies (absolute, eV) and forces (eV/A) of the stationary images at one level, and
    the barrier metrics they give."""

    energies: dict[int, float]
    fmax: dict[int, float | None]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sensitivity:
    """The check of one document: what changed, the stationary images and their roles, the
    stored and the changed level, the metric changes and the reproduction differences."""

    uid: str
    interface: str
    mechanism: str
    changes: dict[str, list[Any]]
    vacuum_added: float
    images: list[int]
    roles: dict[int, str]
    stored: Level
    changed: Level
    change: dict[str, float | None]
    reproduce: dict[int, dict[str, float]]
    neb_fmax: float
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (image indices as string keys)."""
        out = asdict(self)
        for key in ("roles", "reproduce"):
            out[key] = {str(k): v for k, v in out[key].items()}
        for level in ("stored", "changed"):
            for key in ("energies", "fmax"):
                out[level][key] = {str(k): v for k, v in out[level][key].items()}
        out["kind"] = "sensitivity"
        out["rule"] = ("single points at the stored geometries (not relaxed again) with the "
                       "changed settings; metrics from the stationary images")
        return out


def changed_settings(stored: CalcSettings, overrides: dict[str, Any]
                     ) -> tuple[CalcSettings, dict[str, list[Any]]]:
    """The stored settings with ``overrides`` applied and ``{dotted key: [old, new]}`` of what
    really changed.

    Raises
    ------
    InputError : an override outside ``dft`` (it cannot change a single point).
    """
    outside = [k for k in flatten(overrides) if k.split(".")[0] not in SINGLE_POINT_GROUPS]
    if outside:
        raise InputError(f"{', '.join(outside)}: a single point at a stored geometry depends on "
                         "the dft settings only; change dft.* (e.g. dft.ecut=400, "
                         "dft.kpt_density=3.0) or widen the vacuum (--vacuum)")
    new = stored.with_overrides(overrides)
    old_flat, new_flat = flatten(stored.model_dump()), flatten(new.model_dump())
    changes = {k: [old_flat.get(k), v] for k, v in new_flat.items() if old_flat.get(k) != v}
    return new, changes


def stationary_images(doc: BarrierDoc) -> tuple[list[int], dict[int, str]]:
    """Indices of the stationary images of ``doc`` and their roles (module rules)."""
    n = len(doc.images)
    if n < 2:
        raise InputError(f"{doc.interface} ({doc.mechanism}) has {n} image(s): no band to check; "
                         "only a barrier document with a computed band can be checked")
    bounds = sorted({i for s in doc.segments for i in s["images"]} | {0, n - 1})
    roles = {i: "minimum" for i in bounds}
    roles[0], roles[n - 1] = "initial", "final"
    for lo, hi in pairwise(bounds):
        if hi - lo > 1:
            top = max(range(lo + 1, hi), key=lambda i: doc.images[i].energy)
            roles[top] = "saddle"
    return sorted(roles), roles


def metrics(energies: dict[int, float], roles: dict[int, str]) -> dict[str, Any]:
    """Barrier metrics of the stationary energies (module rules), relative to the initial."""
    order = sorted(energies)
    e0 = energies[order[0]]
    rel = [energies[i] - e0 for i in order]
    forward, reverse = span_barriers(rel)
    saddles = [i for i in order if roles[i] == "saddle"]
    out: dict[str, Any] = {"relative": {str(i): r for i, r in zip(order, rel, strict=True)},
                           "barrier_forward": forward, "barrier_reverse": reverse,
                           "reaction_energy": rel[-1], "e_kra": None, "saddle_image": None}
    if saddles:
        top = max(saddles, key=lambda i: energies[i])
        out["saddle_image"] = top
        out["e_kra"] = energies[top] - e0 - rel[-1] / 2
    return out


def widen(atoms: Atoms, vacuum: float) -> Atoms:
    """Copy of a slab cell with its third cell vector ``vacuum`` Angstrom longer (atoms fixed).

    Raises
    ------
    InputError : a cell periodic along z (no vacuum to widen) or a negative ``vacuum``.
    """
    if vacuum < 0:
        raise InputError(f"vacuum {vacuum} A: give the Angstrom to add (>= 0)")
    out = atoms.copy()
    if vacuum == 0:
        return out
    if out.pbc[2]:
        raise InputError("the document's cell is periodic along z (a bulk hop): it has no "
                         "vacuum to widen; leave --vacuum out")
    cell = out.cell.copy()
    cell[2] = cell[2] * (1 + vacuum / cell.lengths()[2])
    out.set_cell(cell, scale_atoms=False)
    return out


def tag(changes: dict[str, list[Any]], vacuum: float) -> str:
    """Short label of a check (its checkpoint files): a hash of the changes and the vacuum."""
    text = json.dumps({"changes": changes, "vacuum": vacuum}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def settings_sensitivity(doc: BarrierDoc, overrides: dict[str, Any], factory_of: FactoryOf,
                         workdir: Path | str, *, vacuum: float = 0.0,
                         reproduce: Sequence[int] = (0,)) -> Sensitivity:
    """Recompute the stationary images of ``doc`` with changed settings (module rules).

    Parameters
    ----------
    doc : a barrier document with its images (any status)
    overrides : nested ``dft`` overrides, e.g. ``{'dft': {'ecut': 400}}``
    factory_of : the document's calculator factory for given settings
    workdir : checkpoint directory (created)
    vacuum : Angstrom added to the cell along z (slab cells)
    reproduce : images also recomputed with the stored settings and cell

    Raises
    ------
    InputError : no band, an override outside ``dft``, nothing changed, a bad image index.
    """
    from interphase_dft.calc.runners import static

    stored_settings = CalcSettings.model_validate(doc.settings)
    settings, changes = changed_settings(stored_settings, overrides)
    if not changes and vacuum == 0:
        raise InputError("nothing to check: the overrides equal the stored settings and no "
                         "vacuum is added; give --set dft.KEY=VALUE or --vacuum")
    images, roles = stationary_images(doc)
    bad = [i for i in reproduce if not 0 <= i < len(doc.images)]
    if bad:
        raise InputError(f"images {bad} to reproduce are not in the band (0 to "
                         f"{len(doc.images) - 1})")
    work, label = Path(workdir), tag(changes, vacuum)
    factory, stored_factory = factory_of(settings), factory_of(stored_settings)
    energies: dict[int, float] = {}
    fmax: dict[int, float | None] = {}
    for k, i in enumerate(images, start=1):
        info(log, "sensitivity %s: image %d (%s), %d of %d", label, i, roles[i], k, len(images))
        atoms = widen(doc.images[i].structure.to_atoms(), vacuum)
        r = static(atoms, factory, work, label=f"{label}-img{i}")
        energies[i], fmax[i] = r.energy, r.fmax
    repro: dict[int, dict[str, float]] = {}
    for i in reproduce:
        info(log, "sensitivity: image %d with the stored settings", i)
        r = static(doc.images[i].structure.to_atoms(), stored_factory, work,
                   label=f"stored-img{i}")
        repro[i] = {"stored": doc.images[i].energy, "fresh": r.energy,
                    "difference": r.energy - doc.images[i].energy}
    stored = Level({i: doc.images[i].energy for i in images},
                   {i: doc.images[i].fmax for i in images})
    stored.metrics = metrics(stored.energies, roles)
    changed = Level(energies, fmax)
    changed.metrics = metrics(energies, roles)
    delta = {k: _difference(changed.metrics[k], stored.metrics[k])
             for k in ("barrier_forward", "barrier_reverse", "reaction_energy", "e_kra")}
    neb_fmax = stored_settings.neb.fmax
    warnings = [f"image {i} ({roles[i]}): force {fmax[i]:.3f} eV/A at the changed settings "
                f"(stored {_force(stored.fmax[i])}) > neb.fmax {neb_fmax}: its geometry is "
                "not stationary there; only a new band gives that level's barrier"
                for i in images if fmax[i] is not None and fmax[i] > neb_fmax]
    return Sensitivity(doc.uid, doc.interface, doc.mechanism, changes, vacuum, images, roles,
                       stored, changed, delta, repro, neb_fmax, warnings)


def document_factory(doc: BarrierDoc, txt: str | None = None) -> FactoryOf:
    """``factory_of(settings)``: the calculator of ``doc`` (its phases, mechanism, charge, spin
    and engine) with other settings; GPAW text output to ``txt``.

    Raises
    ------
    InputError : the calculator this code builds for the document's hop differs from the one
        the document records (another charge or smearing treatment: a code version that
        computed it differently), or the document is not from GPAW.
    """
    from interphase_dft.calc.factory import factory_for
    from interphase_dft.recipes.barrier import hop_options

    calc = doc.calculator
    if calc.get("engine") != "gpaw":
        raise InputError(f"{doc.interface} ({doc.mechanism}) was computed with engine "
                         f"{calc.get('engine')!r}; the sensitivity check recomputes GPAW "
                         "documents only")
    opts = hop_options(doc.phase_a, doc.phase_b, doc.mechanism)
    extra = dict(opts.calc_extra or {})
    built = {"extra": extra, "is_metal": opts.is_metal, "li_inserted": opts.li_inserted}
    stored = {"extra": dict(calc.get("extra") or {}), "is_metal": calc.get("is_metal"),
              "li_inserted": calc.get("li_inserted")}
    if stored != built:
        raise InputError(f"{doc.interface} ({doc.mechanism}): the document's calculator "
                         f"{stored} is not the one this version builds for that hop {built}; "
                         "recompute the barrier with this version first")
    spin = str(calc.get("spin", "")).startswith("spin-polarised")

    def factory_of(settings: CalcSettings) -> Any:
        return factory_for(settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
                           spin=spin, txt=txt, extra=extra, li_inserted=opts.li_inserted)

    return factory_of


def _force(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} eV/A"


def _difference(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def format_sensitivity(s: Sensitivity) -> str:
    """Readable summary: the changes, each stationary image, the metrics side by side."""
    what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in s.changes.items())
    if s.vacuum_added:
        what = ", ".join(x for x in (what, f"vacuum +{s.vacuum_added:g} A") if x)
    lines = [f"Settings sensitivity of {s.interface} ({s.mechanism}): {what}",
             f"  {'image':>5}  {'role':<8}{'stored (eV)':>12}{'changed (eV)':>14}"
             f"{'change':>9}{'force':>8}"]
    rel_s, rel_c = s.stored.metrics["relative"], s.changed.metrics["relative"]
    for i in s.images:
        force = s.changed.fmax[i]
        lines.append(f"  {i:>5}  {s.roles[i]:<8}{rel_s[str(i)]:>12.4f}{rel_c[str(i)]:>14.4f}"
                     f"{rel_c[str(i)] - rel_s[str(i)]:>+9.4f}"
                     f"{_force(force).removesuffix(' eV/A'):>8}")
    for key in ("barrier_forward", "barrier_reverse", "reaction_energy", "e_kra"):
        a, b, d = s.stored.metrics[key], s.changed.metrics[key], s.change[key]
        if a is not None and b is not None and d is not None:
            lines.append(f"  {key:<16} {a:.4f} -> {b:.4f} eV ({d:+.4f})")
    for i, r in s.reproduce.items():
        lines.append(f"  image {i} with the stored settings: {r['fresh']:.4f} eV, stored "
                     f"{r['stored']:.4f} eV ({r['difference']:+.4f})")
    lines += [f"  warning: {w}" for w in s.warnings]
    return "\n".join(lines)
