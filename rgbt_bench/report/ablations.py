"""The Ablations table: does CRM's masking help? Each model paired with its registered control (ModelEntry.control:
the same network trained without the masking and what needs it, e.g. crm vs crm_nomask, rtfnet_crm vs rtfnet).

For every pair found in a results directory (models matched by their spec, so NAME=SPEC aliases pair too):
the difference treatment - control in clean mIoU, mean corrupted mIoU and mIoU with the RGB or the thermal
camera missing on every image, with the paired bootstrap's percentile CI (images, and training seeds when
there are replicas: rgbt_bench.report.bootstrap). Differences are in mIoU points. One line per pair says
whether the gain under missing modalities is clear, i.e. its CI excludes 0.
"""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from ..models import MODELS
from .bootstrap import BootstrapResult
from .load import Results
from .reliance import MISSING, missing_severity
from .robustness import PCT
from .training_checks import flagged_models

# (statistic of robustness.statistics, column of the summary table or None for a missing-modality cell)
STATS = (("clean", "clean_miou"), ("mean_corrupted", "mean_corrupted_miou"), ("rgb_missing", None),
         ("thermal_missing", None))
CLEAR_GAIN, CLEAR_LOSS, UNCLEAR, NO_CI = "clear gain", "clear loss", "not clear", "no CI"


def ablation_pairs(results: Results) -> list[tuple[str, str]]:
    """(treatment, control) model names of every registered pair present in `results`, in model order."""
    by_spec: dict[str, str] = {}
    for model in results.models:
        by_spec.setdefault(results.specs.get(model, model), model)
    pairs = []
    for model in results.models:
        spec = results.specs.get(model, model)
        control = MODELS[spec].control if spec in MODELS else None
        if control is not None and control in by_spec:
            pairs.append((model, by_spec[control]))
    return pairs


def _points(results: Results, summary: pd.DataFrame, miou: pd.DataFrame, severity: Optional[int]) -> dict:
    """{(model, statistic): value in %} from the report's summary and mIoU tables (means over replicas)."""
    rows = summary.set_index("model")
    cells = miou.set_index(["model", "corruption", "severity"])["miou"]
    out = {}
    for model in results.models:
        for stat, column in STATS:
            if column is not None:
                out[model, stat] = float(rows.loc[model, column])
            elif severity is not None:
                out[model, stat] = float(cells.get((model, stat, severity), math.nan))
    return out


def ablation_table(results: Results, summary: pd.DataFrame, miou: pd.DataFrame,
                   boot: Optional[BootstrapResult]) -> pd.DataFrame:
    """One row per pair and statistic: treatment, control, their values and the difference (%), its CI and
    whether the CI excludes 0, and each model's training seeds. Empty when no pair is present."""
    severity = missing_severity(results)
    points = _points(results, summary, miou, severity)
    rows = []
    for treatment, control in ablation_pairs(results):
        for stat, column in STATS:
            if column is None and severity is None:
                continue
            low = high = math.nan
            if boot is not None and stat in boot.stats[treatment]:
                low, high = (PCT * v for v in boot.interval(boot.stats[treatment][stat] - boot.stats[control][stat]))
            difference = points[treatment, stat] - points[control, stat]
            rows.append({"treatment": treatment, "control": control,
                         "statistic": stat if column is not None else f"{stat}@{severity}",
                         "treatment_miou": points[treatment, stat], "control_miou": points[control, stat],
                         "difference": difference, "low": low, "high": high,
                         "excludes_zero": bool(low > 0 or high < 0),
                         "train_seeds": f"{results.replicas(treatment)}/{results.replicas(control)}"})
    return pd.DataFrame(rows, columns=["treatment", "control", "statistic", "treatment_miou", "control_miou",
                                       "difference", "low", "high", "excludes_zero", "train_seeds"])


def _status(row) -> str:
    if math.isnan(row["low"]):
        return NO_CI
    return CLEAR_GAIN if row["low"] > 0 else CLEAR_LOSS if row["high"] < 0 else UNCLEAR


def verdicts(table: pd.DataFrame, results: Results, checks: Optional[pd.DataFrame] = None) -> list[str]:
    """One line per pair: is the masking gain under missing modalities clear (its CI excludes 0)? A pair with a
    model that the training `checks` flag says so: a clear gain between under-trained networks is no evidence
    about masking."""
    lines, flagged = [], set() if checks is None else flagged_models(checks)
    for (treatment, control), rows in table.groupby(["treatment", "control"], sort=False):
        named = [m for m in (treatment, control) if m in flagged]
        caution = f"; caution: the training checks flag {' and '.join(named)} (a class not learned or still " \
                  "improving), so this compares under-trained networks" if named else ""
        missing = rows[rows["statistic"].str.split("@").str[0].isin(MISSING)]
        seeds = f"{results.replicas(treatment)} and {results.replicas(control)} training seeds"
        if missing.empty:
            lines.append(f"{treatment} vs {control}: no missing-modality cells (rgb_missing and thermal_missing at "
                         f"one severity), so no verdict on masking under missing modalities ({seeds})")
            continue
        statuses = [_status(row) for _, row in missing.iterrows()]
        overall = ("not tested (no CI: bootstrap off)" if NO_CI in statuses else
                   "clear" if all(s == CLEAR_GAIN for s in statuses) else
                   "clear with one camera missing only" if CLEAR_GAIN in statuses else "not clear")
        parts = [f"{row['statistic'].split('@')[0].replace('_', ' ')} {row['difference']:+.1f} points"
                 + ("" if status == NO_CI else f" [{row['low']:.1f}, {row['high']:.1f}], {status}")
                 for (_, row), status in zip(missing.iterrows(), statuses)]
        scope = "" if max(results.replicas(treatment), results.replicas(control)) > 1 else \
            "; CIs cover image sampling only"
        lines.append(f"{treatment} vs {control}: masking gain under missing modalities is {overall} "
                     f"({'; '.join(parts)}; {seeds}{scope}){caution}")
    return lines


__all__ = ["ablation_pairs", "ablation_table", "verdicts"]
