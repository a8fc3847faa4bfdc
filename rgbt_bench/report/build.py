"""`build_report`: every table, robustness metric, confidence interval and plot of one sweep, written into
`<results>/report/`, with `report.json` recording how they were computed (convention, reference, bootstrap)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from .. import __version__
from ..errors import ConfigError
from ..sweep.store import write_json
from . import plots
from .bootstrap import BootstrapResult, paired_bootstrap
from .load import CLEAN, Results, load_results
from .qualitative import parse_setting, qualitative_grid
from .robustness import Reference, choose_reference, robustness_tables
from .tables import (
    day_night_table,
    miou_table,
    miou_wide,
    per_class_table,
    records,
    write_table,
)

REPORT_DIR = "report"
WORST = "worst"
NONE = "none"


@dataclass
class Report:
    """What `build_report` computed and wrote; `notes` are one-line remarks (e.g. a skipped plot)."""

    results: Results
    reference: Reference
    out_dir: Path
    miou: pd.DataFrame
    per_class: pd.DataFrame
    day_night: Optional[pd.DataFrame]
    robustness: pd.DataFrame
    summary: pd.DataFrame
    bootstrap: Optional[BootstrapResult]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def worst_setting(miou: pd.DataFrame) -> tuple[str, int]:
    """The corrupted (corruption, severity) with the lowest mIoU averaged over models (clean if none)."""
    corrupted = miou[miou["corruption"] != CLEAN]
    if corrupted.empty:
        return CLEAN, 0
    mean = corrupted.groupby(["corruption", "severity"], sort=False)["miou"].mean()
    corruption, severity = mean.idxmin()
    return str(corruption), int(severity)


def _setting(text: Optional[str], results: Results, miou: pd.DataFrame, flag: str) -> Optional[tuple[str, int]]:
    if text is None or text == WORST:
        return worst_setting(miou)
    if text == NONE:
        return None
    return parse_setting(text, results, flag)


def build_report(results_dir: str | Path, *, reference: Optional[str] = None, bootstrap: int = 1000,
                 seed: int = 0, confidence: float = 0.95, qualitative: Optional[str] = WORST,
                 per_class: Optional[str] = None, plot: bool = True, images: int = 3,
                 device: str | torch.device = "cpu") -> Report:
    """Compute and write the report of the sweep in `results_dir`.

    `reference`: model CE is measured against (default: run.json's "reference", else the first model).
    `bootstrap`: resamples for the paired bootstrap (0 skips it). `qualitative` / `per_class`:
    'CORRUPTION:SEVERITY', 'clean', 'worst' (lowest mean mIoU over models) or 'none' (no such plot);
    `per_class` defaults to the qualitative setting, else the worst. `plot=False` writes tables only. User errors are raised before anything is written.
    """
    results = load_results(results_dir)
    ref = choose_reference(results, reference)
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 (0 skips it), got {bootstrap}")
    miou = miou_table(results)
    qual_setting = _setting(qualitative, results, miou, "--qualitative")
    class_setting = _setting(per_class, results, miou, "--per-class") if per_class is not None else \
        (qual_setting or worst_setting(miou))
    per_cls = per_class_table(results)
    day_night = day_night_table(results)
    per_corruption, summary = robustness_tables(results, ref)
    boot = paired_bootstrap(results, ref, bootstrap, seed, confidence) if bootstrap else None
    out = results.path / REPORT_DIR
    report = Report(results, ref, out, miou, per_cls, day_night, per_corruption, summary, boot)
    missing = results.missing()
    if missing:
        shown = ", ".join(f"{m} {c}@{s}" for m, c, s in missing[:3]) + (", ..." if len(missing) > 3 else "")
        report.notes.append(f"{len(missing)} cell(s) missing ({shown}): an unfinished sweep? means, RR and CE that "
                            "need them are left empty")
    meta = {"dataset": results.dataset, "split": results.split, "convention": results.convention,
            "units": "percent", "reference": ref.model, "reference_chosen_by": ref.chosen_by}
    files = report.files
    files += write_table(miou, out / "miou", markdown=miou_wide(miou), title="mIoU (%) per corruption and severity",
                         meta=meta)
    files += write_table(per_cls, out / "per_class", title="IoU (%) per class", meta=meta)
    if day_night is not None:
        files += write_table(day_night, out / "day_night", title="mIoU (%) on day and night images", meta=meta)
    files += write_table(per_corruption, out / "robustness", title="Robustness per corruption (mean mIoU, RR, CE; %)",
                         meta=meta)
    files += write_table(summary, out / "summary", title="Robustness per model (%)", meta=meta)
    if boot is not None:
        boot_meta = {**meta, **boot.meta()}
        files += write_table(boot.cells, out / "bootstrap_cells", title="Bootstrap CIs of each cell's mIoU (%)",
                             meta=boot_meta)
        files += write_table(boot.summary, out / "bootstrap_summary", title="Bootstrap CIs per model (%)",
                             meta=boot_meta)
        if not boot.differences.empty:
            files += write_table(boot.differences, out / "bootstrap_differences",
                                 title=f"Paired bootstrap CIs of model minus {ref.model} (%)", meta=boot_meta)
    if plot:
        _plots(report, class_setting, qual_setting, images, device)
    write_json(out / "report.json", {
        **meta, "rgbt_bench_version": __version__, "results": str(results.path), "models": results.models,
        "corruptions": results.corruptions, "images": len(results.names),
        "cells": len(results.raw), "bootstrap": boot.meta() if boot is not None else None,
        "per_class_setting": list(class_setting) if class_setting else None, "qualitative_setting": list(qual_setting) if qual_setting else None,
        "summary": records(summary), "files": [str(p.relative_to(out)) for p in files], "notes": report.notes})
    files.append(out / "report.json")
    return report


def _plots(report: Report, class_setting: Optional[tuple[str, int]], qual_setting: Optional[tuple[str, int]],
           images: int, device) -> None:
    out, files = report.out_dir, report.files
    has_corrupted = bool((report.miou["corruption"] != CLEAN).any())
    if has_corrupted:
        files += plots.heatmap(report.miou, out / "heatmap")
        files += plots.curves(report.miou, out / "curves")
    if class_setting is not None:
        files += plots.per_class_bars(report.per_class, report.results.class_names, class_setting,
                                      out / "per_class")
    if qual_setting is not None:
        paths, reason = qualitative_grid(report.results, qual_setting, out / "qualitative", images, device)
        files += paths
        if reason:
            report.notes.append(f"qualitative grid skipped: {reason}")


def summary_frame(report: Report) -> pd.DataFrame:
    """The per-model summary with the bootstrap interval of the mean corrupted mIoU when there is one."""
    frame = report.summary.copy()
    if report.bootstrap is not None:
        ci = report.bootstrap.summary
        ci = ci[ci["statistic"] == "mean_corrupted"].set_index("model")
        frame["mean_corrupted_low"] = frame["model"].map(ci["low"])
        frame["mean_corrupted_high"] = frame["model"].map(ci["high"])
    return frame
