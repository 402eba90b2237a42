"""Binding-energy recipe with real GPAW (test preset, tiny cells) and the Li references."""

from __future__ import annotations

import json

import pytest
from ase.build import bulk

from interphase_dft.calc import references as refmod
from interphase_dft.calc.factory import GPAWFactory
from interphase_dft.calc.references import li_references
from interphase_dft.calc.runners import static
from interphase_dft.calc.settings import preset
from interphase_dft.errors import CalculationError
from interphase_dft.schemas import BindingEnergyDoc

pytestmark = pytest.mark.gpaw


@pytest.fixture(scope="module")
def settings():
    return preset("test")


@pytest.fixture(scope="module")
def refs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("refs")


def test_li_references_are_physical_and_cached(settings, refs_dir, monkeypatch):
    refs = li_references(settings, refs_dir)
    # PBE cohesive energy of Li is about 1.6 eV (experiment 1.63 eV); loose test settings
    assert 1.3 < refs.cohesive_energy < 2.0
    assert refs.li_atom - refs.li_bcc_per_atom == pytest.approx(refs.cohesive_energy, abs=1e-12)
    stored = json.loads(next(refs_dir.glob("li_references-*.json")).read_text())
    assert stored["dispersion"] == "none"

    def boom(*args, **kwargs):
        raise AssertionError("cached references must not be recomputed")

    monkeypatch.setattr(refmod, "factory_for", boom)
    assert li_references(settings, refs_dir) == refs
    # other settings -> another cache entry (and a computation)
    with pytest.raises(AssertionError, match="recomputed"):
        li_references(settings.with_overrides({"dft": {"ecut": 250}}), refs_dir)


@pytest.mark.slow
def test_bulk_binding_energy_document(settings, tmp_path):
    from interphase_dft.recipes.binding import binding_energy

    doc = binding_energy("Al", settings, mode="bulk", workdir=tmp_path)
    assert doc.phase == "Al" and doc.mode == "bulk"
    assert {s.site_kind for s in doc.sites} == {"octahedral", "tetrahedral"}
    r = doc.references
    for site in doc.sites:
        # E_b(atom) - E_b(bcc) == E(bcc)/atom - E(atom) for every site (same host energy)
        assert site.binding_energy_atom - site.binding_energy_bcc == pytest.approx(
            r.li_bcc_per_atom - r.li_atom, abs=1e-8)
        assert site.binding_energy_atom == pytest.approx(
            site.energy - doc.host_energy - r.li_atom, abs=1e-10)
        assert site.final_structure.symbols.count("Li") == 1
    lowest = min(doc.sites, key=lambda s: s.energy)
    assert doc.lowest_site == lowest.label
    assert doc.binding_energy_bcc == lowest.binding_energy_bcc
    assert doc.calculator["dispersion"] == "none"
    assert doc.calculator["smearing"]["width"] == settings.dft.smearing_width  # Al is a metal
    assert doc.task_key.startswith(doc.structure_hash) and doc.settings["preset"] == "test"
    assert set(doc.force_calls) >= {"host"} | {f"site-{s.label}" for s in doc.sites}
    back = BindingEnergyDoc.model_validate_json(doc.model_dump_json())
    assert back.binding_energy_atom == doc.binding_energy_atom
    # the CLI on the same workdir reads every checkpoint and returns the same numbers
    from interphase_dft.cli import main

    out = tmp_path / "doc.json"
    assert main(["binding", "Al", "--mode", "bulk", "--preset", "test", "--workdir",
                 str(tmp_path), "--json", str(out), "-q"]) == 0
    again = BindingEnergyDoc.model_validate_json(out.read_text())
    assert [s.energy for s in again.sites] == [s.energy for s in doc.sites]


def test_missing_paw_setup_names_formula_and_setting(settings, tmp_path):
    factory = GPAWFactory(settings, is_metal=True, extra={"setups": {"Li": "nonexistent"}})
    with pytest.raises(CalculationError, match=r"Li: missing PAW setup \(gpaw xc=PBE.*setups"):
        static(bulk("Li", "bcc", a=3.44), factory, tmp_path)


@pytest.mark.ml
def test_surface_mode_end_to_end_with_surrogate_engine(tmp_path):
    """choose_surface -> slab relax -> every adsorption site, all with CHGNet (engine='ml')."""
    pytest.importorskip("chgnet")
    import numpy as np

    from interphase_dft.recipes.binding import binding_energy

    settings = preset("test", {"engine": "ml"})
    doc = binding_energy("Al", settings, mode="surface", workdir=tmp_path)
    assert doc.mode == "surface" and doc.surface["rule"]
    assert doc.surface["miller"] == [1, 1, 1]
    assert {"top", "bridge"} <= {s.site_kind for s in doc.sites}
    assert doc.host_structure.pbc == [True, True, False]
    fixed = doc.host_structure.fixed
    assert fixed
    host = np.array(doc.host_structure.positions)
    for site in doc.sites:
        final = np.array(site.final_structure.positions)
        assert np.allclose(final[fixed], host[fixed])  # bottom layers stayed fixed
        assert site.binding_energy_atom - site.binding_energy_bcc == pytest.approx(
            doc.references.li_bcc_per_atom - doc.references.li_atom, abs=1e-8)
    assert doc.lowest_site == min(doc.sites, key=lambda s: s.energy).label
