"""`build_report`: every table, robustness metric, confidence interval and figure of one sweep, written into
`<results>/report/` with `report.json` (how they were computed), `provenance.json` (what produced the
cells) and `index.html` (all of it in one self-contained page); LaTeX fragments on request.

A rebuild removes the files an earlier build wrote that this one does not (e.g. bootstrap tables after
`--bootstrap 0`), after the new files are in place; files of other origin in report/ are left alone.
Output is deterministic: the same cells and options give byte-identical files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from ..errors import ConfigError
from ..sweep.store import write_json
from ..training.selection import warning_for_test_selection
from . import latex as tex
from .ablations import ablation_table, verdicts
from .bootstrap import BootstrapResult, paired_bootstrap
from .completeness import Completeness, completeness
from .html import write_index
from .load import CLEAN, Results, load_results
from .notation import format_setting
from .provenance import mixed_suites_note, provenance, provenance_columns, provenance_note, test_selected
from .qualitative import parse_setting, qualitative_grid
from .replicas import STD_SUFFIX, TRAIN_SEEDS, seeds_note
from .robustness import Reference, choose_reference, robustness_tables
from .tables import Table, day_night_table, miou_table, miou_wide, per_class_table, percent_names, records, write_table
from .training_checks import check_lines, checks_table, training_checks

REPORT_DIR = "report"
LATEX_DIR = "latex"
WORST = "worst"
NONE = "none"
INDEX = "index.html"
PROVENANCE = "provenance.json"
REPORT_JSON = "report.json"
# Every file a report can write (besides those an earlier report.json lists): candidates for stale removal.
TABLE_NAMES = ("miou", "per_class", "day_night", "robustness", "summary", "ablations", "training", "bootstrap_cells",
               "bootstrap_summary", "bootstrap_differences")
# Summary columns that are not percentages: names and counts.
NOT_PERCENT = ("model", "worst_setting", "reference", TRAIN_SEEDS)
FIGURE_NAMES = ("heatmap", "curves", "class_heatmap", "per_class", "qualitative")
LATEX_NAMES = ("per_class", "robustness", "day_night", "summary")
CONVENTIONS = {"field": "every class counts, class 0 included; IoU 0 for a class absent from labels and predictions",
               "mmseg": "IoU undefined for a class absent from labels and predictions; mean over the defined ones"}


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
    provenance: dict = field(default_factory=dict)
    completeness: Optional[Completeness] = None
    ablations: pd.DataFrame = field(default_factory=pd.DataFrame)
    ablation_lines: list[str] = field(default_factory=list)
    training: pd.DataFrame = field(default_factory=pd.DataFrame)
    training_lines: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> Table:
        """The written table called `name`."""
        return next(t for t in self.tables if t.name == name)


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


def context(results: Results) -> str:
    """'synthetic / test, 10 images, mIoU convention field': what every table and figure is about."""
    return f"{results.dataset} / {results.split}, {len(results.names)} images, mIoU convention {results.convention}"


def build_report(results_dir: str | Path, *, reference: Optional[str] = None, bootstrap: int = 1000,
                 seed: int = 0, confidence: float = 0.95, qualitative: Optional[str] = WORST,
                 per_class: Optional[str] = None, plot: bool = True, images: int = 3, latex: bool = False,
                 device: str | torch.device = "cpu", allow_partial: bool = False) -> Report:
    """Compute and write the report of the sweep in `results_dir`.

    User errors are raised before anything is written. Partial results (an interrupted sweep) are refused
    unless `allow_partial`, which summarises them over their complete corruptions only
    (rgbt_bench.report.completeness).

    Args:
        results_dir: the `out` directory of a sweep.
        reference: the model CE is measured against (default: run.json's "reference", else the one the
            suite names, else the first model).
        bootstrap: resamples for the paired bootstrap confidence intervals (0 skips them).
        seed: seed of the bootstrap's resampling.
        confidence: level of the bootstrap intervals.
        qualitative: setting of the grid of inputs, labels and predictions: 'CORRUPTION@SEVERITY' (alias
            'CORRUPTION:SEVERITY'), 'clean', 'worst' (lowest mean mIoU over models) or 'none' (no grid).
        per_class: setting of the per-class IoU bars, as `qualitative` (default: the qualitative setting,
            else the worst).
        plot: False writes tables only (no figures, no grid).
        images: images in the qualitative grid.
        latex: also write report/latex/*.tex.
        device: where the models run for the qualitative grid.
        allow_partial: report an unfinished sweep over its complete corruptions.

    Returns:
        The Report: its tables (`summary`, `miou`, `per_class`, `day_night`, `robustness`, `ablations`,
        `training`: the training checks), the chosen `reference`, `bootstrap` intervals, `notes` and the `files`
        written under `results_dir`/report.

    Raises:
        DataError: no finished cells, cells that do not fit together, or partial results.
        ConfigError: an unknown reference model or setting, or a negative `bootstrap`.

    Example:
        >>> from rgbt_bench.sweep import SweepConfig, run_sweep
        >>> out = run_sweep(SweepConfig(models=["mfnet"], corruptions=["thermal_missing"], severities=[5],
        ...                             dataset_options={"size": (32, 48), "counts": (8, 2, 4)},
        ...                             train_iterations=1, out="results/example", progress=False,
        ...                             efficiency=False))
        >>> report = build_report("results/example", bootstrap=0, plot=False)
        >>> report.out_dir, report.reference.model, report.summary["model"].tolist()
        (PosixPath('results/example/report'), 'mfnet', ['mfnet'])
        >>> sorted(p.name for p in report.files if p.suffix == ".md")
        ['day_night.md', 'miou.md', 'per_class.md', 'robustness.md', 'summary.md', 'training.md']
        >>> report.training[["model", "still_rising", "evaluations"]].values.tolist()  # one evaluation: too few
        [['mfnet', None, 1]]
    """
    results = load_results(results_dir)
    done = completeness(results)
    done.require(allow_partial)
    ref = choose_reference(results, reference)
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 (0 skips it), got {bootstrap}")
    miou = miou_table(results)
    qual_setting = _setting(qualitative, results, miou, "--qualitative")
    class_setting = _setting(per_class, results, miou, "--per-class") if per_class is not None else \
        (qual_setting or worst_setting(miou))
    summarised = results.restricted(done.complete)
    boot = paired_bootstrap(summarised, ref, bootstrap, seed, confidence) if bootstrap else None
    out = results.path / REPORT_DIR
    previous = _previous_files(out)
    (out / LATEX_DIR if latex else out).mkdir(parents=True, exist_ok=True)  # an unwritable place fails here
    per_corruption, summary = robustness_tables(summarised, ref)
    report = Report(results, ref, out, miou, per_class_table(results), day_night_table(results), per_corruption,
                    summary, boot, provenance(results), done)
    report.ablations = ablation_table(results, summary, miou, boot)
    report.training = training_checks(results)
    report.training_lines = check_lines(report.training, results)
    report.ablation_lines = verdicts(report.ablations, results, report.training)
    report.notes += _notes(results, done) + report.training_lines
    report.tables = _tables(report)
    _write_tables(report)
    settings = [(CLEAN, 0)] + ([class_setting] if class_setting and class_setting[0] != CLEAN else [])
    if latex:
        report.files += tex.write_latex(out / LATEX_DIR, _latex(report, settings, confidence))
    figures = _plots(report, class_setting, qual_setting, images, device, confidence) if plot else []
    write_json(out / PROVENANCE, report.provenance)
    report.files.append(out / PROVENANCE)
    report.files.append(write_index(out / INDEX, f"rgbt-bench report: {results.dataset} / {results.split}",
                                    _long_context(report), report.provenance, report.notes + report.ablation_lines,
                                    figures, report.tables))
    report.files.append(out / REPORT_JSON)
    write_json(out / REPORT_JSON, _meta(report, class_setting, qual_setting, latex))
    report.removed = _remove_stale(out, report.files, previous)
    return report


def _meta(report: Report, class_setting, qual_setting, latex: bool) -> dict:
    """report.json: how the report was computed, and what it wrote."""
    r, boot = report.results, report.bootstrap
    return {"dataset": r.dataset, "split": r.split, "convention": r.convention,
            "convention_meaning": CONVENTIONS.get(r.convention, ""), "units": "percent",
            "reference": report.reference.model, "reference_chosen_by": report.reference.chosen_by,
            "results": str(r.path), "models": r.models, "corruptions": r.corruptions, "images": len(r.names),
            "cells": len(r.raw), "cells_planned": report.completeness.total,
            "cells_present": report.completeness.present,
            "summarised_corruptions": [c for c in report.completeness.complete if c != CLEAN],
            "bootstrap": boot.meta() if boot is not None else None,
            "per_class_setting": format_setting(*class_setting) if class_setting else None,
            "qualitative_setting": format_setting(*qual_setting) if qual_setting else None, "latex": latex,
            "train_seeds": {m: r.replicas(m) for m in r.models}, "train_seeds_note": seeds_note(r),
            "ablations": report.ablation_lines,
            "training_checks": records(report.training.rename(columns={"gain": "gain_pct"})),
            "provenance": report.provenance, "summary": records(report.table("summary").file_frame()),
            "notes": report.notes, "files": [_relative(p, report.out_dir) for p in report.files]}


def _notes(results: Results, done: Completeness) -> list[str]:
    notes = []
    partial = done.note()
    if partial:
        notes.append(partial)
    mixed = mixed_suites_note(results)
    if mixed:
        notes.append(mixed)
    notes += [warning_for_test_selection(f"model '{model}'") for model in test_selected(results)]
    return notes


def _long_context(report: Report) -> str:
    r = report.results
    done = report.completeness
    partial = f"; {done.note()}" if done.note() else ""
    return (f"{context(r)} ({CONVENTIONS.get(r.convention, r.convention)}); {len(r.models)} models, "
            f"{done.cells} planned cells; mCE against {report.reference.model} ({report.reference.chosen_by}); "
            f"{seeds_note(r)}{partial}")


def summary_frame(report: Report) -> pd.DataFrame:
    """The per-model summary with the bootstrap intervals of the clean and mean corrupted mIoU when there are."""
    frame = report.summary.copy()
    if report.bootstrap is None:
        return frame
    ci = report.bootstrap.summary.set_index(["statistic", "model"])
    for stat, after in (("clean", "clean_miou"), ("mean_corrupted", "mean_corrupted_miou"), ("rgb_share", "rgb_share"),
                        ("fusion_gain", "fusion_gain")):
        if after not in frame.columns:
            continue
        after = after + STD_SUFFIX if after + STD_SUFFIX in frame.columns else after
        at = frame.columns.get_loc(after) + 1
        frame.insert(at, f"{stat}_low", frame["model"].map(ci.loc[stat]["low"]))
        frame.insert(at + 1, f"{stat}_high", frame["model"].map(ci.loc[stat]["high"]))
    return frame


def _tables(report: Report) -> list[Table]:
    """Every table of the report, in the order index.html shows them: the summary first."""
    r, boot = report.results, report.bootstrap
    models = list(dict.fromkeys(report.miou["model"]))
    summary = summary_frame(report)
    shown = list(summary.columns)
    percent = [c for c in shown if c not in NOT_PERCENT]
    prov = pd.DataFrame([provenance_columns(report.provenance, m) for m in summary["model"]])
    per_class = report.per_class.assign(miou=report.miou["miou"].to_numpy())  # both: one row per present cell
    tables = [
        Table("summary", "Robustness summary per model (%)", pd.concat([summary, prov], axis=1),
              percent_names(percent), summary[shown], tuple(percent)),
        Table("miou", "mIoU (%) per model, corruption and severity", report.miou,
              percent_names(c for c in ("miou", "miou" + STD_SUFFIX, "pixel_acc", "mean_acc") if c in report.miou),
              miou_wide(report.miou), tuple(models)),
        Table("per_class", "IoU (%) per class, and mIoU (%), per model, corruption and severity", per_class,
              {**percent_names(r.class_names, "_iou_pct"), "miou": "miou_pct"}),
    ]
    if report.day_night is not None:
        tables.append(Table("day_night", "mIoU (%) on all, day and night images", report.day_night,
                            percent_names(["miou", "miou_day", "miou_night"])))
    tables.append(Table("robustness", "Robustness per model and corruption: mean mIoU over severities, RR, CE and "
                        "relative CE (%)", report.robustness,
                        percent_names([c for c in report.robustness.columns
                                       if c not in ("model", "corruption", "severities", TRAIN_SEEDS)])))
    if not report.ablations.empty:
        tables.insert(1, Table("ablations", "Ablations: model minus its control trained without masking, mIoU "
                               f"points{'' if boot is None else f' with {boot.confidence:.0%} paired bootstrap CIs'}",
                               report.ablations, percent_names(["treatment_miou", "control_miou", "difference", "low",
                                                                "high"])))
    tables.append(Table("training", "Training checks per trained network: classes its cameras show with clean IoU "
                        "(%) below 5, and whether its val mIoU was still rising at the end (gain: best val mIoU of the "
                        "last quarter of the run minus the best before, points)", checks_table(report.training),
                        percent_names(["gain"])))
    if boot is not None:
        level = f"{boot.confidence:.0%}"
        tables += [
            Table("bootstrap_cells", f"{level} CI of each cell's mIoU and of its difference to {boot.reference} (%)",
                  boot.cells,
                  percent_names(["miou", "low", "high", "diff_vs_reference_low", "diff_vs_reference_high"])),
            Table("bootstrap_summary", f"{level} CI of each model's summary statistics (%)", boot.summary,
                  percent_names(["estimate", "low", "high"]))]
        if not boot.differences.empty:
            tables.append(Table("bootstrap_differences", f"{level} CI of each model minus {boot.reference} (%)",
                                boot.differences, percent_names(["difference", "low", "high"])))
    return tables


def _write_tables(report: Report) -> None:
    ctx = _long_context(report)
    for table in report.tables:
        note = f"{table.caption}. {ctx}."
        if table.name == "summary":
            note += "\n\nProvenance:\n\n" + provenance_note(report.provenance)
        elif table.name == "ablations":
            note += "\n\n" + "".join(f"- {line}\n" for line in report.ablation_lines) + "\nProvenance: provenance.json."
        else:
            note += " Provenance: provenance.json."
        report.files += write_table(table, report.out_dir, note)


def _latex(report: Report, settings: list[tuple[str, int]], confidence: float) -> dict[str, str]:
    r, ctx = report.results, context(report.results)
    texts = {"per_class": tex.per_class_latex(report.per_class, report.miou, r.class_names, settings, ctx)}
    if r.corruptions:
        summarised = [c for c in r.corruptions if c in report.completeness.complete]
        texts["robustness"] = tex.robustness_latex(report.summary, report.robustness, summarised, ctx,
                                                   report.reference.model)
    if report.day_night is not None:
        texts["day_night"] = tex.day_night_latex(report.day_night, ctx)
    texts["summary"] = tex.summary_latex(summary_frame(report), ctx, confidence, report.reference.model)
    return texts


def _plots(report: Report, class_setting: Optional[tuple[str, int]], qual_setting: Optional[tuple[str, int]],
           images: int, device, confidence: float) -> list[tuple[str, str, Path]]:
    """Draw the figures; returns (name, caption, PNG) of each, for index.html."""
    from . import plots

    out, files, r = report.out_dir, report.files, report.results
    ctx = context(r)
    figures: list[tuple[str, str, list[Path]]] = []
    if r.corruptions:
        ci = report.bootstrap.cells if report.bootstrap is not None else None
        figures += [
            ("heatmap", "mIoU (%) per corruption and severity, per model",
             plots.heatmap(report.miou, out / "heatmap", ctx)),
            ("curves", "mIoU (%) against severity" + (f", {confidence:.0%} bootstrap CIs" if ci is not None else ""),
             plots.curves(report.miou, out / "curves", ctx, ci, confidence)),
            ("class_heatmap", "IoU (%) per class and corruption (mean over severities), per model",
             plots.class_heatmap(report.per_class, r.class_names, out / "class_heatmap", ctx))]
    if class_setting is not None:
        figures.append(("per_class", f"IoU (%) per class, clean and {format_setting(*class_setting)}",
                        plots.per_class_bars(report.per_class, r.class_names, class_setting, out / "per_class", ctx)))
    if qual_setting is not None:
        paths, reason = qualitative_grid(r, qual_setting, out / "qualitative", ctx, images, device)
        if reason:
            report.notes.append(f"qualitative grid skipped: {reason}")
        else:
            figures.append(("qualitative", f"Inputs, ground truth and predictions, clean and "
                            f"{format_setting(*qual_setting)}", paths))
    for _, _, paths in figures:
        files += paths
    return [(name, caption, paths[0]) for name, caption, paths in figures]


def _relative(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def _remove_stale(out: Path, written: list[Path], previous: list[str]) -> list[Path]:
    """Delete the report files an earlier build wrote (`previous`: its report.json's list, or any name a
    report writes) that this one did not; returns them."""
    candidates = {out / f"{n}{s}" for n in TABLE_NAMES for s in (".csv", ".json", ".md")}
    candidates |= {out / f"{n}{s}" for n in FIGURE_NAMES for s in (".png", ".svg")}
    candidates |= {out / LATEX_DIR / f"{n}.tex" for n in LATEX_NAMES}
    candidates |= {out / INDEX, out / PROVENANCE}
    candidates |= {out / f for f in previous}
    keep = {p.resolve() for p in written}
    removed = sorted(p for p in candidates if p.is_file() and p.resolve() not in keep
                     and p.resolve().is_relative_to(out.resolve()))
    for path in removed:
        path.unlink()
    latex_dir = out / LATEX_DIR
    if latex_dir.is_dir() and not any(latex_dir.iterdir()):
        latex_dir.rmdir()
    return removed


def _previous_files(out: Path) -> list[str]:
    """The files the report.json of an earlier build lists ([] when there is none or it is unreadable)."""
    try:
        listed = json.loads((out / REPORT_JSON).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in listed if isinstance(f, str)]
