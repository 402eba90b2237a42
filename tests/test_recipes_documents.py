"""The common document header the recipes build, and documents stored by schema version 1."""

from __future__ import annotations

import pytest
from ase.build import bulk

from interphase_dft.calc.presets import preset
from interphase_dft.calc.runlog import RunLog
from interphase_dft.schemas import (
    SCHEMA_VERSION,
    BindingEnergyDoc,
    ReferenceEnergies,
    SiteResult,
    StructureData,
    doc_from_dict,
    settings_hash,
    structure_hash,
)


def _binding_doc() -> BindingEnergyDoc:
    host = bulk("Al", "fcc", a=4.05)
    settings = preset("test")
    run = RunLog(timings={"host": 1.0}, force_calls={"host": 4}, warnings=["careful"])
    data = StructureData.from_atoms(host)
    site = SiteResult(label="oct_1", site_kind="octahedral", position=[0.0, 0.0, 2.0],
                      energy=-5.0, binding_energy_atom=-1.0, binding_energy_bcc=0.6,
                      converged=True, final_structure=data)
    return BindingEnergyDoc.from_run(
        settings, run, calculator={"engine": "test"}, input_structure=host, phase="Al",
        mode="bulk", host_energy=-4.0, host_structure=data,
        references=ReferenceEnergies(li_atom=0.0, li_bcc_per_atom=-1.6, cohesive_energy=1.6),
        sites=[site], lowest_site="oct_1", binding_energy_atom=-1.0, binding_energy_bcc=0.6)


def test_header_comes_from_settings_run_log_and_input_structure():
    doc = _binding_doc()
    s_hash = settings_hash(preset("test").physics())
    h = structure_hash(bulk("Al", "fcc", a=4.05))
    assert doc.settings_hash == s_hash and doc.settings["preset"] == "test"
    assert doc.structure_hash == h and doc.input_hash == f"{h}:{s_hash}"
    assert doc.work_key == "" and doc.schema_version == SCHEMA_VERSION
    assert doc.timings == {"host": 1.0} and doc.force_calls == {"host": 4}
    assert doc.warnings == ["careful"] and doc.calculator == {"engine": "test"}
    assert "ase" in doc.versions


def test_documents_of_schema_version_1_are_read():
    """A stored v1 document: task_key (= structure:settings hash), store keys with '_'."""
    new = _binding_doc()
    old = new.model_dump(mode="json")
    old["task_key"] = old.pop("input_hash")
    del old["work_key"]
    old.update(schema_version=1, _id="abc", _fw_id=3)
    doc = doc_from_dict(old)
    assert doc.input_hash == new.input_hash and doc.work_key == ""
    assert doc.schema_version == 1 and doc.binding_energy_bcc == pytest.approx(0.6)
    stored = {**new.model_dump(mode="json"), "work_key": "wk"}
    assert doc_from_dict(stored).work_key == "wk"
