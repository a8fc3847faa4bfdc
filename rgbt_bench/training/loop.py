"""`train(config) -> Path`: the training loop, single-process or under torchrun.

Per iteration: poly LR for this iteration (or, with lr_step="epoch", for this epoch), forward through the
TrainingObjective (AMP on CUDA: bf16 where supported, else fp16 with a GradScaler), backward,
gradient-norm clipping, AdamW step. Every `eval_every` iterations (or `eval_every_epochs` epochs) and at the
end the model is evaluated on the VAL split; the best val mIoU is written to `out` (which, once training
ends, records every evaluation of the run in metrics["history"]), the full state (model,
optimiser, scaler, iteration, per-rank RNG states, best so far) to `<out stem>.last.pt` every `save_every`
iterations and at the end. Only with select_on="test" (the published CRM behaviour, asked for explicitly)
is the test split used, and then every start and end of the run prints selection.warning_for_test_selection.
The run starts from the ImageNet weights the model kwargs name, or from an `init` checkpoint's weights.
Only rank 0 writes files and shows progress (its own loss, not averaged over ranks). Under DDP, models with
their own `loss` (CRM: several paths through one head) are wrapped with find_unused_parameters; plain
models, whose every parameter feeds the logits, are not. A resumed run repeats exactly what the
uninterrupted run would have done (data order and augmentation are functions of (seed, epoch, index); RNG
states are restored), so on a deterministic device it ends with the same weights.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import load_checkpoint, load_state_into, save_checkpoint
from ..console import LoggedProgress, stderr_console
from ..datasets import open_dataset
from ..errors import CheckpointError, ConfigError, RgbtBenchError, writing
from ..models import build_model, resolve_builder
from ..models.user_code import user_code
from ..threads import single_threaded
from . import distributed
from .augment import AugmentedDataset, AugmentParams
from .config import TrainConfig, check_crop, default_crop
from .data import EpochSampler, train_loader
from .evaluate import evaluate
from .finetune import init_model_kwargs, load_init_weights, read_init
from .objective import TrainingObjective
from .optim import build_optimizer, schedule_step, set_lr
from .outputs import check_outputs, locked_outputs
from .recipes import recipe_lines
from .rng import capture_rng, restore_rng, seed_everything
from .selection import warning_for_test_selection

DEFAULT_IGNORE = 255
VAL_SPLIT = "val"
# Config fields whose change on resume alters the run's trajectory (a warning, not an error).
TRAJECTORY_FIELDS = ("iterations", "batch_size", "lr", "weight_decay", "backbone_lr_mult", "grad_clip",
                     "poly_power", "warmup_iterations", "crop", "scale_range", "seed", "amp", "dataset_options",
                     "no_decay", "lr_step", "scale_choices", "max_size", "resize_antialias", "photometric",
                     "flip_prob", "ignore_mode", "init_sha256")


@dataclass
class RunState:
    """What changes while training and is saved for resume."""

    iteration: int = 0
    best_miou: float = -math.inf
    best_iteration: Optional[int] = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _amp_dtype(config: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    if config.amp is None:
        enabled = device.type == "cuda"
    elif config.amp and device.type != "cuda":
        raise ConfigError(f"--amp needs a CUDA device, but training runs on {device}; drop --amp or use --device cuda")
    else:
        enabled = config.amp
    if not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _augment_params(config: TrainConfig, crop: tuple[int, int], ignore_index: int) -> AugmentParams:
    return AugmentParams(crop=crop, ignore_index=ignore_index, scale_range=config.scale_range,
                         scale_choices=config.scale_choices, max_size=config.max_size,
                         antialias=config.resize_antialias, photometric=config.photometric,
                         flip_prob=config.flip_prob)


def _build(config: TrainConfig, num_classes: int) -> nn.Module:
    kwargs = config.effective_model_kwargs()
    try:
        return build_model(config.model, num_classes, config.preset, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model '{config.model}' (preset {config.preset}) rejected model kwargs {kwargs}: "
                          f"{exc}") from exc


class Trainer:
    """One training run; `run()` returns the selected checkpoint's path."""

    def __init__(self, config: TrainConfig, ctx: distributed.DistContext):
        self.config = config
        self.ctx = ctx
        self.console = stderr_console()
        resolve_builder(config.model)
        opts = dict(config.dataset_options)
        self.train_set = open_dataset(config.dataset, "train", **opts)
        self.info = self.train_set.info
        self.select_split = config.select_on
        if self.select_split != VAL_SPLIT and self.select_split not in self.info.splits:
            raise ConfigError(f"--select-on {self.select_split}: {config.dataset} has no {self.select_split} split "
                              f"(splits: {', '.join(self.info.splits)})")
        self.select_set = (open_dataset(config.dataset, self.select_split, **opts)
                           if self.select_split in self.info.splits else None)
        image_size = self.train_set.check_one_size()
        if self.select_set is not None:
            self.select_set.check_one_size()
        self.ignore_index = self.info.ignore_index if self.info.ignore_index is not None else DEFAULT_IGNORE
        if config.crop is not None:
            check_crop(config.crop, image_size, max(config.scale_choices or config.scale_range))
        self.crop = config.crop or default_crop(self.info.name, image_size)
        self.config = config = dataclasses.replace(config, crop=self.crop)
        if config.batch_size % ctx.world_size:
            raise ConfigError(f"batch size {config.batch_size} does not split evenly over {ctx.world_size} processes")
        self.per_rank = config.batch_size // ctx.world_size
        augmented = AugmentedDataset(self.train_set, _augment_params(config, self.crop, self.ignore_index), config.seed)
        self.sampler = EpochSampler(augmented, ctx.world_size, ctx.rank, config.seed)
        self.iters_per_epoch = self.sampler.num_samples // self.per_rank
        if self.iters_per_epoch == 0:
            raise ConfigError(f"the train split of {config.dataset} has {len(self.train_set)} samples, fewer than "
                              f"batch size {config.batch_size}; lower --batch-size")
        self.eval_every = (config.eval_every_epochs * self.iters_per_epoch if config.eval_every_epochs
                           else config.eval_every)
        self.loader = train_loader(augmented, self.sampler, self.per_rank, config.workers,
                                   config.seed + ctx.rank, ctx.device.type == "cuda")
        init = read_init(config.init) if config.init else None
        if init is not None:  # build as the init weights were built, unless this run says otherwise
            self.config = config = dataclasses.replace(
                config, model_kwargs={**init_model_kwargs(init[0]), **config.model_kwargs})
        seed_everything(config.seed)
        self.model = _build(config, self.info.num_classes)
        if init is not None and not config.resume:
            load_init_weights(self.model, init[0], config.init, config.model, config.preset, self.info.num_classes)
            self.config = config = dataclasses.replace(config, init_sha256=init[1])
        self.model.to(ctx.device)
        self.optimizer = build_optimizer(self.model, config.lr, config.weight_decay, config.resolved_backbone_lr_mult(),
                                         config.no_decay)
        self.amp_dtype = _amp_dtype(config, ctx.device)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp_dtype == torch.float16)
        self.objective = TrainingObjective(self.model, self.ignore_index)
        self.state = RunState()
        self.lr = config.lr

    # ----- checkpoints -------------------------------------------------------------------------------
    def _payload(self, metrics: dict[str, Any]) -> dict[str, Any]:
        payload = {"model": self.config.model, "preset": self.config.preset, "num_classes": self.info.num_classes,
                   "class_names": list(self.info.class_names), "dataset": self.config.dataset,
                   "config": self.config.to_dict(), "metrics": metrics, "iteration": self.state.iteration,
                   "input_convention": getattr(self.model, "input_convention", None),
                   "state_dict": self.model.state_dict()}
        if isinstance(getattr(self.model, "ignore_mode", None), str):  # the loss's mode, also when defaulted
            payload["ignore_mode"] = self.model.ignore_mode
        return payload

    def _metrics(self) -> dict[str, Any]:
        """Selection-split metrics of the weights being saved (None when not evaluated) and the history."""
        latest = self.state.history[-1] if self.state.history else None
        current = latest if latest and latest["iteration"] == self.state.iteration else None
        return {self.select_split: current, "history": list(self.state.history)}

    def _save_selected(self) -> None:
        """`out`: the best weights on the selection split (val; test only when asked for), or the last ones
        when the dataset has no val split."""
        metrics = {**self._metrics(), "selected_on": self.select_split if self.select_set is not None else "last"}
        save_checkpoint(self.config.out_path, self._payload(metrics))

    def _save_last(self, rng_states: list[dict[str, Any]]) -> None:
        payload = self._payload(self._metrics())
        payload.update({"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                        "scheduler": {"kind": "poly", "power": self.config.poly_power,
                                      "warmup": self.config.warmup_iterations, "iteration": self.state.iteration},
                        "rng": rng_states, "world_size": self.ctx.world_size,
                        "best": {"miou": self.state.best_miou if self.state.best_iteration is not None else None,
                                 "iteration": self.state.best_iteration}})
        save_checkpoint(self.config.last_path, payload)

    def _resume(self) -> None:
        path = self.config.last_path
        if not path.is_file():
            raise CheckpointError(f"cannot resume: {path} does not exist; start without --resume")
        ckpt = load_checkpoint(path, map_location=self.ctx.device)
        if ckpt.get("num_classes") != self.info.num_classes:
            raise CheckpointError(f"cannot resume from {path}: it was trained for {ckpt.get('num_classes')} classes "
                                  f"({ckpt.get('dataset')}), but {self.config.dataset} has {self.info.num_classes}")
        for key in ("model", "preset"):
            if ckpt.get(key) != getattr(self.config, key):
                raise CheckpointError(f"cannot resume from {path}: its {key} is '{ckpt.get(key)}', "
                                      f"this run's is '{getattr(self.config, key)}'")
        selected = ckpt.get("config", {}).get("select_on", VAL_SPLIT)
        if selected != self.config.select_on:  # the best so far was measured on the other split
            raise CheckpointError(f"cannot resume from {path}: its best checkpoint so far was selected on the "
                                  f"'{selected}' split, this run selects on '{self.config.select_on}'; resume with "
                                  f"--select-on {selected} or start a new run without --resume")
        load_state_into(self.model, ckpt["state_dict"], str(path), self.info.num_classes)
        if "optimizer" not in ckpt or "rng" not in ckpt:
            raise CheckpointError(f"cannot resume from {path}: it holds weights only, no training state")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        best = ckpt["best"]
        self.state = RunState(iteration=int(ckpt["iteration"]),
                              best_miou=best["miou"] if best["miou"] is not None else -math.inf,
                              best_iteration=best["iteration"], history=list(ckpt["metrics"]["history"]))
        if len(ckpt["rng"]) == self.ctx.world_size:
            restore_rng(ckpt["rng"][self.ctx.rank], self.model)
        else:
            seed_everything(self.config.seed + self.ctx.rank + self.state.iteration)
            self._note(f"resuming with {self.ctx.world_size} processes from a {len(ckpt['rng'])}-process state: "
                       f"RNG streams re-seeded, so the run will not repeat the original exactly")
        if self.config.init:  # the weights come from the saved state; the start they came from is recorded
            self.config = dataclasses.replace(self.config, init_sha256=ckpt["config"].get("init_sha256"))
        changed = [k for k in TRAJECTORY_FIELDS if ckpt["config"].get(k) != self.config.to_dict()[k]]
        if changed:
            self._note(f"resuming with changed {', '.join(changed)}; the run differs from the interrupted one")
        self._note(f"resumed from {path} at iteration {self.state.iteration}")

    # ----- evaluation and logging ----------------------------------------------------------------------
    def _note(self, text: str) -> None:
        if self.ctx.is_main:
            self.console.print(text, highlight=False, soft_wrap=True)  # one line each in CI logs

    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            with writing(f"training log {self.config.log_path}", "the checkpoints written so far are kept"), \
                    open(self.config.log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def _start_log(self) -> None:
        """A fresh log, or on resume the old one cut back to the resumed iteration."""
        if not self.ctx.is_main:
            return
        path = self.config.log_path
        kept = []
        if self.config.resume and path.is_file():
            kept = [line for line, record in log_records(path.read_text())
                    if record["iteration"] <= self.state.iteration]
        with writing(f"training outputs to {path.parent}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(line + "\n" for line in kept))

    def _evaluate(self) -> bool:
        """Evaluate on the selection split (all ranks, one model); record it; True when it is the best so far."""
        distributed.broadcast_buffers(self.model, self.ctx)
        with user_code(self.config.model, f"forward ({self.select_split} evaluation)"):
            seg = evaluate(self.model, self.select_set, self.config.eval_batch_size, self.ctx.device,
                           amp_dtype=self.amp_dtype)
        record = {"iteration": self.state.iteration, "split": self.select_split, **seg.as_dict()}
        self.state.history.append(record)
        self._log(record)
        improved = seg.miou > self.state.best_miou
        if improved:
            self.state.best_miou, self.state.best_iteration = seg.miou, self.state.iteration
        self._note(f"iteration {self.state.iteration}: {self.select_split} mIoU {100 * seg.miou:.2f} "
                   f"({seg.convention}), "
                   f"best {100 * self.state.best_miou:.2f} at iteration {self.state.best_iteration}")
        return improved

    def _checkpoint(self, force: bool = False) -> None:
        """Evaluate and save when the schedule (or the end of training) says so."""
        it, cfg = self.state.iteration, self.config
        save_every = self.eval_every if cfg.save_every is None else cfg.save_every
        do_eval = self.select_set is not None and (force or (self.eval_every and it % self.eval_every == 0))
        do_save = force or (save_every and it % save_every == 0)
        improved = self._evaluate() if do_eval else False
        if not (do_save or improved):
            return
        rng_states = distributed.all_gather_objects(capture_rng(self.model), self.ctx)
        if self.ctx.is_main:
            if improved or (force and self.select_set is None):
                self._save_selected()
            elif force and self.select_set is not None:
                self._complete_selected_history()
            self._save_last(rng_states)
        distributed.barrier(self.ctx)

    def _complete_selected_history(self) -> None:
        """At the end of training, give the selected checkpoint (saved at its best evaluation) the evaluations
        made after it, so that it records the whole curve (rgbt_bench.training.convergence judges it)."""
        path = self.config.out_path
        if not path.is_file():
            return
        ckpt = load_checkpoint(path)
        if ckpt["metrics"].get("history") != self.state.history:
            ckpt["metrics"] = {**ckpt["metrics"], "history": list(self.state.history)}
            save_checkpoint(path, ckpt)

    # ----- training ----------------------------------------------------------------------------------
    def _step(self, net: nn.Module, batch) -> dict[str, float]:
        cfg = self.config
        step = schedule_step(self.state.iteration, self.iters_per_epoch, cfg.lr_step)
        self.lr = cfg.lr * set_lr(self.optimizer, step, cfg.iterations, cfg.poly_power, cfg.warmup_iterations)
        batch = batch.to(self.ctx.device, non_blocking=True)
        # DDP's forward broadcasts buffers and its backward all-reduces gradients: a peer lost there is one line
        with distributed.peers(f"training step {self.state.iteration + 1}", self.ctx, backend_errors_only=True):
            with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None), user_code(cfg.model, "forward or loss"):
                terms = net(batch.rgb, batch.thermal, batch.label)
            loss = terms["loss"]
            values = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()}
            if distributed.all_reduce_flag(not math.isfinite(values["loss"]), self.ctx):
                raise RgbtBenchError(f"training loss is not finite at iteration {self.state.iteration} "
                                     f"({values['loss']} on rank {self.ctx.rank}); try a lower --lr or --grad-clip")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            values["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return values

    def _progress(self) -> LoggedProgress:
        return LoggedProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=self.console,
                              disable=not (self.ctx.is_main and self.config.progress), unit="iterations")

    def run(self) -> Path:
        cfg = self.config
        if cfg.resume:
            self._resume()
        else:
            seed_everything(cfg.seed + self.ctx.rank)
        if self.state.iteration >= cfg.iterations:
            self._note(f"{cfg.last_path} already reached iteration {self.state.iteration} of {cfg.iterations}; "
                       f"nothing to train")
            return cfg.out_path
        self._start_log()
        net: nn.Module = self.objective
        if self.ctx.enabled:
            net = DistributedDataParallel(self.objective, device_ids=[self.ctx.device.index]
                                          if self.ctx.device.type == "cuda" else None,
                                          find_unused_parameters=self.objective.uses_model_loss)
        self.model.train()
        default = "no --recipe: TrainConfig's defaults (the bundled tiny_synthetic recipe) and the values given"
        for line in recipe_lines(cfg) if cfg.recipe else [default]:
            self._note(line)
        self._note(f"training {cfg.model} ({cfg.preset}) on {cfg.dataset}: {len(self.train_set)} train images, "
                   f"crop {self.crop[0]}x{self.crop[1]}, batch {cfg.batch_size} over {self.ctx.world_size} "
                   f"process(es) on {self.ctx.device}, {cfg.iterations} iterations ({self.iters_per_epoch} per "
                   f"epoch), {self._selection_text()}")
        self._warn_test_selection()
        window: dict[str, float] = {}
        window_n, window_t = 0, time.perf_counter()
        try:
            with self._progress() as progress:
                task = progress.add_task("train", total=cfg.iterations, completed=self.state.iteration, status="")
                while self.state.iteration < cfg.iterations:
                    it = self.state.iteration
                    self.sampler.start_at(it // self.iters_per_epoch, (it % self.iters_per_epoch) * self.per_rank)
                    for batch in self.loader:
                        values = self._step(net, batch)
                        self.state.iteration += 1
                        for k, v in values.items():
                            window[k] = window.get(k, 0.0) + v
                        window_n += 1
                        if window_n == cfg.log_every or self.state.iteration == cfg.iterations:
                            elapsed = time.perf_counter() - window_t
                            rate = window_n * cfg.batch_size / max(elapsed, 1e-9)
                            means = {k: v / window_n for k, v in window.items()}
                            self._log({"iteration": self.state.iteration, "lr": self.lr,
                                       "images_per_s": rate, **means})
                            progress.update(task, status=f"loss {means['loss']:.4f}  {rate:.1f} img/s")
                            window, window_n, window_t = {}, 0, time.perf_counter()
                        progress.update(task, completed=self.state.iteration)
                        if self.state.iteration >= cfg.iterations:
                            break
                        self._checkpoint()
            self._checkpoint(force=True)
        except KeyboardInterrupt:
            self._note(f"interrupted at iteration {self.state.iteration}; {cfg.last_path} holds the last saved "
                       f"state: rerun with --resume to continue")
            raise
        best = "last weights (no val split)"
        if self.state.best_iteration is not None:
            best = (f"best {self.select_split} mIoU {100 * self.state.best_miou:.2f} at iteration "
                    f"{self.state.best_iteration}")
        self._note(f"saved {cfg.out_path} ({best}); resumable state in {cfg.last_path}")
        self._warn_test_selection()
        return cfg.out_path

    def _selection_text(self) -> str:
        if self.select_set is None:
            return "no val split: keeping the last weights"
        return f"best checkpoint selected on the {self.select_split} split"

    def _warn_test_selection(self) -> None:
        if self.select_split == "test":
            self._note(warning_for_test_selection(str(self.config.out_path)))


def log_records(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for each whole JSON line of a training log. A line torn by a full disk or a kill during
    its append does not parse and is dropped, like blank lines."""
    records = []
    for line in text.splitlines():
        try:
            records.append((line, json.loads(line)))
        except json.JSONDecodeError:
            continue
    return records


def train(config: TrainConfig) -> Path:
    """Train `config.model` on `config.dataset`; returns the selected checkpoint's path (`config.out_path`).

    On CPU the run computes with one intra-op thread (rgbt_bench.threads), so its weights do not depend on the
    core count or thread settings."""
    check_outputs(config)
    ctx = distributed.setup(config.device)
    try:
        with single_threaded(ctx.device):
            trainer = Trainer(config, ctx)
            with locked_outputs(config, ctx):
                return trainer.run()
    finally:
        distributed.teardown(ctx)
