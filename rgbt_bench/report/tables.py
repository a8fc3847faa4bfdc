"""Report tables from the per-image confusion matrices: mIoU, per-class IoU, day/night; CSV/Markdown/JSON.

Every mIoU here comes from rgbt_bench.metrics.compute_metrics on a summed confusion matrix (the whole
split, or its day or night images), under the convention the sweep recorded. Values are percentages.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from ..metrics import compute_metrics
from ..sweep.store import write_json
from .load import Cell, Results

PCT = 100.0


def present_cells(results: Results) -> Iterator[tuple[str, str, int, Cell]]:
    """(model, corruption, severity, cell) for every finished cell, settings in report order, then models."""
    for corruption, severity in results.settings():
        for model in results.models:
            cell = results.cell(model, corruption, severity)
            if cell is not None:
                yield model, corruption, severity, cell


def miou_table(results: Results) -> pd.DataFrame:
    """Long table: one row per (model, corruption, severity) with mIoU, pixel and mean accuracy (%)."""
    rows = []
    for model, corruption, severity, cell in present_cells(results):
        m = compute_metrics(cell.confusion, results.convention)
        rows.append({"model": model, "dataset": results.dataset, "split": results.split,
                     "corruption": corruption, "severity": severity,
                     "seeds": ",".join(map(str, cell.seeds)), "images": cell.per_image.shape[0],
                     "miou": PCT * m.miou, "pixel_acc": PCT * m.pixel_acc, "mean_acc": PCT * m.mean_acc})
    return pd.DataFrame(rows)


def miou_wide(miou: pd.DataFrame) -> pd.DataFrame:
    """Rows (corruption, severity) in report order, one column of mIoU per model."""
    order = list(dict.fromkeys(zip(miou["corruption"], miou["severity"])))
    models = list(dict.fromkeys(miou["model"]))
    wide = miou.pivot(index=["corruption", "severity"], columns="model", values="miou")
    return wide.reindex(pd.MultiIndex.from_tuples(order, names=["corruption", "severity"]))[models].reset_index()


def per_class_table(results: Results) -> pd.DataFrame:
    """One row per (model, corruption, severity), one IoU column (%) per class."""
    rows = []
    for model, corruption, severity, cell in present_cells(results):
        iou = compute_metrics(cell.confusion, results.convention).iou
        rows.append({"model": model, "corruption": corruption, "severity": severity,
                     **{name: PCT * v for name, v in zip(results.class_names, iou)}})
    return pd.DataFrame(rows)


def day_night_table(results: Results) -> Optional[pd.DataFrame]:
    """mIoU (%) over all, day-only and night-only images per cell; None when no image has a day/night flag."""
    if not results.has_day_night:
        return None
    day, night = results.is_night == 0, results.is_night == 1
    rows = []
    for model, corruption, severity, cell in present_cells(results):
        subset = {key: (compute_metrics(cell.per_image[sel].sum(axis=0), results.convention).miou * PCT
                        if sel.any() else float("nan")) for key, sel in (("day", day), ("night", night))}
        rows.append({"model": model, "corruption": corruption, "severity": severity,
                     "miou": results.miou(model, corruption, severity) * PCT,
                     "miou_day": subset["day"], "miou_night": subset["night"],
                     "images_day": int(day.sum()), "images_night": int(night.sum())})
    return pd.DataFrame(rows)


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub Markdown table of `df` (floats to `digits` decimals, NaN as an en dash)."""
    head = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of `df` as JSON-ready dicts (NaN -> null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def write_table(df: pd.DataFrame, base: Path, *, markdown: Optional[pd.DataFrame] = None, title: str = "",
                meta: Optional[dict[str, Any]] = None, digits: int = 2) -> list[Path]:
    """Write `base`.csv (and .md; .json when `meta` is given, holding meta + rows), each atomically.
    Returns the paths.

    `markdown` is an alternative (e.g. wide) view for the Markdown file; the CSV and JSON hold `df`.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    csv, md = base.with_suffix(".csv"), base.with_suffix(".md")
    atomic_write_text(csv, df.to_csv(index=False, float_format="%.4f"))
    header = f"# {title}\n\n" if title else ""
    note = "".join(f"- {k}: {v}\n" for k, v in (meta or {}).items() if not isinstance(v, (dict, list)))
    atomic_write_text(md, header + (note + "\n" if note else "")
                      + to_markdown(df if markdown is None else markdown, digits))
    paths = [csv, md]
    if meta is not None:
        write_json(base.with_suffix(".json"), {**meta, "rows": records(df)})
        paths.append(base.with_suffix(".json"))
    return paths
