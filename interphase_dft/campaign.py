"""Campaign specs: the YAML file users edit and submit (``workflows/*.yaml``).

A spec is validated completely, with the line of every problem, before anything is
submitted::

    name: laptop
    preset: laptop              # test | laptop | production
    overrides: {dft: {ecut: 350}}
    binding:
      phases: [Al, LiAl, LPSC]
      modes: [surface]          # surface | bulk
    barriers:
      - {a: LiAl, b: LPSC, mechanism: vacancy}   # vacancy (default) | interstitial
    analysis: true

:meth:`CampaignSpec.work` turns a spec into its list of :class:`WorkItem` (kind, parameters,
the exact :class:`CalcSettings`, one ``work_key``), computed once; submission, status, results
and the report's "missing" list all read that list. Every phase of a barrier also gets its
bulk reference hop (kind ``bulk_barrier``, once per phase). No FireWorks import here: the
spec, its settings and the work keys are engine-agnostic.

Work keys hash the kind, the parameters and :meth:`CalcSettings.physics` (the settings
without ``budget``): a larger cost ceiling is the same work and continues it. A barrier's
parameters always include its mechanism: the default (vacancy) is not the interface model
computed before mechanisms existed, so its key must differ from that model's key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from interphase_dft.calc.presets import PRESETS, preset
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.errors import InputError
from interphase_dft.schemas import settings_hash

MODES = ("surface", "bulk")
WorkKind = Literal["references", "binding", "barrier", "bulk_barrier"]
#: kinds of work whose document is a result of the campaign (the references are a prerequisite)
RESULT_KINDS: tuple[WorkKind, ...] = ("binding", "barrier", "bulk_barrier")
DEFAULT_MECHANISM = "vacancy"
TOP_KEYS = {"name": True, "preset": True, "overrides": False, "binding": False,
            "barriers": False, "analysis": False}


@dataclass(frozen=True)
class BarrierSpec:
    """One interface A|B whose Li migration barrier is computed by ``mechanism``."""

    a: str
    b: str
    mechanism: str = DEFAULT_MECHANISM

    @property
    def interface(self) -> str:
        return f"{self.a}|{self.b}"


@dataclass(frozen=True, eq=False)
class WorkItem:
    """One unit of work of a campaign: what to compute, with exactly which settings.

    ``work_key`` identifies it everywhere: the firework that computes it, the document that
    stores its result, the report's list of missing results.
    """

    kind: WorkKind
    params: dict[str, str]
    settings: CalcSettings
    work_key: str

    @classmethod
    def create(cls, kind: WorkKind, settings: CalcSettings, **params: str) -> WorkItem:
        """The item of ``kind`` with ``params``; its key from :func:`work_key`."""
        return cls(kind, dict(params), settings, work_key(kind, settings, **params))

    @property
    def name(self) -> str:
        """Name: ``binding:Al:bulk``, ``barrier:LiAl|LPSC``, ``prepare:references``."""
        if self.kind == "binding":
            return f"binding:{self.params['phase']}:{self.params['mode']}"
        if self.kind == "barrier":
            p = self.params
            return f"barrier:{p['phase_a']}|{p['phase_b']}:{p['mechanism']}"
        if self.kind == "bulk_barrier":
            return f"bulk_barrier:{self.params['phase']}"
        return "prepare:references"

    @property
    def is_result(self) -> bool:
        """True for the campaign's results (binding, barriers), False for prerequisites."""
        return self.kind in RESULT_KINDS


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign (see module docstring)."""

    name: str
    preset: str  # a key of calc.presets.PRESETS (checked by parse_spec)
    overrides: dict[str, Any] = field(default_factory=dict)
    phases: tuple[str, ...] = ()
    modes: tuple[str, ...] = ("surface",)
    barriers: tuple[BarrierSpec, ...] = ()
    analysis: bool = True
    source: str = "<spec>"
    pinned_settings: dict[str, Any] | None = field(default=None, repr=False)

    def settings(self) -> CalcSettings:
        """The :class:`CalcSettings` every calculation of this campaign uses: the preset with
        the overrides, or the settings pinned when the campaign was submitted."""
        if self.pinned_settings is not None:
            return CalcSettings.model_validate(self.pinned_settings)
        return preset(self.preset, self.overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form with the settings pinned (what a queued job carries)."""
        return {"name": self.name, "preset": self.preset, "overrides": self.overrides,
                "phases": list(self.phases), "modes": list(self.modes),
                "barriers": [[b.a, b.b, b.mechanism] for b in self.barriers],
                "analysis": self.analysis,
                "source": self.source, "settings": self.settings().model_dump(mode="json")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignSpec:
        """The spec of :meth:`to_dict`, computing with its pinned settings."""
        return cls(name=data["name"], preset=data["preset"], overrides=data["overrides"],
                   phases=tuple(data["phases"]), modes=tuple(data["modes"]),
                   barriers=tuple(BarrierSpec(*b) for b in data["barriers"]),
                   analysis=data["analysis"], source=data["source"],
                   pinned_settings=data["settings"])

    def work(self) -> tuple[WorkItem, ...]:
        """Every unit of work of the campaign: the Li references first, then the binding
        energies (phase x mode, spec order), the barriers (spec order) and the bulk reference
        hops of the barriers' phases (first appearance order). Computed once."""
        return self._work

    @cached_property
    def _work(self) -> tuple[WorkItem, ...]:
        s = self.settings()
        items = [WorkItem.create("references", s)]
        items += [WorkItem.create("binding", s, phase=p, mode=m)
                  for p in self.phases for m in self.modes]
        items += [WorkItem.create("barrier", s, phase_a=b.a, phase_b=b.b, mechanism=b.mechanism)
                  for b in self.barriers]
        items += [WorkItem.create("bulk_barrier", s, phase=p) for p in self.bulk_phases()]
        return tuple(items)

    def bulk_phases(self) -> tuple[str, ...]:
        """The phases of the barriers, each once (their bulk reference hops)."""
        return tuple(dict.fromkeys(p for b in self.barriers for p in (b.a, b.b)))

    def results(self) -> tuple[WorkItem, ...]:
        """The work items whose documents are the campaign's results (no references)."""
        return tuple(w for w in self._work if w.is_result)


def work_key(kind: str, settings: CalcSettings, **params: str) -> str:
    """Deterministic key of one unit of work: kind + inputs + settings hash (hex, 64 chars).

    Identical work (same phase/interface, same physics settings) has the same key, so a
    resubmitted campaign finds finished results instead of recomputing them. The cost
    ceilings (``settings.budget``) are not part of it (:meth:`CalcSettings.physics`).
    """
    payload = {"kind": kind, "params": params, "settings": settings_hash(settings.physics())}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a campaign YAML file.

    Raises
    ------
    InputError
        The message names the file, the line and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"campaign spec {path} not found; pass the path of a YAML file "
                         "(examples in workflows/)")
    return parse_spec(path.read_text(), source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> CampaignSpec:
    """Validate campaign YAML ``text``; ``source`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise InputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); "
                         "fix the syntax (indentation, colons, brackets)") from exc
    if not isinstance(root, MappingNode):
        raise InputError(f"{source}:1: a campaign spec must be a mapping with keys "
                         f"{', '.join(TOP_KEYS)}")
    v = _Validator(source)
    top = v.mapping(root, TOP_KEYS, "campaign spec")
    name = v.string(top["name"], "name")
    preset_name = v.string(top["preset"], "preset")
    if preset_name not in PRESETS:
        hint = _hint(preset_name, PRESETS)
        raise v.error(top["preset"], f"unknown preset {preset_name!r}{hint}; "
                      f"choose one of {', '.join(PRESETS)}")
    overrides: dict[str, Any] = {}
    if "overrides" in top:
        overrides = v.value(top["overrides"]) or {}
        if not isinstance(overrides, dict):
            raise v.error(top["overrides"], "'overrides' must be a mapping such as "
                          "{dft: {ecut: 350}}")
        try:
            preset(preset_name, overrides)
        except InputError as exc:
            raise v.error(top["overrides"], str(exc)) from exc
    phases: list[str] = []
    modes: list[str] = ["surface"]
    if "binding" in top:
        bind = v.mapping(top["binding"], {"phases": True, "modes": False}, "binding")
        phases = [v.phase(n, "binding.phases") for n in v.sequence(bind["phases"], "phases")]
        if "modes" in bind:
            modes = []
            for node in v.sequence(bind["modes"], "binding.modes"):
                mode = v.string(node, "binding.modes")
                if mode not in MODES:
                    raise v.error(node, f"unknown binding mode {mode!r}{_hint(mode, MODES)}; "
                                  f"use {' or '.join(MODES)}")
                modes.append(mode)
    barriers: list[BarrierSpec] = []
    if "barriers" in top:
        barriers = [v.barrier(node) for node in v.sequence(top["barriers"], "barriers")]
    analysis = True
    if "analysis" in top:
        analysis = v.value(top["analysis"])
        if not isinstance(analysis, bool):
            raise v.error(top["analysis"], "'analysis' must be true or false")
    if not phases and not barriers:
        raise InputError(f"{source}:1: the campaign computes nothing; add binding.phases "
                         "and/or barriers")
    return CampaignSpec(
        name=name, preset=preset_name, overrides=overrides,  # type: ignore[arg-type]
        phases=tuple(dict.fromkeys(phases)), modes=tuple(dict.fromkeys(modes)),
        barriers=tuple(dict.fromkeys(barriers)), analysis=analysis, source=source,
    )


def _hint(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.4)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Validator:
    """Checks YAML nodes and raises InputError naming ``source:line``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: Node, message: str) -> InputError:
        return InputError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def value(self, node: Node) -> Any:
        return yaml.SafeLoader("").construct_object(node, deep=True) if node else None

    def mapping(self, node: Node, keys: dict[str, bool], what: str) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what} must be a mapping with keys {', '.join(keys)}")
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key not in keys:
                raise self.error(key_node, f"unknown field {key!r} in {what}{_hint(key, keys)}; "
                                 f"allowed: {', '.join(keys)}")
            if key in out:
                raise self.error(key_node, f"field {key!r} given twice in {what}")
            out[key] = value_node
        missing = [k for k, required in keys.items() if required and k not in out]
        if missing:
            raise self.error(node, f"{what} is missing required field(s) {', '.join(missing)}")
        return out

    def sequence(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.error(node, f"{what} must be a list, e.g. [Al, LiAl]")
        return list(node.value)

    def string(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or not str(node.value).strip():
            raise self.error(node, f"{what} must be a non-empty string")
        return str(node.value).strip()

    def barrier(self, node: Node) -> BarrierSpec:
        """One ``{a: A, b: B, mechanism: M}`` entry (mechanism default vacancy)."""
        from interphase_dft.recipes.hop_setup import MECHANISMS, check_mechanism

        pair = self.mapping(node, {"a": True, "b": True, "mechanism": False}, "barrier")
        a, b = self.phase(pair["a"], "barriers.a"), self.phase(pair["b"], "barriers.b")
        mechanism = DEFAULT_MECHANISM
        if "mechanism" in pair:
            mechanism = self.string(pair["mechanism"], "barriers.mechanism")
            if mechanism not in MECHANISMS:
                raise self.error(pair["mechanism"], f"unknown mechanism {mechanism!r}"
                                 f"{_hint(mechanism, MECHANISMS)}; use "
                                 f"{' or '.join(MECHANISMS)}")
        try:
            check_mechanism(a, b, mechanism)
        except InputError as exc:
            raise self.error(pair.get("mechanism", node), str(exc)) from exc
        return BarrierSpec(a, b, mechanism)

    def phase(self, node: Node, what: str) -> str:
        """A host phase (:func:`interphase_dft.validation.host_phase`, as on the command line)."""
        from interphase_dft.validation import host_phase

        name = self.string(node, what)
        try:
            return host_phase(name)
        except InputError as exc:
            raise self.error(node, str(exc)) from exc
