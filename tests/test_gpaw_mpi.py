"""GPAW is built with libxc, MPI and ScaLAPACK, and gives the same energy serially and on 2 ranks
(also for a Gamma-only cell, where the ranks cannot split k-points)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import mpi_env

SCRIPT = """
from ase.build import bulk
from gpaw import GPAW, PW
from ase.parallel import parprint
atoms = bulk('Al', 'fcc', a=4.05)
atoms.calc = GPAW(mode=PW(200), kpts=(3, 3, 3), occupations={'name': 'fermi-dirac', 'width': 0.1},
                  convergence={'energy': 1e-7}, txt=None)
parprint('ENERGY %.10f' % atoms.get_potential_energy())
"""

#: a Gamma-only cell: 2 ranks must split the plane waves / bands, which needs ScaLAPACK in
#: GPAW 26 (without it: "assert c == 1" in gpaw/core/matrix.py)
GAMMA_SCRIPT = """
from ase.build import bulk
from gpaw import GPAW, PW
from ase.parallel import parprint
atoms = bulk('Al', 'fcc', a=4.05, cubic=True) * (2, 1, 1)
atoms.calc = GPAW(mode=PW(200), kpts=(1, 1, 1), occupations={'name': 'fermi-dirac', 'width': 0.1},
                  convergence={'energy': 1e-7}, txt=None)
parprint('ENERGY %.10f' % atoms.get_potential_energy())
"""


def _gpaw_bin() -> str:
    return str(Path(sys.executable).with_name("gpaw"))


def test_gpaw_info_reports_libxc_and_mpi():
    out = subprocess.run([_gpaw_bin(), "info"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"libxc\S*\s+yes", out), out
    assert re.search(r"MPI enabled\s+yes", out), out
    assert re.search(r"scalapack\s+yes", out), out  # scripts/gpaw-siteconfig.py


def _energy(cmd: list[str], cwd: Path) -> float:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=mpi_env(),
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    match = re.findall(r"ENERGY (-?\d+\.\d+)", out.stdout)
    assert len(match) == 1, out.stdout  # printed by rank 0 only
    return float(match[0])


@pytest.mark.gpaw
@pytest.mark.mpi
@pytest.mark.slow
def test_serial_and_two_ranks_agree(tmp_path: Path):
    assert shutil.which("mpiexec"), "mpiexec missing: apt-get install openmpi-bin"
    script = tmp_path / "al.py"
    script.write_text(SCRIPT)
    serial = _energy([sys.executable, str(script)], tmp_path)
    parallel = _energy([_gpaw_bin(), "-P", "2", "python", str(script)], tmp_path)
    assert abs(serial - parallel) < 1e-5
    # fcc Al, PBE, PW 200 eV: GPAW reference energies are a few eV per atom below zero
    assert -6.0 < serial < -2.0


@pytest.mark.gpaw
@pytest.mark.mpi
@pytest.mark.slow
def test_gamma_only_cell_on_two_ranks(tmp_path: Path):
    script = tmp_path / "al_gamma.py"
    script.write_text(GAMMA_SCRIPT)
    serial = _energy([sys.executable, str(script)], tmp_path)
    parallel = _energy(["mpiexec", "-n", "2", _gpaw_bin(), "python", str(script)], tmp_path)
    assert abs(serial - parallel) < 1e-5
