"""``interphase-dft binding`` / ``barrier``: argument handling and summaries (no GPAW runs)."""

from __future__ import annotations

import pytest
from ase.build import add_adsorbate, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from interphase_dft.cli import main, make_parser
from interphase_dft.commands.calc import format_barrier, parse_overrides
from interphase_dft.errors import InputError


def test_parse_overrides_nested_and_typed():
    got = parse_overrides(["dft.ecut=400", "neb.climb=false", "relax.optimizer=FIRE",
                           "dft.kpt_density=2.5"])
    assert got == {"dft": {"ecut": 400, "kpt_density": 2.5}, "neb": {"climb": False},
                   "relax": {"optimizer": "FIRE"}}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_overrides(["dft.ecut"])


def test_parser_knows_binding_and_barrier():
    args = make_parser().parse_args(["binding", "LiCl", "--mode", "bulk", "--preset", "test",
                                     "--set", "dft.ecut=250"])
    assert args.phase == "LiCl" and args.mode == "bulk" and args.overrides == ["dft.ecut=250"]
    args = make_parser().parse_args(["barrier", "LiAl", "Li2S"])
    assert (args.phase_a, args.phase_b, args.preset) == ("LiAl", "Li2S", "laptop")


def test_bad_override_is_a_clean_error(capsys):
    assert main(["binding", "Al", "--set", "dft.nonsense=1", "-q"]) == 1
    assert "invalid settings override" in capsys.readouterr().err


def test_barrier_summary(tmp_path):
    from interphase_dft.calc.presets import preset
    from interphase_dft.recipes.barrier import neb_barrier

    s = fcc100("Al", (2, 2, 2), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    s.set_constraint(FixAtoms(mask=[a.tag == 2 for a in s]))
    f = s.copy()
    f.positions[-1, 0] += s.cell[0, 0] / 2
    doc = neb_barrier(s, f, preset("test"), tmp_path,
                      calc_factory=lambda a, attempt=0, label="": EMT())
    text = format_barrier(doc)
    assert "barrier forward" in text and f"{doc.barrier_forward:.3f}" in text


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["LiAl", "LPSC", "--mechanism", "knockoff"], ["unknown mechanism 'knockoff'",
                                                       "vacancy or interstitial"]),
        (["Al", "LiCl"], ["Al has no Li lattice sites", "use mechanism interstitial"]),
        (["LiCl", "licl", "--mechanism", "interstitial"], ["two different phases"]),
        (["LiAl", "Unobtainium"], ["Unobtainium"]),
    ],
)
def test_bad_barrier_input_exits_nonzero_and_writes_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "out.json"
    try:
        code = main(["barrier", *argv, "--preset", "test", "--workdir", str(tmp_path / "wd"),
                     "--json", str(out), "-q"])
    except SystemExit as exc:  # an unknown phase is an argument error (exit 2)
        code = exc.code
    err = capsys.readouterr().err
    assert code == (2 if "Unobtainium" in argv else 1)
    for w in words:
        assert w in err, err
    assert not out.exists() and not (tmp_path / "wd").exists()
    assert not (tmp_path / "runs").exists()


def test_barrier_cli_passes_the_mechanism_and_reports_the_status(tmp_path, capsys,
                                                                  monkeypatch):
    from interphase_dft.recipes import barrier
    from tests.test_analysis_factories import make_barrier_doc

    seen = {}

    def fake(a, b, settings, *, workdir, mechanism, frames=None):
        seen.update(a=a, b=b, mechanism=mechanism, workdir=workdir)
        doc = make_barrier_doc(a, b, 0.0, reaction=0.4, mechanism=mechanism)  # monotonic
        return doc.model_copy(update={"settings": settings.model_dump()})

    monkeypatch.setattr(barrier, "migration_barrier", fake)
    assert main(["barrier", "LiAl", "LiCl", "--mechanism", "interstitial", "--preset",
                 "test", "-q"]) == 0  # a reaction energy is a result
    assert seen["mechanism"] == "interstitial"
    assert str(seen["workdir"]).endswith("barrier-LiAl-LiCl-interstitial-test")
    text = capsys.readouterr().out
    assert "status: no saddle: reaction energy" in text and "barrier forward -" in text

    def unconverged(a, b, settings, *, workdir, mechanism, frames=None):
        doc = make_barrier_doc(a, b, 0.4, converged=False, mechanism=mechanism)
        return doc.model_copy(update={"settings": settings.model_dump()})

    monkeypatch.setattr(barrier, "migration_barrier", unconverged)
    out = tmp_path / "doc.json"
    assert main(["barrier", "LiAl", "LiCl", "--preset", "test", "--json", str(out), "-q"]) == 1
    assert "no barrier reported" in capsys.readouterr().err and out.exists()
