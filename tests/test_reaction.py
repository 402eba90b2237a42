"""Reaction detection, Li partial charge and Li moment of a relaxed site (issue 15 item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from interphase_dft.phases import get_bulk
from interphase_dft.recipes.reaction import check_site, host_bonds, reaction_check
from interphase_dft.schemas import SiteResult, StructureData


def ps4_unit() -> Atoms:
    """A PS4 tetrahedron (P-S 2.05 A) in a 12 A box."""
    dirs = np.array([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)], float) / np.sqrt(3)
    atoms = Atoms("PS4", positions=np.vstack([[0, 0, 0], 2.05 * dirs]), cell=[12.0] * 3,
                  pbc=True)
    atoms.translate([6.0, 6.0, 6.0])
    return atoms


def with_li(host: Atoms, position: np.ndarray) -> Atoms:
    atoms = host.copy()
    atoms.append("Li")
    atoms.positions[-1] = position
    return atoms


def stretch(atoms: Atoms, a: int, b: int, length: float) -> Atoms:
    """Move atom b along a->b so that |ab| = length (no periodic image needed here)."""
    out = atoms.copy()
    v = out.get_distance(a, b, mic=True, vector=True)
    out.positions[b] = out.positions[a] + v / np.linalg.norm(v) * length
    return out


def test_ps4_bonds_are_found():
    bonds = host_bonds(ps4_unit(), 5)
    assert len(bonds) == 4 and all(abs(d - 2.05) < 1e-9 for *_, d in bonds)


def test_stretched_p_s_bond_is_reactive():
    clean = ps4_unit()
    relaxed = with_li(stretch(clean, 0, 1, 2.6), clean.positions[1] + [1.0, 1.0, 1.0])
    check = reaction_check(relaxed, clean)
    assert check.reactive
    assert check.broken == ["P0-S1 2.05 -> 2.60 A"]
    assert "P0: 4 -> 3" in check.coordination_changes and "S1: 1 -> 0" in check.coordination_changes


def test_small_displacements_are_not_reactive():
    clean = ps4_unit()
    rng = np.random.default_rng(0)
    moved = clean.copy()
    moved.positions += rng.normal(scale=0.05, size=moved.positions.shape)
    relaxed = with_li(moved, clean.positions[0] + [3.0, 0.0, 0.0])
    check = reaction_check(relaxed, clean)
    assert not check.reactive and check.note == ""


def test_p4s10_crystal_across_the_cell_boundary():
    """Atoms wrapped to the other side of the cell are followed continuously, not 'broken'."""
    clean = get_bulk("P2S5")
    moved = clean.copy()
    moved.positions += 0.03
    moved.wrap()
    relaxed = with_li(moved, [0.0, 0.0, 0.0])
    assert not reaction_check(relaxed, clean).reactive
    p = int(np.flatnonzero(clean.numbers == 15)[0])
    s = min((k for k in range(len(clean)) if clean.numbers[k] == 16),
            key=lambda k: clean.get_distance(p, k, mic=True))
    opened = clean.copy()
    v = opened.get_distance(p, s, mic=True, vector=True)
    opened.positions[s] = opened.positions[p] + v / np.linalg.norm(v) * 2.6
    check = reaction_check(with_li(opened, [0.0, 0.0, 0.0]), clean)
    assert check.reactive and len(check.broken) == 1 and "-> 2.60 A" in check.broken[0]


def test_new_s_s_bond_changes_coordination():
    """Two cages' S atoms pulled into an S-S bond: no bond broke, coordination changed."""
    clean = Atoms("S2", positions=[[4, 5, 5], [7.4, 5, 5]], cell=[12.0] * 3, pbc=True)
    bonded = clean.copy()
    bonded.positions[1] = [6.1, 5, 5]
    check = reaction_check(with_li(bonded, [1.0, 1.0, 1.0]), clean)
    assert check.reactive and not check.broken and len(check.coordination_changes) == 2


def test_host_li_and_metals_have_no_host_bonds():
    for phase in ("Li2S", "LiAl", "Al", "Li3P", "LiCl"):
        atoms = get_bulk(phase)
        assert host_bonds(atoms, len(atoms)) == [], phase


def test_mismatched_host_is_an_error():
    with pytest.raises(ValueError, match="same order"):
        reaction_check(get_bulk("Li2S"), ps4_unit())


def _site(relaxed: Atoms) -> SiteResult:
    return SiteResult(label="s0", site_kind="interstitial", position=[0.0, 0.0, 0.0],
                      energy=-1.0, binding_energy_atom=-1.0, binding_energy_bcc=0.6,
                      converged=True, final_structure=StructureData.from_atoms(relaxed),
                      spin="polarised", magnetic_moment=0.9)


