"""`report/index.html`: the whole report in one self-contained page (open it anywhere, attach it to a review).

Figures are embedded as base64 PNG `data:` URIs and the style sheet is inline, so the page references no
other file and no network address. It holds the provenance, the notes, every figure and every table (the
same views as the Markdown files, numbers in %), each table followed by the names of its CSV / JSON files.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..atomic import atomic_write_text
from .provenance import label
from .tables import Table, fmt

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; }
th { border-bottom: 2px solid #444; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.9em; color: #555; }
.files { font-size: 0.8em; color: #666; } dt { font-weight: bold; } dd { margin: 0 0 0.3em 1.5em; }
"""
BIG = 40  # tables with more rows are folded (<details>) so the page stays navigable


def table_html(table: Table, digits: int = 2) -> str:
    """The table's view (human headers, numbers formatted as in Markdown) as an HTML table."""
    view, _ = table.display_frame()
    numeric = [pd.api.types.is_numeric_dtype(view[c]) and not pd.api.types.is_bool_dtype(view[c])
               for c in view.columns]
    cls = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{c}>{html.escape(str(h))}</th>" for h, c in zip(view.columns, cls))
    body = "\n".join("<tr>" + "".join(f"<td{c}>{html.escape(fmt(v, digits))}</td>" for v, c in zip(row, cls))
                     + "</tr>" for row in view.itertuples(index=False))
    return f'<table id="table-{html.escape(table.name)}">\n<tr>{head}</tr>\n{body}\n</table>'


def figure_html(name: str, caption: str, png: Path) -> str:
    """A <figure> with the PNG at `png` embedded as base64, so index.html stands alone."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f'<figure id="figure-{html.escape(name)}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def write_index(path: Path, title: str, context: str, provenance: dict, notes: Sequence[str],
                figures: Sequence[tuple[str, str, Path]], tables: Sequence[Table]) -> Path:
    """Write the page: `figures` are (name, caption, PNG path), `tables` the report's tables in order."""
    prov = [(label(k), v) for k, v in provenance.items() if k != "checkpoints"]
    prov += [(f"checkpoint {m}", f"sha256 {sha}") for m, sha in provenance.get("checkpoints", {}).items()]
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(context)}. All numbers are percentages.</p>"]
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if figures:
        parts.append("<h2>Figures</h2>" + "\n".join(figure_html(*f) for f in figures))
    for table in tables:
        block = table_html(table)
        if len(table.frame) > BIG:
            block = f"<details><summary>{len(table.frame)} rows</summary>\n{block}\n</details>"
        files = ", ".join(f"{table.name}.{s}" for s in ("csv", "json", "md"))
        parts.append(f'<h2 id="{html.escape(table.name)}">{html.escape(table.caption)}</h2>\n{block}\n'
                     f'<p class="files">{html.escape(files)}</p>')
    parts.append("<h2>Provenance</h2><dl>" + "".join(f"<dt>{html.escape(k)}</dt>"
                                                     f"<dd>{html.escape(str(v))}</dd>" for k, v in prov) + "</dl>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")
    atomic_write_text(path, page)
    return path
