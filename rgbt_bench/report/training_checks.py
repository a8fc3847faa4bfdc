"""Training checks: for every trained network of a sweep (model, training seed), the classes its cameras show
that it did not learn, and whether its val curve was still rising when training stopped.

- missed classes (rgbt_bench.metrics.visibility.missed_classes): IoU on the clean evaluation (summed over
  its images and corruption seeds, the results' convention) below MIN_IOU for a class one of the model's
  modalities shows (DatasetInfo.visible_in; a model outside the registry is taken to see both cameras) and
  the evaluated images contain;
- still rising (rgbt_bench.training.convergence): best val mIoU in the last quarter of the run more than one
  point above the best before it, from the val curve the sweep recorded with each cell
  (rgbt_bench.training.convergence.training_curve).
When a check cannot be made the row says why: no clean cell, no training record (cells written before it
was recorded, or weights without an rgbt-bench training config: imported or trained elsewhere), a curve
that stops before the run's end, too few val evaluations.
"""
from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from ..datasets import DATASETS
from ..datasets.base import MODALITIES, DatasetInfo
from ..metrics import compute_metrics
from ..metrics.visibility import MIN_IOU, missed_classes
from ..models import MODELS
from ..training.convergence import MIN_GAIN, WINDOW, convergence
from .load import CLEAN, Results

PCT = 100.0
LEARNED, RISING = "missed classes", "still rising"
COLUMNS = ["model", "train_seed", "missed_classes", "still_rising", "gain", "iterations", "evaluations",
           "cannot_tell"]


def _info(results: Results) -> DatasetInfo:
    """The results' dataset description when the registry has it with these classes, else one where every
    class is visible to both cameras."""
    info = DATASETS[results.dataset].info if results.dataset in DATASETS else None
    if info is not None and info.class_names == results.class_names:
        return info
    return DatasetInfo(results.dataset, results.class_names, ((0, 0, 0),) * len(results.class_names), None,
                       results.convention, (1, 1), (results.split,), False)


def _modalities(spec: str) -> tuple[str, ...]:
    return MODELS[spec].modalities if spec in MODELS else MODALITIES


def _replicas(results: Results) -> dict[tuple[str, Optional[int]], list]:
    """Every trained network's clean cells (one per corruption seed), models in report order."""
    out: dict[tuple[str, Optional[int]], list] = {}
    for model in results.models:
        for seed in results.train_seeds.get(model, (None,)):
            out[(model, seed)] = [c for c in results.raw if c.record.key.replica == (model, seed)
                                  and c.record.key.corruption == CLEAN]
    return out


def _curve(cells: list) -> Optional[dict[str, Any]]:
    return next((c.record.training for c in cells if c.record.training is not None), None)


def training_checks(results: Results) -> pd.DataFrame:
    """One row per trained network: `missed_classes` ({class name: clean IoU %}, empty when none), `still_rising`
    (True / False / None: cannot tell), `gain` (val mIoU points of the last quarter over the best before),
    `iterations`, `evaluations` (val evaluations recorded) and `cannot_tell` ({check: why it could not be made},
    LEARNED or RISING, empty when both were made)."""
    info, rows = _info(results), []
    for (model, seed), cells in _replicas(results).items():
        why, missed = {}, {}
        if cells:
            matrix = sum(c.confusion for c in cells)
            iou = [v if labelled else float("nan")  # a class the split does not contain cannot be judged
                   for v, labelled in zip(compute_metrics(matrix, results.convention).iou, matrix.sum(axis=1) > 0)]
            by_name = dict(zip(results.class_names, iou))
            missed = {name: PCT * by_name[name]
                      for name in missed_classes(iou, info, _modalities(results.specs.get(model, model)))}
        else:
            why[LEARNED] = "no clean evaluation"
        curve = _curve(cells)
        rising = gain = None
        evaluations = len(curve["val"]) if curve else 0
        if curve is None:
            why[RISING] = "no training record in the cells (written before training curves were recorded)"
        elif curve.get("unknown"):
            why[RISING] = curve["unknown"]
        else:
            verdict = convergence(curve["val"])
            if verdict.rising is None:
                why[RISING] = f"{evaluations} val evaluations, too few to judge the last quarter"
            else:
                rising, gain = verdict.rising, PCT * verdict.gain
        rows.append({"model": model, "train_seed": seed, "missed_classes": missed, "still_rising": rising,
                     "gain": gain, "iterations": curve.get("iterations") if curve else None,
                     "evaluations": evaluations, "cannot_tell": why})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"train_seed": "Int64", "iterations": "Int64", "still_rising": "object"})


