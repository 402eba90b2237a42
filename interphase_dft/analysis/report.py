"""The self-contained report directory: ``index.md``, ``index.html``, figures and tables.

:func:`write_report` never fails on empty or partial inputs: absent results are listed in a
"Missing or not converged" section (expected results come from the campaign spec), invalid
documents are named, and a figure that cannot be drawn is reported instead of raising.

Layout of ``outdir``::

    index.md, index.html     the report (figures by relative path)
    results.json             all numbers, the correlation, settings and provenance
    figures/*.png|svg        binding energies, NEB profiles, barrier vs |dE|
    tables/*.csv|md|json     binding, sites, descriptor pairs, barriers, settings, versions
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from interphase_dft import __version__
from interphase_dft.analysis import tables as tb
from interphase_dft.analysis.descriptor import (
    AGREEMENT_TOL,
    MODE_RULE,
    SELECTION_RULE,
    consistency_check,
    descriptor_pairs,
    interface_phases,
    load_docs,
    select_barriers,
    select_binding,
)
from interphase_dft.analysis.stats import (
    DEFAULT_BOOT,
    DEFAULT_SEED,
    BarrierChoice,
    correlate_points,
    pair_barriers,
)
from interphase_dft.schemas import BarrierDoc

DEFAULT_TITLE = "interphase-dft: Li binding energies, dE descriptor and migration barriers"


@dataclass
class _Blocks:
    """A tiny document model rendered to both Markdown and HTML."""

    items: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.items.append((f"h{level}", text))

    def p(self, text: str) -> None:
        self.items.append(("p", text))

    def ul(self, entries: Sequence[str]) -> None:
        self.items.append(("ul", list(entries)))

    def table(self, rows: Sequence[tb.Row], empty: str = "(none)") -> None:
        self.items.append(("table", (rows, empty)))

    def img(self, rel: str, alt: str) -> None:
        self.items.append(("img", (rel, alt)))

    def markdown(self) -> str:
        out = []
        for kind, val in self.items:
            if kind.startswith("h"):
                out.append("#" * int(kind[1]) + " " + val + "\n")
            elif kind == "p":
                out.append(val + "\n")
            elif kind == "ul":
                out.append("\n".join(f"- {e}" for e in val) + "\n" if val else "_(none)_\n")
            elif kind == "table":
                out.append(tb.to_markdown(*val))
            elif kind == "img":
                rel, alt = val
                out.append(f"![{alt}]({rel})\n")
        return "\n".join(out)

    def html(self, title: str) -> str:
        esc = html.escape
        out = []
        for kind, val in self.items:
            if kind.startswith("h"):
                out.append(f"<{kind}>{esc(val)}</{kind}>")
            elif kind == "p":
                out.append(f"<p>{esc(val)}</p>")
            elif kind == "ul":
                li = "".join(f"<li>{esc(e)}</li>" for e in val) or "<li><em>(none)</em></li>"
                out.append(f"<ul>{li}</ul>")
            elif kind == "table":
                out.append(tb.to_html(*val))
            elif kind == "img":
                rel, alt = val
                out.append(f'<figure><img src="{esc(rel)}" alt="{esc(alt)}">'
                           f"<figcaption>{esc(alt)}</figcaption></figure>")
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}"
            "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left}"
            "th{background:#eee}td.bad{color:#b00;font-weight:bold}"
            "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}"
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
            + "\n".join(out) + "\n</body>\n</html>\n"
        )


def no_saddle_notes(doc: BarrierDoc) -> list[str]:
    """One line per hop whose highest image is one of its endpoints (no saddle on the band).

    A single hop is judged on the whole path. A path joined at an intermediate minimum is
    judged hop by hop (``doc.segments`` image ranges): its joined maximum may sit at an
    endpoint while each hop has its own saddle, or one hop may be monotonic.
    """
    e = list(doc.energies)
    if not e:
        return []
    if not doc.segments:
        if e.index(max(e)) not in (0, len(e) - 1):
            return []
        return [f"barrier {doc.interface}: the highest image is an endpoint, so the path has no "
                f"saddle; forward {doc.barrier_forward:.3f} eV and reverse "
                f"{doc.barrier_reverse:.3f} eV are endpoint energy differences (lower bounds "
                "of the hop's barriers)"]
    notes = []
    for k, seg in enumerate(doc.segments, 1):
        lo, hi = seg["images"]
        part = e[lo: hi + 1]
        if part.index(max(part)) in (0, len(part) - 1):
            notes.append(
                f"barrier {doc.interface}: hop {k} of {len(doc.segments)} (images {lo}-{hi}) "
                f"has no saddle (its highest image is an endpoint); its barriers "
                f"{seg['barrier_forward']:.3f} eV forward and {seg['barrier_reverse']:.3f} eV "
                "reverse are endpoint energy differences (lower bounds)")
    return notes


def campaign_dict(campaign: Any) -> dict[str, Any] | None:
    """Normalise a campaign spec (mapping or ``interphase_dft.campaign.CampaignSpec``)."""
    if campaign is None:
        return None
    if isinstance(campaign, Mapping):
        return dict(campaign)
    barriers = [{"a": b.a, "b": b.b} for b in getattr(campaign, "barriers", ())]
    return {
        "name": getattr(campaign, "name", ""),
        "preset": getattr(campaign, "preset", None),
        "binding": {"phases": list(getattr(campaign, "phases", ())),
                    "modes": list(getattr(campaign, "modes", ("surface",)))},
        "barriers": barriers,
    }


def _norm_barrier(entry: Any) -> tuple[str, str] | None:
    if isinstance(entry, Mapping):
        a = entry.get("a", entry.get("phase_a"))
        b = entry.get("b", entry.get("phase_b"))
        if a and b:
            return str(a), str(b)
        if entry.get("interface"):
            return interface_phases(str(entry["interface"]))
        return None
    if isinstance(entry, str):
        return interface_phases(entry)
    if isinstance(entry, list | tuple) and len(entry) == 2:
        return str(entry[0]), str(entry[1])
    return None


def expected_missing(
    campaign: Mapping[str, Any] | None,
    have_binding: set[tuple[str, str]],
    have_barriers: set[frozenset[str]],
) -> list[str]:
    """Results the campaign spec asks for that are absent.

    ``campaign = {'binding': {'phases': [...], 'modes': [...]}, 'barriers': [{'a', 'b'}],
    'preset': ...}``; ``modes`` defaults to ``['surface']``. Barriers may also be given as
    ``'A|B'`` strings or ``[A, B]`` pairs.
    """
    if not campaign:
        return []
    out: list[str] = []
    binding = campaign.get("binding") or {}
    if isinstance(binding, Mapping):
        phases = binding.get("phases") or []
        modes = binding.get("modes") or ([binding["mode"]] if binding.get("mode") else ["surface"])
        for phase in phases:
            for mode in modes:
                if (str(phase), str(mode)) not in have_binding:
                    out.append(f"binding energy of {phase} ({mode} mode): not computed")
    for entry in campaign.get("barriers") or []:
        ab = _norm_barrier(entry)
        if ab is None:
            out.append(f"barrier entry {entry!r} in the campaign spec is not understood")
        elif frozenset(ab) not in have_barriers:
            out.append(f"barrier {ab[0]}|{ab[1]}: not computed")
    return out


def _safe_plot(func: Any, *args: Any, problems: list[str], what: str) -> list[Path]:
    try:
        return func(*args)
    except Exception as exc:  # a figure must never stop the report
        problems.append(f"figure '{what}' could not be drawn: {type(exc).__name__}: {exc}")
        return []


def write_report(
    docs: Sequence[Mapping[str, Any] | BaseModel],
    outdir: Path | str,
    *,
    campaign: Mapping[str, Any] | Any | None = None,
    missing: Sequence[str] | None = None,
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
        Campaign spec (mapping as in :func:`expected_missing`, or a ``CampaignSpec``) used to
        list expected-but-absent results; its ``preset`` is used when ``preset`` is not given.
    missing
        Extra lines for the "Missing or not converged" section (e.g. failed FireWorks).
    title
        Report title.
    preset
        Use only documents of this preset (``None``: all, newest per phase/mode).
    barrier
        ``'forward'`` or ``'max'`` (max of forward and reverse) for the correlation.
    n_boot, seed
        Bootstrap resamples and seed.
    """
    outdir = Path(outdir)
    figdir, tabdir = outdir / "figures", outdir / "tables"
    for d in (outdir, figdir, tabdir):
        d.mkdir(parents=True, exist_ok=True)
    campaign = campaign_dict(campaign)
    if preset is None and campaign:
        preset = campaign.get("preset")
    loaded = load_docs(list(docs or []))
    sel = select_binding(loaded.binding, preset)
    chosen_b, superseded_b = select_barriers(loaded.barriers, preset)
    binding_docs = list(sel.chosen.values())
    barrier_docs = list(chosen_b.values())
    pairs = descriptor_pairs(sel)
    issues = consistency_check(binding_docs)
    points, unmatched = pair_barriers(barrier_docs, sel, barrier=barrier)
    corr = correlate_points(points, n_boot=n_boot, seed=seed)
    problems: list[str] = []

    # ---- missing / not converged -------------------------------------------------------
    gaps = expected_missing(
        campaign, set(sel.chosen), {frozenset((d.phase_a, d.phase_b)) for d in barrier_docs}
    )
    gaps += [str(m) for m in (missing or [])]
    gaps += loaded.invalid
    for d in binding_docs:
        bad = [s.label for s in d.sites if not s.converged]
        if bad:
            gaps.append(f"binding energy of {d.phase} ({d.mode}): sites not converged: "
                        + ", ".join(bad))
    for d in barrier_docs:
        if not d.converged:
            gaps.append(f"barrier {d.interface}: NEB not converged (fmax {d.fmax_final:.3f} "
                        "eV/A); shown but not used in the fit")
        if d.stage == "ml":
            gaps.append(f"barrier {d.interface}: ML-only result, no DFT barrier yet")
        gaps += no_saddle_notes(d)
    gaps += unmatched
    if sel.other_preset:
        gaps.append(f"{len(sel.other_preset)} binding document(s) of other presets ignored "
                    f"(report restricted to preset {preset!r})")

    # ---- figures and tables --------------------------------------------------------------
    from interphase_dft.analysis import plots

    fig_binding = _safe_plot(plots.plot_binding_energies, binding_docs, figdir,
                             problems=problems, what="binding energies")
    fig_neb = {d.interface: _safe_plot(plots.plot_neb_profile, d, figdir, problems=problems,
                                       what=f"NEB {d.interface}") for d in barrier_docs}
    fig_corr = _safe_plot(plots.plot_correlation, points, corr, figdir, problems=problems,
                          what="barrier vs |dE|") if points else []
    all_docs = [*binding_docs, *barrier_docs]
    tables = {
        "binding_energies": tb.binding_rows(binding_docs),
        "sites": tb.site_rows(binding_docs),
        "delta_e_pairs": tb.pair_rows(pairs),
        "delta_e_matrix_surface": tb.matrix_rows(pairs, "surface"),
        "delta_e_matrix_bulk": tb.matrix_rows(pairs, "bulk"),
        "barriers": tb.barrier_rows(barrier_docs, points),
        "settings": tb.settings_rows(all_docs),
        "versions": tb.version_rows(all_docs),
    }
    tb.write_tables(tables, tabdir)
    corr_rows = [{"quantity": k, "value": v} for k, v in corr.model_dump(
        exclude={"band", "warnings", "verdict", "x_label", "y_label"}).items()]
    tb.write_json({
        "title": title, "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "interphase_dft_version": __version__, "preset": preset,
        "rules": {"selection": SELECTION_RULE, "mode": MODE_RULE, "barrier": barrier},
        "correlation": corr.model_dump(), "points": [p.model_dump() for p in points],
        "consistency_issues": [i.message for i in issues],
        "missing_or_not_converged": gaps, "figure_problems": problems, **tables,
        "settings_full": {tb._settings_hash(d): d.settings for d in all_docs},
    }, outdir / "results.json")

    # ---- the document ------------------------------------------------------------------
    rel = lambda p: p.relative_to(outdir).as_posix()  # noqa: E731
    b = _Blocks()
    b.h(1, title)
    b.p(f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} by interphase-dft "
        f"{__version__}. Preset: {preset or 'all (newest per phase/mode)'}. "
        f"{len(binding_docs)} binding-energy and {len(barrier_docs)} barrier result(s) used.")
    if not binding_docs and not barrier_docs:
        b.p("Nothing computed yet: no valid binding-energy or barrier documents were found. "
            "Run the campaign (interphase-dft campaign SPEC) and regenerate this report.")
    b.h(2, "Summary")
    b.p(corr.verdict)
    b.h(2, "Missing or not converged")
    b.ul(gaps + problems)

    b.h(2, "Li binding energies")
    b.p("E_b = E(host+Li) - E(host) - E_ref (eV), lowest site per phase. Atom reference: "
        "isolated spin-polarised Li atom; bcc reference: bcc Li per atom (E_b(bcc) is the "
        "insertion energy, -e x voltage vs Li/Li+). E_b(atom) = E_b(bcc) - E_coh.")
    b.table(tables["binding_energies"], "no binding energies yet")
    for p in fig_binding[:1]:
        b.img(rel(p), "Binding energy per phase, both references; points are sites")
    b.h(3, "All sites")
    b.table(tables["sites"], "no sites")

    b.h(2, "Descriptor dE(A, B) = E_b(A) - E_b(B)")
    b.p(f"Computed for every pair of phases in the same mode under both references; they must "
        f"agree to {AGREEMENT_TOL:g} eV (a difference means mixed settings). Barriers are "
        "correlated with |dE| because interfaces are unordered; the signed value is kept.")
    b.table(tables["delta_e_pairs"], "fewer than two phases computed in one mode")
    for m in ("surface", "bulk"):
        if tables[f"delta_e_matrix_{m}"]:
            b.h(3, f"dE matrix, {m} mode (eV, dE(row, column), atom reference)")
            b.table(tables[f"delta_e_matrix_{m}"])
    disagree = [p for p in pairs if not p.agree]
    b.p("Reference agreement: " + ("all pairs agree." if not disagree else
        "DISAGREE for " + ", ".join(f"{p.phase_a}/{p.phase_b} ({p.reference_gap:+.2e} eV)"
                                    for p in disagree) + ": mixed settings."))
    b.p("Consistency check (E_b(atom) - E_b(bcc) = E(Li bcc) - E(Li atom) = -E_coh for every "
        "site; lowest-site values match): " + ("passed." if not issues else "FAILED:"))
    if issues:
        b.ul([i.message for i in issues])

    b.h(2, "Migration barriers (climbing-image NEB)")
    b.p("Barriers in eV; stage 'ml+dft' means an ML surrogate found the path and DFT "
        "climbing-image NEB refined it; 'dft//ml' means DFT single points on the surrogate's "
        "converged path (no DFT refinement: fmax_final is the largest DFT force on an "
        "intermediate image, a measure of how far the path is from the DFT saddle); "
        "ml_barrier_eV is the surrogate's value and never a DFT result. A path with 'hops' "
        "> 1 passed through an intermediate minimum: the recipe relaxed it and converged the "
        "hops separately, and the barriers are the energetic spans of the joined path (the "
        "highest saddle above the lowest minimum before it).")
    b.table(tables["barriers"], "no barriers yet")
    for iface, paths in fig_neb.items():
        for p in paths[:1]:
            b.img(rel(p), f"NEB energy profile of {iface}")

    b.h(2, "Barrier versus |dE|")
    b.p(f"Barrier used: {'barrier_forward' if barrier == 'forward' else 'max(forward, reverse)'}"
        f". Pairing rule: {MODE_RULE}. Pearson and Spearman from scipy.stats; linear fit by "
        f"least squares; {n_boot} bootstrap resamples (seed {seed}) give the 95 % intervals.")
    for p in fig_corr[:1]:
        b.img(rel(p), "Barrier versus |dE| with bootstrap bands")
    b.table(corr_rows)
    if corr.warnings:
        b.ul(corr.warnings)

    b.h(2, "Settings and provenance")
    b.p(f"Selection rule: {SELECTION_RULE}. Superseded documents: "
        f"{len(sel.superseded) + len(superseded_b)}.")
    b.table(tables["settings"], "no settings (no documents)")
    b.h(3, "Package versions")
    b.table(tables["versions"], "no versions (no documents)")
    b.h(2, "Files")
    b.ul(["results.json", *[f"tables/{n}.csv (also .md, .json)" for n in tables],
          *[rel(p) for p in [*fig_binding, *[q for v in fig_neb.values() for q in v], *fig_corr]]])

    (outdir / "index.md").write_text(b.markdown())
    index = outdir / "index.html"
    index.write_text(b.html(title))
    return index
