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


@pytest.mark.parametrize("name", ["test.yaml", "laptop.yaml", "paper.yaml"])
def test_shipped_specs_are_valid(name):
    spec = load_spec(REPO / "workflows" / name)
    assert spec.phases or spec.barriers


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
