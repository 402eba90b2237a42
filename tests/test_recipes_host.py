"""The full host of a migration cell relaxed before the hop's endpoints are cut from it
(``neb.relax_host``, recipes/host.py, hop_setup.HostPlan)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc100
from ase.constraints import FixAtoms

from interphase_dft.builders.hops import vacancy_hop
from interphase_dft.builders.migration import migration_cell
from interphase_dft.calc.presets import preset
from interphase_dft.errors import InputError
from interphase_dft.recipes.barrier import neb_barrier
from interphase_dft.recipes.hop_setup import HostPlan
from tests.test_recipes_barrier import emt_factory


def _fixed(atoms) -> list[int]:
    return sorted(int(i) for c in atoms.constraints if isinstance(c, FixAtoms)
                  for i in c.get_indices())


def test_endpoints_cut_from_the_host_are_the_builders_and_follow_a_moved_host():
    cell = migration_cell("LiAl", "LiCl", min_thickness=6.0, max_atoms=200,
                          miller_a=(1, 1, 0), miller_b=(1, 1, 0))
    hop = vacancy_hop(cell)
    plan = HostPlan(cell.atoms, hop.meta["site_final"]["cell_index"], hop.li_index)
    states = [hop.initial, hop.final]
    same = plan.states_from(cell.atoms, states)  # the unrelaxed host gives the built endpoints
    for a, b in zip(same, states, strict=True):
        assert np.allclose(a.positions, b.positions)
        assert a.get_chemical_symbols() == b.get_chemical_symbols() and _fixed(a) == _fixed(b)
    moved = cell.atoms.copy()
    rng = np.random.default_rng(0)
    moved.positions += rng.normal(0, 0.05, moved.positions.shape)
    initial, final = plan.states_from(moved, states)
    j, li = plan.site_final, plan.li_index
    rest = np.delete(moved.positions, j, axis=0)
    assert np.allclose(initial.positions, rest)
    assert np.allclose(np.delete(final.positions, li, axis=0), np.delete(rest, li, axis=0))
    assert np.allclose(final.positions[li], moved.positions[j])  # the Li ends on the vacancy
    assert final[li].symbol == "Li" and initial.info["li_index"] == li
    with pytest.raises(InputError, match="do not belong"):
        plan.states_from(moved[:-1], states)


def _al_vacancy_hop():
    """An Al(100) surface vacancy hop with its full host (bottom layer fixed)."""
    host = fcc100("Al", (3, 3, 3), vacuum=6.0)
    host.positions[host.get_tags() < 3, 2] += 0.08  # free layers off their minimum
    host.set_constraint(FixAtoms(mask=[a.tag == 3 for a in host]))
    top = [a.index for a in host if a.tag == 1]
    j, hopper = top[0], top[1]  # neighbours in the top layer
    keep = np.ones(len(host), bool)
    keep[j] = False
    initial = host[keep]
    initial.set_constraint(FixAtoms(mask=[a.tag == 3 for a in initial]))
    li = hopper - int(hopper > j)
    final = initial.copy()
    final.positions[li] = host.positions[j]
    for atoms in (initial, final):
        atoms.info["li_index"] = li
    return host, initial, final, HostPlan(host, j, li)


def test_a_vacancy_hop_from_the_relaxed_host(tmp_path):
    host, initial, final, plan = _al_vacancy_hop()
    settings = preset("test", {"neb": {"fmax": 0.05, "relax_host": True}, "relax": {"fmax": 0.02}})
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt_factory,
                      phase_a="Al", phase_b="Al", host=plan)
    rec = doc.interface_meta["host_relaxation"]
    assert rec["converged"] and rec["fmax_eV_A"] <= settings.relax.fmax
    assert rec["n_atoms"] == len(host) and rec["calls"] >= 2
    assert rec["curvature"] == "BFGS default"  # the test preset has no surrogate
    assert (tmp_path / "host" / "dft.json").is_file()
    assert doc.budget["dft_calls"] >= rec["calls"]  # the host is charged to the barrier
    assert doc.converged and 0.0 < doc.barrier_forward < 2.0
    # the same hop without the setting: no host relaxation recorded
    plain = neb_barrier(initial, final, preset("test", {"neb": {"fmax": 0.05},
                                                       "relax": {"fmax": 0.02}}),
                        tmp_path / "plain", calc_factory=emt_factory, phase_a="Al",
                        phase_b="Al", host=plan)
    assert "host_relaxation" not in plain.interface_meta
    assert plain.barrier_forward == pytest.approx(doc.barrier_forward, abs=0.03)


def test_with_a_surrogate_the_host_starts_from_its_minimum_and_hessian(tmp_path):
    """Surrogate = EMT, reference = EMT plus a uniform field on the free layers: BFGS from the
    surrogate's Hessian; a rerun reads the finished relaxation and the stored Hessian."""
    from interphase_dft.calc.hessian import HESSIAN_FILE
    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.recipes.host import HOST_DIR, relaxed_host_states
    from tests.test_calc_hessian import FieldEMT

    host, initial, final, plan = _al_vacancy_hop()
    force = np.zeros((len(host), 3))
    force[host.get_tags() == 1, 2] = 0.15
    force[host.get_tags() == 2, 2] = -0.15
    field = FieldEMT(force, host.positions.copy())
    settings = preset("test", {"relax": {"fmax": 0.01}})
    kw = dict(factory=lambda a, attempt=0, label="": field, surrogate=emt_factory,
              settings=settings, workdir=tmp_path)
    first = relaxed_host_states(plan, [initial, final], run=RunLog(), **kw)
    states, rec = first.states, first.record
    assert rec["converged"] and rec["curvature"] == "surrogate Hessian"
    assert rec["start"] == "surrogate-relaxed" and rec["calls"] <= 6
    assert (tmp_path / HOST_DIR / HESSIAN_FILE).is_file()
    calls = field.calls
    second = relaxed_host_states(plan, [initial, final], run=RunLog(), **kw)
    again, rec2 = second.states, second.record
    assert field.calls == calls and rec2["energy_eV"] == rec["energy_eV"]  # nothing recomputed
    assert np.allclose(again[1].positions, states[1].positions)
    top = host.get_tags()[np.arange(len(host)) != plan.site_final] == 1
    assert states[0].positions[top, 2].mean() > initial.positions[top, 2].mean()  # the field