def flagged_models(checks: pd.DataFrame) -> set[str]:
    """The models with a network that missed a visible class or was still improving."""
    return set(checks.loc[checks["missed_classes"].map(bool) | checks["still_rising"].eq(True), "model"])


def model_flags(checks: pd.DataFrame) -> dict[str, str]:
    """Model -> its training checks in a few words, over its training-seed replicas: "ok" (both checks made for
    every replica, nothing found), else what was found ("missed lane_marking, color_cone", "still rising") and
    "unchecked" for a check that could not be made, joined by "; " (the report's notes say why)."""
    out = {}
    for model, rows in checks.groupby("model", sort=False):
        missed = dict.fromkeys(name for found in rows["missed_classes"] for name in found)
        found = ([f"missed {', '.join(missed)}"] if missed else []) + \
            ([RISING] if rows["still_rising"].eq(True).any() else [])
        unchecked = dict.fromkeys(what for why in rows["cannot_tell"] for what in why)
        out[model] = "; ".join(found + [f"unchecked: {what}" for what in unchecked]) or "ok"
    return out


def _missed_text(missed: dict[str, float]) -> str:
    """"name IoU%" per missed class, joined by "; "."""
    return "; ".join(f"{name} {iou:.1f}" for name, iou in missed.items())


def _name(row: Any, results: Results) -> str:
    several = results.replicas(row.model) > 1
    return f"{row.model} (training seed {row.train_seed})" if several else row.model


def check_lines(checks: pd.DataFrame, results: Results) -> list[str]:
    """One line per trained network that missed a visible class or was still rising, then one per reason a
    check could not be made (naming the networks): what the report and `run` print as notes."""
    lines, unknown = [], {}
    where = f"clean {results.dataset}/{results.split}"
    for row in checks.itertuples(index=False):
        name = _name(row, results)
        if row.missed_classes:
            lines.append(f"training check: {name} did not learn classes its cameras show (IoU % on {where}, "
                         f"below {PCT * MIN_IOU:g}): {_missed_text(row.missed_classes)}")
        if row.still_rising is True:
            lines.append(f"training check: {name} was still improving when training stopped: best val mIoU "
                         f"+{row.gain:.1f} points in the last {WINDOW:.0%} of its {row.iterations} iterations "
                         f"over the best before (threshold {PCT * MIN_GAIN:g}); it needs more iterations")
        for reason in row.cannot_tell.items():
            unknown.setdefault(reason, []).append(name)
    for (what, reason), names in unknown.items():
        question = "learned every class its cameras show" if what == LEARNED else \
            f"{'was' if len(names) == 1 else 'were'} still improving when training stopped"
        lines.append(f"training check: cannot tell whether {', '.join(names)} {question}: {reason}")
    return lines


def checks_table(checks: pd.DataFrame) -> pd.DataFrame:
    """The checks as the written table shows them: unknowns spelled out ("unknown", "–") rather than left
    empty, so that the CSV and JSON files read back alike; `gain` stays numeric (NaN when unknown)."""
    def text(value: Any) -> str:
        return "–" if value is None or value is pd.NA else str(value)

    def missed(row: Any) -> str:
        return "unknown" if LEARNED in row.cannot_tell else _missed_text(row.missed_classes) or "none"

    return checks.assign(
        train_seed=checks["train_seed"].map(text), iterations=checks["iterations"].map(text),
        missed_classes=[missed(row) for row in checks.itertuples(index=False)],
        still_rising=checks["still_rising"].map({True: "yes", False: "no"}).fillna("unknown"),
        cannot_tell=checks["cannot_tell"].map(lambda why: "; ".join(f"{k}: {v}" for k, v in why.items()) or "–"),
        gain=checks["gain"].astype(float))
