from __future__ import annotations

from pathlib import Path

import pytest

from interphase_dft.campaign import load_spec, parse_spec, work_key
from interphase_dft.errors import InputError

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
name: demo
preset: test
overrides: {dft: {ecut: 250}}
binding:
  phases: [Al, lial, LPSC]
  modes: [surface, bulk]
barriers:
  - {a: LiAl, b: LPSC}
analysis: false
"""


def test_valid_spec_is_parsed_with_canonical_names():
    spec = parse_spec(GOOD)
    assert spec.phases == ("Al", "LiAl", "LPSC")
    assert spec.modes == ("surface", "bulk")
    assert [b.interface for b in spec.barriers] == ["LiAl|LPSC"]
    assert spec.analysis is False
    assert spec.settings().dft.ecut == 250
    assert len([w for w in spec.work() if w.kind == "binding"]) == 6


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "workflows").glob("*.yaml")))
def test_shipped_specs_are_valid(name):
    spec = load_spec(REPO / "workflows" / name)
    assert spec.phases or spec.barriers


def test_the_extended_laptop_spec_continues_the_main_job():
    """Every work item of the main job is one of laptop-extended's (same key: reused), and the
    extension adds the surface mode of the seven phases and more interface hops."""
    main = {w.work_key for w in load_spec(REPO / "workflows" / "laptop.yaml").work()}
    ext = load_spec(REPO / "workflows" / "laptop-extended.yaml")
    assert main < {w.work_key for w in ext.work()}
    assert len(ext.phases) == 7 and set(ext.modes) == {"bulk", "surface"}
    assert len(ext.barriers) >= 5


@pytest.mark.parametrize(
    ("bad", "line", "words"),
    [
        (GOOD.replace("lial", "LiAI"), 5, ["LiAl"]),  # typo -> nearest name suggested
        (GOOD.replace("preset: test", "preset: fast"), 2, ["preset", "test"]),
        (GOOD.replace("analysis: false", "analysys: false"), 9, ["analysys", "analysis"]),
        (GOOD.replace("modes: [surface, bulk]", "modes: [surface, volume]"), 6, ["volume"]),
        (GOOD.replace("{a: LiAl, b: LPSC}", "{a: LiAl}"), 8, ["missing", "b"]),
        (GOOD.replace("ecut: 250", "ecutt: 250"), 3, ["ecutt"]),
        (GOOD.replace("name: demo\n", ""), 1, ["missing", "name"]),
        (GOOD.replace("[Al, lial, LPSC]", "[Al, Li]"), 5, ["reference"]),
        (GOOD.replace("modes: [surface, bulk]", "modes: [surface, bulk"), 7, ["YAML"]),
    ],
)
def test_bad_spec_names_line_and_fix(bad, line, words):
    with pytest.raises(InputError) as err:
        parse_spec(bad, source="spec.yaml")
    msg = str(err.value)
    assert f"spec.yaml:{line}:" in msg, msg
    for w in words:
        assert w in msg, msg


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_spec(tmp_path / "nope.yaml")


def test_work_key_depends_on_inputs_and_settings():
    s = parse_spec(GOOD).settings()
    k = work_key("binding", s, phase="Al", mode="bulk")
    assert k == work_key("binding", s, phase="Al", mode="bulk")
    assert k != work_key("binding", s, phase="Al", mode="surface")
    s2 = s.with_overrides({"dft": {"ecut": 260}})
    assert k != work_key("binding", s2, phase="Al", mode="bulk")


MECH = """\
name: m
preset: test
barriers:
  - {a: LiAl, b: LPSC}
  - {a: Al, b: LiCl, mechanism: interstitial}
  - {a: LiAl, b: LiCl, mechanism: vacancy}
"""


def test_barriers_carry_their_mechanism_and_every_phase_gets_a_bulk_hop():
    spec = parse_spec(MECH)
    assert [(b.interface, b.mechanism) for b in spec.barriers] == [
        ("LiAl|LPSC", "vacancy"), ("Al|LiCl", "interstitial"), ("LiAl|LiCl", "vacancy")]
    names = [w.name for w in spec.results()]
    assert names == ["barrier:LiAl|LPSC:vacancy", "barrier:Al|LiCl:interstitial",
                     "barrier:LiAl|LiCl:vacancy", "bulk_barrier:LiAl", "bulk_barrier:LPSC",
                     "bulk_barrier:Al", "bulk_barrier:LiCl"]  # each phase once
    first = spec.results()[0]
    assert first.params == {"phase_a": "LiAl", "phase_b": "LPSC", "mechanism": "vacancy"}
    # the default mechanism is part of the key: not the key of the earlier interface model
    s = spec.settings()
    assert first.work_key == work_key("barrier", s, phase_a="LiAl", phase_b="LPSC",
                                      mechanism="vacancy")
    assert first.work_key != work_key("barrier", s, phase_a="LiAl", phase_b="LPSC")
    again = type(spec).from_dict(spec.to_dict())
    assert [w.work_key for w in again.work()] == [w.work_key for w in spec.work()]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("{a: LiAl, b: LPSC, mechanism: knockoff}", ["unknown mechanism", "vacancy"]),
        ("{a: LiAl, b: LPSC, mechanism: vacancyy}", ["did you mean 'vacancy'"]),
        ("{a: Al, b: LiCl}", ["Al has no Li lattice sites", "interstitial"]),
        ("{a: P2S5, b: LiCl, mechanism: vacancy}", ["P2S5 has no Li lattice sites"]),
        ("{a: LiCl, b: licl}", ["two different phases"]),
        ("{a: LiAl, b: LPSC, mechanism: [vacancy]}", ["non-empty string"]),
    ],
)
def test_bad_barrier_entries_name_the_line(entry, words):
    text = f"name: m\npreset: test\nbarriers:\n  - {{a: LiAl, b: LiCl}}\n  - {entry}\n"
    with pytest.raises(InputError) as err:
        parse_spec(text, source="spec.yaml")
    msg = str(err.value)
    assert "spec.yaml:5:" in msg, msg
    for w in words:
        assert w in msg, msg


def test_a_larger_budget_is_the_same_work():
    plain = parse_spec(MECH)
    bigger = parse_spec(MECH.replace("preset: test\n", "preset: test\noverrides: "
                                     "{budget: {max_dft_calls: 5000}}\n"))
    assert bigger.settings().budget.max_dft_calls == 5000
    assert [w.work_key for w in bigger.work()] == [w.work_key for w in plain.work()]
