"""The output of the list commands, as a table for people or CSV / JSON for scripts (`--format`).

Rows are dicts of typed values (JSON keeps them: numbers, lists, null); each `Column` says how its value
reads in a table or CSV cell. The table is rich's, unwrapped when stdout is not a terminal
(rgbt_bench.console); CSV has one header line and one line per row, cells that hold several lines joined
with "; "; JSON is a list of records (`pandas.read_json(text, orient="records")` reads it).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import click

from ..console import print_table, stdout_console

FORMATS = ("table", "csv", "json")

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                             help="table for people; csv or json (a list of records) for scripts.")


def text(value: Any) -> str:
    """A value as a cell reads it: lists joined with ', ', None as '-', floats with up to 4 digits."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plain(value: Any) -> str:
    """A value as a CSV cell holds it: lists joined with ', ', None empty, booleans true / false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Column:
    """A column: the row key, its table header, its CSV / JSON field name (default: the key), and how its
    value reads in a table cell (`show`) and in a CSV cell (`csv`, default `plain`)."""

    key: str
    header: Optional[str] = None
    show: Callable[[Any], str] = text
    csv: Callable[[Any], str] = plain
    no_wrap: bool = False
    name: Optional[str] = None

    @property
    def title(self) -> str:
        return self.header or self.key

    @property
    def field(self) -> str:
        return self.name or self.key


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: str, title: str = "") -> None:
    """Write `rows` to stdout as a table (titled), CSV or JSON."""
    if fmt == "json":
        click.echo(json.dumps([{c.field: row.get(c.key) for c in columns} for row in rows], indent=2))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.field for c in columns])
        writer.writerows([[c.csv(row.get(c.key)).replace("\n", "; ") for c in columns] for row in rows])
        click.echo(buffer.getvalue(), nl=False)
        return
    from rich.table import Table

    table = Table(title=title or None)
    for c in columns:
        table.add_column(c.title, overflow="fold", no_wrap=c.no_wrap)
    for row in rows:
        table.add_row(*[c.show(row.get(c.key)) for c in columns])
    print_table(stdout_console(), table)
