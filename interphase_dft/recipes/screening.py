"""ML pre-screening of Li sites: pick which symmetry-distinct sites get a DFT relaxation.

For low-symmetry hosts with many distinct interstitial sites. With
``settings.binding.max_dft_sites = k`` and more than ``k`` sites, every site is relaxed with
the CHGNet surrogate in ``workdir/ml_screen/site-<label>`` (checkpointed like every other run),
sites whose Li ends up within :data:`MERGE_TOL` of an earlier site's Li (minimum image) are
merged into that earlier site, and the ``k`` lowest surrogate total energies are passed on to
DFT (energies are compared rounded to 0.1 meV, so float noise between equivalent sites is a
tie, and ties go to the alphabetically first label). The surrogate cannot rank sites it places
within ``binding.screen_window`` (``laptop``: 0.1 eV; None: no window) of its lowest: every such
site gets DFT too, up to
``binding.max_window_sites``; when that cap leaves ties without DFT, the record counts them
(``untested_ties``) and a warning says that the lowest E_b is an upper bound. The surrogate
energies only rank sites: they are stored in ``BindingEnergyDoc.screening`` and never reported
as binding energies. A site whose surrogate relaxation fails (atoms collapse, NaN forces) is
left out with a warning and listed under ``screening['failed']``; only if every site fails does
the recipe stop. Li vacancies of bulk hosts are ranked the same way
(``binding.max_dft_vacancies``, the cells built by removing a Li, no merging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from interphase_dft.calc.runlog import RunLog
from interphase_dft.calc.runners import relax
from interphase_dft.calc.settings import CalcSettings
from interphase_dft.constraints import copy_constraints
from interphase_dft.errors import CalculationError, InputError
from interphase_dft.geometry import mic_distance

log = logging.getLogger("interphase_dft.recipes")

#: two sites whose surrogate-relaxed Li positions are closer than this are one site, Angstrom
MERGE_TOL = 0.3


@dataclass
class Screening:
    """Outcome of :func:`screen_sites`.

    Attributes
    ----------
    selected
        Sites that get DFT, in the order of the input list.
    record
        What is stored in ``BindingEnergyDoc.screening`` (energies in eV).
    relaxed
        Surrogate-relaxed host+Li per label (a DFT starting point when ``relax.ml_prerelax``).
    run
        Timings (``ml-site-<label>``, ``ml_screen``), force calls (``ml-site-<label>``) and
        warnings, merged into the document's run log.
    """

    selected: list[Any]
    record: dict[str, Any]
    relaxed: dict[str, Atoms] = field(default_factory=dict)
    run: RunLog = field(default_factory=RunLog)


def needs_screening(n_sites: int, settings: CalcSettings, cap_name: str = "max_dft_sites") -> bool:
    """True when ``settings.binding.<cap_name>`` is set and smaller than ``n_sites``.

    ``cap_name`` is ``'max_dft_sites'`` (Li sites) or ``'max_dft_vacancies'`` (Li vacancies).

    Raises
    ------
    InputError
        The list must be cut but ``binding.screen_with_ml`` is false (no blind truncation).
    CalculationError
        The list must be cut but the surrogate (chgnet) is not installed.
    """
    cap = getattr(settings.binding, cap_name)
    if cap is None or n_sites <= cap:
        return False
    if not settings.binding.screen_with_ml:
        raise InputError(
            f"{n_sites} Li sites but binding.{cap_name}={cap} and "
            "binding.screen_with_ml=false: sites would be dropped without any ranking; set "
            f"binding.screen_with_ml=true or binding.{cap_name}=null (DFT for every site)"
        )
    try:
        import chgnet.model  # noqa: F401
    except ImportError as exc:
        raise CalculationError(
            f"screening {n_sites} Li sites down to binding.{cap_name}={cap} needs the "
            "CHGNet surrogate, which is not importable: install the ml extra "
            f"(scripts/bootstrap.sh dev,ml) or set binding.{cap_name}=null to run DFT "
            "for every site"
        ) from exc
    return True


def _li_position(atoms: Atoms) -> np.ndarray:
    return np.asarray(atoms.positions[-1], float)


def screen_sites(host: Atoms, sites: Sequence[Any], settings: CalcSettings, *,
                 workdir: Path | str, with_li: Any, ml_factory: Any = None,
                 cap_name: str = "max_dft_sites", merge: bool = True,
                 what: str = "Li sites", stop: Callable[[], None] | None = None) -> Screening:
    """Relax Li at every site with the surrogate, merge coincident sites, keep the best ones.

    Parameters
    ----------
    host
        Relaxed host (with its constraints); Li is appended as the last atom.
    sites
        Objects with ``label`` and Cartesian ``position`` (Angstrom); labels must be unique.
    settings
        ``binding.<cap_name>`` (how many to keep), ``relax`` (surrogate fmax/steps),
        ``ml`` (model, device).
    workdir
        The recipe's workdir; runs go to ``workdir/ml_screen/site-<label>``.
    with_li
        ``with_li(host, position) -> Atoms`` (host copy with Li appended, constraints kept).
    ml_factory
        A surrogate factory to reuse (shares the loaded model); default ``MLFactory``.
    cap_name
        The ``settings.binding`` field that caps the DFT list.
    merge
        Merge sites whose last atom (the Li) relaxes onto an earlier site's; False for cells
        built otherwise (a removed Li: vacancies).
    what
        What the sites are, in warnings (``'Li sites'``, ``'Li vacancies'``).
    stop
        Called before each site (e.g. the work item's ``Ledger.check``): raises to stop the
        screening when a cost ceiling or the run's time limit has been reached, so no
        surrogate work is spent that no DFT call could follow.

    Returns
    -------
    Screening
        Selected sites and the record for the document.
    """
    from interphase_dft.calc.ml import MLFactory

    cap = getattr(settings.binding, cap_name)
    if cap is None:
        raise InputError(f"screen_sites needs binding.{cap_name}; check needs_screening first")
    labels = [str(s.label) for s in sites]
    if len(set(labels)) != len(labels):
        raise InputError(f"duplicate site labels {labels}; the site finder must label uniquely")
    factory = ml_factory if ml_factory is not None else MLFactory(settings.ml)
    root = Path(workdir) / "ml_screen"
    out = Screening(selected=[], record={})
    run = out.run
    energies: dict[str, float] = {}
    converged: dict[str, bool] = {}
    kept: list[str] = []
    merged: dict[str, str] = {}
    failed: dict[str, str] = {}
    with run.stage("ml_screen"):
        for site, label in zip(sites, labels, strict=True):
            if stop is not None:
                stop()
            with run.stage(f"ml-site-{label}"):
                try:
                    res = relax(with_li(host, site.position), factory, root / f"site-{label}",
                                settings.relax.for_surrogate(), label="ml")
                except CalculationError as exc:  # e.g. the surrogate collapses atoms here
                    failed[label] = str(exc)
                    run.warn(f"site screening: surrogate relaxation of site {label} failed "
                             f"({exc}); the site is left out")
                    log.warning("screening: site %s failed with the surrogate: %s", label, exc)
                    continue
                atoms = res.atoms
                copy_constraints(atoms, host)
                out.relaxed[label] = atoms
            run.add(f"ml-site-{label}", res)
            if not np.isfinite(res.energy):
                raise CalculationError(f"surrogate energy of site {label} is {res.energy}; "
                                       "set binding.max_dft_sites=null to skip the screening")
            energies[label] = float(res.energy)
            converged[label] = bool(res.converged)
            li = _li_position(atoms)
            twin = None if not merge else next(
                (k for k in kept if mic_distance(host, _li_position(out.relaxed[k]), li)
                 < MERGE_TOL), None)
            if twin is None:
                kept.append(label)
            else:
                merged[label] = twin
                log.info("screening: site %s relaxes onto site %s (surrogate)", label, twin)
    if not kept:
        raise CalculationError(
            f"the surrogate failed on every one of the {what} ({'; '.join(failed.values())}); "
            f"set binding.{cap_name}=null to compute every site with DFT without screening")
    chosen = _select(out, sites, labels, settings, factory, cap_name=cap_name, cap=cap,
                     merge=merge, what=what, energies=energies, converged=converged,
                     kept=kept, merged=merged, failed=failed)
    log.info("screening: %d sites -> DFT for %s", len(labels), ", ".join(chosen))
    return out


def window_ties(ranking: Sequence[str], energies: dict[str, float],
                window: float | None) -> list[str]:
    """The labels of ``ranking`` (lowest surrogate energy first) within ``window`` eV of the
    lowest (energies compared rounded to 0.1 meV, like the ranking); [] without a window."""
    if window is None or not ranking:
        return []
    low = round(energies[ranking[0]], 4)
    return [lab for lab in ranking if round(energies[lab], 4) - low <= window + 1e-9]


def window_count(cap: int, n_ties: int, max_window_sites: int | None) -> int:
    """How many of the ranked sites get DFT: the ``cap`` lowest, or every one of ``n_ties``
    surrogate ties when there are more, at most ``max_window_sites`` (never below ``cap``)."""
    limit = n_ties if max_window_sites is None else min(n_ties, max_window_sites)
    return max(cap, limit)


def _select(out: Screening, sites: Sequence[Any], labels: list[str], settings: CalcSettings,
            factory: Any, *, cap_name: str, cap: int, merge: bool, what: str,
            energies: dict[str, float], converged: dict[str, bool], kept: list[str],
            merged: dict[str, str], failed: dict[str, str]) -> list[str]:
    """Keep the ``cap`` lowest of the ``kept`` sites, or more when the surrogate cannot rank
    them (``binding.screen_window``, Li sites only); fill ``out.selected``, ``out.record``
    and the warnings that say how many sites got no DFT. Returns the chosen labels."""
    run = out.run
    ranking = sorted(kept, key=lambda lab: (round(energies[lab], 4), lab))
    window = settings.binding.screen_window if cap_name == "max_dft_sites" else None
    ties = window_ties(ranking, energies, window)
    n_dft = window_count(cap, len(ties), settings.binding.max_window_sites)
    chosen = ranking[:n_dft]
    out.selected = [s for s, lab in zip(sites, labels, strict=True) if lab in chosen]
    model = dict(getattr(factory, "description", {})).get("model", settings.ml.model)
    out.record = {
        "method": settings.ml.model, "model": model, "n_sites": len(labels),
        "n_dft": len(chosen), cap_name: cap, "merge_tol": MERGE_TOL if merge else None,
        "ml_energies": energies, "ml_converged": converged, "ranking": ranking,
        "selected": chosen, "merged": merged, "failed": failed,
        "window_eV": window, "window_sites": ties,
        "max_window_sites": settings.binding.max_window_sites if window is not None else None,
        "untested_ties": max(0, len(ties) - len(chosen)),
    }
    if len(ties) > len(chosen):
        run.warn(
            f"site screening: the {model} surrogate places {len(ties)} {what} within "
            f"{window:g} eV of its lowest (binding.screen_window), a tie it cannot rank; "
            f"{len(chosen)} got DFT (binding.max_window_sites="
            f"{settings.binding.max_window_sites}), {len(ties) - len(chosen)} did not: the "
            "lowest E_b is an upper bound on the host's lowest site")
    run.warn(
        f"site screening: {len(labels) - len(chosen)} of {len(labels)} {what} got no DFT "
        f"relaxation ({len(merged)} relaxed with the {model} surrogate onto another site "
        f"within {MERGE_TOL} A, {len(failed)} failed with the surrogate, "
        f"{len(kept) - len(chosen)} ranked out by surrogate energy; "
        f"binding.{cap_name}={cap}); the lowest site is the lowest of the "
        f"{len(chosen)} surrogate-selected sites, which DFT may rank differently"
    )
    return chosen
