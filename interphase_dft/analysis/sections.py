"""The sections of the report, written as :class:`~interphase_dft.analysis.blocks.Blocks`.

:class:`ReportContent` holds everything the report shows (selected documents, dE pairs,
the per-mode fits and the conclusion sentence chosen from them, tables, figure paths, the
missing list); :func:`render` lays it out. Nothing here computes, draws or writes files, and
no verdict is written here: the conclusion is :func:`interphase_dft.analysis.conclusion.conclusion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from interphase_dft import __version__
from interphase_dft.analysis import tables as tb
from interphase_dft.analysis.blocks import Blocks
from interphase_dft.analysis.conclusion import fit_sentence
from interphase_dft.analysis.descriptor import (
    AGREEMENT_TOL,
    BARRIER_SELECTION_RULE,
    MODE_RULE,
    SELECTION_RULE,
    ConsistencyIssue,
    DescriptorPair,
    Selection,
    barrier_label,
)
from interphase_dft.analysis.fits import FIT_RULE, FitResult
from interphase_dft.analysis.level import REFERENCE
from interphase_dft.analysis.stats import BarrierChoice
from interphase_dft.schemas import BarrierDoc, BindingEnergyDoc


@dataclass
class Figures:
    """Figure files, as paths relative to the report directory (PNG first, then SVG)."""

    binding: list[str] = field(default_factory=list)
    neb: dict[str, list[str]] = field(default_factory=dict)
    fits: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    cells: dict[str, list[str]] = field(default_factory=dict)
    cell_captions: dict[str, str] = field(default_factory=dict)

    def all(self) -> list[str]:
        """Every figure file: binding, descriptor per mode, NEB profiles, interface cells,
        the per-mode fits."""
        return [*self.binding, *self.modes, *[p for paths in self.neb.values() for p in paths],
                *[p for paths in self.cells.values() for p in paths], *self.fits]


@dataclass
class ReportContent:
    """What the report shows (energies in eV)."""

    title: str
    generated: str
    preset: str | None
    barrier: BarrierChoice
    n_boot: int
    seed: int
    selection: Selection
    n_superseded_barriers: int
    binding: list[BindingEnergyDoc]
    barriers: list[BarrierDoc]
    pairs: list[DescriptorPair]
    issues: list[ConsistencyIssue]
    fits: list[FitResult]
    summary: str
    rules: list[str]
    gaps: list[str]
    figure_problems: list[str]
    tables: dict[str, list[tb.Row]]
    figures: Figures
    bulk: list[BarrierDoc] = field(default_factory=list)


def render(c: ReportContent) -> Blocks:
    """The whole report, section by section."""
    b = Blocks()
    _summary(b, c)
    _binding(b, c)
    _descriptor(b, c)
    _barriers(b, c)
    _fits(b, c)
    _level(b, c)
    _sensitivity(b, c)
    _provenance(b, c)
    return b


def _summary(b: Blocks, c: ReportContent) -> None:
    b.h(1, c.title)
    b.p(f"Generated {c.generated} by interphase-dft "
        f"{__version__}. Preset: {c.preset or 'all (newest per phase/mode)'}. "
        f"{len(c.binding)} binding-energy and {len(c.barriers)} barrier result(s) used.")
    if not c.binding and not c.barriers:
        b.p("Nothing computed yet: no valid binding-energy or barrier documents were found. "
            "Run the campaign (interphase-dft campaign SPEC) and regenerate this report.")
    b.h(2, "Summary")
    b.p(c.summary)
    b.h(2, "Missing or not converged")
    b.ul(c.gaps + c.figure_problems)


def _binding(b: Blocks, c: ReportContent) -> None:
    b.h(2, "Li binding energies")
    b.p("E_b = E(host+Li) - E(host) - E_ref (eV), lowest site per phase. Atom reference: "
        "isolated spin-polarised Li atom; bcc reference: bcc Li per atom (E_b(bcc) is the "
        "insertion energy, -e x voltage vs Li/Li+). E_b(atom) = E_b(bcc) - E_coh.")
    b.table(c.tables["binding_energies"], "no binding energies yet")
    for p in c.figures.binding[:1]:
        b.img(p, "Binding energy per phase, both references; points are sites")
    _modes(b, c)
    b.h(3, "All sites")
    b.p("reactive: REACTIVE when the Li broke a host bond or changed a host atom's "
        "coordination on relaxation (the number is a reaction energy, not a binding energy, "
        "and is left out of the descriptor); '-' = not checked. li_charge_e: partial charge of "
        "the Li (e, +1 = fully ionised); li_moment_muB: magnetic moment on the Li (mu_B).")
    b.table(c.tables["sites"], "no sites")


def _modes(b: Blocks, c: ReportContent) -> None:
    b.h(3, "Descriptor per mode, side by side")
    b.p("E_b(bcc) (eV) of the lowest site that is not flagged reactive, per phase and mode "
        "(bulk: Li in the interior of a supercell; surface: Li adsorbed on a converged slab; "
        "interface: the hop endpoints of the interface cell). 'REACTIVE k/n': k of n sites "
        "reacted with the host.")
    b.table(c.tables["descriptor_modes"], "no binding energies yet")
    for p in c.figures.modes[:1]:
        b.img(p, "Descriptor per mode: E_b(bcc) of the lowest non-reactive site per phase")
    b.h(3, "What each binding result measures")
    b.p("Slab convergence (layers tried, last change of E_b, converged), coverage (area per "
        "Li, Angstrom^2, and the required minimum), the termination chosen by DFT surface "
        "energy, the bulk supercell lengths (Angstrom), the Li vacancy formation energy (eV, "
        "bcc reference) and the charge state of the cells.")
    b.table(c.tables["binding_records"], "no binding results yet")
    if c.rules:
        b.ul(c.rules)
    if c.tables["coexistence"]:
        b.h(3, "Al/LiAl coexistence potential")
        b.p("mu_Li = E(LiAl) - E(Al) - E(Li bcc) per Li (eV); the plateau voltage is -mu_Li/e "
            "vs Li/Li+, compared with the experimental Al/LiAl plateau.")
        b.table(c.tables["coexistence"])


def _descriptor(b: Blocks, c: ReportContent) -> None:
    b.h(2, "Descriptor dE(A, B) = E_b(A) - E_b(B)")
    b.p(f"Computed for every pair of phases in the same mode under both references; they must "
        f"agree to {AGREEMENT_TOL:g} eV (a difference means mixed settings). Barriers are "
        "correlated with |dE| because interfaces are unordered; the signed value is kept.")
    b.table(c.tables["delta_e_pairs"], "fewer than two phases computed in one mode")
    for m in ("surface", "bulk"):
        if c.tables[f"delta_e_matrix_{m}"]:
            b.h(3, f"dE matrix, {m} mode (eV, dE(row, column), atom reference)")
            b.table(c.tables[f"delta_e_matrix_{m}"])
    disagree = [p for p in c.pairs if not p.agree]
    b.p("Reference agreement: " + ("all pairs agree." if not disagree else
        "DISAGREE for " + ", ".join(f"{p.phase_a}/{p.phase_b} ({p.reference_gap:+.2e} eV)"
                                    for p in disagree) + ": mixed settings."))
    b.p("Consistency check (E_b(atom) - E_b(bcc) = E(Li bcc) - E(Li atom) = -E_coh for every "
        "site; lowest-site values match): " + ("passed." if not c.issues else "FAILED:"))
    if c.issues:
        b.ul([i.message for i in c.issues])


def _barriers(b: Blocks, c: ReportContent) -> None:
    b.h(2, "Migration barriers (climbing-image NEB)")
    b.p("A band counts as a barrier only when its highest image is an interior climbing image "
        "converged at the barrier's level (force <= neb.fmax) between endpoints that are "
        "minima at that level (force <= relax.fmax): status 'saddle'. Only those fill the "
        "barrier columns (barrier_forward_eV, barrier_reverse_eV, e_kra_eV = E_saddle - "
        "(E_initial + E_final)/2) and enter the fit. reaction_energy_eV is given for every "
        "band: a band whose highest image is an endpoint ('no saddle: reaction energy') "
        "measures a reaction energy, not a barrier. 'no saddle: endpoint not a minimum': an "
        "endpoint relaxed at the barrier's level carried the hopping Li closer to the other "
        "endpoint's site than to its own, so that state does not exist at this level and the "
        "Li crosses without a barrier; its reaction_energy_eV is empty. bulk_barrier_eV is "
        "the bulk reference hop of the phase the Li leaves (phase A) with the same settings; "
        "excess_barrier_eV = "
        "interface barrier - bulk barrier. Stage 'ml+dft': surrogate path refined by DFT "
        "climbing-image NEB; 'dft//ml': DFT single points on the surrogate's path (not a DFT "
        "saddle: its DFT forces decide the status); ml_barrier_eV is the surrogate's value "
        "and never a DFT result. A path with 'hops' > 1 passed through an intermediate "
        "minimum; its barriers are the energetic spans of the joined path. dE_eV and abs_dE_eV: "
        f"{MODE_RULE}; the per-mode fits below pair every mode on its own.")
    b.table(c.tables["barriers"], "no barriers yet")
    rows = {(r["interface"], r["mechanism"]): r for r in c.tables["barriers"]}
    bulk = {d.phase_a: d for d in c.bulk}
    for d in c.barriers:
        label = barrier_label(d)
        b.h(3, f"Hop {label}")
        facts = _hop_facts(d, rows.get((d.interface, d.mechanism), {}), bulk.get(d.phase_a))
        profile = c.figures.neb.get(label, [])
        b.aside(profile[0] if profile else None, f"NEB energy profile of {label}", facts)
        for p in c.figures.cells.get(label, [])[:1]:
            b.img(p, c.figures.cell_captions.get(label, f"Interface cell of {label}"),
                  kind="cell")
    b.h(3, "Bulk reference hops")
    b.table(c.tables["bulk_barriers"], "no bulk reference hops yet")
    for d in c.bulk:
        label = barrier_label(d)
        profile = c.figures.neb.get(label, [])
        if profile:
            b.aside(profile[0], f"NEB energy profile of the bulk reference hop {label}",
                    _hop_facts(d, {}, None))
    b.h(3, "Hops without a barrier")
    b.p("Why each of these bands is not a barrier; an over-budget run continues when the spec "
        "is submitted again with a larger budget in its overrides.")
    b.table(c.tables["barrier_status"], "every computed hop is a certified barrier")


#: barrier-table columns shown beside each profile, in this order
HOP_FACTS = ("barrier_forward_eV", "barrier_reverse_eV", "e_kra_eV", "reaction_energy_eV",
             "bulk_barrier_eV", "excess_barrier_eV", "abs_dE_eV", "used_in_fit", "stage",
             "hop_distance_A", "saddle_fmax_eV_A", "endpoint_fmax_eV_A", "thickness_a_A",
             "thickness_b_A", "strain", "work_of_adhesion_J_m2", "dft_force_calls")


def _hop_facts(d: BarrierDoc, row: tb.Row, bulk: BarrierDoc | None) -> list[tb.Row]:
    """Quantity/value rows of one hop: its certification, the barrier-table values and the
    status of the bulk reference hop of phase A."""
    facts: list[tb.Row] = [{"quantity": "status", "value": d.saddle}]
    if d.saddle_note:
        facts.append({"quantity": "why", "value": d.saddle_note})
    if d.phase_a != d.phase_b:
        facts.append({"quantity": f"bulk {d.phase_a} hop",
                      "value": "not computed" if bulk is None else bulk.saddle})
    if row:
        facts += [{"quantity": k, "value": row[k]} for k in HOP_FACTS if k in row]
    else:
        facts += [{"quantity": "barrier_forward_eV", "value": d.barrier_forward},
                  {"quantity": "reaction_energy_eV", "value": d.reaction_energy},
                  {"quantity": "stage", "value": d.stage},
                  {"quantity": "hop_distance_A", "value": d.hop_distance}]
    return facts


def _fits(b: Blocks, c: ReportContent) -> None:
    b.h(2, "Descriptor against the hop, per mode")
    b.p(FIT_RULE)
    b.p(f"Pearson r and Spearman rho (scipy.stats) with {c.n_boot} bootstrap resamples (seed "
        f"{c.seed}) for the 95 % intervals; detectable_r is the smallest |r| detected at 80 % "
        "power (alpha = 0.05, Fisher z) with the n at hand; pairs_needed_r0.7 the interface "
        "pairs that r = 0.7 needs.")
    b.table(c.tables["fits"], "no descriptor mode has binding energies yet")
    b.ul([fit_sentence(f) for f in c.fits])
    for p in c.figures.fits[:1]:
        b.img(p, "Descriptor against the hop, one row of panels per mode (points: interfaces; "
              "line: least squares with its bootstrap confidence band; titles: n, Pearson r "
              "with its bootstrap interval, smallest |r| detectable at this n)")


def _level(b: Blocks, c: ReportContent) -> None:
    if not c.tables.get("level"):
        return
    b.h(2, f"What this level leaves out against {REFERENCE}")
    b.p(f"Settings of these results that differ from the {REFERENCE} preset (budgets left "
        "out: they bound the cost, not the physics of a finished result). Smaller cells, "
        "looser convergence and surrogate geometries shift barriers and binding energies; "
        f"the size of the shift is measured only where the same hop exists at both levels.")
    b.table(c.tables["level"], "")
    b.h(3, "The same hop at both levels")
    b.table(c.tables.get("size_effect", []),
            f"no hop has been computed at both levels yet: run one with --preset {REFERENCE} "
            "(for example interphase-dft barrier LiAl Li2S --preset production on a cluster) "
            "to measure the shift of its barrier")


def _sensitivity(b: Blocks, c: ReportContent) -> None:
    b.h(2, "Settings sensitivity of the barriers")
    b.p("Each check recomputes a certified barrier's stationary images (endpoints, "
        "intermediate minima, climbing images) as single points at their stored geometries "
        "with changed settings or a wider vacuum "
        "(interphase-dft sensitivity): the d_ columns are the changes of the energetic-span "
        "barriers, E_KRA and the reaction energy at fixed geometry; saddle_force is the force "
        "on the saddle image at the checked setting; geometry_stationary is NO when a saddle's "
        "force exceeds neb.fmax, a minimum's relax.fmax or a saddle falls below an end of its "
        "hop there (only a new band then gives that setting's barrier); reproduced_within is "
        "how closely fresh SCFs with the stored settings give the stored energies relative to "
        "the initial image, the noise floor of the changes.")
    b.table(c.tables.get("sensitivity", []),
            "no settings check yet: run interphase-dft sensitivity RESULT.json --set "
            "dft.ecut=400 (or dft.kpt_density, --vacuum) and pass its --json file to report "
            "--from-json")


def _provenance(b: Blocks, c: ReportContent) -> None:
    b.h(2, "Settings and provenance")
    b.p(f"Selection rule: {SELECTION_RULE}; barriers: {BARRIER_SELECTION_RULE}. "
        "Superseded documents: "
        f"{len(c.selection.superseded) + c.n_superseded_barriers}.")
    b.table(c.tables["settings"], "no settings (no documents)")
    b.h(3, "Package versions")
    b.table(c.tables["versions"], "no versions (no documents)")
    b.h(2, "Files")
    b.ul(["results.json", *[f"tables/{n}.csv (also .md, .json)" for n in c.tables],
          *c.figures.all()])