def test_check_site_fills_the_flags_and_the_li_moment():
    clean = ps4_unit()
    relaxed = with_li(stretch(clean, 0, 1, 2.6), [8.0, 8.0, 8.0])
    relaxed.calc = SinglePointCalculator(relaxed, energy=-1.0,
                                         magmoms=np.array([0, 0, 0, 0, 0, 0.42]))
    site = check_site(_site(relaxed), relaxed, clean)
    assert site.reactive is True and "P0-S1" in site.reaction_note
    assert site.li_magnetic_moment == pytest.approx(0.42)
    assert site.li_charge is None and site.magnetic_moment == 0.9


def test_check_site_without_gpaw_gives_no_charge(tmp_path):
    from types import SimpleNamespace

    other = SimpleNamespace(description={"engine": "ml"})
    clean = ps4_unit()
    relaxed = with_li(clean, [9.0, 6.0, 6.0])
    site = check_site(_site(relaxed), relaxed, clean, factory=other, workdir=tmp_path)
    assert site.reactive is False and site.li_charge is None
    assert "not GPAW" in site.li_charge_note


@pytest.mark.gpaw
def test_hirshfeld_li_charge_on_a_tiny_gpaw_cell(tmp_path):
    """LiCl (2 atoms, Gamma point, test preset): Li positive, charges sum to zero, cached."""
    from ase.build import bulk

    from interphase_dft.calc.charges import hirshfeld_charges, li_charge
    from interphase_dft.calc.factory import GPAWFactory
    from interphase_dft.calc.presets import preset

    settings = preset("test", {"dft": {"kpt_density": 0.0}})
    licl = bulk("LiCl", "rocksalt", a=5.13)[[1, 0]]  # Cl first, the Li last like host + Li
    factory = GPAWFactory(settings, is_metal=False, moving=False)
    licl.calc = factory(licl)
    licl.get_potential_energy()
    q = hirshfeld_charges(licl.calc, licl)
    assert q.sum() == pytest.approx(0.0, abs=1e-3)
    assert 0.2 < q[1] < 1.0 and q[0] == pytest.approx(-q[1], abs=1e-3)
    charge, note = li_charge(licl, factory, tmp_path)
    assert charge == pytest.approx(q[1], abs=1e-6) and note.startswith("Hirshfeld")
    assert (tmp_path / "charge.json").exists()
    again, _ = li_charge(licl, factory, tmp_path)  # read from the cache, no SCF
    assert again == charge


@pytest.mark.gpaw
def test_li_charge_reads_the_sites_own_scf_through_a_reusing_factory(tmp_path):
    """The binding recipe's site factory keeps the site's converged GPAW calculator
    (calc.reuse, exact geometry): the Li charge then costs no SCF and no second log."""
    from ase.build import bulk

    from interphase_dft.calc.charges import li_charge
    from interphase_dft.calc.factory import GPAWFactory
    from interphase_dft.calc.presets import preset
    from interphase_dft.calc.reuse import ReusingFactory

    settings = preset("test", {"dft": {"kpt_density": 0.0}})
    licl = bulk("LiCl", "rocksalt", a=5.13)[[1, 0]]
    factory = ReusingFactory(GPAWFactory(settings, is_metal=False, moving=False,
                                         txt=str(tmp_path / "gpaw.txt")), move=False)
    site = licl.copy()
    site.calc = factory(site, 0, "static")
    site.get_potential_energy()
    charge, note = li_charge(licl, factory, tmp_path)
    assert note.startswith("Hirshfeld") and 0.2 < charge < 1.0
    assert factory.built == 1 and factory.reused == 1  # the site's calculator, no new one
    assert not (tmp_path / "gpaw-charge.txt").exists()
    moved = licl.copy()
    moved.positions[1] += 0.1
    assert factory(moved, 0, "static") is not site.calc  # move=False: another geometry, new


def test_a_failed_charge_scf_is_metered_and_not_cached(tmp_path):
    """An SCF that fails leaves the site without a charge for this run only: nothing is
    cached, so a rerun tries again; the ledger is asked before the SCF and charged after it,
    failed or not."""
    from ase.build import bulk
    from ase.calculators.calculator import Calculator

    from interphase_dft.calc.charges import li_charge

    class Failing(Calculator):
        implemented_properties = ("energy",)

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            raise RuntimeError("SCF did not converge")

    class Factory:
        calls = 0

        def __init__(self):
            self.description = {"engine": "gpaw", "xc": "PBE"}

        def __call__(self, atoms, attempt=0, label=""):
            Factory.calls += 1
            return Failing()

    class Meter:
        def __init__(self):
            self.events = []

        def check(self):
            self.events.append("check")

        def charge(self, seconds):
            self.events.append("charge")

    licl = bulk("LiCl", "rocksalt", a=5.13)[[1, 0]]
    meter = Meter()
    charge, note = li_charge(licl, Factory(), tmp_path, meter=meter)
    assert charge is None and "SCF did not converge" in note
    assert meter.events == ["check", "charge"]
    assert not (tmp_path / "charge.json").exists()
    li_charge(licl, Factory(), tmp_path, meter=meter)
    assert Factory.calls == 2 and meter.events == ["check", "charge"] * 2
