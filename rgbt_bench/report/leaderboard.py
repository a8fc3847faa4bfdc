"""Leaderboard across sweep results: one row per model and results directory, ranked only among results of
one setup (rgbt_bench.report.setup: dataset fingerprint, split, mIoU convention, suite with its severities,
image count, training seeds). Directories of another setup form their own group, ranked and labelled
separately; a leaderboard of directories that are all of different setups is refused.

A directory given twice is listed once. `cells` says how many of a directory's planned cells exist: an
unfinished sweep is refused, or with `allow_partial` summarised over its complete corruptions only
(`complete` False, and a note; rgbt_bench.report.completeness); its summaries then cover other corruptions,
so it is ranked only with directories summarised over the same ones. A row whose ranking value is empty
(NaN) gets no rank.

Each group has one mCE reference: `--reference`, else the model its suite names, else the first model of
its first directory; its mIoUs come from the first directory of the group that holds it (the mean over its
training-seed replicas), so every mCE and relative mCE of a group is against the same numbers. Ties share
a rank (pandas rank method "min"). CI bounds come from the paired bootstrap of each directory. Every row
carries its provenance (versions, commit, device, checkpoint SHA-256, dataset fingerprint, suite, seeds) and
the model's cost as its sweep measured it (rgbt_bench.efficiency: parameters, GFLOPs per image at the
evaluated size, forward images/s with the batch size and the device named; empty for a sweep run with
--no-efficiency). Images/s compare only between rows measured on one device. `training_checks` says whether
the model's networks learned every class their cameras show and had stopped improving
(rgbt_bench.report.training_checks.model_flags): a row of an under-trained network says so by itself."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from ..atomic import atomic_write_text
from ..efficiency import read_efficiency
from ..errors import ConfigError, DataError
from .bootstrap import paired_bootstrap
from .completeness import Completeness, completeness
from .load import Results, is_results_dir, load_results
from .provenance import COLUMNS as PROVENANCE_COLUMNS
from .provenance import label, provenance, provenance_columns
from .robustness import Reference, choose_reference, reference_values, robustness_tables, suite_reference
from .setup import DIRECTORY_FIELDS, directory_setup
from .tables import Table, markdown_file, percent_names, records_json
from .training_checks import model_flags, training_checks

# --rank-by choice -> (column, higher is better)
RANK_BY = {"mean_corrupted": ("mean_corrupted_miou", True), "clean": ("clean_miou", True),
           "mce": ("mce", False), "rmce": ("rmce", False), "rr": ("rr", True), "worst": ("worst_miou", True)}
SETUP = ["setup_suite", "train_seeds", "evaluation"]
# The model's cost as the sweep measured it; cost_device / cost_batch_size say where and how.
COST = ["params", "gflops", "images_per_s", "cost_batch_size", "cost_device"]
COLUMNS = ["group", "rank", "model", "dataset", "split", "clean_miou", "clean_low", "clean_high",
           "mean_corrupted_miou", "mean_corrupted_low", "mean_corrupted_high", "rr", "mce", "rmce", "worst_miou",
           "worst_setting", "rgb_share", "fusion_gain", "training_checks", *COST, "reference", "reference_chosen_by",
           "convention", "images", *SETUP, "cells", "complete", "results",
           *(c for c in PROVENANCE_COLUMNS if c != "convention")]
PERCENT = ["clean_miou", "clean_low", "clean_high", "mean_corrupted_miou", "mean_corrupted_low", "mean_corrupted_high",
           "rr", "mce", "rmce", "worst_miou", "rgb_share", "fusion_gain"]
# The Markdown view: the ranking itself; provenance follows it as a note.
SHOWN = ["group", "rank", "model", "dataset", "split", *PERCENT, "worst_setting", "params", "gflops", "images_per_s",
         "cost_device", "reference", "convention", "images", "train_seeds", "cells", "training_checks"]


def results_dirs(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(directories holding sweep cells, other paths given) — `results/*` also matches baselines and READMEs."""
    found, skipped, seen = [], [], set()
    for path in map(Path, paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        (found if path.is_dir() and is_results_dir(path) else skipped).append(path)
    return found, skipped


def _difference(a: dict, b: dict) -> str:
    """'suite 1f2e... vs 9a8b...; images 4 vs 100': the setup fields in which two directories differ."""
    return "; ".join(f"{k.replace('_', ' ')} {a[k]} vs {b[k]}" for k in DIRECTORY_FIELDS if a[k] != b[k])


def group_results(loaded: list[Results], done: dict[int, Completeness]) -> list[list[Results]]:
    """The directories grouped by setup (and, for partial ones, by the corruptions they are summarised over),
    groups and members in the order given. DataError when there are several directories and no two of them
    share a setup."""
    setups = [directory_setup(r) for r in loaded]
    groups: dict[tuple, list[Results]] = {}
    for results, setup in zip(loaded, setups):
        key = (*(setup[k] for k in DIRECTORY_FIELDS), done[id(results)].complete)
        groups.setdefault(key, []).append(results)
    if len(loaded) > 1 and len(groups) == len(loaded):
        raise DataError(f"the {len(loaded)} results directories are all of different setups, so none can be ranked "
                        f"against another ({loaded[0].path} vs {loaded[1].path}: {_difference(setups[0], setups[1])}); "
                        f"expected directories swept on the same data and suite with as many images and "
                        f"training seeds")
    return list(groups.values())


def group_reference(group: list[Results], reference: Optional[str], number: int
                    ) -> tuple[Reference, tuple[float, dict]]:
    """The group's one mCE reference and its mIoUs (from the first directory holding it)."""
    models = list(dict.fromkeys(m for r in group for m in r.models))
    if reference is not None:
        if reference not in models:
            raise ConfigError(f"--reference model '{reference}' is not in group {number} "
                              f"({', '.join(str(r.path) for r in group)}); expected one of {', '.join(models)}")
        chosen = Reference(reference, "--reference")
    else:
        named = suite_reference(group[0])
        chosen = Reference(named, "suite") if named in models else Reference(models[0], "first model")
    holder = next(r for r in group if chosen.model in r.models)
    severities = {c: holder.severities(c) for c in holder.corruptions}
    return chosen, reference_values(holder, chosen.model, severities)


def _rows(results: Results, done: Completeness, group: int, reference: Reference, mious: tuple[float, dict],
          bootstrap: int, seed: int, confidence: float) -> list[dict]:
    block = provenance(results)
    setup = directory_setup(results)
    summarised = results.restricted(done.complete)
    _, summary = robustness_tables(summarised, reference, mious)
    ci = {}
    if bootstrap:
        own = reference if reference.model in results.models else choose_reference(results)
        boot = paired_bootstrap(summarised, own, bootstrap, seed, confidence).summary
        ci = {(r.model, r.statistic): (r.low, r.high) for r in boot.itertuples()}
    cost = read_efficiency(results.path).set_index("model")
    flags = model_flags(training_checks(results))
    rows = []
    nan = (float("nan"), float("nan"))
    for r in summary.to_dict(orient="records"):
        measured = cost.loc[r["model"]] if r["model"] in cost.index else {}
        clean_ci, corrupted_ci = ci.get((r["model"], "clean"), nan), ci.get((r["model"], "mean_corrupted"), nan)
        rows.append({**r, **provenance_columns(block, r["model"]), "group": group, "dataset": results.dataset,
                     "split": results.split, "convention": results.convention,
                     "images": len(results.names), "cells": done.cells, "complete": done.is_complete,
                     "results": str(results.path), "training_checks": flags.get(r["model"], ""),
                     "reference_chosen_by": reference.chosen_by, "setup_suite": setup["suite"],
                     "train_seeds": setup["train_seeds"], "evaluation": setup["evaluation"],
                     "clean_low": clean_ci[0], "clean_high": clean_ci[1],
                     "mean_corrupted_low": corrupted_ci[0], "mean_corrupted_high": corrupted_ci[1],
                     **{c: measured.get(c, float("nan")) for c in ("params", "gflops", "images_per_s")},
                     "cost_batch_size": measured.get("batch_size"), "cost_device": measured.get("device_name")})
    return rows


def build_leaderboard(paths: Iterable[str | Path], rank_by: str = "mean_corrupted", bootstrap: int = 1000,
                      seed: int = 0, confidence: float = 0.95, reference: Optional[str] = None,
                      allow_partial: bool = False) -> tuple[pd.DataFrame, list[Path]]:
    """Rank the models of several sweeps, within groups of results of one setup.

    Args:
        paths: results directories (the `out` of each sweep); other paths, e.g. files matched by a
            `results/*` glob, are skipped.
        rank_by: the column ranked on: 'mean_corrupted', 'clean', 'worst', 'rr', 'mce' or 'rmce' (RANK_BY).
        bootstrap: resamples for the confidence intervals of clean and mean corrupted mIoU (0 skips them).
        seed: seed of the bootstrap's resampling.
        confidence: level of the bootstrap intervals.
        reference: the model mCE is measured against in every group (default: per group, the suite's
            `reference`, else the first model).
        allow_partial: rank unfinished sweeps over their complete corruptions.

    Returns:
        (leaderboard, skipped): one row per model and results directory (COLUMNS: group, rank, model,
        mIoU figures with intervals, setup and provenance), ranked within each group; and the given paths
        that held no sweep cells.

    Raises:
        DataError: no path holds cells, one holds an unfinished sweep and not `allow_partial`, or the
            directories are all of different setups.
        ConfigError: an unknown `rank_by`, or a `reference` absent from a group.

    Example:
        >>> from rgbt_bench.sweep import SweepConfig, run_sweep
        >>> out = run_sweep(SweepConfig(models=["mfnet"], corruptions=["thermal_missing"], severities=[5],
        ...                             dataset_options={"size": (32, 48), "counts": (8, 2, 4)},
        ...                             train_iterations=1, out="results/example", progress=False,
        ...                             efficiency=False))
        >>> frame, skipped = build_leaderboard(["results/example"], bootstrap=0)
        >>> frame[["group", "rank", "model"]].to_dict("records"), skipped
        ([{'group': 1, 'rank': 1, 'model': 'mfnet'}], [])
    """
    if rank_by not in RANK_BY:
        raise ConfigError(f"invalid --rank-by '{rank_by}'; expected one of {', '.join(RANK_BY)}")
    paths = list(paths)
    found, skipped = results_dirs(paths)
    if not found:
        raise DataError(f"none of {', '.join(map(str, paths)) or 'the given paths'} holds sweep results "
                        "(a cells/ folder of finished cells); expected directories written by `rgbt-bench sweep`")
    loaded = [load_results(path) for path in found]
    done = {id(results): completeness(results) for results in loaded}
    for results in loaded:
        done[id(results)].require(allow_partial)
    groups = group_results(loaded, done)
    references = [group_reference(group, reference, i) for i, group in enumerate(groups, 1)]
    frame = pd.DataFrame([row for i, (group, (ref, mious)) in enumerate(zip(groups, references), 1)
                          for results in group
                          for row in _rows(results, done[id(results)], i, ref, mious, bootstrap, seed, confidence)])
    for column in RANK_BY.values():
        if column[0] not in frame:
            frame[column[0]] = float("nan")
    for column in ("rgb_share", "fusion_gain"):
        if column not in frame:
            frame[column] = float("nan")
    column, higher = RANK_BY[rank_by]
    frame["rank"] = frame.groupby("group")[column].rank(method="min", ascending=not higher).astype("Int64")
    frame = frame.sort_values(["group", "rank"], kind="stable", na_position="last")
    return frame[COLUMNS].reset_index(drop=True), skipped


def group_lines(frame: pd.DataFrame) -> list[str]:
    """One line per group: its setup, directories and mCE reference (how it was chosen)."""
    lines = []
    for group, rows in frame.groupby("group", sort=True):
        first = rows.iloc[0]
        dirs = ", ".join(dict.fromkeys(rows["results"]))
        lines.append(f"group {group}: {first['dataset']}/{first['split']}, {first['convention']} convention, "
                     f"{first['images']} images, suite {first['setup_suite']}, dataset {first['dataset_fingerprint']}"
                     f", training seeds {first['train_seeds']}, evaluated {first['evaluation']}; mCE against "
                     f"{first['reference']} "
                     f"({first['reference_chosen_by']}); {dirs}")
    return lines


def _note(frame: pd.DataFrame, rank_by: Optional[str]) -> str:
    """What the table holds, its groups, then the provenance of each results directory and each row's checkpoint."""
    ranked = f" Ranked by {rank_by} within each group; ties share a rank." if rank_by else ""
    lines = ["Leaderboard: mIoU, RR, mCE, relative mCE, RGB share of the missing-modality drop and fusion gain in %; "
             f"rows are ranked only against results of the same setup (a group), with one mCE reference per "
             f"group.{ranked}", "", "Groups:", "", *(f"- {line}" for line in group_lines(frame)), ""]
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
