"""CLI: ``interphase-dft build ...`` writes files atomically and fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from interphase_dft.cli import main


def test_build_bulk_writes_extxyz_with_info(tmp_path: Path, capsys):
    out = tmp_path / "lial.extxyz"
    assert main(["build", "bulk", "lial", "-o", str(out)]) == 0
    atoms = read(out)
    assert atoms.info["phase"] == "LiAl" and atoms.info["spacegroup"] == 227
    assert "LiAl" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["lial.extxyz"]


def test_build_slab_and_sites(tmp_path: Path, capsys):
    out = tmp_path / "al111.extxyz"
    assert main(["build", "slab", "Al", "--miller", "1", "1", "1", "--layers", "3",
                 "--vacuum", "5", "--fix", "1", "-o", str(out)]) == 0
    slab = read(out)
    assert list(slab.info["miller"]) == [1, 1, 1]
    assert len(slab.constraints) == 1
    assert main(["build", "sites", "Al", "--slab", "1", "1", "1"]) == 0
    text = capsys.readouterr().out
    assert "hollow_fcc" in text and "hollow_hcp" in text and "bridge" in text


def test_build_interface(tmp_path: Path):
    out = tmp_path / "iface.extxyz"
    assert main(["build", "interface", "LiAl", "LiCl", "--miller-a", "1", "1", "0",
                 "--miller-b", "1", "1", "0", "--layers-a", "1", "--layers-b", "1",
                 "--max-atoms", "40", "-o", str(out)]) == 0
    atoms = read(out)
    assert set(np.unique(atoms.arrays["side"])) == {0, 1}
    assert atoms.info["strain"] <= 0.05


def run(args: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``interphase-dft ARGS`` (argument errors exit 2)."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_errors_exit_non_zero_and_leave_no_file(tmp_path: Path, capsys):
    out = tmp_path / "x.extxyz"
    code, err = run(["build", "bulk", "LiAll", "-o", str(out)], capsys)
    assert code == 2 and "Did you mean 'LiAl'" in err
    code, err = run(["build", "slab", "Al", "--miller", "0", "0", "0", "-o", str(out)], capsys)
    assert code == 2 and "does not define a plane" in err
    code, err = run(["build", "slab", "Al", "--miller", "1", "0.5", "0", "-o", str(out)], capsys)
    assert code == 2 and "must be integers" in err
    code, err = run(["build", "bulk", "Al", "-o", str(tmp_path / "x.notaformat")], capsys)
    assert code == 2 and "file format" in err
    assert main(["build", "interface", "LiAl", "LiCl", "--miller-a", "1", "1", "0",
                 "--miller-b", "1", "1", "0", "--max-atoms", "5", "-o", str(out)]) == 1
    assert list(tmp_path.iterdir()) == []


def test_miller_indices_are_reduced_to_lowest_terms(capsys):
    assert main(["build", "slab", "Al", "--miller", "2", "2", "2", "--layers", "2"]) == 0
    assert "Al (1, 1, 1):" in capsys.readouterr().out


# --- build hop ------------------------------------------------------------------------------

HOP_PAIRS = ["LPSC", "Li2S", "Li3P", "LiCl"]


def _fixed(atoms) -> list[int]:
    return sorted(int(i) for c in atoms.constraints for i in c.get_indices())


def _outer_third(atoms) -> list[int]:
    """Atoms (rigid PS4/P4S10 units whole, by centroid) in the outer third of each side."""
    from interphase_dft.builders.units import rigid_units

    side, z = atoms.arrays["side"], atoms.positions[:, 2]
    out: list[int] = []
    for s in (0, 1):
        idx = np.flatnonzero(side == s)
        zs = z[idx]
        cut = zs.min() + np.ptp(zs) / 3 + 0.1 if s == 0 else zs.max() - np.ptp(zs) / 3 - 0.1
        for members, pos in rigid_units(atoms[idx]):
            c = pos[:, 2].mean()
            if (c < cut) if s == 0 else (c > cut):
                out.extend(int(idx[m]) for m in members)
    return sorted(out)


def _check_hop_dir(out: Path, phase_a: str, phase_b: str, min_thickness: float) -> dict:
    """Files of ``build hop``: thick sides, one interface with vacuum, outer third fixed,
    endpoints with the same atoms/order/constraints; returns hop.json."""
    from interphase_dft.builders.thickness import atomic_planes

    assert sorted(p.name for p in out.iterdir()) == ["final.extxyz", "hop.json",
                                                    "initial.extxyz"]
    meta = json.loads((out / "hop.json").read_text())
    ini, fin = read(out / "initial.extxyz"), read(out / "final.extxyz")
    li = meta["li_index"]
    assert ini.get_chemical_symbols() == fin.get_chemical_symbols() and ini[li].symbol == "Li"
    assert _fixed(ini) == _fixed(fin) == meta["fixed"] and li not in meta["fixed"]
    moved = np.linalg.norm(fin.positions - ini.positions, axis=1)
    assert np.flatnonzero(moved > 1e-6).tolist() == [li]
    assert moved[li] == pytest.approx(meta["hop_distance_A"], abs=1e-3)
    side, z = ini.arrays["side"], ini.positions[:, 2]
    for s, key in ((0, "a"), (1, "b")):
        zs = z[side == s]
        assert np.ptp(zs) >= min_thickness and meta[f"thickness_{key}_A"] >= min_thickness
        assert len(atomic_planes(zs)) >= 3 and meta[f"planes_{key}"] >= 3
    assert z[side == 0].max() < z[side == 1].min()  # one A|B interface
    assert z.min() + ini.cell[2, 2] - z.max() >= 10.0 - 1e-6
    assert meta["dipole_correction"] is True and meta["vacuum_A"] >= 10
    assert _fixed(ini) == _outer_third(ini)
    assert meta["strain"] <= meta["max_strain"] and meta["strained_side"] in ("a", "b")
    assert set(meta["bulk_li_host_A"]) == {phase_a, phase_b}
    return meta


@pytest.mark.slow
@pytest.mark.parametrize("phase_b", HOP_PAIRS)
def test_build_hop_vacancy_laptop(tmp_path: Path, capsys, phase_b: str):
    """Issue 14 acceptance: sides >= 6 A, endpoints within 10 % of a bulk Li-host distance."""
    out = tmp_path / "hop"
    assert main(["build", "hop", "LiAl", phase_b, "--mechanism", "vacancy", "--preset",
                 "laptop", "-o", str(out)]) == 0
    meta = _check_hop_dir(out, "LiAl", phase_b, 6.0)
    assert meta["mechanism"] == "vacancy" and meta["hop_distance_A"] <= 3.5
    refs = meta["bulk_li_host_A"]
    for key, phase in (("initial", "LiAl"), ("final", phase_b)):
        d = meta[f"li_host_{key}_A"]
        assert any(abs(d - r) <= 0.1 * r for r in refs[phase].values() if r), (key, d)
    assert "wrote" in capsys.readouterr().out


def test_build_hop_interstitial_is_unrelaxed_guess(tmp_path: Path, capsys):
    out = tmp_path / "hop"
    assert main(["build", "hop", "LiAl", "LiCl", "--mechanism", "interstitial", "--preset",
                 "test", "--miller-a", "1", "1", "0", "--miller-b", "1", "1", "0",
                 "-o", str(out)]) == 0
    meta = _check_hop_dir(out, "LiAl", "LiCl", 3.0)
    assert meta["relaxed"] is False and meta["mechanism"] == "interstitial"
    assert {c["region"] for c in meta["candidates"]} == {"A", "interface", "B"}
    assert "UNRELAXED" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["LiAl", "LiCl", "--mechanism", "hopping"], "unknown mechanism 'hopping'"),
    (["Al", "LiCl", "--mechanism", "vacancy"], "Al has no Li lattice sites"),
    (["LiAl", "LiCl", "--mechanism", "vacancy", "--max-strain", "0.001"],
     "no lattice match for LiAl|LiCl within max_strain=0.001"),
    (["LiAl", "LiCl", "--mechanism", "vacancy", "--max-atoms", "50"],
     "the smallest needs 68 atoms: raise max_atoms (--max-atoms"),
    (["LiAl", "LiCl", "--mechanism", "vacancy", "--preset", "huge"], "unknown preset"),
])
def test_build_hop_bad_input_writes_nothing(tmp_path: Path, capsys, args, message):
    out = tmp_path / "hop"
    assert main(["build", "hop", *args, "--miller-a", "1", "1", "0", "--miller-b", "1", "1",
                 "0", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert list(tmp_path.iterdir()) == []


def test_build_hop_refuses_a_used_directory(tmp_path: Path, capsys):
    (tmp_path / "hop").mkdir()
    (tmp_path / "hop" / "keep.txt").write_text("x")
    code, err = run(["build", "hop", "LiAl", "LiCl", "--mechanism", "vacancy", "-o",
                     str(tmp_path / "hop")], capsys)
    assert code == 2 and "not an empty directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hop"]
