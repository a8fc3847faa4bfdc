"""Regression check of a sweep against a stored baseline CSV, cell by cell (one row per stored sweep cell:
model, dataset, split, corruption, severity, corruption seed, training seed), in mIoU percentage points.

Every row also carries the setup it was computed under (rgbt_bench.report.setup: dataset fingerprint, image
count, suite hash, evaluation mode, preset, and the training config or checkpoint behind the weights). A
baseline of another setup is refused, naming what differs, instead of compared: a 4-image quick baseline says
nothing about a 100-image run. A baseline written before these columns existed is refused with the command that
regenerates it.

A cell fails when its mIoU fell by more than the tolerance, or when the baseline has it and the current
results do not. Cells only in the current results are listed as "new" and do not fail. The baseline is
written atomically (temp file + rename), so an interrupted update never leaves a half-written file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from ..errors import ConfigError, DataError
from ..metrics import compute_metrics
from .load import Results
from .setup import BASELINE_FIELDS, evaluation_label, seeds_label, suite_hash, weights_label

KEY = ["model", "dataset", "split", "corruption", "severity", "seed", "train_seed"]
SETUP = list(BASELINE_FIELDS)
COLUMNS = KEY + ["miou", "convention"] + SETUP
# Setup fields every cell of a results directory shares (the others can differ per model).
DIRECTORY_SETUP = ("dataset_fingerprint", "images", "suite", "evaluation")
REGENERATE = ("regenerate it from results made as intended: rgbt-bench check RESULTS --baseline {path} "
              "--update-baseline (for results/baselines/quick.csv: rgbt-bench run --quick, then that command with "
              "RESULTS = results/quick)")
OK, REGRESSION, MISSING, NEW = "ok", "regression", "missing", "new"
DECIMALS = 4  # mIoU % as stored in a baseline; current values are rounded alike, so a round trip compares equal
FAILING = (REGRESSION, MISSING)


def current_table(results: Results) -> pd.DataFrame:
    """One row per stored cell (seeds and replicas unpooled) with its mIoU in % under the results' convention
    and its setup; `train_seed` is text ('given' for weights without one)."""
    suite = suite_hash(results)
    rows = [{**{k: getattr(c.record.key, k) for k in KEY}, "train_seed": seeds_label((c.record.key.train_seed,)),
             "miou": round(100.0 * compute_metrics(c.confusion, results.convention).miou, DECIMALS),
             "convention": results.convention, "dataset_fingerprint": c.record.identity.dataset_fingerprint,
             "images": c.record.identity.num_images, "suite": suite, "evaluation": evaluation_label(c.record),
             "preset": c.record.identity.preset, "weights": weights_label(c.record)} for c in results.raw]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"severity": int, "seed": int}).sort_values(KEY, kind="stable").reset_index(drop=True)


def read_baseline(path: str | Path) -> pd.DataFrame:
    """The baseline CSV at `path`; one ConfigError/DataError line when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"baseline {path} does not exist; write one with `rgbt-bench check RESULTS --baseline "
                          f"{path} --update-baseline`")
    expected = f"expected a CSV with columns {', '.join(COLUMNS)}"
    try:
        frame = pd.read_csv(path, dtype={"model": str, "dataset": str, "split": str, "corruption": str,
                                         "convention": str, "train_seed": str, "dataset_fingerprint": str,
                                         "suite": str, "evaluation": str, "preset": str, "weights": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"baseline {path} is not a readable CSV ({reason}); {expected}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing and set(missing) <= {"train_seed", *SETUP}:
        raise DataError(f"baseline {path} has no setup columns ({', '.join(missing)}): it was written by an older "
                        f"rgbt-bench and cannot show it was made under the setup it is compared with; "
                        + REGENERATE.format(path=path))
    if missing:
        raise DataError(f"baseline {path} lacks column(s) {', '.join(missing)}; {expected}")
    if frame.empty:
        raise DataError(f"baseline {path} has a header but no rows; {expected}, one row per cell (write it with "
                        "--update-baseline)")
    for column in ("severity", "seed", "images", "miou"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.fillna(0))
        if bad.any():
            row = int(bad.idxmax()) + 2
            shown = frame[column][bad].iloc[0]
            what = "is empty or NaN" if pd.isna(shown) else f"'{shown}' is not a number"
            raise DataError(f"baseline {path} line {row}: {column} {what}; {expected}")
        frame[column] = values
    if frame[KEY].isna().any().any():
        row = int(frame[KEY].isna().any(axis=1).idxmax()) + 2
        raise DataError(f"baseline {path} line {row} has an empty key field; {expected}")
    if frame["convention"].isna().any():  # compare() could not tell an mIoU of another convention
        row = int(frame["convention"].isna().idxmax()) + 2
        raise DataError(f"baseline {path} line {row}: convention is empty; {expected} (the mIoU convention each "
                        "number was computed under)")
    duplicated = frame.duplicated(KEY)
    if duplicated.any():
        row = int(duplicated.idxmax()) + 2
        raise DataError(f"baseline {path} line {row} repeats a cell; expected one row per cell")
    return frame.astype({"severity": int, "seed": int, "images": int})[COLUMNS]


def write_baseline(results: Results, path: str | Path) -> Path:
    """Write the current results as the baseline CSV at `path`, atomically. Returns the path."""
    path = Path(path)
    table = current_table(results)
    empty = table["miou"].isna()
    if empty.any():
        raise DataError(f"cell {cell_name(table[empty].iloc[0].to_dict())} has no mIoU (no labelled pixel counts); "
                        "a baseline needs a number for every cell")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = table.to_csv(index=False, float_format=f"%.{DECIMALS}f")
    atomic_write_text(path, text)
    return path


@dataclass
class CheckResult:
    """The per-cell comparison (`diff`: cell, baseline, current, delta, status) and whether it passed."""

    diff: pd.DataFrame
    max_drop: float

    @property
    def failures(self) -> pd.DataFrame:
        return self.diff[self.diff["status"].isin(FAILING)]

    @property
    def passed(self) -> bool:
        return self.failures.empty

    def counts(self) -> dict[str, int]:
        return {s: int((self.diff["status"] == s).sum()) for s in (OK, REGRESSION, MISSING, NEW)}


def cell_name(row: dict) -> str:
    """A cell of a check table named for messages: 'model corruption@severity seed S [train T] (dataset/split)'."""
    train = "" if row.get("train_seed") in (None, "given") else f" train {row['train_seed']}"
    return (f"{row['model']} {row['corruption']}@{int(row['severity'])} seed {int(row['seed'])}{train} "
            f"({row['dataset']}/{row['split']})")


def check_setup(baseline: pd.DataFrame, current: pd.DataFrame, where: str) -> None:
    """ConfigError naming the first setup field in which the baseline differs from the results: the shared
    fields (dataset, image count, suite, evaluation) over all rows, the per-model ones (preset, weights) on common
    cells."""
    for field in DIRECTORY_SETUP:
        base, cur = sorted(set(baseline[field].astype(str))), sorted(set(current[field].astype(str)))
        if base != cur:
            raise ConfigError(f"{where} was made under another setup: {field.replace('_', ' ')} {', '.join(base)} "
                              f"in the baseline, {', '.join(cur)} in the results; expected the setup of the "
                              f"results, or " + REGENERATE.format(path=where.removeprefix("baseline ")))
    common = baseline.merge(current, on=KEY, suffixes=("_baseline", "_current"))
    for field in SETUP:
        if field in DIRECTORY_SETUP:
            continue
        differs = common[common[f"{field}_baseline"].astype(str) != common[f"{field}_current"].astype(str)]
        if not differs.empty:
            row = differs.iloc[0]
            raise ConfigError(f"{where} was made under another setup: {field} {row[f'{field}_baseline']} in the "
                              f"baseline, {row[f'{field}_current']} in the results (cell {cell_name(row)}); "
                              f"expected the setup of the results, or "
                              + REGENERATE.format(path=where.removeprefix("baseline ")))


def compare(baseline: pd.DataFrame, current: pd.DataFrame, max_drop: float, where: str = "baseline") -> CheckResult:
    """Compare per cell; `max_drop` is the largest tolerated fall in mIoU percentage points.

    Args:
        baseline: a baseline table (read_baseline of a CSV written by write_baseline).
        current: the results' table (current_table).
        max_drop: largest tolerated fall in mIoU, in percentage points (0: no fall at all).
        where: how the baseline is named in messages.

    Returns:
        CheckResult: `diff` has one row per cell (baseline, current, delta, status ok / regression / missing
        / new), regressions first; `passed` is False when a cell fell by more than `max_drop` or is missing.

    Raises:
        ConfigError: a negative `max_drop`, or a baseline of another mIoU convention or setup.

    Example:
        A baseline 5 points above the results on one cell:

        >>> from rgbt_bench.sweep import SweepConfig, run_sweep
        >>> out = run_sweep(SweepConfig(models=["mfnet"], corruptions=["thermal_missing"], severities=[5],
        ...                             dataset_options={"size": (32, 48), "counts": (8, 2, 4)},
        ...                             train_iterations=1, out="results/example", progress=False,
        ...                             efficiency=False))
        >>> from rgbt_bench.report import load_results
        >>> current = current_table(load_results("results/example"))
        >>> baseline = current.assign(miou=current["miou"] + [0.0, 5.0])
        >>> result = compare(baseline, current, max_drop=1.0)
        >>> result.passed, result.counts()
        (False, {'ok': 1, 'regression': 1, 'missing': 0, 'new': 0})
        >>> result.failures["cell"].tolist()
        ['mfnet thermal_missing@5 seed 0 train 1024 (synthetic/test)']
    """
    if not max_drop >= 0:
        raise ConfigError(f"--max-drop must be >= 0 percentage points, got {max_drop}")
    conventions = set(baseline["convention"].dropna()) - set(current["convention"])
    if conventions:
        raise ConfigError(f"{where} was computed under the {', '.join(sorted(conventions))} mIoU convention but the "
                          f"results under {', '.join(sorted(set(current['convention'])))}; they are not comparable")
    check_setup(baseline, current, where)
    merged = baseline[KEY + ["miou"]].merge(current[KEY + ["miou"]], on=KEY, how="outer",
                                             suffixes=("_baseline", "_current"), indicator=True)
    rows = []
    for row in merged.to_dict(orient="records"):
        base, cur = float(row["miou_baseline"]), float(row["miou_current"])
        if row["_merge"] == "left_only":
            status = MISSING
        elif row["_merge"] == "right_only":
            status = NEW
        elif math.isnan(base) and math.isnan(cur):
            status = OK
        elif math.isnan(cur) or math.isnan(base):
            status = REGRESSION if math.isnan(cur) else OK
        else:
            status = REGRESSION if cur - base < -max_drop else OK
        rows.append({"cell": cell_name(row), **{k: row[k] for k in KEY}, "baseline": base,
                     "current": cur, "delta": cur - base, "status": status})
    diff = pd.DataFrame(rows, columns=["cell", *KEY, "baseline", "current", "delta", "status"])
    order = {REGRESSION: 0, MISSING: 1, NEW: 2, OK: 3}
    diff = diff.sort_values(["status", "delta"], key=lambda s: s.map(order) if s.name == "status" else s,
                            kind="stable").reset_index(drop=True)
    return CheckResult(diff, max_drop)
