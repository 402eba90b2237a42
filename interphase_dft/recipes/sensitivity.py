"""Settings sensitivity of a certified barrier: its stationary images recomputed with changed
electronic settings (or a wider vacuum), the barrier metrics at both settings side by side.

Energies in eV, forces in eV/Angstrom, lengths in Angstrom.

Rules
-----
- Only a **certified barrier** (status ``saddle``) is checked: it has relaxed endpoints and a
  converged climbing image per hop, so its stationary images are known.
- **Stationary images**: the ends of every hop of the path (``segments``: ``[lo, hi]`` pairs
  that meet end to end from the first to the last image; the whole band for one hop) and each
  hop's saddle, its highest interior image (above both ends of its hop: the certification).
- Each stationary image is a **single point at its stored geometry** with the stored settings
  changed by ``overrides`` (``dft`` fields that act on a single point, and
  ``structure.interface_density_mesh``, the k-mesh rule of interface cells) and, optionally, the
  cell widened by ``vacuum`` along z, half below and half above the atoms (the atoms keep
  their relative positions). The geometries are not relaxed again, so the change is the
  first-order change of the barrier at fixed geometry. The force on each image at the changed
  settings is reported; a saddle above ``neb.fmax`` or a minimum above ``relax.fmax`` there
  has moved (``moved``), and a saddle that falls below an end of its hop is no saddle at that
  setting: only a new band gives that setting's barrier.
- The cells keep the document's electronic state: its charge (V_Li^-, Li_i^+ or neutral with
  a metal side) and smearing, as :func:`interphase_dft.recipes.barrier.hop_options` builds
  them; those hops are closed-shell or metallic, so no moment is seeded.
- **Reproduction**: the images in ``reproduce`` (default: the initial image and the highest
  saddle) are recomputed with the stored settings and cell; the largest change of an energy
  relative to the initial image is the noise floor of the changes.
- **Metrics** (relative to the initial image): barrier_forward and barrier_reverse as
  energetic spans (:mod:`interphase_dft.span`), the reaction energy and E_KRA =
  E_saddle - (E_initial + E_final)/2 with the highest saddle.
- A change the document's cells do not feel is no change: ``dft.gamma_only_atoms`` where
  the density mesh applies at both settings, ``structure.interface_density_mesh`` on a bulk
  hop (:func:`changed_settings`).
- Every single point is a checkpointed :func:`~interphase_dft.calc.runners.static` under
  ``workdir``, labelled by the document and the changes: an interrupted check resumes, and
  another document or change in the same directory gets its own files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from ase import Atoms
from pydantic import ValidationError

from interphase_dft.barrier_status import SADDLE
from interphase_dft.calc.checkpoint import info
from interphase_dft.calc.settings import CalcSettings, flatten
from interphase_dft.errors import InputError
from interphase_dft.schemas import BarrierDoc, settings_hash
from interphase_dft.span import span_barriers

log = logging.getLogger(__name__)

#: settings a single point of a hop cell does not read
NO_EFFECT = ("dft.atom_box",)
#: the one setting outside ``dft`` a single point reads (the k-mesh rule of interface cells)
MESH_RULE = "structure.interface_density_mesh"

#: ``factory_of(settings) -> calculator factory`` with the document's calculator options
FactoryOf = Callable[[CalcSettings], Any]


@dataclass
class Stationary:
    """The stationary images of a band: their indices, roles ('initial', 'saddle',
    'minimum', 'final') and hops (``(lo, saddle, hi)`` image triples)."""

    indices: list[int]
    roles: dict[int, str]
    hops: list[tuple[int, int, int]]


@dataclass
class Energies:
    """Energies (absolute, eV) and largest forces (eV/A) of the stationary images at one
    setting, and the metrics they give (:func:`metrics`)."""

    energy: dict[int, float]
    fmax: dict[int, float | None]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sensitivity:
    """The check of one certified barrier: what changed, its stationary images, the stored
    and the checked energies, the metric differences (checked - stored), the reproduction of
    stored energies, and the images whose geometry is not stationary at the checked setting."""

    uid: str
    interface: str
    mechanism: str
    check: str
    changes: dict[str, list[Any]]
    vacuum_added: float
    stationary: Stationary
    stored: Energies
    checked: Energies
    delta: dict[str, float | None]
    reproduced: dict[int, dict[str, float]]
    moved: list[int]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (image indices as string keys)."""
        out = _str_keys(asdict(self))
        out["kind"] = "sensitivity"
        out["rule"] = ("single points at the stored geometries (not relaxed again) with the "
                       "changed settings; metrics from the stationary images")
        return out


