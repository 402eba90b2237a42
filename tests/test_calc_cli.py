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
    from interphase_dft.calc.settings import preset
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
