"""Active-learning loop (issue 17, items 1 and 3): EMT stands in for DFT on an Al vacancy hop,
the real CHGNet surrogate is fine-tuned on its frames."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.mep import NEB
from ase.mep.neb import NEBOptimizer
from ase.optimize import BFGS

from interphase_dft.builders.neb import interpolate_images
from interphase_dft.calc.finetune import FineTuned
from interphase_dft.calc.frames import AseDbFrames, Frame
from interphase_dft.calc.ml import MLFactory
from interphase_dft.calc.presets import preset
from interphase_dft.calc.settings import CalcSettings, MLSettings
from interphase_dft.recipes.active_learning import CERTIFIED, active_learning_band

torch.set_num_threads(1)


class EMTFactory:
    """The reference level of these tests (a description like GPAWFactory's)."""

    def __call__(self, atoms: Atoms, attempt: int = 0, label: str = "") -> EMT:
        return EMT()

    @property
    def description(self) -> dict[str, Any]:
        return {"engine": "emt"}


class CountingEMT(EMT):
    calls = 0

    def calculate(self, *args: Any, **kwargs: Any) -> None:
        CountingEMT.calls += 1
        super().calculate(*args, **kwargs)


def vacancy_hop(neighbour: int = 0) -> tuple[Atoms, Atoms]:
    """Al 2x2x2 cubic cell (31 atoms) with a vacancy at the origin; the ``neighbour``-th
    nearest atom hops into it (fcc nearest-neighbour hop, 2.86 A)."""
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    site = a.positions[0].copy()
    del a[0]
    d = np.linalg.norm(a.positions - site, axis=1)
    j = int(np.argsort(d)[neighbour])
    final = a.copy()
    final.positions[j] = site
    return a, final


def plain_neb(initial: Atoms, final: Atoms, fmax: float, n_images: int = 3) -> tuple[int, float]:
    """Reference calls and barrier (eV) of plain ASE: BFGS endpoints, IDPP, CI-NEB (ODE)."""
    CountingEMT.calls = 0
    ends = []
    for x in (initial, final):
        x = x.copy()
        x.calc = CountingEMT()
        BFGS(x, logfile=None).run(fmax=0.05)
        ends.append(x)
    band = interpolate_images(ends[0], ends[1], n_images, method="idpp", mic=True)
    band = [ends[0], *band[1:-1], ends[1]]
    for im in band[1:-1]:
        im.calc = CountingEMT()
    neb = NEB(band, climb=True, method="improvedtangent")
    NEBOptimizer(neb, method="ode", logfile=None).run(fmax=fmax, steps=500)
    e = [im.get_potential_energy() for im in band]
    return CountingEMT.calls, max(e) - e[0]


def settings(**neb: Any) -> CalcSettings:
    # EMT is the reference here: CHGNet's finite-difference Hessian would cost more than the
    # EMT calls it saves (tested in test_recipes_host.py and test_calc_hessian.py)
    return preset("test", {"neb": {"n_images": 3, "fmax": 0.05, "ml_fmax": 0.03, "steps": 200,
                                   "surrogate_hessian": False, **neb},
                           "relax": {"fmax": 0.05, "steps": 100, "ml_steps": 200}})


@pytest.fixture(scope="module")
def surrogate() -> MLFactory:
    ml = MLFactory(MLSettings())
    ml.model  # noqa: B018 - load once for the module
    return ml


@pytest.fixture(scope="module")
def plain_and_loop(tmp_path_factory: pytest.TempPathFactory,
                   surrogate: MLFactory) -> tuple[int, float, Any, AseDbFrames]:
    """The plain NEB (calls, barrier) and the loop without correction on the vacancy hop,
    shared by the tests that compare with them."""
    initial, final = vacancy_hop()
    s = settings()
    plain_calls, plain_barrier = plain_neb(initial, final, s.neb.fmax)
    tmp = tmp_path_factory.mktemp("loop")
    store = AseDbFrames(tmp / "frames.db")
    r = active_learning_band(initial, final, EMTFactory(), surrogate, s, tmp / "hop",
                             frames=store, work_key="a" * 64)
    return plain_calls, plain_barrier, r, store


@pytest.mark.slow
def test_converges_to_reference_saddle_with_fewer_calls(plain_and_loop: Any) -> None:
    plain_calls, plain_barrier, r, store = plain_and_loop
    s = settings()
    print(f"AL: {r.stage}, rounds {r.rounds}, reference calls {r.reference_calls} "
          f"(plain NEB {plain_calls}), barrier {r.barrier_forward:.4f} eV (plain "
          f"{plain_barrier:.4f}), fine-tuning {r.finetune_seconds} s, errors before "
          f"{r.errors_before} after {r.errors_after}")
    assert r.stage == CERTIFIED and r.fallback is None
    assert r.ci_force <= s.neb.fmax and max(r.endpoint_forces) <= s.relax.fmax
    assert abs(r.barrier_forward - plain_barrier) < 0.02
    assert r.reference_calls < plain_calls
    assert store.count() == r.reference_calls  # every reference single point, once (certified
    # within the loop: single points only, no optimizer revisiting a geometry)
    assert r.weights_hash and len(r.weights_hash) == 64 and r.frame_ids
    assert r.errors_after["force_mae"] < r.errors_before["force_mae"]


def _fake_tune(seen: list[list[Frame]]) -> Any:
    """A fine-tuning stand-in that records its frames and returns the pretrained model."""
    def tune(model: Any, frames: list[Frame], **kwargs: Any) -> FineTuned:
        seen.append(list(frames))
        return FineTuned(model, "0" * 64, [str(f.id) for f in frames], 0.0)
    return tune


@pytest.mark.slow
def test_frames_stored_and_reused_on_a_second_hop(tmp_path: Path,
                                                  surrogate: MLFactory) -> None:
    store = AseDbFrames(tmp_path / "frames.db")
    first = active_learning_band(*vacancy_hop(0), EMTFactory(), surrogate,
                                 settings(al_max_rounds=1), tmp_path / "hop1", frames=store,
                                 work_key="1" * 64)
    assert first.fallback and first.rounds == 2  # one loop round + the reference CI-NEB
    n_first = store.count()
    # the ODE optimizer of the reference CI-NEB may evaluate one geometry twice: stored once
    assert 5 < n_first <= first.reference_calls
    seen: list[list[Frame]] = []
    second = active_learning_band(*vacancy_hop(5), EMTFactory(), surrogate,
                                  settings(al_max_rounds=2), tmp_path / "hop2", frames=store,
                                  work_key="2" * 64, tune=_fake_tune(seen))
    assert len(seen) == 1
    ids = [str(f.id) for f in seen[0]]
    stored_first = {f.id for f in store.select() if f.work_key == "1" * 64}
    assert len(stored_first) == n_first and stored_first <= set(ids)  # the first hop reused
    assert len(set(ids)) == len(ids) >= n_first + 4  # and the second hop's own first round
    # (its relaxed initial endpoint may be the first hop's: the same vacancy, one frame)
    assert second.frame_ids == [str(f.id) for f in seen[0]]
    assert n_first + 5 < store.count() <= n_first + second.reference_calls


@pytest.mark.slow
def test_finetuning_failure_falls_back_to_reference_neb(tmp_path: Path, surrogate: MLFactory,
                                                        caplog: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> FineTuned:
        raise RuntimeError("injected")

    initial, final = vacancy_hop()
    s = settings(al_max_rounds=3)
    with caplog.at_level(logging.WARNING, logger="interphase_dft.recipes"):
        r = active_learning_band(initial, final, EMTFactory(), surrogate, s, tmp_path / "hop",
                                 tune=broken)
    assert "fine-tuning failed" in (r.fallback or "")
    assert any("fine-tuning failed (RuntimeError: injected)" in w for w in r.warnings)
    assert "fine-tuning failed" in caplog.text
    assert r.rounds == 2 and r.finetune_seconds == [] and r.weights_hash is None
    assert r.stage == CERTIFIED and r.ci_force <= s.neb.fmax
    _, plain_barrier = plain_neb(initial, final, s.neb.fmax)
    assert abs(r.barrier_forward - plain_barrier) < 0.02


@pytest.mark.slow
def test_the_corrected_loop_certifies_with_fewer_reference_calls(
        tmp_path: Path, surrogate: MLFactory, plain_and_loop: Any) -> None:
    """neb.al_force_correction: the rounds are quasi-Newton steps on the reference surface
    (adaptive step fractions); measured 10 reference calls against 13 without it and 24 for
    the plain NEB of this hop."""
    _, plain_barrier, bare, _ = plain_and_loop
    initial, final = vacancy_hop()
    s = settings(al_force_correction=True)
    r = active_learning_band(initial, final, EMTFactory(), surrogate, s, tmp_path / "hop")
    assert r.stage == CERTIFIED and r.fallback is None
    assert r.ci_force <= s.neb.fmax and max(r.endpoint_forces) <= s.relax.fmax
    assert abs(r.barrier_forward - plain_barrier) < 0.02
    assert r.reference_calls < bare.reference_calls


def _band(energies: list[float], end_force: float, ci_force: float,
          x: list[float] | None = None) -> list[Atoms]:
    """A band of H2 whose second atom sits at ``x`` (Angstrom; default 0.25 apart)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for i, e in enumerate(energies):
        xi = x[i] if x is not None else 0.25 * i
        a = Atoms("H2", positions=[[0, 0, 0], [0.7 + xi, 0, 0]])
        f = np.zeros((2, 3))
        f[1, 0] = end_force if i in (0, len(energies) - 1) else ci_force
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        out.append(a)
    return out


def test_a_band_without_interior_maximum_between_minima_is_finished() -> None:
    """Its highest image is an endpoint: no climbing image to converge, the saddle rule
    reports the reaction energy; unrelaxed endpoints still keep the loop going."""
    from interphase_dft.recipes.active_learning import _check

    s = settings()
    downhill = [0.0, -0.1, -0.2, -0.3, -0.4]
    assert _check(s, _band(downhill, 0.01, 0.5), None) is None
    assert "no interior maximum" in _check(s, _band(downhill, 0.3, 0.5), None)
    uphill_to_end = [0.0, 0.1, 0.2, 0.25, 0.3]
    assert _check(s, _band(uphill_to_end, 0.01, 0.5), None) is None
    peaked = [0.0, 0.2, 0.3, 0.2, -0.1]
    assert "climbing image" in _check(s, _band(peaked, 0.01, 0.5), None)
    assert "no previous round" in _check(s, _band(peaked, 0.01, 0.01), None)


def test_the_climbing_force_is_the_reference_maximums() -> None:
    """The review's case: the reference energies peak at image 3 (force 0.3 eV/A) while the
    surrogate's climbing image was image 2 (force 0.01): not certified."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from interphase_dft.recipes.active_learning import _check

    band = _band([0.0, 0.2, 0.25, 0.3, 0.0], 0.01, 0.01)
    f = np.zeros((2, 3))
    f[1, 0] = 0.3
    band[3].calc = SinglePointCalculator(band[3], energy=0.3, forces=f)
    assert "climbing image 0.300" in _check(settings(), band, 0.3)


def test_a_climbing_image_on_top_of_an_endpoint_finishes_the_band() -> None:
    """The LiAl|Li2S round 2: the highest interior image sits 0.01 A from the initial
    minimum, 0.2 meV above it, with a small force: not a saddle to converge (saddle rule
    SEPARATION), the band is finished and the document says no saddle."""
    from interphase_dft.recipes.active_learning import _check, _saddle

    s = settings()
    e = [0.0, 0.0002, -0.029, -0.382, -0.517]
    on_top = _band(e, 0.03, 0.033, x=[0.0, 0.01, 1.22, 2.28, 3.14])
    assert _saddle(on_top) is None and _check(s, on_top, 0.0088) is None
    apart = _band(e, 0.03, 0.033, x=[0.0, 0.4, 1.22, 2.28, 3.14])
    assert _saddle(apart) == 1 and _check(s, apart, 0.0088) is None  # a saddle, certified
    assert "climbing image" in _check(s, _band(e, 0.03, 0.2, x=[0.0, 0.4, 1.22, 2.28, 3.14]),
                                      0.0088)
