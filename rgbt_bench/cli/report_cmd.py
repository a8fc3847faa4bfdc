"""`rgbt-bench report`, `leaderboard` and `check`: read sweep results, write tables/plots, rank, guard regressions."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from ..console import print_table, stdout_console
from .options import device_option, resolve_device

CONFIDENCE = 0.95


def bootstrap_seed_option(f):
    """--bootstrap-seed (alias --seed, its earlier name): the seed of the paired bootstrap's resampling."""
    return click.option("--bootstrap-seed", "--seed", "seed", type=int, default=0, show_default=True,
                        help="Seed of the bootstrap resampling (--seed is an alias).")(f)


def _console() -> Console:
    """A console on stdout; when stdout is not a terminal, nothing wraps (rgbt_bench.console)."""
    return stdout_console()


@click.command("report")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--reference", default=None,
              help="Model CE/mCE are measured against [default: run.json's reference, else the first model].")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Paired bootstrap resamples over images (0 skips the confidence intervals).")
@bootstrap_seed_option
@click.option("--qualitative", default="worst", show_default=True, metavar="CORRUPTION@SEVERITY",
              help="Setting of the qualitative grid: CORRUPTION@SEVERITY (e.g. thermal_missing@5), clean, worst "
                   "(lowest mean mIoU) or none.")
@click.option("--per-class", "per_class", default=None, metavar="CORRUPTION@SEVERITY",
              help="Setting of the per-class bar plot beside clean (or none) [default: the qualitative one].")
@click.option("--images", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Images in the qualitative grid.")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Draw the figures (PNG and SVG).")
@click.option("--latex", is_flag=True, help="Also write booktabs table fragments into RESULTS_DIR/report/latex/.")
@device_option
@click.option("--allow-partial", is_flag=True,
              help="Summarise an unfinished sweep over its complete corruptions instead of refusing it.")
def report(results_dir, reference, bootstrap, seed, qualitative, per_class, images, plots, latex, device,
           allow_partial):
    """Write tables (CSV, JSON, Markdown), bootstrap CIs, figures and index.html into RESULTS_DIR/report/."""
    from ..errors import writing
    from ..report.build import build_report, summary_frame
    from ..report.replicas import seeds_note
    from ..report.terminal import frame_table

    with writing(f"the report to {Path(results_dir) / 'report'}", "free space or make it writable, then rerun"):
        result = build_report(results_dir, reference=reference, bootstrap=bootstrap, seed=seed,
                              confidence=CONFIDENCE, qualitative=qualitative, per_class=per_class, plot=plots,
                              images=images, latex=latex, device=resolve_device(device),
                              allow_partial=allow_partial)
    console = _console()
    r = result.results
    title = f"{r.dataset}/{r.split}, {len(r.names)} images, {result.completeness.cells} planned cells (mIoU %)"
    print_table(console, frame_table(summary_frame(result), [
        ("model", "model"), ("clean_miou", "clean"), ("mean_corrupted_miou", "mean corrupted"), ("rr", "RR %"),
        ("mce", "mCE %"), ("worst_miou", "worst"), ("worst_setting", "worst at"), ("rgb_share", "RGB %"),
        ("fusion_gain", "fusion"), ("train_seeds", "seeds")], title=title,
        ci=("mean_corrupted_low", "mean_corrupted_high", f"{CONFIDENCE:.0%} CI")))
    console.print(f"mIoU convention '{r.convention}'; mCE against '{result.reference.model}' "
                  f"({result.reference.chosen_by}); {seeds_note(r)}", highlight=False, soft_wrap=True)
    if not result.ablations.empty:
        print_table(console, frame_table(result.ablations, [
            ("treatment", "model"), ("control", "control"), ("statistic", "mIoU"), ("difference", "difference")],
            title="Ablations (model minus control trained without masking, mIoU points)",
            ci=("low", "high", f"{CONFIDENCE:.0%} CI")))
    for line in result.ablation_lines:
        console.print(line, highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if result.removed:
        console.print(f"removed {len(result.removed)} file(s) of an earlier report that this one does not write: "
                      + ", ".join(p.relative_to(result.out_dir).as_posix() for p in result.removed),
                      highlight=False, soft_wrap=True)
    console.print(f"report written to {result.out_dir} (open {result.out_dir / 'index.html'})", highlight=False,
                  soft_wrap=True)


@click.command("leaderboard")
@click.argument("results_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", default="leaderboard.csv", show_default=True,
              help="CSV to write; the same records as JSON (.json) and a Markdown table (.md) go next to it.")
@click.option("--rank-by", type=click.Choice(["mean_corrupted", "clean", "mce", "rmce", "rr", "worst"]),
              default="mean_corrupted", show_default=True, help="Ranking column (mCE, relative mCE: lower is better).")
@click.option("--reference", default=None,
              help="Model every mCE of a group is measured against [default: the one the suite names, else the "
                   "first model of the group].")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Paired bootstrap resamples for the CI bounds (0 skips them).")
@bootstrap_seed_option
@click.option("--allow-partial", is_flag=True,
              help="Summarise an unfinished sweep over its complete corruptions instead of refusing it.")
def leaderboard(results_dirs, out, rank_by, reference, bootstrap, seed, allow_partial):
    """Rank models across sweep results (e.g. results/*): one row per model and results directory, ranked
    among results of the same setup."""
    from ..errors import ConfigError, writing
    from ..report.leaderboard import build_leaderboard, group_lines, partial_note, write_leaderboard
    from ..report.terminal import frame_table
    from ..sweep.summary import for_display
    from ..training.selection import warning_for_test_selection

    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 (0 skips it), got {bootstrap}")
    frame, skipped = build_leaderboard(results_dirs, rank_by, bootstrap, seed, CONFIDENCE, reference,
                                       allow_partial)
    with writing(f"the leaderboard {out}", "choose a writable --out"):
        paths = write_leaderboard(frame, out, rank_by)
    console = _console()
    several = frame["group"].nunique() > 1
    for group, rows in frame.groupby("group", sort=True):
        first = rows.iloc[0]
        where = [("directory", "results")] if rows["results"].nunique() > 1 else []
        devices = sorted(set(rows["cost_device"].dropna()))
        shown = for_display(rows.assign(directory=rows["results"].map(lambda p: Path(p).name)))
        print_table(console, frame_table(shown, [
            ("rank", "#"), ("model", "model"), ("clean_miou", "clean"), ("mean_corrupted_miou", "mean corrupted"),
            ("rr", "RR %"), ("mce", "mCE %"), ("rmce", "rel. mCE %"), ("worst_miou", "worst"),
            ("rgb_share", "RGB share %"), ("fusion_gain", "fusion gain"), ("params", "params"),
            ("gflops", "GFLOPs"), ("images_per_s", f"img/s ({', '.join(devices) or 'not measured'})"),
            ("cells", "cells"), *where],
            title=f"Leaderboard{f' group {group}' if several else ''} (mIoU %, ranked by {rank_by}) on "
                  f"{first['dataset']}/{first['split']}, {first['images']} images, mCE against {first['reference']}",
            ci=("mean_corrupted_low", "mean_corrupted_high", f"{CONFIDENCE:.0%} CI")))
    for line in group_lines(frame):
        console.print(line, highlight=False, soft_wrap=True)
    for row in frame[frame["training_checks"].ne("ok")].itertuples():
        console.print(f"training checks: {row.model} of {row.results}: {row.training_checks}", highlight=False,
                      soft_wrap=True)
    for row in frame[frame["selected_on"].str.contains("test")].itertuples():
        console.print(warning_for_test_selection(f"model '{row.model}' of {row.results}"), highlight=False,
                      soft_wrap=True)
    if skipped:
        console.print(f"skipped (no sweep cells): {', '.join(map(str, skipped))}", highlight=False)
    partial = partial_note(frame)
    if partial:
        console.print(f"note: {partial}", highlight=False, soft_wrap=True)
    console.print(f"wrote {', '.join(map(str, paths))}", highlight=False)


@click.command("check")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False),
              help="Baseline CSV, e.g. results/baselines/X.csv.")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Largest tolerated fall of a cell's mIoU, in percentage points.")
