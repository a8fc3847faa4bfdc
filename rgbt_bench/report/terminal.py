"""Short rich tables for the terminal: a report's per-model summary, a leaderboard, a check's diff.

Cells are plain ASCII ('-' for a missing value), so a terminal or CI log with an ASCII locale prints them
(rich draws the table borders in ASCII there by itself)."""
from __future__ import annotations

import math
from typing import Iterable, Optional

import pandas as pd
from rich.table import Table

MISSING = "-"


def fmt(value, digits: int = 1) -> str:
    """A table cell: floats with `digits` decimals, missing values (None, NA, NaN) as MISSING."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def interval(low, high) -> str:
    """A confidence interval as '[low, high]' with one decimal; MISSING when either end is missing."""
    return MISSING if any(v is None or math.isnan(v) for v in (low, high)) else f"[{low:.1f}, {high:.1f}]"


def frame_table(frame: pd.DataFrame, columns: Iterable[tuple[str, str]], title: Optional[str] = None,
                ci: Optional[tuple[str, str, str]] = None, styles: Optional[dict[str, str]] = None,
                digits: int = 1) -> Table:
    """A rich Table of `frame`'s (column, header) pairs; `ci` = (low column, high column, header).

    Floats are shown with `digits` decimals; `styles` maps a row's "status" value to a rich style."""
    columns = [(c, h) for c, h in columns if c in frame.columns]
    table = Table(title=title, title_justify="left")
    for c, header in columns:
        table.add_column(header, justify="right" if pd.api.types.is_numeric_dtype(frame[c]) else "left")
    with_ci = ci is not None and ci[0] in frame.columns
    if with_ci:
        table.add_column(ci[2], justify="right")
    for _, row in frame.iterrows():
        cells = [fmt(row[c], digits) for c, _ in columns]
        if with_ci:
            cells.append(interval(row[ci[0]], row[ci[1]]))
        style = (styles or {}).get(str(row.get("status", "")))
        table.add_row(*cells, style=style)
    return table