def _str_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_str_keys(v) for v in value]
    return value


def is_interface(doc: BarrierDoc) -> bool:
    """True for an A|B hop, False for a bulk hop (the k-mesh rule differs): the phases'
    canonical names differ (the rule of :func:`~interphase_dft.recipes.barrier.hop_options`;
    unlike it, this never fails on a document's mechanism)."""
    from interphase_dft.phases import resolve_phase

    return resolve_phase(doc.phase_a) != resolve_phase(doc.phase_b)


def stored_settings(doc: BarrierDoc) -> CalcSettings:
    """The settings stored with ``doc``.

    Raises
    ------
    InputError : settings this version cannot read (a document of another version).
    """
    try:
        return CalcSettings.model_validate(doc.settings)
    except ValidationError as exc:
        first = str(exc).splitlines()[1] if len(str(exc).splitlines()) > 1 else str(exc)
        raise InputError(f"{doc.interface} ({doc.mechanism}): its stored settings are not "
                         f"readable by this version ({first}); recompute the barrier with this "
                         "version first") from None


def changed_settings(stored: CalcSettings, overrides: dict[str, Any], *,
                     interface: bool = True) -> tuple[CalcSettings, dict[str, list[Any]]]:
    """The stored settings with ``overrides`` applied and ``{dotted key: [old, new]}`` of what
    really changed for the cells of a hop (``interface``: an A|B hop, else a bulk hop); a
    change those cells do not feel is left out (module rules).

    Raises
    ------
    InputError : an override outside ``dft`` (other than :data:`MESH_RULE`) or one a single
        point does not read.
    """
    keys = list(flatten(overrides))
    outside = [k for k in keys
               if (k.split(".")[0] != "dft" and k != MESH_RULE) or k in NO_EFFECT]
    if outside:
        raise InputError(f"{', '.join(outside)}: a single point of the hop's cells reads only "
                         f"the dft settings (not dft.atom_box) and {MESH_RULE}; change those "
                         "(e.g. dft.ecut=400, dft.kpt_density=3.0) or widen the vacuum "
                         "(--vacuum)")
    new = stored.with_overrides(overrides)
    old_flat, new_flat = flatten(stored.model_dump()), flatten(new.model_dump())
    inert = set() if interface else {MESH_RULE}
    if interface and stored.structure.interface_density_mesh \
            and new.structure.interface_density_mesh:
        inert.add("dft.gamma_only_atoms")
    changes = {k: [old_flat.get(k), v] for k, v in new_flat.items()
               if old_flat.get(k) != v and k not in inert}
    return new, changes


def check_text(changes: dict[str, list[Any]], vacuum: float,
               meshes: tuple[Sequence[int], Sequence[int]] | None = None) -> str:
    """``'dft.ecut 300.0 -> 400.0, vacuum +5 A'``, and the k-point meshes of the initial
    image when they differ (``meshes``: stored, checked)."""
    parts = [f"{k} {a} -> {b}" for k, (a, b) in changes.items()]
    if vacuum:
        parts.append(f"vacuum +{vacuum:g} A")
    if meshes is not None and tuple(meshes[0]) != tuple(meshes[1]):
        parts.append("k-points " + " -> ".join("x".join(map(str, m)) for m in meshes))
    return ", ".join(parts)


def mesh(atoms: Atoms, settings: CalcSettings, *, interface: bool = True
         ) -> tuple[int, int, int]:
    """The k-point mesh GPAW gets for ``atoms`` of a hop (``interface``: an A|B hop, whose
    cells take the density mesh at every size under ``structure.interface_density_mesh``)
    with ``settings``."""
    from interphase_dft.calc.factory import density_mesh, kpoint_mesh

    every_size = interface and settings.structure.interface_density_mesh
    cell = density_mesh(atoms.copy()) if every_size else atoms
    return kpoint_mesh(cell, settings.dft.kpt_density, settings.dft.gamma_only_atoms)