def test_the_loop_keeps_the_relaxed_host_through_its_anchor(tmp_path):
    """Reference = EMT plus a uniform field on the host's free layers (none on the hopping
    atom); surrogate = plain EMT, which never learns here (the fine-tuning stand-in returns
    it unchanged). With the host anchor the surrogate is corrected by the field measured at
    the relaxed host, so round 0's endpoints and saddle are already the reference's: 5
    reference calls. Without it the surrogate relaxes the host back to its own minimum and the
    loop has to finish with reference relaxations and a reference CI-NEB."""
    from interphase_dft.calc.finetune import FineTuned
    from interphase_dft.calc.frames import AseDbFrames, RecordingFactory
    from interphase_dft.calc.runlog import RunLog
    from interphase_dft.calc.settings import MLSettings
    from interphase_dft.recipes.active_learning import CERTIFIED, active_learning_band
    from interphase_dft.recipes.al_steps import HopFrames
    from interphase_dft.recipes.host import relaxed_host_states
    from tests.test_calc_hessian import FieldEMT
    from tests.test_recipes_active_learning import EMTSurrogate

    host, initial, final, plan = _al_vacancy_hop()
    hopper = plan.li_index + int(plan.li_index >= plan.site_final)  # its index in the host
    force = np.zeros((len(host), 3))
    force[host.get_tags() == 1, 2] = 0.15
    force[host.get_tags() == 2, 2] = -0.15
    force[[plan.site_final, hopper]] = 0.0
    keep = np.arange(len(host)) != plan.site_final

    def reference(atoms, attempt=0, label=""):
        if len(atoms) == len(host):
            return FieldEMT(force, host.positions.copy())
        return FieldEMT(force[keep], host.positions[keep].copy())

    tuned_on: list[int] = []

    def tune(model, frames, **kwargs):
        tuned_on.append(len(frames))
        return FineTuned(model, "0" * 64, [str(f.id) for f in frames], 0.0)

    settings = preset("test", {"relax": {"fmax": 0.02}, "neb": {
        "fmax": 0.05, "active_learning": True, "al_max_rounds": 2}})
    store = AseDbFrames(tmp_path / "frames.db")  # the host's reference frames are stored
    relaxed = relaxed_host_states(plan, [initial, final],
                                  factory=RecordingFactory(reference, HopFrames(store)),
                                  surrogate=emt_factory, settings=settings,
                                  workdir=tmp_path / "host", run=RunLog())
    assert relaxed.record["converged"]
    n_host = store.count()
    assert n_host == relaxed.record["calls"] >= 2
    correction = relaxed.anchor.correction(emt_factory)
    assert np.allclose(correction.dforce, force[keep], atol=1e-6)  # the field, hopper 0
    out = {}
    for name, anchor in (("anchored", relaxed.anchor), ("plain", None)):
        out[name] = active_learning_band(*relaxed.states, reference,
                                         EMTSurrogate(MLSettings()), settings,
                                         tmp_path / name, tune=tune, anchor=anchor,
                                         frames=store if anchor else None)
        if anchor:  # fine-tuned on the host's frames before round 0, then on round 0's too
            assert tuned_on == [n_host, n_host + 5]
    anchored, plain = out["anchored"], out["plain"]
    assert anchored.stage == CERTIFIED and anchored.fallback is None
    assert anchored.reference_calls == 5 and max(anchored.endpoint_forces) <= 0.02
    assert plain.fallback is not None and plain.reference_calls > anchored.reference_calls
    # the finish relaxes the endpoints by BFGS from the surrogate's Hessian there
    from interphase_dft.calc.hessian import HESSIAN_FILE
    assert (tmp_path / "plain" / "final" / "initial" / HESSIAN_FILE).is_file()
    assert plain.stage == CERTIFIED and max(plain.endpoint_forces) <= 0.02
    assert plain.barrier_forward == pytest.approx(anchored.barrier_forward, abs=0.03)


