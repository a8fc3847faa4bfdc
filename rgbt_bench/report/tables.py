"""Report tables from the per-image confusion matrices: mIoU, per-class IoU, day/night; CSV/JSON/Markdown.

Every mIoU here comes from rgbt_bench.metrics.compute_metrics on a summed confusion matrix (the whole
split, or its day or night images), under the convention the sweep recorded. Values are percentages; a
written table names the unit in its column names (`miou_pct` in CSV and JSON, "mIoU (%)" in Markdown).
Markdown files start with the table, so they paste as they are; what the numbers are follows in a note.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from ..metrics import compute_metrics
from .load import Cell, Results
from .replicas import STD_SUFFIX, TRAIN_SEEDS, over_replicas

PCT = 100.0
CELL_KEYS = ["model", "corruption", "severity"]


def present_cells(results: Results) -> Iterator[tuple[str, str, int, Cell]]:
    """(model, corruption, severity, cell) for every finished cell, settings in report order, then models."""
    for corruption, severity in results.settings():
        for model in results.models:
            cell = results.cell(model, corruption, severity)
            if cell is not None:
                yield model, corruption, severity, cell


def miou_table(results: Results) -> pd.DataFrame:
    """Long table: one row per (model, corruption, severity) with mIoU, pixel and mean accuracy (%): the mean
    over the model's training-seed replicas, with `train_seeds` (and `miou_std` when a model has several)."""
    return over_replicas(results, _miou_rows, CELL_KEYS, ("miou",))


def _miou_rows(results: Results) -> pd.DataFrame:
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
    """One row per (model, corruption, severity), one IoU column (%) per class (mean over replicas)."""
    return over_replicas(results, _per_class_rows, CELL_KEYS).drop(columns=TRAIN_SEEDS)


def _per_class_rows(results: Results) -> pd.DataFrame:
    rows = []
    for model, corruption, severity, cell in present_cells(results):
        iou = compute_metrics(cell.confusion, results.convention).iou
        rows.append({"model": model, "corruption": corruption, "severity": severity,
                     **{name: PCT * v for name, v in zip(results.class_names, iou)}})
    return pd.DataFrame(rows)


def day_night_table(results: Results) -> Optional[pd.DataFrame]:
    """mIoU (%) over all, day-only and night-only images per cell (mean over replicas); None when no image has
    a day/night flag."""
    if not results.has_day_night:
        return None
    return over_replicas(results, _day_night_rows, CELL_KEYS).drop(columns=TRAIN_SEEDS)


def _day_night_rows(results: Results) -> pd.DataFrame:
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


# Human headers of the Markdown, HTML and LaTeX views (CSV and JSON keep the column names).
LABELS = {"miou": "mIoU", "pixel_acc": "pixel acc.", "mean_acc": "mean acc.", "miou_day": "mIoU day",
          "miou_night": "mIoU night", "images_day": "day images", "images_night": "night images",
          "mean_miou": "mean mIoU", "rr": "RR", "ce": "CE", "clean_miou": "clean mIoU",
          "mean_corrupted_miou": "mean corrupted mIoU", "mean_corrupted_low": "mean corrupted CI low",
          "mean_corrupted_high": "mean corrupted CI high", "clean_low": "clean CI low", "clean_high": "clean CI high",
          "mce": "mCE", "worst_miou": "worst mIoU", "worst_setting": "worst at", "low": "CI low", "high": "CI high",
          "diff_vs_reference_low": "diff. vs reference CI low", "diff_vs_reference_high": "diff. vs reference CI high",
          "excludes_zero": "CI excludes 0", "miou_std": "mIoU std", "train_seeds": "training seeds",
          "rce": "rCE", "rmce": "relative mCE", "rgb_share": "RGB share of drop", "fusion_gain": "fusion gain",
          "rgb_share_low": "RGB share CI low", "rgb_share_high": "RGB share CI high",
          "fusion_gain_low": "fusion gain CI low", "fusion_gain_high": "fusion gain CI high",
          "treatment": "model", "control": "control", "statistic": "statistic", "treatment_miou": "model mIoU",
          "control_miou": "control mIoU", "difference": "difference", "train_seed": "training seed",
          "missed_classes": "missed classes (IoU %)", "still_rising": "still rising", "gain": "val mIoU gain",
          "cannot_tell": "cannot tell", "params": "parameters", "gflops": "GFLOPs", "images_per_s": "images/s",
          "cost_device": "measured on", "training_checks": "training checks"}
PCT_SUFFIX = "_pct"


@dataclass(frozen=True)
class Table:
    """One written table. `frame` holds machine column names and values in %; `percent` maps each percent
    column to its file name (ending in `_pct`, so a CSV or JSON says its unit). `view` is the table a person
    reads (Markdown, HTML; e.g. wide), `view_percent` its percent columns, headed "... (%)"."""

    name: str
    caption: str
    frame: pd.DataFrame
    percent: dict[str, str]
    view: Optional[pd.DataFrame] = None
    view_percent: tuple[str, ...] = ()

    def file_frame(self) -> pd.DataFrame:
        """The table as CSV and JSON hold it: percent columns renamed with their unit."""
        return self.frame.rename(columns=self.percent)

    def display_frame(self) -> tuple[pd.DataFrame, set[str]]:
        """(the view with human headers, the set of its percent headers)."""
        if self.view is None:
            view, percent = self.frame, set(self.percent)
        else:
            view, percent = self.view, set(self.view_percent)
        headers = {c: f"{label(c)} (%)" if c in percent else label(c) for c in view.columns}
        return view.rename(columns=headers), {headers[c] for c in percent}


def label(column: str) -> str:
    """The human header of a column: LABELS, with ' std' for a spread over training seeds ('_std')."""
    if column not in LABELS and column.endswith(STD_SUFFIX):
        return f"{label(column[:-len(STD_SUFFIX)])} std"
    return LABELS.get(column, column)


def percent_names(columns: Iterable[str], suffix: str = PCT_SUFFIX) -> dict[str, str]:
    """{column: column + suffix}: the file names of percent columns."""
    return {c: f"{c}{suffix}" for c in columns}


def fmt(value: Any, digits: int) -> str:
    """A cell as text: floats to `digits` decimals, NaN / None / NA (a missing integer) as an en dash."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub Markdown table of `df` (floats to `digits` decimals, NaN as an en dash)."""
    head = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in head) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    if value is pd.NA:
        return None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of `df` as JSON-ready dicts (NaN -> null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def records_json(df: pd.DataFrame) -> str:
    """`df` as a JSON array of flat records, one per line (NaN -> null)."""
    rows = [json.dumps(r, ensure_ascii=False, allow_nan=False) for r in records(df)]
    return "[\n" + ",\n".join(rows) + "\n]\n"


def markdown_file(table: Table, note: str, digits: int = 2) -> str:
    """The Markdown table, pasteable as it is, then a blank line and `note` (caption and context)."""
    view, _ = table.display_frame()
    return to_markdown(view, digits) + (f"\n{note.rstrip()}\n" if note else "")


def write_table(table: Table, out_dir: Path, note: str = "", digits: int = 2) -> list[Path]:
    """Write `out_dir`/NAME.csv, NAME.json (flat records: `pandas.read_json(path, orient="records")` reads the
    same table back) and NAME.md, each atomically. Returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / table.name
    csv, js, md = (base.with_suffix(s) for s in (".csv", ".json", ".md"))
    frame = table.file_frame()
    atomic_write_text(csv, frame.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(js, records_json(frame))
    atomic_write_text(md, markdown_file(table, note, digits))
    return [csv, js, md]