def stationary_images(doc: BarrierDoc) -> Stationary:
    """The stationary images of a certified barrier (module rules).

    Raises
    ------
    InputError : not a certified barrier, or segments that do not tile the band, or a hop
        whose highest interior image is not above both of its ends.
    """
    if doc.saddle != SADDLE:
        raise InputError(f"{doc.interface} ({doc.mechanism}) is not a certified barrier "
                         f"(status {doc.saddle!r}): only a band with relaxed endpoints and a "
                         "converged climbing image has stationary images to check")
    n = len(doc.images)
    spans = [tuple(s.get("images", ())) for s in doc.segments] or [(0, n - 1)]
    ends = [b for _, b in spans[:-1]]
    if (any(len(s) != 2 or not 0 <= s[0] < s[1] <= n - 1 for s in spans)
            or spans[0][0] != 0 or spans[-1][1] != n - 1
            or any(a[1] != b[0] for a, b in pairwise(spans))):
        raise InputError(f"{doc.interface} ({doc.mechanism}): segments {spans} do not tile the "
                         f"band of {n} images end to end; the document is damaged, recompute it")
    e = [im.energy for im in doc.images]
    roles = {0: "initial", n - 1: "final", **{i: "minimum" for i in ends}}
    hops = []
    for lo, hi in spans:
        top = max(range(lo + 1, hi), key=lambda i: e[i], default=None)
        if top is None or e[top] <= max(e[lo], e[hi]):
            raise InputError(f"{doc.interface} ({doc.mechanism}): the hop of images {lo}-{hi} "
                             "has no interior image above both of its ends, yet the document "
                             "is certified; the document is damaged, recompute it")
        roles[top] = "saddle"
        hops.append((lo, top, hi))
    return Stationary(sorted(roles), roles, hops)


def metrics(energy: dict[int, float], st: Stationary) -> dict[str, Any]:
    """Barrier metrics of the stationary energies (module rules), relative to the initial
    image; ``lost_saddles``: hops whose saddle is not above both of its ends."""
    e0 = energy[st.indices[0]]
    rel = {i: energy[i] - e0 for i in st.indices}
    forward, reverse = span_barriers([rel[i] for i in st.indices])
    top = max((s for _, s, _ in st.hops), key=lambda i: rel[i])
    reaction = rel[st.indices[-1]]
    return {"relative": rel, "barrier_forward": forward, "barrier_reverse": reverse,
            "reaction_energy": reaction, "e_kra": rel[top] - reaction / 2,
            "saddle_image": top,
            "lost_saddles": [s for lo, s, hi in st.hops if rel[s] <= max(rel[lo], rel[hi])]}


def widen(atoms: Atoms, vacuum: float) -> Atoms:
    """Copy of a slab cell ``vacuum`` Angstrom longer along z, half of it below the atoms
    (their relative positions unchanged)."""
    out = atoms.copy()
    if vacuum:
        cell = out.cell.copy()
        cell[2] = cell[2] * (1 + vacuum / cell[2][2])  # z component grows by vacuum
        out.set_cell(cell, scale_atoms=False)
        out.translate(cell[2] / cell[2][2] * vacuum / 2)
    return out


def check_vacuum(doc: BarrierDoc, vacuum: float) -> None:
    """Raise :class:`InputError` for a negative vacuum or one added to a cell periodic along
    z (a bulk hop has no vacuum)."""
    if vacuum < 0:
        raise InputError(f"vacuum {vacuum} A: give the Angstrom to add (>= 0)")
    if vacuum and any(im.structure.to_atoms().pbc[2] for im in doc.images):
        raise InputError("the document's cells are periodic along z (a bulk hop): they have "
                         "no vacuum to widen; leave --vacuum out")


def tag(uid: str, changes: dict[str, list[Any]], vacuum: float) -> str:
    """Checkpoint label of a check: the document's uid and a hash of the changes."""
    return f"{uid[:8]}-{settings_hash({'changes': changes, 'vacuum': vacuum})[:8]}"


