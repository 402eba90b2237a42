"""The self-contained report directory: ``index.md``, ``index.html``, figures and tables.

:func:`write_report` never fails on empty or partial inputs: absent results are listed in a
"Missing or not converged" section (expected results are the campaign's result work items,
see :mod:`.missing`), invalid documents are named, and a figure that cannot be drawn is
reported instead of raising.

Layout of ``outdir``::

    index.md, index.html     the report (figures by relative path)
    results.json             all numbers, the per-mode fits, the conclusion, settings
    figures/*.png|svg        binding energies, descriptor per mode, NEB profiles (with the
                             bulk reference barrier), interface cells of every hop (initial,
                             highest image, final; :mod:`.pictures`), descriptor against the hop
    tables/*.csv|md|json     binding, descriptor modes, records, sites, pairs, fits, barriers,
                             settings, versions

The conclusion sentence is :func:`interphase_dft.analysis.conclusion.conclusion` of the
per-mode fits (:func:`interphase_dft.analysis.fits.fit_table`); the report writes no verdict
of its own.

The sections are laid out by :mod:`.sections` and rendered by :mod:`.blocks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from interphase_dft import __version__
from interphase_dft.analysis import records as rc
from interphase_dft.analysis import tables as tb
from interphase_dft.analysis.conclusion import conclusion
from interphase_dft.analysis.descriptor import (
    BARRIER_SELECTION_RULE,
    MODE_RULE,
    SELECTION_RULE,
    DescriptorPair,
    barrier_label,
    consistency_check,
    descriptor_pairs,
    load_docs,
    select_barriers,
    select_binding,
    select_bulk,
)
from interphase_dft.analysis.fits import FIT_RULE, FitResult, fit_rows, fit_table
from interphase_dft.analysis.level import level_rows, sensitivity_rows, size_rows
from interphase_dft.analysis.missing import missing_results, quality_notes
from interphase_dft.analysis.sections import Figures, ReportContent, render
from interphase_dft.analysis.stats import (
    DEFAULT_BOOT,
    DEFAULT_SEED,
    BarrierChoice,
    BarrierPoint,
    pair_barriers,
)
from interphase_dft.campaign import CampaignSpec
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc

DEFAULT_TITLE = "interphase-dft: Li binding energies, dE descriptor and migration barriers"


def write_report(
    docs: Sequence[Mapping[str, Any] | BaseModel],
    outdir: Path | str,
    *,
    campaign: CampaignSpec | None = None,
    title: str = DEFAULT_TITLE,
    preset: str | None = None,
    barrier: BarrierChoice = "forward",
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write the report directory and return the path of ``index.html``.

    Parameters
    ----------
    docs
        Stored result dicts (``ResultStore.find()``) or schema documents, any mix of kinds.
    outdir
        Report directory (created; existing files are overwritten).
    campaign
        The validated campaign (:func:`interphase_dft.campaign.load_spec`). Its result work
        items without a document of the same ``work_key`` are listed as missing; its preset
        is used when ``preset`` is not given.
    title
        Report title.
    preset
        Use only documents of this preset (``None``: the campaign's, else all, newest per
        phase/mode).
    barrier
        ``'forward'`` or ``'max'`` (max of forward and reverse) for the barrier table's
        pairing with |dE|; the per-mode fits always use the forward barrier and E_KRA.
    n_boot, seed
        Bootstrap resamples and seed.
    """
    if campaign is not None and not isinstance(campaign, CampaignSpec):
        raise TypeError(f"campaign must be a CampaignSpec (interphase_dft.campaign.load_spec), "
                        f"got {type(campaign).__name__}")
    outdir = Path(outdir)
    figdir, tabdir = outdir / "figures", outdir / "tables"
    for d in (outdir, figdir, tabdir):
        d.mkdir(parents=True, exist_ok=True)
    if preset is None and campaign is not None:
        preset = campaign.preset
    docs = list(docs or [])
    loaded = load_docs(docs)
    sel = select_binding(loaded.binding, preset)
    chosen_b, superseded_b = select_barriers(loaded.barriers, preset)
    bulk = select_bulk(loaded.bulk, preset)
    binding_docs = list(sel.chosen.values())
    barrier_docs = list(chosen_b.values())
    pairs = descriptor_pairs(sel)
    points, unmatched = pair_barriers(barrier_docs, sel, barrier=barrier)
    fits = fit_table(docs, preset=preset, n_boot=n_boot, seed=seed)

    gaps = [*missing_results(campaign, docs), *loaded.invalid,
            *quality_notes([*binding_docs, *sel.partial], barrier_docs, list(bulk.values())),
            *unmatched]
    if sel.other_preset:
        gaps.append(f"{len(sel.other_preset)} binding document(s) of other presets ignored "
                    f"(report restricted to preset {preset!r})")
    problems: list[str] = []
    content = ReportContent(
        title=title, generated=datetime.now(UTC).isoformat(timespec="seconds"),
        preset=preset, barrier=barrier, n_boot=n_boot, seed=seed, selection=sel,
        n_superseded_barriers=len(superseded_b), binding=binding_docs, barriers=barrier_docs,
        pairs=pairs, issues=consistency_check(binding_docs), fits=fits,
        summary=conclusion(fits), rules=rc.rule_texts(binding_docs), gaps=gaps,
        figure_problems=problems,
        tables={**_tables(binding_docs, barrier_docs, pairs, points, bulk),
                "fits": fit_rows(fits),
                "level": level_rows([*binding_docs, *barrier_docs, *bulk.values()]),
                "size_effect": size_rows([*loaded.barriers, *loaded.bulk], preset),
                "sensitivity": sensitivity_rows(loaded.checks,
                                                [*barrier_docs, *bulk.values()])},
        figures=_draw_figures(binding_docs, barrier_docs, fits, outdir, problems, bulk),
        bulk=list(bulk.values()),
    )
    tb.write_tables(content.tables, tabdir)
    tb.write_json(_results(content, points), outdir / "results.json")
    blocks = render(content)
    (outdir / "index.md").write_text(blocks.markdown())
    index = outdir / "index.html"
    index.write_text(blocks.html(title))
    return index


