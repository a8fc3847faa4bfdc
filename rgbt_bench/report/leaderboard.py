"""Leaderboard across sweep results: one row per model and results directory, ranked within each
(dataset, split) by mean corrupted mIoU (or another --rank-by column). mCE is relative to each directory's
own reference model, named in the `reference` column; CI bounds come from the paired bootstrap. Every row
carries its provenance (versions, commit, device, checkpoint SHA-256, dataset fingerprint, suite, seeds).

A directory given twice is listed once. `cells` says how many of a directory's planned cells exist: an
unfinished sweep is refused, or with `allow_partial` summarised over its complete corruptions only
(`complete` False, and a note; rgbt_bench.report.completeness). A row whose ranking value is empty (NaN) gets
no rank."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from ..atomic import atomic_write_text
from ..errors import ConfigError, DataError
from .bootstrap import paired_bootstrap
from .completeness import completeness
from .load import is_results_dir, load_results
from .provenance import COLUMNS as PROVENANCE_COLUMNS
from .provenance import label, provenance, provenance_columns
from .robustness import choose_reference, robustness_tables
from .tables import Table, markdown_file, percent_names, records_json

# --rank-by choice -> (column, higher is better)
RANK_BY = {"mean_corrupted": ("mean_corrupted_miou", True), "clean": ("clean_miou", True),
           "mce": ("mce", False), "rr": ("rr", True), "worst": ("worst_miou", True)}
COLUMNS = ["rank", "model", "dataset", "split", "clean_miou", "clean_low", "clean_high", "mean_corrupted_miou",
           "mean_corrupted_low", "mean_corrupted_high", "rr", "mce", "worst_miou", "worst_setting", "reference",
           "convention", "images", "cells", "complete", "results",
           *(c for c in PROVENANCE_COLUMNS if c != "convention")]
PERCENT = ["clean_miou", "clean_low", "clean_high", "mean_corrupted_miou", "mean_corrupted_low", "mean_corrupted_high",
           "rr", "mce", "worst_miou"]
# The Markdown view: the ranking itself; provenance follows it as a note.
SHOWN = ["rank", "model", "dataset", "split", *PERCENT, "worst_setting", "reference", "convention", "images", "cells"]


def results_dirs(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(directories holding sweep cells, other paths given) — `results/*` also matches baselines and READMEs."""
    found, skipped, seen = [], [], set()
    for path in map(Path, paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        (found if path.is_dir() and is_results_dir(path) else skipped).append(path)
    return found, skipped


def _rows(path: Path, bootstrap: int, seed: int, confidence: float, allow_partial: bool) -> list[dict]:
    results = load_results(path)
    done = completeness(results)
    done.require(allow_partial)
    reference = choose_reference(results)
    block = provenance(results)
    summarised = results.restricted(done.complete)
    _, summary = robustness_tables(summarised, reference)
    ci = {}
    if bootstrap:
        boot = paired_bootstrap(summarised, reference, bootstrap, seed, confidence).summary
        ci = {(r.model, r.statistic): (r.low, r.high) for r in boot.itertuples()}
    rows = []
    for r in summary.to_dict(orient="records"):
        nan = (float("nan"), float("nan"))
        clean_ci, corrupted_ci = ci.get((r["model"], "clean"), nan), ci.get((r["model"], "mean_corrupted"), nan)
        rows.append({**r, **provenance_columns(block, r["model"]), "dataset": results.dataset,
                     "split": results.split, "convention": results.convention,
                     "images": len(results.names), "cells": done.cells, "complete": done.is_complete,
                     "results": str(path),
                     "clean_low": clean_ci[0], "clean_high": clean_ci[1],
                     "mean_corrupted_low": corrupted_ci[0], "mean_corrupted_high": corrupted_ci[1]})
    return rows


def build_leaderboard(paths: Iterable[str | Path], rank_by: str = "mean_corrupted", bootstrap: int = 1000, seed: int = 0,
                confidence: float = 0.95, allow_partial: bool = False) -> tuple[pd.DataFrame, list[Path]]:
    """(ranked leaderboard, paths skipped for holding no sweep cells). DataError when none holds any, or when
    one holds an unfinished sweep and not `allow_partial`."""
    if rank_by not in RANK_BY:
        raise ConfigError(f"invalid --rank-by '{rank_by}'; expected one of {', '.join(RANK_BY)}")
    paths = list(paths)
    found, skipped = results_dirs(paths)
    if not found:
        raise DataError(f"none of {', '.join(map(str, paths)) or 'the given paths'} holds sweep results "
                        "(a cells/ folder of finished cells); expected directories written by `rgbt-bench sweep`")
    frame = pd.DataFrame([row for path in found for row in _rows(path, bootstrap, seed, confidence, allow_partial)])
    column, higher = RANK_BY[rank_by]
    frame = frame.sort_values(["dataset", "split", column], ascending=[True, True, not higher],
                              na_position="last", kind="stable")
    ranked = frame[column].notna()
    frame["rank"] = ranked.groupby([frame["dataset"], frame["split"]]).cumsum().where(ranked).astype("Int64")
    return frame[COLUMNS].reset_index(drop=True), skipped


def _note(frame: pd.DataFrame, rank_by: Optional[str]) -> str:
    """What the table holds, then the provenance of each results directory and each row's checkpoint."""
    ranked = f" Ranked by {rank_by} within each dataset and split." if rank_by else ""
    lines = [f"Leaderboard: mIoU, RR and mCE in %; mCE against each results directory's reference model.{ranked}",
             ""]
    partial = partial_note(frame)
    if partial:
        lines += [f"Note: {partial}.", ""]
    lines += ["Provenance:", ""]
    for path, rows in frame.groupby("results", sort=False):
        first = rows.iloc[0]
        facts = "; ".join(f"{label(c)}: {first[c]}" for c in PROVENANCE_COLUMNS if c != "checkpoint_sha256")
        lines.append(f"- {path}: {facts}")
        lines += [f"  - checkpoint {row.model}: sha256 {row.checkpoint_sha256}" for row in rows.itertuples()]
    return "\n".join(lines)


def write_leaderboard(frame: pd.DataFrame, out: str | Path, rank_by: Optional[str] = None) -> list[Path]:
    """Write `out` (CSV; percent columns named `..._pct`), the same records as JSON and the ranking as
    Markdown with a provenance note (`out` with suffixes .json and .md), each atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = Table(out.stem, "Leaderboard (%)", frame, percent_names(PERCENT), frame[SHOWN], tuple(PERCENT))
    file_frame = table.file_frame()
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    atomic_write_text(out, file_frame.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(js, records_json(file_frame))
    atomic_write_text(md, markdown_file(table, _note(frame, rank_by)))
    return [out, js, md]


def partial_note(frame: pd.DataFrame) -> Optional[str]:
    """One line naming the directories of unfinished sweeps in the leaderboard (None when there are none)."""
    partial = frame.loc[~frame["complete"].astype(bool), ["results", "cells"]].drop_duplicates()
    if partial.empty:
        return None
    return ("partial results, summarised over their complete corruptions only: "
            + ", ".join(f"{r.results} ({r.cells} planned cells)" for r in partial.itertuples()))
