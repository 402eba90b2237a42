"""Reliability drills (issue 16, items 3, 5 and 6): bounded inputs, output paths checked
before any work, one validation for the command line and the spec, logs kept on resume.

Each drill runs the command as a user would (``python -m interphase_dft.cli`` in a fresh
directory) and checks the exit status, the one error line and that nothing is left behind.
The workers, secrets and store drills are in ``test_reliability.py``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interphase_dft.errors import InputError

SPEC = "name: drill\npreset: test\nbinding: {phases: [Al], modes: [bulk]}\nanalysis: false\n"


def interphase(*args: str, cwd: Path, timeout: float = 120, **env: str
               ) -> tuple[subprocess.CompletedProcess[str], float]:
    """``interphase-dft ARGS`` in ``cwd`` and its wall time, s."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("INTERPHASE_LAUNCHPAD", "INTERPHASE_HOME", "MONGOMOCK_SERVERSTORE_FILE")}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "interphase_dft.cli", *args], cwd=cwd,
                         env={**clean, **env}, capture_output=True, text=True, timeout=timeout)
    return out, time.monotonic() - start


def refused(out: subprocess.CompletedProcess[str], message: str) -> None:
    """Non-zero exit, one error line holding ``message``, no traceback."""
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], out.stderr


def _writable(directory: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.remove(probe)
    return True


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A directory that takes no new files: mode 555, or /sys where root ignores modes."""
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if not _writable(ro):
            yield ro
        elif Path("/sys").is_dir() and not _writable(Path("/sys")):
            yield Path("/sys")
        else:
            pytest.skip("no unwritable directory available (root without a read-only /sys)")
    finally:
        ro.chmod(0o755)


# --- 3. bounded inputs ----------------------------------------------------------------------

@pytest.mark.parametrize(("given", "reduced"), [
    ((1000000, 0, 0), (1, 0, 0)), ((2, 2, 2), (1, 1, 1)), ((-2, 4, 6), (-1, 2, 3)),
    (("0", "3", "-3"), (0, 1, -1)), ("4 0 0", (1, 0, 0)), ((3, 2, 1), (3, 2, 1))])
def test_miller_indices_are_reduced_to_lowest_terms(given, reduced):
    from interphase_dft import validation

    assert validation.miller(given) == reduced


@pytest.mark.parametrize("bad", [(97, 89, 83), (4, 1, 0), (0, 0, 0), (1, 0.5, 0), (1, 1),
                                 ("a", 1, 1), (float("inf"), 0, 0)])
def test_miller_indices_beyond_the_maximum_or_malformed_are_refused(bad):
    from interphase_dft import validation

    with pytest.raises(InputError):
        validation.miller(bad)


def test_a_huge_miller_index_is_the_plane_it_names(tmp_path):
    """Before: (1000000 0 0) searched 2e6^3 normals with memory growing without end."""
    out, _ = interphase("build", "slab", "Al", "--miller", "1000000", "0", "0", "--layers",
                        "2", cwd=tmp_path, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "Al (1, 0, 0): 1 termination(s)" in out.stdout


def test_a_miller_index_beyond_the_maximum_is_refused_at_once(tmp_path):
    """Before: (97 89 83) ran with memory growing without end."""
    out, seconds = interphase("build", "slab", "Al", "--miller", "97", "89", "83", "-o",
                              "slab.extxyz", cwd=tmp_path, timeout=60)
    refused(out, "beyond the largest supported index 3")
    assert out.returncode == 2 and seconds < 30 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--max-strain", "0.3", "--max-atoms", "100000"], "above the ceiling"),
    (["--max-atoms", "100000"], "max_atoms 100000 is above the ceiling 1000"),
    (["--max-area", "1e9"], "budget.build_max_area"),
    (["--max-atoms", "1"], "max_atoms must be >= 2")])
def test_interface_limits_have_ceilings(tmp_path, args, message):
    """Before: LPSC|P2S5 with --max-strain 0.3 --max-atoms 100000 ran with no limit."""
    out, seconds = interphase("build", "interface", "LPSC", "P2S5", *args, cwd=tmp_path,
                              timeout=60)
    refused(out, message)
    assert out.returncode == 2 and seconds < 30


def test_a_search_estimated_over_its_bound_is_refused_before_it_runs(tmp_path):
    """Within every ceiling, Al|Li2S at 1000 atoms and 15 % strain is a 1.4e9-comparison
    (20 h) ZSL search: refused on the estimate, before the search starts."""
    out, seconds = interphase("build", "interface", "Al", "Li2S", "--max-atoms", "1000",
                              "--max-strain", "0.15", "--layers-a", "1", "--layers-b", "1",
                              cwd=tmp_path, timeout=120)
    refused(out, "budget.build_max_search")
    assert "about 1.4e+09 supercell pairs" in out.stderr and seconds < 90


def test_a_slab_estimated_over_its_bound_is_refused_before_it_is_cut(tmp_path):
    out, seconds = interphase("build", "slab", "Al", "--miller", "1", "1", "1", "--layers",
                              "100000", cwd=tmp_path, timeout=60)
    refused(out, "about 400008 atoms before reduction, above the ceiling 1000")
    assert seconds < 30


def test_the_builders_apply_the_same_ceilings():
    """Python callers (recipes, migration cells) meet the ceilings the CLI checks."""
    from interphase_dft.builders.interfaces import make_interfaces
    from interphase_dft.calc.settings import BudgetSettings

    with pytest.raises(InputError, match=r"budget\.build_max_atoms"):
        make_interfaces("LPSC", "P2S5", max_strain=0.3, max_atoms=100000)
    with pytest.raises(InputError, match=r"budget\.build_max_strain"):
        make_interfaces("LPSC", "P2S5", max_strain=0.3, max_atoms=100)
    with pytest.raises(InputError, match=r"budget\.build_max_search"):
        make_interfaces("LiAl", "LiCl", miller_a=(1, 1, 0), miller_b=(1, 1, 0), layers_a=1,
                        layers_b=1, max_atoms=200, limits=BudgetSettings(build_max_search=1000))


def test_the_search_estimate_is_the_count_pymatgen_makes(monkeypatch):
    """zsl_comparisons counts exactly the supercell pairs ZSLGenerator compares."""
    import pymatgen.analysis.interfaces.zsl as zsl

    from interphase_dft.builders import lattice_match as lm
    from interphase_dft.phases import get_bulk

    calls, estimates = [0], []
    compare = zsl.is_same_vectors

    def counted(*args, **kwargs):
        calls[0] += 1
        return compare(*args, **kwargs)

    check = lm.check_search_size
    monkeypatch.setattr(zsl, "is_same_vectors", counted)
    monkeypatch.setattr(lm, "check_search_size",
                        lambda size, *a: (estimates.append(size), check(size, *a)))
    a = lm.Side.of(get_bulk("LiAl"), "LiAl", (1, 1, 0), 1)
    b = lm.Side.of(get_bulk("LiCl"), "LiCl", (1, 1, 0), 1)
    lm.search(a, b, True, max_strain=0.05, max_atoms=200, max_area=None)
    assert estimates == [calls[0]] and calls[0] > 1000


# --- 5. output paths checked before any work --------------------------------------------------

def test_output_onto_a_directory_or_into_an_unwritable_one_is_refused(tmp_path, unwritable):
    """Before: tracebacks (IsADirectoryError, PermissionError) after the build."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "file").write_text("x")
    for args, message in (
            (["build", "bulk", "Al", "-o", "taken"], "is an existing directory"),
            (["build", "bulk", "Al", "-o", f"{unwritable}/al.extxyz"], "cannot write"),
            (["build", "bulk", "Al", "-o", "file/al.extxyz"], "is a file, not a directory"),
            (["build", "hop", "LiAl", "LiCl", "--mechanism", "vacancy", "-o",
              f"{unwritable}/hop"], "cannot write"),
            (["report", "-o", "file"], "is an existing file, not a directory"),
            (["report", "-o", f"{unwritable}/report"], "cannot write report directory"),
            (["run", "--launch-dir", f"{unwritable}/launches"], "cannot write launch"),
            (["submit", "spec.yaml", "--runs-dir", "file"], "is an existing file")):
        out, _ = interphase(*args, cwd=tmp_path)
        refused(out, message)
        assert out.returncode == 2, args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "readonly", "taken"]