def test_the_host_anchor_maps_the_host_error_onto_the_hop_atoms():
    """A field on every host atom: the states' correction is the field without the vacant
    site's row, zero on the hopping Li (numbered in the states) and on the fixed atoms, and
    carries no energy offset."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from interphase_dft.constraints import fixed_indices
    from interphase_dft.recipes.host import HostAnchor
    from tests.test_calc_hessian import FieldEMT

    host = _al_vacancy_hop()[0]
    top = [a.index for a in host if a.tag == 1]
    j, hopper = top[2], top[0]  # the vacant site after the hopper: li_index == hopper
    plan = HostPlan(host, j, hopper)
    rng = np.random.default_rng(1)
    field = rng.normal(0.0, 0.2, (len(host), 3))
    ref = host.copy()
    ref.calc = FieldEMT(field, host.positions.copy())
    ref.get_forces()
    res = ref.calc.results
    ref.calc = SinglePointCalculator(ref, energy=res["energy"], forces=res["forces"])
    corr = HostAnchor(ref, plan).correction(emt_factory)
    keep = np.arange(len(host)) != j
    expected = field[keep].copy()
    expected[hopper] = 0.0
    fixed = fixed_indices(host)
    assert fixed and all(k < j for k in fixed)  # fixed atoms keep their index in the states
    expected[fixed] = 0.0
    assert corr.dforce.shape == (len(host) - 1, 3) and np.allclose(corr.dforce, expected)
    assert corr.denergy == 0.0 and np.allclose(corr.positions, host.positions[keep])
