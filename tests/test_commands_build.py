"""CLI: ``interphase-dft build ...`` writes files atomically and fails cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def test_errors_exit_1_and_leave_no_file(tmp_path: Path, capsys):
    out = tmp_path / "x.extxyz"
    assert main(["build", "bulk", "LiAll", "-o", str(out)]) == 1
    assert "Did you mean 'LiAl'" in capsys.readouterr().err
    assert main(["build", "slab", "Al", "--miller", "0", "0", "0", "-o", str(out)]) == 1
    assert "does not define a plane" in capsys.readouterr().err
    assert main(["build", "slab", "Al", "--miller", "1", "0.5", "0", "-o", str(out)]) == 1
    assert main(["build", "bulk", "Al", "-o", str(tmp_path / "x.notaformat")]) == 1
    assert main(["build", "interface", "LiAl", "LiCl", "--miller-a", "1", "1", "0",
                 "--miller-b", "1", "1", "0", "--max-atoms", "5", "-o", str(out)]) == 1
    assert list(tmp_path.iterdir()) == []
