"""The main job behind `rgbt-bench run`: built-in dataset -> train tiny models -> sweep a suite -> report.

Phases (each timed, see RunResult.phases):
1. dataset: the synthetic dataset is generated once and cached (rgbt_bench.datasets.synthetic);
2. train: every model is trained into `<models_dir>/<model>_tiny_synthetic.pt`. The cache is keyed on
   the training configuration stored in each checkpoint: a checkpoint whose finished run (`.last.pt`)
   has the same training-relevant config is reused, an unfinished one with the same config is resumed,
   anything else is retrained;
3. sweep: rgbt_bench.sweep.run_sweep over the suite, restricted to the chosen severities (a derived
   suite file is written next to the results); finished cells are skipped, so a killed run resumes.
   Cells of this run's models computed with other weights, data or settings are moved to `<out>/stale/`;
4. report: tables, plots and the leaderboard CSV (rgbt_bench.report);
5. summary: clean mIoU, mean corrupted mIoU and mIoU with each camera missing, per model.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import pandas as pd
import torch
import yaml

from .checkpoint import file_sha256, load_checkpoint
from .cli.options import resolve_device
from .corruptions import load_suite
from .corruptions.corruption import SEVERITIES
from .datasets import open_dataset
from .errors import CheckpointError, ConfigError, RgbtBenchError, writing
from .models import resolve_builder
from .sweep.plan import CLEAN
from .sweep.store import CELL_DIR
from .training.config import TrainConfig, default_crop

DATASET = "synthetic"
PRESET = "tiny"
DEFAULT_MODELS = ("crm", "rtfnet", "mfnet", "early_fusion", "rgb_only", "thermal_only")
# The suite at every severity (~60 s of the ~5 minute run on 2 cores). Severity 5 of rgb_missing /
# thermal_missing drops the camera on every image (the CRM paper's missing-modality test), which the
# summary reports; --severities 1,3,5 (or 5) trims the sweep on slower machines.
DEFAULT_SEVERITIES = SEVERITIES
MISSING = ("rgb_missing", "thermal_missing")
QUICK_ITERATIONS = 3
# Val evaluations per training run (the checkpoint kept is the best on val): halfway and at the end.
EVALUATIONS = 2
# Iterations between resumable training states: a killed run loses at most this many per model.
SAVE_EVERY = 50
LEADERBOARD = "leaderboard.csv"
QUICK_DATASET = {"size": [32, 40], "counts": [8, 4, 4]}
# TrainConfig fields that change how a run executes but not the weights it produces.
RUNTIME_FIELDS = ("device", "out", "resume", "workers", "progress", "log_every", "eval_batch_size", "save_every")


@dataclass
class RunConfig:
    """One main-job run. `iterations` None: each model's training default (TrainConfig: 900 for CRM, whose
    step costs ~7x a baseline's, 1000 for the baselines); QUICK_ITERATIONS with `quick`.

    `severities` None: DEFAULT_SEVERITIES. `quick` (tests, smoke checks) also shrinks the dataset
    (QUICK_DATASET unless `dataset_options` are given), keeps only severity 5 and trains with batch 2.
    `jobs` None: one process per CPU core (one on CUDA). `command`: recorded in the sweep manifest.
    """

    out: str = "results/main"
    models: Sequence[str] = DEFAULT_MODELS
    suite: str = "default"
    severities: Optional[Sequence[int]] = None
    device: str = "auto"
    iterations: Optional[int] = None
    seed: int = 1024
    quick: bool = False
    models_dir: str = "models"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    sweep_batch_size: int = 20
    workers: int = 0
    jobs: Optional[int] = None
    bootstrap: int = 1000
    progress: bool = True
    command: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            self.models = [m.strip() for m in self.models.split(",") if m.strip()]
        self.models = list(self.models)
        if self.quick and not self.dataset_options:
            self.dataset_options = dict(QUICK_DATASET)
        if self.severities is None:
            self.severities = [5] if self.quick else list(DEFAULT_SEVERITIES)
        self.severities = sorted(set(int(s) for s in self.severities))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value."""
        if not self.models:
            raise ConfigError("no models given; expected e.g. --models crm,rtfnet")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"--models lists a model twice: {','.join(self.models)}")
        for model in self.models:
            resolve_builder(model)
        bad = [s for s in self.severities if s not in SEVERITIES]
        if not self.severities or bad:
            raise ConfigError(f"invalid severities {list(self.severities)}; expected integers among 1..5, e.g. 1,3,5")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(f"--iterations must be >= 1, got {self.iterations}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")
        for name in ("batch_size", "sweep_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def processes(self, tasks: int) -> tuple[int, int]:
        """(parallel processes, torch threads each) for `tasks` independent pieces of work: on CPU by
        default one process per core, single-threaded (tiny models use threads poorly, and oversubscribed
        OpenMP threads stall); one process on CUDA."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if self.jobs is not None:
            jobs = self.jobs
        else:
            jobs = 1 if resolve_device(self.device).type == "cuda" else cpus
        jobs = max(1, min(jobs, tasks))
        return jobs, max(1, cpus // jobs)

    def iterations_for(self, model: str) -> Optional[int]:
        """Training iterations for `model`; None leaves the choice to TrainConfig's per-model default."""
        if self.iterations is not None:
            return self.iterations
        return QUICK_ITERATIONS if self.quick else None

    def train_config(self, model: str, image_size: tuple[int, int]) -> TrainConfig:
        """The training run whose checkpoint the sweep evaluates for `model`, on images of `image_size`.

        The crop is set explicitly (the trainer's default, half the image) so that the config compared
        with a cached checkpoint's is the one the trainer stores."""
        from .sweep.models import cache_path
        config = TrainConfig(model=model, preset=PRESET, dataset=DATASET, iterations=self.iterations_for(model),
                             batch_size=2 if self.quick else self.batch_size, seed=self.seed, device=self.device,
                             crop=default_crop(DATASET, image_size),
                             out=str(cache_path(self.models_dir, model, PRESET)), workers=self.workers,
                             dataset_options=dict(self.dataset_options), progress=self.progress)
        return dataclasses.replace(config, eval_every=max(1, config.iterations // EVALUATIONS),
                                   save_every=min(SAVE_EVERY, config.iterations))


@dataclass
class RunResult:
    """What a run produced: results directory, report directory, leaderboard CSV, summary table (%),
    wall and CPU seconds per phase, and what happened to each model's checkpoint."""

    out: Path
    report: Path
    leaderboard: Path
    summary: pd.DataFrame
    phases: dict[str, float]
    cpu_seconds: dict[str, float]
    trained: dict[str, str]


# ----- training cache ---------------------------------------------------------------------------------
def training_key(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """The training-relevant part of a TrainConfig (as stored in checkpoints): what the cache is keyed on."""
    values = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    return json.loads(json.dumps({k: v for k, v in values.items() if k not in RUNTIME_FIELDS}))


def _stored_key(path: Path) -> tuple[Optional[dict[str, Any]], int]:
    """(training key, iteration) of a checkpoint file, or (None, 0) when it is absent or unreadable."""
    if not path.is_file():
        return None, 0
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError:
        return None, 0
    config = ckpt.get("config")
    if not isinstance(config, dict):
        return None, 0
    return training_key(config), int(ckpt.get("iteration") or 0)


def cache_state(config: TrainConfig) -> str:
    """'ready' (finished with this config), 'resume' (unfinished, same config) or 'train'."""
    key = training_key(config)
    last_key, last_iteration = _stored_key(config.last_path)
    if last_key != key:
        return "train"
    if last_iteration < config.iterations:
        return "resume"
    out_key, _ = _stored_key(config.out_path)
    return "ready" if out_key == key else "train"


# ----- stale results ----------------------------------------------------------------------------------
def move_stale_cells(out: Path, current: dict[str, dict[str, Any]],
                     settings: Optional[set[tuple[str, int]]] = None) -> list[str]:
    """Move the cells of this run's models that no longer belong to it into `<out>/stale/<time>/`; their ids.

    `current` maps each model of the run to the record fields its cells must carry (checkpoint sha256,
    dataset fingerprint); `settings` (if given) lists the (corruption label, severity) pairs of the run,
    clean included. Cells of other models are left alone, and nothing is deleted, so the report and
    leaderboard of `out` describe exactly this run's models, weights and suite.
    """
    cells = Path(out) / CELL_DIR
    if not cells.is_dir():
        return []
    moved: list[str] = []
    target = Path(out) / "stale" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for json_path in sorted(cells.glob("*.json")):
        try:
            record = json.loads(json_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        expected = current.get(record.get("model"))
        if expected is None:
            continue
        wanted = settings is None or (record.get("corruption"), record.get("severity")) in settings
        if wanted and all(record.get(k) == v for k, v in expected.items()):
            continue
        target.mkdir(parents=True, exist_ok=True)
        for path in (json_path.with_suffix(".npz"), json_path):
            if path.exists():
                shutil.move(str(path), str(target / path.name))
        moved.append(json_path.stem)
    return moved


# ----- suite ------------------------------------------------------------------------------------------
def derived_suite(suite_spec: str, severities: Sequence[int], out: Path) -> Path:
    """Write `<out>/suite.yaml`: the suite with every entry restricted to `severities`; its path."""
    suite = load_suite(suite_spec)
    entries = []
    for entry in suite.entries:
        chosen = [s for s in entry.severities if s in severities]
        if chosen:
            entries.append({"corruption": entry.corruption, "label": entry.label, "severities": chosen,
                            "options": dict(entry.options)})
    if not entries:
        raise ConfigError(f"suite '{suite_spec}' has no entry at severities {list(severities)}")
    text = yaml.safe_dump({"name": f"{suite.name}-s{''.join(str(s) for s in severities)}",
                           "description": f"{suite.name} at severities {list(severities)} "
                                          f"(derived by rgbt-bench run from {suite.path})",
                           "entries": entries}, sort_keys=False)
    path = out / "suite.yaml"
    with writing(f"results to {out}"):
        out.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return path


# ----- summary ----------------------------------------------------------------------------------------
def summarize(summary: pd.DataFrame, miou: pd.DataFrame, models: Sequence[str], severity: int) -> pd.DataFrame:
    """Per model (rows in `models` order, %): clean and mean corrupted mIoU (the report's robustness
    summary) and mIoU with the RGB / thermal camera missing at `severity` (5: missing on every image)."""
    by_model = summary.set_index("model")
    cells = miou.set_index(["model", "corruption", "severity"])["miou"]
    rows = []
    for model in models:
        row = {"model": model, "clean": float(by_model.loc[model, "clean_miou"]),
               "mean_corrupted": float(by_model.loc[model, "mean_corrupted_miou"])}
        for name in MISSING:
            row[name] = float(cells.get((model, name, severity), float("nan")))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# ----- the job ----------------------------------------------------------------------------------------
class Phases:
    """Wall-clock and CPU seconds (this process and its finished worker processes) per named phase,
    announced as each one completes; CPU time tells what a phase costs when other work shares the machine."""

    def __init__(self, echo: Callable[[str], None]):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.echo = echo

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), self._cpu()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.cpu_seconds[name] = round(self._cpu() - cpu, 2)
        self.echo(f"phase {name}: {self.seconds[name]:.1f}s wall, {self.cpu_seconds[name]:.1f}s CPU")


PR_SET_PDEATHSIG = 1  # linux/prctl.h
DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Relative cost of one training iteration (batch 8, 60x80, one CPU thread; CRM ~0.35 s): the slowest
# runs start first, so that parallel processes finish together.
STEP_COST = {"crm": 8.0, "rtfnet": 2.0, "mfnet": 1.0}


def _in_process(env: dict[str, str], threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn(*args) in a worker process with `env` as its torch.distributed variables and `threads` threads."""
    for name in DIST_ENV:
        os.environ.pop(name, None)
    os.environ.update(env)
    torch.set_num_threads(threads)
    return fn(*args)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: on Linux, end this worker when the main process dies (even by kill -9), so
    that no orphan keeps training or holds the sweep's lock while a rerun resumes. Every file the workers
    write is written atomically, so ending them at any point loses no finished result."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _pool(workers: int) -> ProcessPoolExecutor:
    """Fresh interpreters (spawn): forking a process that has run OpenMP code can hang the child."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


def _results(futures: list[Future], what: str) -> list[Any]:
    """Each worker's result in order; a worker that died (killed, out of memory) is one clear error."""
    try:
        return [f.result() for f in futures]
    except BrokenProcessPool:
        raise RgbtBenchError(f"a {what} worker process died unexpectedly (killed or out of memory?); what it "
                             f"finished is kept, rerun the same command to resume") from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_models(config: RunConfig, image_size: tuple[int, int], echo: Callable[[str], None]) -> dict[str, str]:
    """Train, resume or reuse every model's checkpoint, up to `jobs` runs at a time; model -> "cached",
    "resumed" or "trained"."""
    from .training import train
    configs = {m: config.train_config(m, image_size) for m in config.models}
    states = {m: cache_state(tc) for m, tc in configs.items()}
    todo = sorted((m for m in config.models if states[m] != "ready"),
                  key=lambda m: -STEP_COST.get(m, 1.0) * configs[m].iterations)
    for model in config.models:
        tc = configs[model]
        if states[model] == "ready":
            echo(f"{model}: reusing {tc.out_path} (same training config)")
        else:
            echo(f"{model}: {'resuming' if states[model] == 'resume' else 'training'} {tc.iterations} "
                 f"iterations into {tc.out_path}")
    runs = [dataclasses.replace(configs[m], resume=states[m] == "resume") for m in todo]
    jobs, threads = config.processes(len(runs))
    if jobs == 1:
        for run in runs:
            train(run)
    else:
        with _pool(jobs) as pool:
            _results([pool.submit(_in_process, {}, threads, train, dataclasses.replace(run, progress=False))
                      for run in runs], "training")
    return {m: {"ready": "cached", "resume": "resumed", "train": "trained"}[states[m]] for m in config.models}


def _sweep(sweep_config: Any, jobs: int, threads: int) -> None:
    """run_sweep in this process, or sharded over `jobs` processes (the sweep's torchrun mode) on CPU."""
    from .sweep import run_sweep
    if jobs == 1:
        run_sweep(sweep_config)
        return
    port = str(_free_port())
    with _pool(jobs) as pool:
        _results([pool.submit(_in_process, {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(jobs),
                                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
                              threads, run_sweep, sweep_config) for r in range(jobs)], "sweep")


def run_pipeline(config: RunConfig, echo: Callable[[str], None] = print) -> RunResult:
    """Run (or resume) the whole main job described by `config`."""
    from .report import build_leaderboard, build_report, write_leaderboard
    from .sweep import SweepConfig
    from .sweep.manifest import dataset_fingerprint

    out = Path(config.out).expanduser()
    suite = derived_suite(config.suite, config.severities, out)
    phases = Phases(echo)
    with phases("dataset"):
        for split in ("train", "val"):
            open_dataset(DATASET, split, **config.dataset_options)
        test = open_dataset(DATASET, "test", **config.dataset_options)
        image_size = tuple(test[0].label.shape)
        fingerprint = dataset_fingerprint(test)
    with phases("train"):
        trained = train_models(config, image_size, echo)
    with phases("sweep"):
        checkpoints = {m: config.train_config(m, image_size).out_path for m in config.models}
        settings = {(CLEAN, 0)} | {(e.label, s) for e in load_suite(suite).entries for s in e.severities}
        moved = move_stale_cells(out, {m: {"checkpoint_sha256": file_sha256(p), "dataset_fingerprint": fingerprint}
                                       for m, p in checkpoints.items()}, settings)
        if moved:
            echo(f"moved {len(moved)} cells computed with other weights, data or settings to {out / 'stale'}")
        _sweep(SweepConfig(
            models=list(config.models), dataset=DATASET, split="test", suite=str(suite), out=str(out),
            checkpoints={m: str(p) for m, p in checkpoints.items()}, preset=PRESET, seeds=[0],
            batch_size=config.sweep_batch_size, device=config.device, workers=config.workers,
            cells_per_pass=len(config.models) * len(config.severities), models_dir=config.models_dir,
            dataset_options=dict(config.dataset_options), progress=config.progress, command=config.command),
            *config.processes(len(test)))
    with phases("report"), writing(f"the report to {out}", "the sweep's cells are kept; free space and rerun"):
        report = build_report(out, bootstrap=config.bootstrap, device=resolve_device(config.device))
        frame, _ = build_leaderboard([out], bootstrap=config.bootstrap)
        leaderboard = write_leaderboard(frame, out / LEADERBOARD, "mean_corrupted")[0]
    summary = summarize(report.summary, report.miou, config.models, max(config.severities))
    return RunResult(out=out, report=report.out_dir, leaderboard=leaderboard, summary=summary,
                     phases=phases.seconds, cpu_seconds=phases.cpu_seconds, trained=trained)
