"""A tiny document model: headings, paragraphs, lists, tables and figures.

The report is written once as :class:`Blocks` and rendered to both Markdown and a
self-contained HTML page (figures by relative path), so the two never disagree. In HTML every
table sits in a horizontally scrollable ``<div>``, so a wide table (the site table has 16
columns) scrolls inside the page instead of running off it, and long cells wrap.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from interphase_dft.analysis import tables as tb

HTML_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}"
    "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}"
    "td{max-width:32em;overflow-wrap:anywhere}div.scroll{overflow-x:auto;max-width:100%}"
    "th{background:#eee}td.bad{color:#b00;font-weight:bold}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}"
)


@dataclass
class Blocks:
    """An ordered list of blocks, each ``(kind, value)``; rendered to Markdown or HTML."""

    items: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        """Heading of ``level`` (1-6)."""
        self.items.append((f"h{level}", text))

    def p(self, text: str) -> None:
        """Paragraph."""
        self.items.append(("p", text))

    def ul(self, entries: Sequence[str]) -> None:
        """Bulleted list; an empty list renders as ``(none)``."""
        self.items.append(("ul", list(entries)))

    def table(self, rows: Sequence[tb.Row], empty: str = "(none)") -> None:
        """Table of row dicts; ``empty`` is shown when there are no rows."""
        self.items.append(("table", (rows, empty)))

    def img(self, rel: str, alt: str) -> None:
        """Figure at relative path ``rel`` with caption ``alt``."""
        self.items.append(("img", (rel, alt)))

    def markdown(self) -> str:
        """The document as Markdown."""
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
        """The document as a complete HTML page titled ``title``."""
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
                out.append(f'<div class="scroll" style="overflow-x:auto">{tb.to_html(*val)}</div>')
            elif kind == "img":
                rel, alt = val
                out.append(f'<figure><img src="{esc(rel)}" alt="{esc(alt)}">'
                           f"<figcaption>{esc(alt)}</figcaption></figure>")
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(out) + "\n</body>\n</html>\n"
        )
