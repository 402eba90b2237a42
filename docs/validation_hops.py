"""Interface hop endpoints: shortest Li-host distances next to the bulk values (no DFT).

Usage: .venv/bin/python docs/validation_hops.py [PRESET] [--update]
Prints the Markdown table of docs/validation.md, section "Interface hop endpoints"; with
``--update`` rewrites that table between its markers in docs/validation.md.

Endpoints as :func:`interphase_dft.recipes.barrier.interface_hop` builds them: the migration
cell of the preset (geometric contact registry; the recipe replaces it by the surrogate
registry scan when it runs) and the vacancy crossing of
:func:`interphase_dft.builders.hops.vacancy_hop`. Distances in Angstrom; "ok" means within
10 % of a bulk Li-host distance (nearest non-Li or nearest Li) of the phase of the site.
"""

from __future__ import annotations

import sys
from pathlib import Path

from interphase_dft.builders.contact import bulk_like, li_host_reference
from interphase_dft.calc.presets import preset
from interphase_dft.recipes.barrier import interface_hop

PAIRS = (("LiAl", "LPSC"), ("LiAl", "Li2S"), ("LiAl", "Li3P"), ("LiAl", "LiCl"),
         ("Li3P", "LiCl"), ("Li2S", "LiCl"))  # the vacancy crossings of the campaigns
START, END = "<!-- hop-endpoints:start -->", "<!-- hop-endpoints:end -->"
DOC = Path(__file__).with_name("validation.md")


def _bulk(phase: str) -> str:
    ref = li_host_reference(phase)
    return f"{ref['nearest_non_li']:.2f} / {ref['nearest_li']:.2f}"


def _site(distance: float, nearest: str, phase: str) -> str:
    ok = "ok" if bulk_like(distance, li_host_reference(phase)) else "NOT bulk-like"
    return f"{distance:.2f} ({nearest}, {ok})"


def table(preset_name: str) -> str:
    """The Markdown table for ``preset_name`` (vacancy mechanism)."""
    settings = preset(preset_name)
    lines = [
        f"| A\\|B ({preset_name}, vacancy) | atoms | thickness A / B | strain (side) | hop "
        "| initial Li-host | bulk A non-Li / Li | final Li-host | bulk B non-Li / Li |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a, b in PAIRS:
        initial, _, m = interface_hop(a, b, settings, "vacancy")
        lines.append(
            f"| {a}\\|{b} | {len(initial)} | {m['thickness_a_A']:.1f} / {m['thickness_b_A']:.1f} "
            f"| {100 * m['strain']:.1f} % ({m['strained_side'].upper()}) "
            f"| {m['hop_distance_A']:.2f} "
            f"| {_site(m['li_host_initial_A'], m['nearest_initial'], a)} | {_bulk(a)} "
            f"| {_site(m['li_host_final_A'], m['nearest_final'], b)} | {_bulk(b)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    text = table(args[0] if args else "laptop")
    print(text)
    if "--update" in sys.argv:
        doc = DOC.read_text()
        head, rest = doc.split(START, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{START}\n{text}{END}{tail}")
        print(f"updated {DOC}")


if __name__ == "__main__":
    main()