@pytest.mark.parametrize("command", [["submit", "spec.yaml"], ["status"], ["run"]])
def test_an_unwritable_store_directory_is_one_line(tmp_path, unwritable, command):
    """Before: PermissionError tracebacks from the store (lock, store file, backups)."""
    (tmp_path / "spec.yaml").write_text(SPEC)
    home = unwritable if command[0] != "submit" else unwritable / "project"
    out, _ = interphase(*command, cwd=tmp_path, INTERPHASE_HOME=str(home))
    refused(out, "cannot write the embedded store")
    assert out.returncode == 1


# --- 6. one validation for the command line and the spec; logs kept on resume ------------------

@pytest.mark.parametrize(("args", "message"), [
    (["build", "sites", "Al", "--min-dist", "-1"], "must be > 0"),
    (["build", "sites", "Al", "--min-dist", "0"], "must be > 0"),
    (["build", "sites", "Li"], "Li is the reference phase"),
    (["build", "hop", "Al", "Al", "--mechanism", "vacancy", "-o", "hop"],
     "needs two different phases"),
    (["build", "hop", "Li", "Al", "--mechanism", "vacancy", "-o", "hop"],
     "Li is the reference phase")])
def test_build_arguments_are_checked_like_the_spec(tmp_path, args, message):
    out, _ = interphase(*args, cwd=tmp_path)
    refused(out, message)
    assert list(tmp_path.iterdir()) == []


