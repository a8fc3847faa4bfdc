"""The per-model summary printed at the end of `sweep` and `run`: clean mIoU, mean corrupted mIoU, mIoU with
each camera missing at the worst severity evaluated, modality reliance (rgbt_bench.report.reliance), the
training seeds behind each row (every value is the mean over them) and the cost recorded in run.json
(rgbt_bench.efficiency).

The numbers are the report's (rgbt_bench.report.robustness over every cell of the results directory), so a
quick look and `rgbt-bench report` agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

MISSING = ("rgb_missing", "thermal_missing")
RELIANCE = ("rgb_share", "fusion_gain")


def summarize(summary: pd.DataFrame, miou: pd.DataFrame, models: Sequence[str], severity: int) -> pd.DataFrame:
    """Per model (rows in `models` order, %): clean and mean corrupted mIoU (the report's robustness
    summary), mIoU with the RGB / thermal camera missing at `severity` (5: missing on every image), the
    modality reliance when the summary has it, and the training seeds behind each row."""
    by_model = summary.set_index("model")
    cells = miou.set_index(["model", "corruption", "severity"])["miou"]
    rows = []
    for model in models:
        row = {"model": model, "clean": float(by_model.loc[model, "clean_miou"]),
               "mean_corrupted": float(by_model.loc[model, "mean_corrupted_miou"])}
        for name in MISSING:
            row[name] = float(cells.get((model, name, severity), float("nan")))
        for name in RELIANCE:
            if name in by_model.columns:
                row[name] = float(by_model.loc[model, name])
        row["train_seeds"] = int(by_model.loc[model, "train_seeds"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def columns(severity: int) -> list[tuple[str, str]]:
    """(column, header) pairs of a summary frame (reset_index) for rgbt_bench.report.terminal.frame_table."""
    return [("model", "model"), ("clean", "clean"), ("mean_corrupted", "mean corrupted"),
            ("rgb_missing", f"rgb_missing s{severity}"), ("thermal_missing", f"thermal_missing s{severity}"),
            ("rgb_share", "RGB share of drop"), ("fusion_gain", "fusion gain"), ("train_seeds", "seeds"),
            ("params", "params"), ("gflops", "GFLOPs"), ("images_per_s", "img/s")]


def for_display(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its cost columns as text: 2.52M parameters, 3 significant digits of GFLOPs, img/s to 0.1."""
    from ..efficiency import format_count
    shown = frame.copy()
    for column, text in (("params", format_count), ("gflops", lambda v: f"{v:.3g}"),
                         ("images_per_s", lambda v: f"{v:.1f}")):
        if column in shown:
            shown[column] = [("-" if pd.isna(v) else text(v)) for v in shown[column]]
    return shown


def results_summary(results_dir: str | Path, models: Sequence[str]) -> tuple[pd.DataFrame, int, str]:
    """(summary of `models` in `results_dir` with their recorded cost, the severity of its missing-camera
    columns, a title naming dataset, split, images and evaluation mode)."""
    from ..efficiency import read_efficiency
    from ..inference import describe
    from ..report.load import load_results
    from ..report.robustness import choose_reference, robustness_tables
    from ..report.tables import miou_table

    results = load_results(results_dir)
    _, summary = robustness_tables(results, choose_reference(results))
    shown = [m for m in models if m in results.models]
    missing = [s for (_, c, s) in results.cells if c in MISSING]
    severity = max(missing or [s for (_, _, s) in results.cells])
    frame = summarize(summary, miou_table(results), shown, severity)
    cost = read_efficiency(results_dir).set_index("model")
    for column in ("params", "gflops", "images_per_s"):
        frame[column] = [cost[column].get(m, float("nan")) for m in shown]
    modes = sorted({describe(c.record.identity.inference) for c in results.raw if c.record.key.model in shown})
    several = any(results.replicas(m) > 1 for m in shown)
    title = (f"mIoU (%) on {results.dataset}/{results.split}, {len(results.names)} images, "
             f"inference {', '.join(modes)}{', mean over training seeds' if several else ''}")
    return frame, severity, title