def settings_sensitivity(doc: BarrierDoc, overrides: dict[str, Any], factory_of: FactoryOf,
                         workdir: Path | str, *, vacuum: float = 0.0,
                         reproduce: Sequence[int] | None = None) -> Sensitivity:
    """Recompute the stationary images of the certified barrier ``doc`` with changed
    settings (module rules).

    Parameters
    ----------
    doc : a certified barrier document
    overrides : nested ``dft`` overrides, e.g. ``{'dft': {'ecut': 400}}``
    factory_of : the document's calculator factory for given settings
    workdir : checkpoint directory (created)
    vacuum : Angstrom added to the cell along z (slab cells)
    reproduce : images also recomputed with the stored settings and cell (None: the initial
        image and the highest saddle)

    Raises
    ------
    InputError : not a certified barrier, an override outside ``dft``, nothing changed, a bad
        image index or vacuum; raised before any calculation.
    """
    from interphase_dft.calc.runners import static

    before = stored_settings(doc)
    interface = is_interface(doc)
    settings, changes = changed_settings(before, overrides, interface=interface)
    if not changes and vacuum == 0:
        raise InputError("nothing to check: the overrides equal the stored settings and no "
                         "vacuum is added; give --set dft.KEY=VALUE or --vacuum")
    check_vacuum(doc, vacuum)
    st = stationary_images(doc)
    stored = Energies({i: doc.images[i].energy for i in st.indices},
                      {i: doc.images[i].fmax for i in st.indices})
    stored.metrics = metrics(stored.energy, st)
    again = [0, stored.metrics["saddle_image"]] if reproduce is None else list(reproduce)
    bad = [i for i in again if not 0 <= i < len(doc.images)]
    if bad:
        raise InputError(f"images {bad} to reproduce are not in the band (0 to "
                         f"{len(doc.images) - 1})")
    work, label = Path(workdir), tag(doc.uid, changes, vacuum)
    factory, stored_factory = factory_of(settings), factory_of(before)
    checked = Energies({}, {})
    for k, i in enumerate(st.indices, start=1):
        info(log, "sensitivity %s: image %d (%s), %d of %d", label, i, st.roles[i], k,
             len(st.indices))
        atoms = widen(doc.images[i].structure.to_atoms(), vacuum)
        r = static(atoms, factory, work, label=f"{label}-img{i}")
        checked.energy[i], checked.fmax[i] = r.energy, r.fmax
    checked.metrics = metrics(checked.energy, st)
    fresh = {}
    for i in again:
        info(log, "sensitivity %s: image %d with the stored settings", label, i)
        fresh[i] = static(doc.images[i].structure.to_atoms(), stored_factory, work,
                          label=f"{doc.uid[:8]}-stored-img{i}").energy
    delta = {k: checked.metrics[k] - stored.metrics[k]
             for k in ("barrier_forward", "barrier_reverse", "reaction_energy", "e_kra")}
    moved, warnings = _moved(st, stored, checked, before)
    first = doc.images[0].structure.to_atoms()
    meshes = (mesh(first, before, interface=interface),
              mesh(widen(first, vacuum), settings, interface=interface))
    return Sensitivity(doc.uid, doc.interface, doc.mechanism,
                       check_text(changes, vacuum, meshes), changes, vacuum, st, stored,
                       checked, delta,
                       _reproduced(doc, fresh), moved, warnings)


def _reproduced(doc: BarrierDoc, fresh: dict[int, float]) -> dict[int, dict[str, float]]:
    """Per recomputed image: stored and fresh energies, their difference and, when the
    initial image was recomputed too, the difference of the energy relative to it."""
    out = {}
    for i, e in fresh.items():
        row = {"stored": doc.images[i].energy, "fresh": e,
               "difference": e - doc.images[i].energy}
        if 0 in fresh:
            row["relative_difference"] = row["difference"] - (fresh[0] - doc.images[0].energy)
        out[i] = row
    return out