@click.option("--update-baseline", is_flag=True, help="Write the baseline from these results instead of checking.")
@click.option("--all", "show_all", is_flag=True, help="List every cell, not only the failing ones.")
@click.option("--allow-partial", is_flag=True, help="Write a baseline from an unfinished sweep instead of refusing.")
@click.pass_context
def check(ctx, results_dir, baseline, max_drop, update_baseline, show_all, allow_partial):
    """Compare each cell's mIoU with a stored baseline; exit 1 when any fell by more than --max-drop or is missing."""
    from ..errors import writing
    from ..report.check import compare, current_table, read_baseline, write_baseline
    from ..report.completeness import completeness
    from ..report.load import load_results
    from ..report.terminal import frame_table

    console = _console()
    results = load_results(results_dir)
    done = completeness(results)
    if update_baseline:
        done.require(allow_partial)
    if done.note():
        console.print(f"note: {done.note()}", highlight=False, soft_wrap=True)
    if update_baseline:
        with writing(f"baseline {baseline}", "choose a writable --baseline path"):
            path = write_baseline(results, baseline)
        console.print(f"baseline {path} written from {results.path} ({done.cells} planned cells)", highlight=False)
        return
    outcome = compare(read_baseline(baseline), current_table(results), max_drop, where=f"baseline {baseline}")
    counts = outcome.counts()
    shown = outcome.diff if show_all else outcome.failures
    if not shown.empty:
        print_table(console, frame_table(shown, [("cell", "cell"), ("baseline", "baseline mIoU %"),
                                                 ("current", "current %"), ("delta", "delta (points)"),
                                                 ("status", "status")],
                                         title=f"{results.path} vs {baseline} (max drop {max_drop:g} points)",
                                         styles={"regression": "red", "missing": "red", "new": "yellow"}, digits=2))
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    verdict = "PASS" if outcome.passed else "FAIL"
    console.print(f"{verdict}: {summary} (tolerance {max_drop:g} mIoU points; results hold {done.cells} planned "
                  "cells)", highlight=False)
    if not outcome.passed:
        ctx.exit(1)
