"""The main job behind `rgbt-bench run`: built-in dataset -> train tiny models -> sweep a suite -> report.

Phases (each timed, see RunResult.phases):
1. dataset: the synthetic dataset is generated once and cached (rgbt_bench.datasets.synthetic);
2. train: every model's checkpoint in `models_dir`, one per training seed, is reused, resumed or trained as the
   trained-model cache decides (rgbt_bench.training.cache), the slowest runs first, in parallel processes
   (rgbt_bench.processes);
3. sweep: rgbt_bench.sweep.run_sweep of every trained replica over the suite restricted to the chosen
   severities (written next to the results); finished cells are skipped, so a killed run resumes, and cells
   this run would not reuse (other weights, data, settings or training seeds) are moved to `<out>/stale/`;
4. report: tables, plots and the leaderboard CSV (rgbt_bench.report);
5. summary: clean mIoU, mean corrupted mIoU, mIoU with each camera missing, modality reliance and the cost,
   per model (rgbt_bench.sweep.summary, what `sweep` prints too), and the Ablations table (each model against
   its control trained without masking).
The run's options are a RunConfig (rgbt_bench.run_config).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

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

if TYPE_CHECKING:
    from .sweep.engine import SweepConfig

LEADERBOARD = "leaderboard.csv"
SUITE_FILE = "suite.yaml"

__all__ = ["RunConfig", "RunResult", "run_pipeline"]


@dataclass
class RunResult:
    """What a run produced: results directory, report directory, leaderboard CSV, summary table (mIoU %,
    reliance, cost), wall and CPU seconds per phase, what happened to each model's checkpoint, the Ablations
    table (model minus its control trained without masking, rgbt_bench.report.ablations) with one verdict line
    per pair, and notes: how many training seeds stand behind the numbers, then the report's notes."""

    out: Path
    report: Path
    leaderboard: Path
    summary: pd.DataFrame
    phases: dict[str, float]
    cpu_seconds: dict[str, float]
    trained: dict[str, str]
    ablations: pd.DataFrame = field(default_factory=pd.DataFrame)
    ablation_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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
    """Reuse, resume or train every model's checkpoint for every training seed, the slowest first, up to `jobs`
    runs at a time; "model" (one training seed) or "model@seed" -> "cached", "resumed" or "trained"."""
    from .training import train
    several = len(config.train_seeds) > 1
    plans = {f"{m}@{seed}" if several else m: cache.plan(config.train_config(m, image_size, seed))
             for m in config.models for seed in config.train_seeds}
    for name, plan in plans.items():
        echo(f"{name}: {plan.describe()}")
    runs = sorted((p.config for p in plans.values() if p.state != cache.READY),
                  key=lambda c: -step_cost(c.model) * c.iterations)
    jobs, threads = config.processes(len(runs))
    map_in_processes(train, runs, jobs, threads, "training",
                     label=lambda run: f"{run.model}@{run.seed}" if several else run.model)
    return {name: plan.outcome for name, plan in plans.items()}


def sweep_config(config: RunConfig, suite: Path, image_size: tuple[int, int]) -> SweepConfig:
    """The sweep of the main job: every trained replica (model, training seed) over `suite` on synthetic/test."""
    from .sweep import SweepConfig
    checkpoints = {f"{m}@{seed}": str(config.train_config(m, image_size, seed).out_path)
                   for m in config.models for seed in config.train_seeds}
    return SweepConfig(
        models=list(config.models), dataset=DATASET, split="test", suite=str(suite), out=str(Path(config.out)),
        checkpoints=checkpoints, preset=PRESET, seeds=[0], batch_size=config.sweep_batch_size, device=config.device,
        workers=config.workers, cells_per_pass=len(checkpoints) * len(config.severities),
        models_dir=config.models_dir, dataset_options=dict(config.dataset_options), progress=config.progress,
        command=config.command, replace_stale=True)


def run_pipeline(config: RunConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Run (or resume) the whole main job described by `config`."""
    from .report import build_leaderboard, build_report, write_leaderboard
    from .report.replicas import seeds_note
    from .sweep import run_sweep

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
        run_distributed(run_sweep, sweep_config(config, suite, image_size), *config.processes(len(test)), "sweep")
    with phases("report"), writing(f"the report to {out}", "the sweep's cells are kept; free space and rerun"):
        report = build_report(out, bootstrap=config.bootstrap, device=resolve_device(config.device))
        frame, _ = build_leaderboard([out], bootstrap=config.bootstrap)
        leaderboard = write_leaderboard(frame, out / LEADERBOARD, "mean_corrupted")[0]
    summary, _, _ = results_summary(out, config.models)
    return RunResult(out=out, report=report.out_dir, leaderboard=leaderboard, summary=summary,
                     phases=phases.seconds, cpu_seconds=phases.cpu_seconds, trained=trained,
                     ablations=report.ablations, ablation_lines=report.ablation_lines,
                     notes=[seeds_note(report.results), *report.notes])