def _moved(st: Stationary, stored: Energies, checked: Energies, settings: CalcSettings
           ) -> tuple[list[int], list[str]]:
    """Images not stationary at the checked setting, and the warnings that say so."""
    moved, warnings = [], []
    for i in st.indices:
        limit = settings.neb.fmax if st.roles[i] == "saddle" else settings.relax.fmax
        force = checked.fmax[i]
        if force is not None and force > limit:
            moved.append(i)
            warnings.append(f"image {i} ({st.roles[i]}): force {force:.3f} eV/A at the checked "
                            f"setting (stored {_force(stored.fmax[i])}) > {limit}: its "
                            "geometry is not stationary there")
    for s in checked.metrics["lost_saddles"]:
        warnings.append(f"image {s}: at the checked setting it is not above both ends of its "
                        "hop, so that hop has no saddle there")
    if moved or checked.metrics["lost_saddles"]:
        warnings.append("only a new band gives the checked setting's barrier; the changes "
                        "here are those at fixed geometry")
    return moved, warnings


def _force(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def document_factory(doc: BarrierDoc, txt: str | None = None) -> FactoryOf:
    """The calculator of ``doc`` (its phases, mechanism, charge and engine) for given
    settings, GPAW text output to ``txt``.

    Raises
    ------
    InputError : a document not computed with GPAW, or whose calculator differs from the one
        this code builds for its hop (another charge or smearing treatment, e.g. the earlier
        neutral, spin-polarised Li between insulators).
    """
    from interphase_dft.calc.factory import factory_for
    from interphase_dft.recipes.barrier import density_mesh_for, hop_options

    calc = doc.calculator
    if calc.get("engine") != "gpaw":
        what = f"engine {calc['engine']!r}" if calc.get("engine") else "no recorded calculator"
        raise InputError(f"{doc.interface} ({doc.mechanism}) has {what}; the sensitivity check "
                         "recomputes documents computed with GPAW only")
    opts = hop_options(doc.phase_a, doc.phase_b, doc.mechanism)
    extra = dict(opts.calc_extra or {})
    built = {"extra": extra, "is_metal": opts.is_metal, "li_inserted": opts.li_inserted}
    recorded = {"extra": dict(calc.get("extra") or {}), "is_metal": calc.get("is_metal"),
                "li_inserted": calc.get("li_inserted")}
    if recorded != built:
        raise InputError(f"{doc.interface} ({doc.mechanism}): the document's calculator "
                         f"{recorded} is not the one this version builds for that hop {built}; "
                         "recompute the barrier with this version first")
    def factory_of(settings: CalcSettings) -> Any:
        # hop_options builds closed-shell (charged) or metallic hops only: spin-paired
        return factory_for(settings, is_metal=opts.is_metal, dispersion=opts.dispersion,
                           spin=False, txt=txt, extra=extra, li_inserted=opts.li_inserted,
                           density_mesh=density_mesh_for(settings, opts))

    return factory_of


def format_sensitivity(s: Sensitivity) -> str:
    """Readable summary: the change, each stationary image, the metrics side by side."""
    lines = [f"Settings sensitivity of {s.interface} ({s.mechanism}): {s.check}",
             f"  {'image':>5}  {'role':<8}{'stored (eV)':>12}{'checked (eV)':>14}"
             f"{'change':>9}{'force':>8}"]
    rel_s, rel_c = s.stored.metrics["relative"], s.checked.metrics["relative"]
    for i in s.stationary.indices:
        lines.append(f"  {i:>5}  {s.stationary.roles[i]:<8}{rel_s[i]:>12.4f}{rel_c[i]:>14.4f}"
                     f"{rel_c[i] - rel_s[i]:>+9.4f}{_force(s.checked.fmax[i]):>8}")
    for key, d in s.delta.items():
        if d is not None:
            lines.append(f"  {key:<16} {s.stored.metrics[key]:.4f} -> "
                         f"{s.checked.metrics[key]:.4f} eV ({d:+.4f})")
    for i, r in s.reproduced.items():
        rel = r.get("relative_difference")
        lines.append(f"  image {i} with the stored settings: {r['fresh']:.4f} eV, stored "
                     f"{r['stored']:.4f} eV ({r['difference']:+.4f}"
                     + (f"; relative to image 0 {rel:+.4f})" if rel is not None else ")"))
    lines += [f"  warning: {w}" for w in s.warnings]
    return "\n".join(lines)
