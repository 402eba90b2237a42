"""The basin rule of a hop's endpoints (recipes/basin.py): the relaxation's watch
(calc/runners.py ``relax(watch=)``), and the barrier recipe's document for an endpoint that is
not a minimum (status ``no saddle: endpoint not a minimum``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from interphase_dft.barrier_status import NOT_A_MINIMUM, SADDLE
from interphase_dft.calc.presets import preset
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import RelaxSettings
from interphase_dft.recipes.barrier import neb_barrier
from interphase_dft.recipes.basin import EndpointNotMinimum, SiteWatch, site_watches


def emt(atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
    return EMT()


def adatom_hop(start: float) -> tuple[Atoms, Atoms]:
    """Al adatom on Al(100) (2x2, two layers, bottom fixed): final state in a hollow site,
    initial state ``start`` of the way from the neighbouring hollow towards it (0: that
    hollow, a minimum; 0.65: past the bridge at 0.5, on the final state's slope)."""
    s = fcc100("Al", (2, 2, 2), vacuum=5.0)
    add_adsorbate(s, "Al", 1.7, "hollow")
    s.set_constraint(FixAtoms(mask=[a.tag == 2 for a in s]))
    s.info["li_index"] = len(s) - 1
    final = s.copy()
    initial = s.copy()
    initial.positions[-1, 0] -= (1.0 - start) * s.cell[0, 0] / 2
    return initial, final


def test_a_site_watch_uses_the_minimum_image_and_names_the_state() -> None:
    cell = Atoms("Li", positions=[[0.2, 0, 0]], cell=[4, 4, 4], pbc=True)
    w = SiteWatch("initial", 0, (0.2, 0.0, 0.0), (3.8, 0.0, 0.0), 0.4)  # apart across x=0
    assert w(cell) is None
    cell.positions[0] = [3.95, 0, 0]  # past the midpoint, not yet within 0.4/3 of the site
    assert w.distances(cell) == pytest.approx((0.25, 0.15)) and w(cell) is None
    cell.positions[0] = [3.85, 0, 0]  # arrived
    assert "initial state is not a minimum" in (w(cell) or "")
    cell.positions[0] = [-0.1, 0, 0]  # the same across the boundary: raw distances differ
    assert w(cell) and w.distances(cell) == pytest.approx((0.3, 0.1))
    assert SiteWatch("initial", 0, (0.2, 0, 0), (3.8, 0, 0), 0.4, mic=False)(cell) is None


def test_site_watches_need_the_same_hopping_li_in_both_endpoints() -> None:
    initial, final = adatom_hop(0.0)
    watches = site_watches(initial, final)
    assert watches is not None and [w.name for w in watches] == ["initial", "final"]
    assert watches[0].other == watches[1].own
    assert watches[0](initial) is None and watches[1](final) is None
    del initial.info["li_index"]
    assert site_watches(initial, final) is None
    assert site_watches(final, final) is None  # no hop: nothing to watch


def test_a_watch_stops_the_relaxation_and_the_stop_is_stored(tmp_path: Path) -> None:
    initial, final = adatom_hop(0.65)
    watch = site_watches(initial, final)[0]
    r = relax(initial, emt, tmp_path, RelaxSettings(fmax=0.01), watch=watch)
    assert r.stopped and "left its site" in r.stopped and not r.converged
    own, other = watch.distances(r.atoms)
    assert other <= watch.separation / 3 < own
    again = relax(initial, emt, tmp_path, RelaxSettings(fmax=0.01), watch=watch)
    assert again.stopped == r.stopped and again.force_calls == r.force_calls
    # without the watch the same start relaxes into the final state's hollow
    plain = relax(initial, emt, tmp_path / "plain", RelaxSettings(fmax=0.01))
    assert plain.converged and plain.stopped is None and plain.steps > r.steps
    assert np.linalg.norm(plain.atoms.positions[-1, :2] - final.positions[-1, :2]) < 0.05


class Killed(BaseException):
    """Stands in for a kill of the worker: nothing in the runner catches it."""


def test_a_resumed_relaxation_checks_its_last_frame_first(tmp_path: Path) -> None:
    initial, final = adatom_hop(0.65)
    watch = site_watches(initial, final)[0]
    seen: list[Atoms] = []

    def kill_after_the_stop(atoms: Atoms) -> None:  # not a stop: the run is killed later
        seen.append(atoms.copy())
        if len(seen) == 30:
            raise Killed

    with pytest.raises(Killed):
        relax(initial, emt, tmp_path, RelaxSettings(fmax=0.01), watch=kill_after_the_stop)
    assert watch(seen[-1])  # the killed run was already past the stop
    resumed = relax(initial, emt, tmp_path, RelaxSettings(fmax=0.01), watch=watch)
    # the watch saw the input, then 29 evaluated frames (steps 0-28) before the kill
    assert resumed.stopped and resumed.resumed and resumed.steps == 28
    assert resumed.force_calls == 29  # no new call: the stored last frame was checked


def test_a_run_finished_before_it_was_watched_is_judged_by_its_last_frame(
        tmp_path: Path) -> None:
    initial, final = adatom_hop(0.65)
    plain = relax(initial, emt, tmp_path, RelaxSettings(fmax=0.01))
    assert plain.converged and plain.stopped is None  # slid into the final hollow
    watched = relax(initial, emt, tmp_path, RelaxSettings(fmax=0.01),
                    watch=site_watches(initial, final)[0])
    assert watched.stopped and not watched.converged
    assert watched.force_calls == plain.force_calls


def test_a_start_that_is_already_at_the_other_site_is_not_judged(tmp_path: Path) -> None:
    initial, final = adatom_hop(0.65)
    start = initial.copy()
    start.positions[-1] = final.positions[-1] + [0.1, 0.0, 0.0]  # an earlier stage moved it
    r = relax(start, emt, tmp_path, RelaxSettings(fmax=0.01),
              watch=site_watches(initial, final)[0])
    assert r.converged and r.stopped is None


def test_an_endpoint_that_slides_into_the_other_gives_no_barrier(tmp_path: Path) -> None:
    settings = preset("test", {"neb": {"fmax": 0.05}, "relax": {"fmax": 0.02}})
    initial, final = adatom_hop(0.65)
    doc = neb_barrier(initial, final, settings, tmp_path, calc_factory=emt,
                      phase_a="Al", phase_b="Al")
    assert doc.saddle == NOT_A_MINIMUM and not doc.certified
    assert doc.barrier_forward is None and doc.reaction_energy is None
    assert len(doc.images) == 2 and doc.energies[0] == 0.0 and doc.energies[1] < -0.05
    assert "initial state is not a minimum" in doc.saddle_note
    assert doc.stage == "dft" and doc.force_calls["endpoint_initial"] > 0
    assert doc.hop_distance == pytest.approx(1.0, abs=0.01)  # the sites' separation
    assert doc.fmax_final is None and doc.images[1].fmax > 0
    # the same hop from the neighbouring hollow is a minimum and has its saddle at the bridge
    ok = neb_barrier(*adatom_hop(0.0), settings, tmp_path / "ok", calc_factory=emt)
    assert ok.saddle == SADDLE and ok.barrier_forward > 0.1


def test_the_active_learning_loop_stops_at_an_endpoint_that_is_not_a_minimum(
        tmp_path: Path) -> None:
    from interphase_dft.calc.ml import MLFactory
    from interphase_dft.calc.settings import MLSettings
    from interphase_dft.recipes.active_learning import active_learning_band

    settings = preset("test", {"neb": {"al_reference_endpoints": True,
                                       "surrogate_hessian": False}})
    initial, final = adatom_hop(0.65)
    never = MLFactory(MLSettings(), _model="never used before the endpoints")
    with pytest.raises(EndpointNotMinimum) as err:
        active_learning_band(initial, final, emt, never, settings, tmp_path)
    first, last = err.value.path
    assert last.get_potential_energy() < first.get_potential_energy()
    assert "initial state" in err.value.reason
    assert err.value.calls > 0  # the reference relaxation's force calls, for the run log


class PulledEMT(EMT):
    """EMT plus a spring (5 eV/A^2) pulling atom ``index`` to ``target``: a surrogate whose
    only minimum of that atom is at the other endpoint's site."""

    def __init__(self, index: int, target: np.ndarray) -> None:
        super().__init__()
        self.index, self.target = index, np.asarray(target)

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        d = self.atoms.positions[self.index] - self.target
        self.results["energy"] += 2.5 * float(d @ d)
        self.results["free_energy"] = self.results["energy"]
        forces = self.results["forces"].copy()
        forces[self.index] -= 5.0 * d
        self.results["forces"] = forces


def test_a_surrogate_that_moves_an_endpoint_to_the_other_site_hands_it_to_the_reference(
        tmp_path: Path) -> None:
    from dataclasses import dataclass as dc
    from typing import Any

    from interphase_dft.calc.finetune import FineTuned
    from interphase_dft.calc.ml import MLFactory
    from interphase_dft.calc.settings import MLSettings
    from interphase_dft.recipes.active_learning import active_learning_band

    initial, final = adatom_hop(0.0)  # the initial hollow is an EMT minimum

    @dc
    class Pulled(MLFactory):
        def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
            return PulledEMT(len(atoms) - 1, final.positions[-1])

        @property
        def model(self) -> Any:
            return "pulled"

    def tune(model: Any, frames: list[Any], **kwargs: Any) -> FineTuned:
        return FineTuned(model, "0" * 64, [str(f.id) for f in frames], 0.0)

    settings = preset("test", {"neb": {"fmax": 0.05, "surrogate_hessian": False,
                                       "al_max_rounds": 2, "n_images": 3},
                               "relax": {"fmax": 0.05}})
    r = active_learning_band(initial, final, emt, Pulled(MLSettings()), settings, tmp_path,
                             tune=tune)
    assert any("surrogate moved the initial state's Li" in w for w in r.warnings)
    assert (tmp_path / "endpoints" / "initial" / "relax.json").exists()
    # the reference kept the initial state in its own hollow (relaxed in height only)
    assert np.linalg.norm(r.images[0].positions[-1, :2] - initial.positions[-1, :2]) < 0.05
    assert r.endpoint_forces[0] <= settings.relax.fmax


def test_rearrangement_names_a_host_atom_that_changed_site_not_the_hopping_li():
    from interphase_dft.recipes.basin import REARRANGED, rearrangement

    start = Atoms("Li3", positions=[[0, 0, 0], [3, 0, 0], [0, 3, 0]], cell=[9, 9, 9],
                  pbc=True)
    start.info["li_index"] = 0
    hop_only = start.copy()
    hop_only.positions[0] += [2.5, 0, 0]  # the hopping Li moves: that is the hop itself
    hop_only.positions[1] += [0, 0, 0.4]  # a neighbour relaxes a little
    assert rearrangement(start, hop_only, "final") is None
    refilled = hop_only.copy()
    refilled.positions[2] += [0, -(REARRANGED + 1.0), 0]  # a neighbour fills a vacancy
    msg = rearrangement(start, refilled, "final")
    assert msg is not None and "final state rearranged" in msg and "Li 2 moved 2.00 A" in msg
    wrapped = start.copy()
    wrapped.positions[2] += [9.0, 0, 0]  # a periodic image of the same site: no move
    assert rearrangement(start, wrapped, "initial") is None