def _safe_plot(func: Callable[..., list[Path]], *args: Any, problems: list[str],
               what: str) -> list[Path]:
    try:
        return func(*args)
    except Exception as exc:  # a figure must never stop the report
        problems.append(f"figure '{what}' could not be drawn: {type(exc).__name__}: {exc}")
        return []


def _draw_figures(
    binding: list[BindingEnergyDoc],
    barriers: list[BarrierDoc],
    fits: list[FitResult],
    outdir: Path,
    problems: list[str],
    bulk: Mapping[str, BarrierDoc] | None = None,
) -> Figures:
    """Draw the figures into ``outdir/figures``; a failure is appended to ``problems``."""
    from interphase_dft.analysis import pictures, plots

    figdir = outdir / "figures"
    bulk = bulk or {}

    def rel(paths: list[Path]) -> list[str]:
        return [p.relative_to(outdir).as_posix() for p in paths]

    def stem(d: BarrierDoc, kind: str) -> str:
        return f"{kind}_{plots.safe_name(d.interface)}_{d.mechanism}"

    cells = [d for d in barriers if pictures.is_interface(d)]
    return Figures(
        binding=rel(_safe_plot(plots.plot_binding_energies, binding, figdir,
                               problems=problems, what="binding energies")),
        modes=rel(_safe_plot(plots.plot_descriptor_modes, binding, figdir,
                             problems=problems, what="descriptor per mode")),
        neb={barrier_label(d): rel(_safe_plot(
            plots.plot_neb_profile, d, figdir, stem(d, "neb"), bulk.get(d.phase_a),
            problems=problems, what=f"NEB {barrier_label(d)}"))
            for d in [*barriers, *bulk.values()] if len(d.energies) > 1},
        cells={barrier_label(d): rel(_safe_plot(
            pictures.plot_hop_cell, d, figdir, stem(d, "cell"), problems=problems,
            what=f"interface cell {barrier_label(d)}")) for d in cells},
        cell_captions={barrier_label(d): pictures.caption(d) for d in cells if d.images},
        fits=rel(_safe_plot(plots.plot_fits, [f for f in fits if f.n], figdir,
                            problems=problems, what="descriptor against the hop"))
        if any(f.n for f in fits) else [],
    )


def _tables(
    binding: list[BindingEnergyDoc],
    barriers: list[BarrierDoc],
    pairs: list[DescriptorPair],
    points: list[BarrierPoint],
    bulk: Mapping[str, BarrierDoc],
) -> dict[str, list[tb.Row]]:
    """Every table of the report, by file stem."""
    docs = [*binding, *barriers, *bulk.values()]
    return {
        "binding_energies": tb.binding_rows(binding),
        "descriptor_modes": rc.mode_rows(binding),
        "binding_records": rc.record_rows(binding),
        "coexistence": rc.coexistence_rows(binding),
        "sites": tb.site_rows(binding),
        "delta_e_pairs": tb.pair_rows(pairs),
        "delta_e_matrix_surface": tb.matrix_rows(pairs, "surface"),
        "delta_e_matrix_bulk": tb.matrix_rows(pairs, "bulk"),
        "barriers": tb.barrier_rows(barriers, points, bulk),
        "bulk_barriers": tb.bulk_rows(bulk.values()),
        "barrier_status": tb.status_rows([*barriers, *bulk.values()]),
        "settings": tb.settings_rows(docs),
        "versions": tb.version_rows(docs),
    }


def _results(c: ReportContent, points: list[BarrierPoint]) -> dict[str, Any]:
    """The content of ``results.json``: every table (``tables/*.json``) except ``fits``,
    whose full :class:`FitResult` records (points, intervals, what was left out) replace the
    table rows."""
    return {
        "title": c.title, "generated": c.generated,
        "interphase_dft_version": __version__, "preset": c.preset,
        "rules": {"selection": SELECTION_RULE, "barrier_selection": BARRIER_SELECTION_RULE,
                  "mode": MODE_RULE, "barrier": c.barrier,
                  "fits": FIT_RULE},
        "conclusion": c.summary, "points": [p.model_dump() for p in points],
        "consistency_issues": [i.message for i in c.issues],
        "missing_or_not_converged": c.gaps, "figure_problems": c.figure_problems, **c.tables,
        "fits": [f.model_dump() for f in c.fits],
        "settings_full": {tb._settings_hash(d): d.settings
                          for d in [*c.binding, *c.barriers, *c.bulk]},
    }
