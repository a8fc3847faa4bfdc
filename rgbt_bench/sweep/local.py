"""A sweep on this machine's CPU cores: `rgbt-bench sweep --jobs`, sharded over local single-threaded processes.

On CPU every sweep computation runs with one intra-op thread (rgbt_bench.threads), so one process uses one
core. `sweep_locally` starts `jobs` worker processes as local torch.distributed ranks
(rgbt_bench.processes.run_distributed, what `rgbt-bench run` uses for its sweep); each evaluates its share of
the images and rank 0 writes (rgbt_bench.sweep.distributed), so the cells are bit-identical whatever the
number of processes. The automatic count is one process per usable core, capped by the work: at most one
per image and one per MIN_PIXELS_PER_PROCESS pixel-evaluations (images x pixels x cells), because a worker
costs seconds to start (a fresh interpreter imports torch, loads the models and the data) that a small
sweep would not win back (tiny models forward about 1-2 million pixels a second on one core).
Never sharded here: under torchrun (the processes are torchrun's) and on CUDA (one process per GPU is
torchrun's job too); an explicit --jobs above 1 there is an error rather than silently ignored.
Models trained on the fly (synthetic dataset, no --checkpoint) are trained first, in this one process, as
`rgbt-bench run` trains before its sweep: a model trained by several ranks draws other crops and gets other
weights, which would make the cells depend on the core count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..corruptions import Suite, load_suite
from ..datasets import RGBTDataset, open_dataset
from ..device import resolve_device
from ..errors import ConfigError
from ..processes import plan_processes, run_distributed
from ..training.distributed import torchrun_world_size
from .engine import SweepConfig, model_refs, run_sweep, train_config
from .models import train_missing
from .plan import settings_of
from .selection import effective_limit, select

MIN_PIXELS_PER_PROCESS = 16_000_000


def check_jobs(jobs: Optional[int], device: str) -> None:
    """ConfigError for a --jobs this sweep cannot honour: below 1, or above 1 under torchrun or on CUDA."""
    if jobs is None:
        return
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if jobs > 1 and torchrun_world_size() > 1:
        raise ConfigError(f"--jobs {jobs} starts local processes, but this sweep already runs as one of "
                          f"{torchrun_world_size()} torchrun processes; drop --jobs")
    if jobs > 1 and resolve_device(device).type == "cuda":
        raise ConfigError(f"--jobs {jobs} shards a CPU sweep over processes; on CUDA a sweep runs in one process "
                          f"(several GPUs: torchrun --nproc_per_node N, docs/distributed.md); drop --jobs")


def workload(config: SweepConfig, full: RGBTDataset, suite: Suite, replicas: int) -> tuple[int, int]:
    """(images, pixel-evaluations) of `config`'s sweep of split `full`: images x pixels x cells, with
    `replicas` trained models x the settings of `suite` (all of them: a resumed sweep may have fewer left)."""
    images = min(len(full), effective_limit(config.limit, len(full)) or len(full))
    if images == 0:
        return 0, 0
    height, width = full[0].label.shape
    return images, images * height * width * len(settings_of(suite, config.seeds)) * replicas


def sweep_locally(config: SweepConfig, jobs: Optional[int] = None,
                  note: Callable[[str], None] = print) -> Path:
    """Run (or resume) `config`'s sweep on `jobs` local processes (None: automatic, see the module docstring;
    at most one per image either way); the results directory. With one process it runs in this one."""
    from ..training import train
    config.validate()
    check_jobs(jobs, config.device)
    if jobs == 1 or torchrun_world_size() > 1 or resolve_device(config.device).type == "cuda":
        return run_sweep(config)
    # the suite first: opening the built-in dataset renders it (seconds), and a wrong suite should not wait for that
    suite = select(load_suite(config.suite), config.corruptions, config.severities)
    dataset = open_dataset(config.dataset, config.split, **config.dataset_options)
    refs = model_refs(config, dataset.info.name)
    images, pixels = workload(config, dataset, suite, len(refs))
    processes, threads = plan_processes(jobs, config.device,
                                        images if jobs else min(images, pixels // MIN_PIXELS_PER_PROCESS))
    if processes == 1:
        return run_sweep(config)
    train_missing(refs, lambda ref: train_config(config, ref), train, note)
    run_distributed(run_sweep, config, processes, threads, "sweep")
    return Path(config.out).expanduser()