def _no_dft(monkeypatch) -> None:
    """Make any start of a binding or barrier calculation fail loudly."""
    import interphase_dft.recipes.barrier as barrier
    import interphase_dft.recipes.binding as binding

    def started(*args, **kwargs):
        raise AssertionError("the calculation started")

    monkeypatch.setattr(binding, "binding_energy", started)
    monkeypatch.setattr(barrier, "migration_barrier", started)
    monkeypatch.setattr(barrier, "bulk_reference_barrier", started)


def _calc(argv: list[str], capsys) -> tuple[int, str]:
    from interphase_dft.cli import main

    try:
        code = main([*argv, "--preset", "test", "-q"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_a_barrier_needs_two_different_phases_on_the_command_line_too(tmp_path, monkeypatch,
                                                                      capsys):
    """Before: ``barrier Al Al`` was accepted and started DFT (the spec refused it)."""
    from interphase_dft import validation

    monkeypatch.chdir(tmp_path)  # default work directories are relative
    _no_dft(monkeypatch)
    code, err = _calc(["barrier", "Al", "Al"], capsys)
    with pytest.raises(InputError) as shared:
        validation.barrier_pair("Al", "Al")
    assert code != 0 and str(shared.value) in err, err


@pytest.mark.parametrize(("args", "message"), [
    (["binding", "Li"], "Li is the reference phase"),
    (["barrier", "Li", "LiAl"], "Li is the reference phase"),
    (["bulk-barrier", "Li"], "Li is the reference phase"),
    (["binding", "Al", "--json", "{tmp}"], "is an existing directory"),
    (["binding", "Al", "--json", "{ro}/al.json"], "cannot write"),
    (["barrier", "LiAl", "LiCl", "--workdir", "{tmp}/file"], "is an existing file")])
def test_calc_commands_refuse_before_any_dft(tmp_path, unwritable, monkeypatch, capsys,
                                              args, message):
    """Before: accepted, DFT started; ``--json`` failed only after the calculation (114 s)."""
    monkeypatch.chdir(tmp_path)  # default work directories are relative
    _no_dft(monkeypatch)
    (tmp_path / "file").write_text("x")
    code, err = _calc([a.format(tmp=tmp_path, ro=unwritable) for a in args], capsys)
    assert code != 0 and message in err, err


@pytest.mark.parametrize(("spec", "check", "args"), [
    ("binding: {phases: [Li]}", "host_phase", ("Li",)),
    ("barriers: [{a: Al, b: Al}]", "barrier_pair", ("Al", "Al"))])
def test_the_spec_gives_the_message_of_the_shared_validator(spec, check, args):
    from interphase_dft import validation
    from interphase_dft.campaign import parse_spec

    with pytest.raises(InputError) as shared:
        getattr(validation, check)(*args)
    with pytest.raises(InputError) as from_spec:
        parse_spec(f"name: x\npreset: test\n{spec}\n")
    assert str(shared.value) in str(from_spec.value)


def test_rotated_logs_are_never_deleted(tmp_path):
    from interphase_dft.calc.factory import rotate_log

    log = tmp_path / "gpaw.txt"
    assert rotate_log(log) is None
    for run in range(3):
        log.write_text(f"run {run}")
        assert rotate_log(log) == tmp_path / "gpaw.txt.1"
    assert [(tmp_path / f"gpaw.txt.{n}").read_text() for n in (1, 2, 3)] == [
        "run 2", "run 1", "run 0"]
    log.write_text("")
    assert rotate_log(log) is None and log.exists()  # an empty log has nothing to keep


def test_a_resumed_calculation_keeps_the_gpaw_log_of_the_run_before(tmp_path):
    """Before: GPAW opened gpaw.txt for writing and the log from before a kill was lost."""
    from ase.build import bulk

    from interphase_dft.calc.factory import GPAWFactory
    from interphase_dft.calc.presets import preset

    log = tmp_path / "gpaw.txt"
    log.write_text("log of the run killed by kill -9\n")
    factory = GPAWFactory(preset("test"), is_metal=True, moving=False, txt=str(log))
    atoms = bulk("Li", "bcc", a=3.44)
    atoms.calc = factory(atoms)
    atoms.get_potential_energy()
    with contextlib.suppress(AttributeError):
        atoms.calc.log.fd.flush()
    assert (tmp_path / "gpaw.txt.1").read_text() == "log of the run killed by kill -9\n"
    assert "gpaw" in log.read_text().lower()
