"""The main job behind `rgbt-bench run`: built-in dataset -> train tiny models -> sweep a suite -> report.

Phases (each timed, see RunResult.phases):
1. dataset: the synthetic dataset is generated once and cached (rgbt_bench.datasets.synthetic);
2. train: every model's checkpoint in `models_dir` is reused, resumed or trained as the trained-model cache
   decides (rgbt_bench.training.cache), the slowest runs first, in parallel processes (rgbt_bench.processes);
3. sweep: rgbt_bench.sweep.run_sweep over the suite restricted to the chosen severities (written next to
   the results); finished cells are skipped, so a killed run resumes, and cells this run would not reuse
   (other weights, data or settings) are moved to `<out>/stale/`;
4. report: tables, plots and the leaderboard CSV (rgbt_bench.report);
5. summary: clean mIoU, mean corrupted mIoU, mIoU with each camera missing and the cost, per model
   (rgbt_bench.sweep.summary, what `sweep` prints too).
The run's options are a RunConfig (rgbt_bench.run_config).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from .corruptions import load_suite
from .datasets import open_dataset
from .device import resolve_device
from .errors import writing
from .models import step_cost
from .phases import Phases
from .processes import map_in_processes, run_distributed
from .run_config import DATASET, PRESET, RunConfig
from .sweep.summary import results_summary
from .training import cache

LEADERBOARD = "leaderboard.csv"
SUITE_FILE = "suite.yaml"

__all__ = ["RunConfig", "RunResult", "run_pipeline"]


@dataclass
class RunResult:
    """What a run produced: results directory, report directory, leaderboard CSV, summary table (mIoU %, cost),
    wall and CPU seconds per phase, and what happened to each model's checkpoint."""

    out: Path
    report: Path
    leaderboard: Path
    summary: pd.DataFrame
    phases: dict[str, float]
    cpu_seconds: dict[str, float]
    trained: dict[str, str]


def write_suite(spec: str, severities: Sequence[int], out: Path) -> Path:
    """Write `<out>/suite.yaml`: suite `spec` restricted to `severities` (Suite.restrict); its path."""
    text = load_suite(spec).restrict(severities).to_yaml()
    path = out / SUITE_FILE
    with writing(f"results to {out}"):
        out.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return path


def train_models(config: RunConfig, image_size: tuple[int, int], echo: Callable[[str], None]) -> dict[str, str]:
    """Reuse, resume or train every model's checkpoint, the slowest first, up to `jobs` runs at a time;
    model -> "cached", "resumed" or "trained"."""
    from .training import train
    plans = {m: cache.plan(config.train_config(m, image_size)) for m in config.models}
    for model, plan in plans.items():
        echo(f"{model}: {plan.describe()}")
    runs = sorted((p.config for p in plans.values() if p.state != cache.READY),
                  key=lambda c: -step_cost(c.model) * c.iterations)
    jobs, threads = config.processes(len(runs))
    map_in_processes(train, runs, jobs, threads, "training", label=lambda run: run.model)
    return {m: plan.outcome for m, plan in plans.items()}


def run_pipeline(config: RunConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Run (or resume) the whole main job described by `config`."""
    from .report import build_leaderboard, build_report, write_leaderboard
    from .sweep import SweepConfig, run_sweep

    out = Path(config.out).expanduser()
    suite = write_suite(config.suite, config.severities, out)
    phases = Phases(echo)
    with phases("dataset"):
        for split in ("train", "val"):
            open_dataset(DATASET, split, **config.dataset_options)
        test = open_dataset(DATASET, "test", **config.dataset_options)
        image_size = tuple(test[0].label.shape)
    with phases("train"):
        trained = train_models(config, image_size, echo)
    with phases("sweep"):
        checkpoints = {m: str(config.train_config(m, image_size).out_path) for m in config.models}
        sweep = SweepConfig(
            models=list(config.models), dataset=DATASET, split="test", suite=str(suite), out=str(out),
            checkpoints=checkpoints, preset=PRESET, seeds=[0], batch_size=config.sweep_batch_size,
            device=config.device, workers=config.workers, cells_per_pass=len(config.models) * len(config.severities),
            models_dir=config.models_dir, dataset_options=dict(config.dataset_options), progress=config.progress,
            command=config.command, replace_stale=True)
        run_distributed(run_sweep, sweep, *config.processes(len(test)), "sweep")
    with phases("report"), writing(f"the report to {out}", "the sweep's cells are kept; free space and rerun"):
        report = build_report(out, bootstrap=config.bootstrap, device=resolve_device(config.device))
        frame, _ = build_leaderboard([out], bootstrap=config.bootstrap)
        leaderboard = write_leaderboard(frame, out / LEADERBOARD, "mean_corrupted")[0]
    summary, _, _ = results_summary(out, config.models)
    return RunResult(out=out, report=report.out_dir, leaderboard=leaderboard, summary=summary,
                     phases=phases.seconds, cpu_seconds=phases.cpu_seconds, trained=trained)
