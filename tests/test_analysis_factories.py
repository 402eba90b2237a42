"""Synthetic, schema-valid documents for the analysis/report tests (plus their own checks).

The factories build real :mod:`interphase_dft.schemas` objects from tiny ASE cells, so the
analysis code sees exactly what the recipes store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.barrier_status import NO_SADDLE, NOT_CONVERGED, SADDLE, SURROGATE_ONLY
from interphase_dft.schemas import (
    BarrierDoc,
    BindingEnergyDoc,
    NEBImageData,
    ReferenceEnergies,
    SiteResult,
    StructureData,
    doc_from_dict,
)

LI_ATOM = -0.19  # eV, made-up but self-consistent reference energies
LI_BCC = -1.90
SETTINGS = {"preset": "test", "dft": {"xc": "PBE", "ecut": 200.0}}


def tiny_structure(symbol: str = "Al") -> StructureData:
    atoms = Atoms(symbol + "2", positions=[[0, 0, 0], [1.4, 1.4, 1.4]], cell=[2.8] * 3, pbc=True)
    return StructureData.from_atoms(atoms)


def make_binding_doc(
    phase: str,
    eb_atom_sites: list[float],
    *,
    mode: str = "surface",
    li_atom: float = LI_ATOM,
    li_bcc: float = LI_BCC,
    preset: str = "test",
    created: str = "2026-01-01T00:00:00+00:00",
    converged: bool = True,
) -> BindingEnergyDoc:
    """A binding document whose sites have the given atom-referenced E_b (eV)."""
    host_energy = -10.0
    sites = []
    for i, eb in enumerate(eb_atom_sites):
        energy = eb + host_energy + li_atom
        sites.append(SiteResult(
            label=f"s{i}", site_kind=("hollow", "bridge", "top")[i % 3], position=[0.0, 0.0, 1.0],
            energy=energy, binding_energy_atom=eb, binding_energy_bcc=energy - host_energy - li_bcc,
            converged=converged, final_structure=tiny_structure(),
        ))
    low = min(sites, key=lambda s: s.binding_energy_atom)
    return BindingEnergyDoc(
        phase=phase, mode=mode, host_energy=host_energy, host_structure=tiny_structure(),
        references=ReferenceEnergies(li_atom=li_atom, li_bcc_per_atom=li_bcc,
                                     cohesive_energy=li_atom - li_bcc),
        sites=sites, lowest_site=low.label, binding_energy_atom=low.binding_energy_atom,
        binding_energy_bcc=low.binding_energy_bcc, structure_hash="h" + phase,
        settings={**SETTINGS, "preset": preset}, settings_hash="sh-" + preset, created=created,
        surface={"miller": [1, 0, 0], "termination": 0} if mode == "surface" else None,
    )


def make_barrier_doc(
    a: str,
    b: str,
    barrier: float,
    *,
    reaction: float = 0.1,
    converged: bool = True,
    stage: str = "dft",
    preset: str = "test",
    n_images: int = 5,
    mechanism: str = "vacancy",
) -> BarrierDoc:
    """A barrier document with a smooth single-hump profile of height ``barrier`` (eV),
    certified by the saddle rule's order (ML only, no saddle, not converged, saddle)."""
    s = np.linspace(0.0, 1.0, n_images)
    energies = barrier * np.sin(np.pi * s) ** 2 + reaction * s
    path = (s * 3.0).tolist()
    xs = np.linspace(0.0, 3.0, 40)
    ys = np.interp(xs, path, energies)
    images = [NEBImageData(energy=float(e), fmax=0.03, structure=tiny_structure("Li"))
              for e in energies]
    emax = float(energies.max())
    top = int(np.argmax(energies))
    saddle = (SURROGATE_ONLY if stage == "ml" else NO_SADDLE if top in (0, n_images - 1)
              else SADDLE if converged else NOT_CONVERGED)
    ok = saddle == SADDLE
    return BarrierDoc(
        interface=f"{a}|{b}", phase_a=a, phase_b=b, mechanism=mechanism, saddle=saddle,
        images=images, energies=energies.tolist(), path_coordinate=path,
        spline={"x": xs.tolist(), "y": ys.tolist()},
        barrier_forward=emax if ok else None,
        barrier_reverse=emax - float(energies[-1]) if ok else None,
        reaction_energy=float(energies[-1]),
        e_kra=emax - 0.5 * float(energies[-1]) if ok else None, hop_distance=3.0,
        endpoint_fmax={"initial": 0.02, "final": 0.03},
        saddle_fmax=0.03 if converged else 0.4,
        converged=converged, fmax_final=0.03 if converged else 0.4,
        climbing_image=int(np.argmax(energies)), stage=stage,
        ml_barrier=emax * 0.8 if stage in ("ml+dft", "dft//ml") else None,
        structure_hash=f"b{a}{b}",
        settings={**SETTINGS, "preset": preset}, settings_hash="sh-" + preset,
        force_calls=FORCE_CALLS[stage],
    )


#: force-call records as the barrier recipe writes them (42 DFT calls; keys ending _ml: CHGNet)
FORCE_CALLS = {
    "dft": {"endpoint_initial": 10, "endpoint_final": 10, "dft_neb": 22},
    "ml+dft": {"endpoint_initial": 10, "endpoint_final": 10, "dft_ml_path_check": 3,
               "dft_neb": 19},
    "dft//ml": {"endpoint_initial_ml": 30, "endpoint_final_ml": 28, "endpoint_initial": 1,
                "endpoint_final": 1, "dft_ml_path_check": 40},
    "ml": {"endpoint_initial": 10, "endpoint_final": 10, "dft_neb": 22},
}


def campaign_docs() -> list[dict[str, Any]]:
    """Four phases and three interfaces, as stored dicts (with a Mongo-like ``_id``)."""
    docs: list[Any] = [
        make_binding_doc("Al", [-1.2, -1.0]),
        make_binding_doc("LiAl", [-1.6, -1.5, -1.3]),
        make_binding_doc("LPSC", [-2.4, -2.0]),
        make_binding_doc("Li2S", [-2.9]),
        make_barrier_doc("LiAl", "LPSC", 0.35),
        make_barrier_doc("Al", "Li2S", 0.55, stage="ml+dft", mechanism="interstitial"),
        make_barrier_doc("LiAl", "Li2S", 0.48, converged=False),
    ]
    return [{"_id": i, **d.model_dump()} for i, d in enumerate(docs)]


def test_factories_make_valid_consistent_docs() -> None:
    doc = make_binding_doc("Al", [-1.2, -1.5])
    assert doc.lowest_site == "s1"
    assert np.isclose(doc.binding_energy_atom - doc.binding_energy_bcc, LI_BCC - LI_ATOM)
    for raw in campaign_docs():
        again = doc_from_dict(raw)
        assert again.kind == raw["kind"]
