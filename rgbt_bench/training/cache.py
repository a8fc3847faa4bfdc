"""The trained-model cache: one rule, used by `rgbt-bench run` and by `sweep`, for reusing a trained model.

A model trained on the fly (tiny preset, built-in dataset) is kept at
`<models_dir>/<model>_<preset>_<dataset>_seed<seed>.pt` (the `train` command's default name plus the training
seed, so that replicas trained with other seeds, `--train-seeds`, live side by side) with its resumable state at
`<stem>.last.pt`; both store the TrainConfig that produced them. For a requested TrainConfig, `plan` says:
- "ready": `.last.pt` finished (its iteration reached the requested count) with the requested training config,
  and `out` was written by that run: reused;
- "resume": `.last.pt` has the requested config but stopped short (the run was killed): resumed, which ends in
  the weights the uninterrupted run would have given (rgbt_bench.training.loop);
- "train": anything else (absent, unreadable, another config): trained from scratch, overwriting both files.
Fields that change how a run executes but not the weights it produces (RUNTIME_FIELDS) are not compared.

`on_the_fly_config` is the one training recipe of such models, so that `run` and `sweep` share them.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..checkpoint import load_checkpoint
from ..errors import CheckpointError
from .config import TrainConfig, default_crop

READY, RESUME, TRAIN = "ready", "resume", "train"
OUTCOME = {READY: "cached", RESUME: "resumed", TRAIN: "trained"}
# TrainConfig fields that change how a run executes but not the weights it produces.
RUNTIME_FIELDS = ("device", "out", "resume", "workers", "progress", "log_every", "eval_batch_size", "save_every")
# Val evaluations per training run (the checkpoint kept is the best on val): every eighth of the run, so that
# the last quarter holds two and the report can tell a curve still rising at the end (training.convergence).
# Each costs one pass over the val split: ~2.5 s CPU for tiny CRM, ~1.5 s for a baseline (loaded 2-core
# machine), about 5 % of the main job's training time.
EVALUATIONS = 8
# Iterations between resumable training states: a killed run loses at most this many.
SAVE_EVERY = 50


def training_key(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """The training-relevant part of a TrainConfig (as stored in checkpoints): what the cache compares."""
    values = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    return json.loads(json.dumps({k: v for k, v in values.items() if k not in RUNTIME_FIELDS}))


def _stored(path: Path) -> tuple[Optional[dict[str, Any]], int]:
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


def _difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """'eval_every 225, requested 2500; iterations 450, requested 5000': every training field that differs."""
    names = [k for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k)]
    return "; ".join(f"{k} {stored.get(k)!r}, requested {wanted.get(k)!r}" for k in names)


@dataclass(frozen=True)
class CachePlan:
    """What to do for one requested training run: `state` READY / RESUME / TRAIN, `config` the run to start
    (with `resume` set), `reason` why, in words."""

    config: TrainConfig
    state: str
    reason: str

    @property
    def outcome(self) -> str:
        """'cached', 'resumed' or 'trained': what happened to the checkpoint once the plan is carried out."""
        return OUTCOME[self.state]

    def describe(self) -> str:
        """One line for the user: what is done with which file, and why."""
        cfg = self.config
        if self.state == READY:
            return f"reusing {cfg.out_path} ({self.reason})"
        verb = "resuming" if self.state == RESUME else "training"
        return f"{verb} {cfg.model} ({cfg.preset}) for {cfg.iterations} iterations into {cfg.out_path} ({self.reason})"


def plan(config: TrainConfig) -> CachePlan:
    """Decide whether the checkpoint `config` would write can be reused, resumed or must be trained."""
    key = training_key(config)
    last_key, last_iteration = _stored(config.last_path)
    fresh = dataclasses.replace(config, resume=False)
    if last_key is None:
        found = f"{config.last_path.name} is unreadable" if config.last_path.is_file() else "no earlier run"
        return CachePlan(fresh, TRAIN, found)
    if last_key != key:
        return CachePlan(fresh, TRAIN, f"its training config differs: {_difference(last_key, key)}")
    if last_iteration < config.iterations:
        return CachePlan(dataclasses.replace(config, resume=True), RESUME,
                         f"interrupted at iteration {last_iteration} of {config.iterations}")
    out_key, _ = _stored(config.out_path)
    if out_key != key:
        return CachePlan(fresh, TRAIN, f"{config.out_path.name} is missing or from another run")
    return CachePlan(fresh, READY, "same training config, finished")


def cache_path(models_dir: str | Path, model: str, preset: str, dataset: str, seed: int) -> Path:
    """Where a model trained on the fly with training seed `seed` is kept: the `train` command's default file
    name with `_seed<seed>` added, in `models_dir`."""
    default = TrainConfig(model=model, preset=preset, dataset=dataset).out_path
    return Path(models_dir) / f"{default.stem}_seed{seed}{default.suffix}"


def on_the_fly_config(model: str, preset: str, dataset: str, models_dir: str | Path, image_size: tuple[int, int],
                      iterations: Optional[int] = None, seed: int = TrainConfig.seed, **fields: Any) -> TrainConfig:
    """The training run of a model trained on the fly on `dataset` (images of `image_size`) with training seed
    `seed`, cached in `models_dir`. `iterations` None: the model's default. `fields`: other TrainConfig fields
    (batch_size, dataset_options and runtime fields).

    The crop is set explicitly (the trainer's default for these images) so that the config compared with a
    cached checkpoint's is the one the trainer stores; val is evaluated EVALUATIONS times, the resumable
    state saved every SAVE_EVERY iterations."""
    config = TrainConfig(model=model, preset=preset, dataset=dataset, iterations=iterations, seed=seed,
                         crop=default_crop(dataset.partition(":")[0], image_size),
                         out=str(cache_path(models_dir, model, preset, dataset, seed)), **fields)
    return dataclasses.replace(config, eval_every=max(1, config.iterations // EVALUATIONS),
                               save_every=min(SAVE_EVERY, config.iterations))
