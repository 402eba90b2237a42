"""A tiny document model: headings, paragraphs, lists, tables and figures.

The report is written once as :class:`Blocks` and rendered to both Markdown and a
self-contained HTML page (figures by relative path), so the two never disagree. In HTML every
table sits in a horizontally scrollable ``<div>``, so a wide table (the site table has 16
columns) scrolls inside the page instead of running off it, and long cells wrap at word
boundaries (a word is broken only when it is longer than the cell's 32em limit). Images are
limited in width (the column) and height (figures 640 px, interface-cell pictures 720 px);
an aside (a hop's profile with its numbers) puts a figure and a small table side by side
and wraps below 1000 px. The page reads at 1280 px width (main column 1180 px).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from interphase_dft.analysis import tables as tb

HTML_STYLE = (
    "body{font-family:sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;"
    "line-height:1.4}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}"
    "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}"
    "td{max-width:32em;overflow-wrap:break-word}div.scroll{overflow-x:auto;max-width:100%}"
    "th{background:#eee}td.bad{color:#b00;font-weight:bold}"
    "img{max-width:100%;height:auto;max-height:640px}img.cell{max-height:720px}"
    "figure{margin:1em 0}figcaption{font-size:0.85em;color:#555;max-width:60em}"
    "div.aside{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}"
    "div.aside>figure{flex:0 1 560px;margin:0}div.aside>div.scroll{flex:1 1 360px;min-width:0}"
    "h3{margin-top:1.6em}"
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

    def img(self, rel: str, alt: str, kind: str = "") -> None:
        """Figure at relative path ``rel`` with caption ``alt``; ``kind`` is its HTML class
        (``'cell'``: an interface-cell picture, lower height limit)."""
        self.items.append(("img", (rel, alt, kind)))

    def aside(self, rel: str | None, alt: str, rows: Sequence[tb.Row]) -> None:
        """Figure ``rel`` (None: no figure) with the small table ``rows`` beside it."""
        self.items.append(("aside", (rel, alt, rows)))

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
                rel, alt, _ = val
                out.append(f"![{alt}]({rel})\n")
            elif kind == "aside":
                rel, alt, rows = val
                if rel is not None:
                    out.append(f"![{alt}]({rel})\n")
                out.append(tb.to_markdown(rows))
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
                rel, alt, cls = val
                out.append(_figure(rel, alt, cls))
            elif kind == "aside":
                rel, alt, rows = val
                fig = _figure(rel, alt) if rel is not None else ""
                out.append(f'<div class="aside">{fig}<div class="scroll" '
                           f'style="overflow-x:auto">{tb.to_html(rows)}</div></div>')
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(out) + "\n</body>\n</html>\n"
        )


def _figure(rel: str, alt: str, cls: str = "") -> str:
    """``<figure>`` with the image at ``rel`` and the caption ``alt``."""
    esc = html.escape
    attr = f' class="{esc(cls)}"' if cls else ""
    return (f'<figure><img{attr} src="{esc(rel)}" alt="{esc(alt)}">'
            f"<figcaption>{esc(alt)}</figcaption></figure>")
