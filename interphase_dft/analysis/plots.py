"""Figures of the report (PNG and SVG each), drawn with matplotlib's Agg canvas.

No ``pyplot`` state is used: every function builds its own :class:`~matplotlib.figure.Figure`
and closes nothing global, so plotting is safe in workers and tests. Energies in eV, path
coordinates in Angstrom.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from interphase_dft.analysis.fits import FitResult
from interphase_dft.analysis.stats import BarrierPoint, CorrelationResult
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc
from interphase_dft.span import span_points

FORMATS = ("png", "svg")
STAGE_NAMES = {"dft": "DFT", "ml+dft": "ML path + DFT", "dft//ml": "DFT on ML path",
               "dft-refined": "DFT, stationary points refined", "ml": "ML only (not DFT)"}


def safe_name(text: str) -> str:
    """File-name-safe version of a phase/interface name (``'LiAl|LPSC'`` -> ``'LiAl__LPSC'``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("|", "__"))


def _save(fig: Figure, outdir: Path, stem: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    paths = []
    for fmt in FORMATS:
        path = outdir / f"{stem}.{fmt}"
        fig.savefig(path, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_binding_energies(
    docs: Iterable[BindingEnergyDoc], outdir: Path, stem: str = "binding_energies"
) -> list[Path]:
    """Bar chart of the lowest-site E_b per phase, atom and bcc references in two panels.

    Every site is drawn as a point over its bar (open markers: site not converged).

    Returns
    -------
    list[Path]
        The PNG and SVG files; empty when there are no documents.
    """
    docs = sorted(docs, key=lambda d: (d.mode, d.phase))
    if not docs:
        return []
    labels = [d.phase if d.mode == "surface" else f"{d.phase} (bulk)" for d in docs]
    x = np.arange(len(docs))
    fig = Figure(figsize=(max(5.0, 1.1 * len(docs) + 2.5), 6.5))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, ref, title in zip(
        axes, ("atom", "bcc"), ("reference: isolated Li atom", "reference: bcc Li (per atom)"),
        strict=True,
    ):
        lowest = [getattr(d, f"binding_energy_{ref}") for d in docs]
        colors = ["tab:blue" if d.mode == "surface" else "tab:orange" for d in docs]
        ax.bar(x, lowest, width=0.6, color=colors, alpha=0.55, label="lowest site")
        rng = np.random.default_rng(0)
        for i, d in enumerate(docs):
            for site in d.sites:
                xi = i + rng.uniform(-0.18, 0.18)
                val = getattr(site, f"binding_energy_{ref}")
                ax.plot(xi, val, "o", ms=5, color="k",
                        mfc="k" if site.converged else "none")
        ax.plot([], [], "o", color="k", label="sites")
        if any(not s.converged for d in docs for s in d.sites):
            ax.plot([], [], "o", color="k", mfc="none", label="site not converged")
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.set_ylabel(r"$E_b$ (eV)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xticks(x, labels, rotation=30, ha="right")
    fig.suptitle("Li binding energy per phase (bars: lowest site)")
    return _save(fig, outdir, stem)


def plot_neb_profile(doc: BarrierDoc, outdir: Path, stem: str | None = None,
                     bulk: BarrierDoc | None = None) -> list[Path]:
    """NEB energy profile: images as markers, the spline as a line, the highest image marked
    (a star: the saddle when the band is certified), the barrier annotated, the status in the
    title and, for an interface hop, the bulk reference barrier of phase A (``bulk``) as a
    dotted line above the same minimum (or its status when it is not a barrier)."""
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    xi, ei = np.asarray(doc.path_coordinate, float), np.asarray(doc.energies, float)
    sx, sy = doc.spline.get("x", []), doc.spline.get("y", [])
    if len(sx) and len(sx) == len(sy):
        ax.plot(sx, sy, "-", color="tab:blue", lw=1.5, label="spline")
    marker_face = "tab:blue" if doc.certified else "none"
    e_low = 0.0
    if len(xi) == len(ei) and len(ei) and doc.barrier_forward is not None:
        ax.plot(xi, ei, "o", color="tab:blue", mfc=marker_face, ms=7, label="images")
        # the barrier is the energetic span: from the lowest point before the highest rise
        low, top = span_points(ei) if doc.segments else (0, int(np.argmax(ei)))
        x_top, e_low = float(xi[top]), float(ei[low])
        ax.annotate(
            "", xy=(x_top, e_low + doc.barrier_forward), xytext=(x_top, e_low),
            arrowprops={"arrowstyle": "<->", "color": "tab:red"},
        )
        ax.axhline(e_low, color="0.6", lw=0.8, ls="--")
        for sg in doc.segments[1:]:  # where the joined hops meet (the intermediate minimum)
            ax.axvline(float(xi[sg["images"][0]]), color="0.6", lw=0.8, ls=":")
        ax.text(x_top, e_low + 0.5 * doc.barrier_forward,
                f"  $E_a$ = {doc.barrier_forward:.3f} eV\n  reverse {doc.barrier_reverse:.3f} eV",
                color="tab:red", va="center", fontsize=9)
    elif len(xi) == len(ei) and len(ei):  # no certified barrier: the profile only
        ax.plot(xi, ei, "o", color="tab:blue", mfc=marker_face, ms=7, label="images")
        if doc.reaction_energy is not None:
            ax.plot([], [], " ", label=f"reaction energy {doc.reaction_energy:.3f} eV")
    if len(xi) == len(ei) and len(ei):
        k = int(np.argmax(ei))
        ax.plot(xi[k], ei[k], "*", ms=15, color="tab:red" if doc.certified else "0.45",
                mec="k", ls="", zorder=5,
                label=f"saddle (image {k})" if doc.certified
                else f"highest image {k} (not a saddle)")
    if doc.phase_a != doc.phase_b:
        _bulk_reference(ax, doc.phase_a, bulk, e_low)
    if doc.ml_barrier is not None:
        ax.plot([], [], " ", label=f"ML barrier {doc.ml_barrier:.3f} eV (not DFT)")
    stage = STAGE_NAMES.get(doc.stage, doc.stage)
    status = " - saddle (certified)" if doc.certified else f" - {doc.saddle.upper()}"
    if not doc.converged and doc.fmax_final is not None and "NOT CONVERGED" not in status:
        status += f" - NOT CONVERGED (fmax {doc.fmax_final:.3f} eV/A)"
    elif not doc.converged and doc.fmax_final is not None:
        status += f" (fmax {doc.fmax_final:.3f} eV/A)"
    ax.set_title(f"{doc.interface} {doc.mechanism} [{stage}]{status}", fontsize=9,
                 color="k" if doc.certified else "tab:red", wrap=True)
    ax.set_xlabel("reaction coordinate (Angstrom)")
    ax.set_ylabel("energy relative to initial state (eV)")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, outdir, stem or f"neb_{safe_name(doc.interface)}")


def _bulk_reference(ax: Axes, phase: str, bulk: BarrierDoc | None, e_low: float) -> None:
    """The bulk hop of ``phase`` on a profile: a dotted line at its barrier above ``e_low``
    when certified, else its status in the legend."""
    if bulk is not None and bulk.certified and bulk.barrier_forward is not None:
        ax.axhline(e_low + bulk.barrier_forward, color="tab:green", lw=1.2, ls=":",
                   label=f"bulk {phase} barrier {bulk.barrier_forward:.3f} eV")
    else:
        ax.plot([], [], " ", label=f"bulk {phase} hop: "
                + ("not computed" if bulk is None else bulk.saddle))


def plot_descriptor_modes(docs: Iterable[BindingEnergyDoc], outdir: Path,
                          stem: str = "descriptor_modes") -> list[Path]:
    """Descriptor bars, one panel per mode present: E_b(bcc) (eV) of the lowest site that
    is not flagged reactive, per phase (the value the fits use; the table
    ``descriptor_modes``). A phase whose every site reacted has no bar and says so; hatched
    bars: some sites of the phase reacted (left out).

    Returns
    -------
    list[Path]
        The PNG and SVG files; empty when there are no documents.
    """
    from interphase_dft.analysis.records import MODE_ORDER, descriptor_site

    docs = list(docs)
    modes = sorted({d.mode for d in docs},
                   key=lambda m: MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER))
    if not modes:
        return []
    phases = sorted({d.phase for d in docs})
    by_key = {(d.phase, d.mode): d for d in docs}
    fig = Figure(figsize=(max(5.0, 0.9 * len(phases) + 2.0) * len(modes) / 1.4 + 1.0, 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(modes), sharey=True, squeeze=False)[0])
    for ax, mode in zip(axes, modes, strict=True):
        x = np.arange(len(phases))
        for i, phase in enumerate(phases):
            doc = by_key.get((phase, mode))
            if doc is None:
                ax.text(i, 0.0, "not\ncomputed", ha="center", va="bottom", fontsize=7,
                        color="0.4")
                continue
            site = descriptor_site(doc)
            if site is None:
                ax.text(i, 0.0, "all sites\nreactive", ha="center", va="bottom", fontsize=7,
                        color="tab:red")
                continue
            some = any(getattr(s, "reactive", False) for s in doc.sites)
            val = site.binding_energy_bcc
            ax.bar(i, val, width=0.6, color="tab:blue" if mode == "surface" else "tab:orange",
                   alpha=0.75, hatch="//" if some else None, edgecolor="k", lw=0.6)
            ax.text(i, val, f"{val:+.2f}", ha="center", va="bottom" if val >= 0 else "top",
                    fontsize=7)
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.set_xticks(x, phases, rotation=30, ha="right")
        ax.set_title(f"{mode} mode", fontsize=10)
    axes[0].set_ylabel(r"$E_b$(bcc) of the descriptor site (eV)")
    fig.suptitle("Descriptor per mode (hatched: some sites reacted and are left out)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, outdir, stem)


def plot_correlation(
    points: Sequence[BarrierPoint],
    result: CorrelationResult,
    outdir: Path,
    stem: str = "barrier_vs_delta_e",
) -> list[Path]:
    """Barrier against |dE| with the fit and its bootstrap bands, points named by interface.

    With too few points (or an undefined correlation) the points are drawn and the reason is
    written on the figure instead of a fit. Points left out of the fit (not converged, ML-only)
    are drawn as open grey markers.
    """
    fig = Figure(figsize=(5.8, 4.4))
    ax = fig.subplots()
    points = [p for p in points if p.barrier is not None]  # certified barriers only
    used = [p for p in points if p.used]
    unused = [p for p in points if not p.used]
    if result.band is not None and result.pearson_r is not None:
        band = result.band
        pct = round(100 * result.ci_level)
        ax.fill_between(band["x"], band["pred_lo"], band["pred_hi"], color="tab:blue",
                        alpha=0.12, lw=0, label=f"{pct} % prediction band (bootstrap)")
        ax.fill_between(band["x"], band["lo"], band["hi"], color="tab:blue", alpha=0.3, lw=0,
                        label=f"{pct} % confidence band (bootstrap)")
        ax.plot(band["x"], band["fit"], "-", color="tab:blue",
                label=f"fit: {result.slope:.2f} |dE| + {result.intercept:.2f} eV")
        ax.plot([], [], " ", label=(
            f"r = {result.pearson_r:.2f}, rho = {result.spearman_rho:.2f}, n = {result.n}"
        ))
    else:
        msg = result.undefined_reason or "correlation undefined"
        if result.warnings:
            msg = "; ".join(dict.fromkeys([msg, *result.warnings]))
        ax.text(0.5, 0.5, "no fit: " + msg, transform=ax.transAxes, ha="center", va="center",
                wrap=True, fontsize=9, color="tab:red",
                bbox={"facecolor": "white", "edgecolor": "tab:red"})
        ax.plot([], [], " ", label=f"n = {result.n}")
    if used:
        ax.plot([p.abs_delta_e for p in used], [p.barrier for p in used], "o", color="k",
                label="used in fit")
    if unused:
        ax.plot([p.abs_delta_e for p in unused], [p.barrier for p in unused], "o", color="0.5",
                mfc="none", label="not used (see table)")
    for p in points:
        ax.annotate(p.interface, (p.abs_delta_e, p.barrier), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    if result.pearson_r is not None and result.n < 5:
        ax.text(0.02, 0.98, "too few points to conclude anything", transform=ax.transAxes,
                va="top", fontsize=9, color="tab:red")
    ax.set_xlabel(r"$|\Delta E|$ = $|E_b(A) - E_b(B)|$ (eV)")
    ax.set_ylabel(result.y_label.replace("(eV)", "").strip() + " (eV)")
    ax.set_title("Li migration barrier vs binding-energy descriptor", fontsize=10)
    if points or result.band is not None:
        ax.legend(fontsize=7, loc="best")
    return _save(fig, outdir, stem)


def plot_fits(fits: Sequence[FitResult], outdir: Path, stem: str = "fits") -> list[Path]:
    """One panel per fit of :func:`interphase_dft.analysis.fits.fit_table` (rows: modes).

    Points are named by interface; a least-squares line is drawn only where Pearson r is
    defined, and the panel title gives n, r and the smallest |r| detectable at this n (the
    numbers of the fit table: r with its bootstrap interval), with the bootstrap confidence
    band of the line.
    """
    fits = list(fits)
    if not fits:
        raise ValueError("no fits to draw")
    modes = list(dict.fromkeys(f.mode for f in fits))
    ncol = max(sum(f.mode == m for f in fits) for m in modes)
    fig = Figure(figsize=(4.2 * ncol, 3.4 * len(modes)))
    axes = np.atleast_2d(fig.subplots(len(modes), ncol, squeeze=False))
    for i, mode in enumerate(modes):
        row = [f for f in fits if f.mode == mode]
        for j in range(ncol):
            ax = axes[i, j]
            if j >= len(row):
                ax.set_axis_off()
                continue
            _fit_panel(ax, row[j])
    fig.tight_layout()
    return _save(fig, outdir, stem)


def _fit_panel(ax: Axes, f: FitResult) -> None:
    from interphase_dft.analysis.stats import correlate

    x, y = np.asarray(f.x_values, float), np.asarray(f.y_values, float)
    ax.plot(x, y, "o", color="k")
    for name, a, b in zip(f.interfaces, x, y, strict=True):
        ax.annotate(name, (a, b), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    if f.pearson_r is not None and f.ci_note is None and len(x) >= 2 and np.ptp(x) > 0:
        # no band where the fit gives no bootstrap interval (too few points)
        res = correlate(x, y, n_boot=f.n_boot or 200, seed=f.seed, level=f.ci_level)
        if res.band is not None:
            band = res.band
            ax.fill_between(band["x"], band["lo"], band["hi"], color="tab:blue", alpha=0.25,
                            lw=0, label=f"{round(100 * f.ci_level)} % band (bootstrap)")
            ax.plot(band["x"], band["fit"], "-", color="tab:blue", label="least squares")
            ax.legend(fontsize=6, loc="best")
    r = "undefined" if f.pearson_r is None else f"{f.pearson_r:.2f}"
    if f.r_ci is not None:
        r += f" [{f.r_ci[0]:.2f}, {f.r_ci[1]:.2f}]"
    det = "none (n <= 3)" if f.detectable_r is None else f"{f.detectable_r:.2f}"
    ax.set_title(f"{f.mode}: n = {f.n}, r = {r}\ndetectable |r| {det}",
                 fontsize=8)
    ax.set_xlabel(f.x, fontsize=8)
    ax.set_ylabel(f.y, fontsize=8)
    if not f.n:
        ax.text(0.5, 0.5, "no points", transform=ax.transAxes,
                ha="center", va="center", color="tab:red")
