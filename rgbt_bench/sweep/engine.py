"""`run_sweep(SweepConfig) -> Path`: evaluate every model under every corruption of a suite, resumably.

Steps: check everything a user can get wrong (models, checkpoints, suite, dataset and its image sizes,
output directory, and that the finished cells already there belong with this run's data and settings:
rgbt_bench.sweep.stale) before anything slow starts; reuse, resume or train the models cached on the
synthetic dataset (rgbt_bench.training.cache); load all models onto the device; plan the cells not yet on
disk (a re-run skips finished ones that are reusable, rgbt_bench.sweep.cell: other ones are an error, or with
`replace_stale` moved aside; a torn or damaged cell is recomputed); then evaluate them in groups of
`cells_per_pass` cells, one data pass per group (rgbt_bench.sweep.passes), writing every cell of a group
atomically as soon as the pass ends (rgbt_bench.sweep.store). A kill loses at most the group in flight;
nothing written is ever rewritten differently, since each cell depends only on its own (model, setting) and
the images.
Under torchrun the images are sharded over the processes and rank 0 writes (rgbt_bench.sweep.distributed).
The sweep holds a lock on its output directory, so a second sweep there stops at once (rgbt_bench.lock).
"""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from rich.console import Console
from torch.utils.data import DataLoader, Subset

from .. import __version__
from ..atomic import remove_orphans
from ..batch import collate
from ..corruptions import CORRUPTION_VERSION, Suite, get_corruption, load_suite
from ..datasets import RGBTDataset, dataset_class, open_dataset, parse_spec
from ..datasets.fingerprint import dataset_fingerprint
from ..errors import ConfigError, writing
from ..inference import MODES, Inference, resolve_inference
from ..loader import Loader
from ..lock import OutputLock
from ..metrics import CONVENTIONS, compute_metrics
from ..training import train
from ..training.cache import on_the_fly_config
from ..training.config import TrainConfig
from . import distributed
from .cell import CellIdentity, CellKey, CellRecord, plain
from .costs import add_forwards, cost_key, count_costs, earlier_costs
from .manifest import MANIFEST, build_manifest, device_name, merge_previous, now, update_manifest
from .models import ModelRef, attach_checkpoints, load_models, parse_checkpoints, parse_models, train_missing
from .passes import run_pass
from .plan import PlannedCell, group_cells, parse_seeds, plan_cells, settings_of
from .progress import SweepProgress
from .selection import effective_limit, first_images, parse_names, parse_severities, select
from .stale import RunCells, move_aside, stale_cells
from .store import CELL_DIR, cell_paths, is_done, write_cell, write_json
from .timing import StageTimer


@dataclass
class SweepConfig:
    """One sweep. `models`: names or NAME=SPEC items (see rgbt_bench.sweep.models); `checkpoints`: name -> path.

    `suite`: a YAML path or a bundled suite name. `seeds`: corruption seeds (clean is evaluated once).
    `cells_per_pass`: cells evaluated per data pass (None: all in one pass, each image decoded once).
    `convention`: mIoU convention recorded with the metrics (None: the dataset's own).
    `train_iterations`: iterations for models trained on the fly on the synthetic dataset, cached in
    `models_dir` (None: each model's default); `train_seeds`: one such model per training seed (None: the
    training default, TrainConfig.seed), each evaluated as its own replica (CellKey.train_seed).
    `progress`: live display and notes on stderr (rank 0 only).
    `replace_stale`: finished cells this sweep would not reuse (computed with other weights, data or
    settings, of a model of this sweep at a setting it does not evaluate, unreadable or of an older layout)
    are moved to `<out>/stale/` instead of being an error (what `rgbt-bench run` does).
    `corruptions` / `severities`: restrict the suite (rgbt_bench.sweep.selection; None: all of it).
    `limit`: evaluate the first `limit` images of the split (None: all). `inference`: whole, slide or
    ms-flip with its `window` / `stride` or `scales` / `flip` (None: the mode's defaults; rgbt_bench.inference).
    `efficiency`: measure each model's parameters, FLOPs and images/s into the manifest (rgbt_bench.efficiency).
    """

    models: list[str]
    dataset: str = "synthetic"
    split: str = "test"
    suite: str = "default"
    out: str = "results/sweep"
    checkpoints: dict[str, str] = field(default_factory=dict)
    preset: str = "tiny"
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_size: int = 8
    device: str = "auto"
    workers: int = 0
    amp: bool = False
    convention: Optional[str] = None
    cells_per_pass: Optional[int] = None
    train_iterations: int = TrainConfig.iterations
    models_dir: str = "models"
    train_seeds: Optional[list[int]] = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    command: Optional[str] = None
    replace_stale: bool = False
    corruptions: Optional[list[str]] = None
    severities: Optional[list[int]] = None
    limit: Optional[int] = None
    inference: str = "whole"
    window: Optional[tuple[int, int]] = None
    stride: Optional[tuple[int, int]] = None
    scales: Optional[tuple[float, ...]] = None
    flip: Optional[bool] = None
    efficiency: bool = True

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value."""
        for name in ("batch_size", "train_iterations"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.cells_per_pass is not None and self.cells_per_pass < 1:
            raise ConfigError(f"cells per pass must be >= 1, got {self.cells_per_pass}")
        if self.convention is not None and self.convention not in CONVENTIONS:
            raise ConfigError(f"unknown mIoU convention '{self.convention}'; expected one of {', '.join(CONVENTIONS)}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds) \
                or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {self.seeds!r} are invalid; expected distinct integers >= 0")
        if self.train_seeds is not None:
            self.train_seeds = parse_seeds(self.train_seeds, "--train-seeds")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1 (the number of images to evaluate), got {self.limit}")
        if self.corruptions is not None:
            self.corruptions = parse_names(self.corruptions)
        if self.severities is not None:
            self.severities = parse_severities(self.severities)
        if self.inference not in MODES:
            raise MODES.unknown(self.inference)


def _amp_dtype(amp: bool, device: torch.device) -> Optional[torch.dtype]:
    if not amp:
        return None
    if device.type != "cuda":
        raise ConfigError(f"--amp needs a CUDA device, but the sweep runs on {device}; drop --amp or use --device cuda")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def check_writable(out: Path) -> None:
    """Create `out`/cells and prove a file can be written there; ConfigError naming the directory otherwise."""
    with writing(f"results to {out}"):
        (out / "cells").mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out / "cells")
        os.close(fd)
        os.unlink(probe)


def model_refs(config: SweepConfig, dataset_name: str) -> list[ModelRef]:
    """The trained models `config` evaluates, one per (model, training seed), each checked to resolve and its
    checkpoint to exist (rgbt_bench.sweep.models.attach_checkpoints)."""
    return attach_checkpoints(parse_models(config.models), parse_checkpoints(config.checkpoints), dataset_name,
                              config.preset, config.models_dir, config.train_seeds or [TrainConfig.seed])


def train_config(config: SweepConfig, ref: ModelRef) -> TrainConfig:
    """The training run of a model cached on the fly (the recipe `rgbt-bench run` uses too)."""
    image_size = tuple(open_dataset(config.dataset, "train", **config.dataset_options)[0].label.shape)
    return on_the_fly_config(ref.spec, config.preset, config.dataset, config.models_dir, image_size,
                             iterations=config.train_iterations, seed=ref.train_seed, device=config.device,
                             workers=config.workers, dataset_options=dict(config.dataset_options),
                             progress=config.progress)


class Sweep:
    """One invocation of a sweep on this process (rank)."""

    def __init__(self, config: SweepConfig, ctx: distributed.DistContext):
        self.config = config
        self.ctx = ctx
        self.console = Console(stderr=True)
        self.out = Path(config.out).expanduser()
        self.timer = StageTimer(ctx.device)
        self.amp_dtype = _amp_dtype(config.amp, ctx.device)
        self.suite: Suite = select(load_suite(config.suite), config.corruptions, config.severities)
        # models and checkpoint files before the dataset, which may be rendered (synthetic) or scanned first
        self.refs: list[ModelRef] = model_refs(config, dataset_class(parse_spec(config.dataset)[0]).info.name)
        full = open_dataset(config.dataset, config.split, **config.dataset_options)
        self.limit = effective_limit(config.limit, len(full))
        self.dataset: RGBTDataset = first_images(full, self.limit)
        self.info = self.dataset.info
        self.convention = config.convention or self.info.convention
        if len(self.dataset) == 0:
            raise ConfigError(f"split '{config.split}' of {config.dataset} has no images")
        self.dataset.check_one_size()
        self.image_size = tuple(self.dataset[0].label.shape)
        self.inference = resolve_inference(config.inference, window=config.window, stride=config.stride,
                                           scales=config.scales, flip=config.flip, dataset=self.info.name,
                                           image_size=self.image_size)
        self.fingerprint = dataset_fingerprint(self.dataset)

    # ----- notes ------------------------------------------------------------------------------------------
    def note(self, text: str, always: bool = False) -> None:
        """Print `text` on stderr from rank 0, as one line (log readers see it whole): with `progress`, or `always`."""
        if self.ctx.is_main and (self.config.progress or always):
            self.console.print(text, highlight=False, soft_wrap=True)

    # ----- records ----------------------------------------------------------------------------------------
    def _identity(self, cell: PlannedCell) -> CellIdentity:
        """What a finished cell must share with this run to be reused: weights, data, corruption, convention,
        batch size and precision (rgbt_bench.sweep.cell.CellIdentity)."""
        ref = self._ref(cell.key)
        s = cell.setting
        options = {} if s.clean else get_corruption(s.corruption).resolve_options(**s.options)
        return CellIdentity(model_spec=ref.spec, preset=self.config.preset, model_kwargs=ref.model_kwargs or {},
                            checkpoint_sha256=ref.sha256, num_classes=self.info.num_classes,
                            num_images=len(self.dataset), dataset_fingerprint=self.fingerprint,
                            dataset_options=self.config.dataset_options, corruption_name=s.corruption,
                            corruption_version=None if s.clean else CORRUPTION_VERSION, options=options,
                            convention=self.convention, batch_size=self.config.batch_size,
                            amp=self.amp_dtype is not None, limit=self.limit, inference=self.inference.as_dict())

    def _record(self, cell: PlannedCell, per_image: np.ndarray, pass_s: float) -> CellRecord:
        """The finished cell's record."""
        ref, s = self._ref(cell.key), cell.setting
        settings = {"modality": None, "params": {}} if s.clean else \
            get_corruption(s.corruption).settings(s.severity, **s.options)
        return CellRecord(
            key=cell.key, identity=self._identity(cell), class_names=tuple(self.info.class_names),
            ignore_index=self.info.ignore_index,
            metrics=plain(compute_metrics(per_image.sum(axis=0), self.convention).as_dict()),
            modality=settings["modality"], params=plain(settings["params"]),
            checkpoint=str(ref.checkpoint) if ref.checkpoint else None, checkpoint_source=ref.source,
            input_convention=ref.input_convention, selected_on=ref.selected_on,
            dataset_spec=self.dataset.spec, device=str(self.ctx.device), device_name=device_name(self.ctx.device),
            world_size=self.ctx.world_size, elapsed_s=round(self.timer.cells.get(cell.key.cell_id, 0.0), 4),
            pass_elapsed_s=round(pass_s, 4), finished_at=now(), rgbt_bench_version=__version__,
            training_sha256=ref.training_sha256, training=ref.training)

    def _ref(self, key: CellKey) -> ModelRef:
        return next(r for r in self.refs if r.replica == key.replica)

    # ----- planning ---------------------------------------------------------------------------------------
    def _check_directory(self, cells: list[PlannedCell], models_known: bool) -> None:
        """Refuse the first finished cell in the directory that cannot stay beside this run's cells (another
        split, suite or seeds, data, settings or, once `models_known`, weights: rgbt_bench.sweep.stale), or with
        `replace_stale` move every such cell aside."""
        run = RunCells(self.info.name, self.config.split, {c.key.cell_id: c.key for c in cells},
                       {c.key.cell_id: self._identity(c) for c in cells}, models_known)
        stale = stale_cells(self.out, run)
        if not stale:
            return
        if not self.config.replace_stale:
            raise stale[0][1]
        with self._writing():
            target = move_aside(self.out, [path for path, _ in stale])
        self.note(f"moved {len(stale)} cells computed with other weights, data or settings to {target}", always=True)

    def _pending(self, cells: list[PlannedCell]) -> list[str]:
        """Ids of the cells still to compute: those without a record and arrays that both read (a cell torn
        by a kill or damaged on disk is recomputed, never taken as done)."""
        pending = [cell for cell in cells if not is_done(self.out, cell.key)]
        torn = [c.key.cell_id for c in pending if any(p.exists() for p in cell_paths(self.out, c.key))]
        if torn:
            self.note(f"recomputing {len(torn)} cell(s) whose files do not read ({torn[0]}"
                      f"{', ...' if len(torn) > 1 else ''}): an interrupted write or a damaged file", always=True)
        return [cell.key.cell_id for cell in pending]

    def _start_manifest(self, extra: dict[str, Any], efficiency: dict[str, Optional[dict[str, Any]]]) -> None:
        path = self.out / MANIFEST
        manifest = build_manifest(
            command=self.config.command, device=self.ctx.device, world_size=self.ctx.world_size,
            dataset={"spec": self.dataset.spec, "name": self.info.name, "split": self.config.split,
                     "fingerprint": self.fingerprint,
                     "options": self.config.dataset_options, "num_images": len(self.dataset), "limit": self.limit,
                     "image_size": list(self.image_size),
                     "class_names": list(self.info.class_names), "ignore_index": self.info.ignore_index,
                     "convention": self.convention},
            suite=self.suite, models=self._model_records(efficiency),
            seeds=list(self.config.seeds),
            settings={k: v for k, v in asdict(self.config).items() if k not in ("models", "checkpoints", "command")})
        with self._writing():
            write_json(path, plain({**merge_previous(manifest, path), **extra}))

    def _model_records(self, efficiency: dict[str, Optional[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The manifest's `models` entries: each trained model and its cost (rgbt_bench.sweep.costs)."""
        return [{**r.describe(), "preset": self.config.preset, "efficiency": efficiency[r.name]} for r in self.refs]

    def _finish_manifest(self, extra: dict[str, Any]) -> None:
        path = self.out / MANIFEST
        with self._writing():
            write_json(path, plain(update_manifest(path, extra)))

    # ----- evaluation -------------------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        shard = Subset(self.dataset, distributed.shard_indices(len(self.dataset), self.ctx))
        return Loader(shard, collate, batch_size=self.config.batch_size, shuffle=False,
                      num_workers=self.config.workers, pin_memory=self.ctx.device.type == "cuda")

    def _write_group(self, group: list[PlannedCell], parts: list[dict[str, np.ndarray]], pass_s: float) -> None:
        names = list(self.dataset.names)
        night = [self.dataset.is_night(i) for i in range(len(self.dataset))]
        with self._writing():
            for cell in group:
                per_image = distributed.interleave([p[cell.key.cell_id] for p in parts], len(self.dataset))
                write_cell(self.out, self._record(cell, per_image, pass_s), per_image, names, night)

    def _writing(self) -> AbstractContextManager[None]:
        """A full disk or read-only mount while writing results: one error naming out (rgbt_bench.errors.writing)."""
        return writing(f"results to {self.out}", "the cells written so far are kept, rerun to finish")

    def run(self) -> Path:
        """Evaluate the pending cells while holding the output directory's lock (rank 0; rgbt_bench.lock)."""
        distributed.on_main(lambda: check_writable(self.out), self.ctx)
        lock = OutputLock(self.out)
        distributed.on_main(lock.acquire, self.ctx)
        try:
            distributed.on_main(self._remove_orphans, self.ctx)
            return self._evaluate()
        finally:
            lock.release()

    def _remove_orphans(self) -> None:
        """Remove the temporary files a killed sweep left (only the sweep writes there, and it holds the lock)."""
        with self._writing():
            remove_orphans(self.out, [MANIFEST])
            remove_orphans(self.out / CELL_DIR)

    def _evaluate(self) -> Path:
        cfg, ctx = self.config, self.ctx
        cells = plan_cells([r.replica for r in self.refs], settings_of(self.suite, cfg.seeds), self.info.name,
                           cfg.split)
        distributed.on_main(lambda: self._check_directory(cells, models_known=False), ctx)
        train_missing(self.refs, lambda ref: train_config(cfg, ref), train, lambda text: self.note(text, always=True))
        models = {replica: Inference(model, self.inference, replica[0]) for replica, model in
                  load_models(self.refs, self.info.num_classes, cfg.preset, ctx.device,
                              lambda text: self.note(text, always=True)).items()}
        distributed.require_same({"dataset fingerprint": self.fingerprint,
                                  **{f"checkpoint of {r.name}@{r.train_seed}": r.sha256 for r in self.refs}}, ctx)
        distributed.on_main(lambda: self._check_directory(cells, models_known=True), ctx)
        pending_ids = set(distributed.on_main(lambda: self._pending(cells), ctx))
        pending = [c for c in cells if c.key.cell_id in pending_ids]
        groups = group_cells(pending, cfg.cells_per_pass)
        plan = {"models": list(dict.fromkeys(r.name for r in self.refs)),
                "replicas": [list(r.replica) for r in self.refs],
                "settings": list(dict.fromkeys((c.key.corruption, c.key.severity, c.key.seed) for c in cells))}
        key = cost_key(self.image_size, ctx.device, cfg.batch_size, self.amp_dtype, self.inference)
        efficiency = distributed.on_main(lambda: earlier_costs(self.refs, self.out / MANIFEST, key), ctx) \
            if cfg.efficiency else {r.name: None for r in self.refs}
        distributed.on_main(lambda: self._start_manifest({"status": "running", "cells_total": len(cells),
                                                          "cells_pending": len(pending), "plan": plan,
                                                          "inference": self.inference.as_dict()}, efficiency), ctx)
        images = f"the first {len(self.dataset)} images (--limit)" if self.limit else f"{len(self.dataset)} images"
        self.note(f"sweep: {len(cells)} cells ({len(self.refs)} trained models x {len(cells) // len(self.refs)} "
                  f"settings), "
                  f"{len(cells) - len(pending)} already done, {len(pending)} to compute in {len(groups)} pass(es) "
                  f"over {images} of {self.dataset.spec}/{cfg.split}, inference {self.inference.describe()}, "
                  f"on {ctx.device}" + (f" x {ctx.world_size} processes" if ctx.enabled else ""))
        shard = len(distributed.shard_indices(len(self.dataset), ctx))
        start = time.perf_counter()
        with SweepProgress(len(pending), shard * len(groups), cfg.progress and ctx.is_main) as progress:
            for i, group in enumerate(groups):
                progress.status(f"pass {i + 1}/{len(groups)}")
                pass_start = time.perf_counter()
                parts = distributed.collective(
                    lambda: run_pass(group, models, self._loader(), self.info, ctx.device, self.amp_dtype,
                                     self.timer, progress, {r.name: r.spec for r in self.refs}), ctx)
                pass_s = time.perf_counter() - pass_start
                with self.timer.wall("write"):
                    distributed.on_main(lambda: self._write_group(group, parts, pass_s), ctx)
                progress.cells_done(len(group))
        ranks = distributed.collective(lambda: (self.timer.summary(time.perf_counter() - start),
                                                dict(self.timer.forwards)), ctx)
        timing = ranks[0][0]
        if cfg.efficiency:  # counted after the passes, so that the models' warm-up is part of their forward time
            uncounted = [name for name, record in efficiency.items() if record is None]
            for counted in distributed.collective(lambda: count_costs(
                    self.refs, uncounted[ctx.rank::ctx.world_size], models, self.image_size, ctx.device, key), ctx):
                efficiency.update(counted)
        distributed.on_main(lambda: self._finish_manifest({
            "status": "finished", "finished_at": now(), "cells_computed": len(pending), "timing": timing,
            **({"timing_per_rank": [t for t, _ in ranks]} if ctx.enabled else {}),
            "models": self._model_records(add_forwards(efficiency, [f for _, f in ranks], self.note))}), ctx)
        if pending and timing["harness_over_model"] is not None:
            self.note(f"wrote {len(pending)} cells to {self.out} in {timing['total_s']:.1f}s: models "
                      f"{timing['model_s']:.1f}s, harness (data, corruption, metric, writing) "
                      f"{100 * timing['harness_over_model']:.1f}% of model time")
        return self.out


def run_sweep(config: SweepConfig) -> Path:
    """Run (or resume) the sweep described by `config`; returns the results directory.

    Everything a user can get wrong is checked before the slow work starts; finished cells already in
    `config.out` are reused when they belong with this run (see the module docstring).

    Args:
        config: models, dataset and split, suite (restricted by `corruptions` / `severities`), seeds,
            output directory and evaluation settings; the fields are described on SweepConfig.

    Returns:
        `config.out` as a Path: one finished cell per (model, training seed, corruption, severity,
        corruption seed) under cells/ (rgbt_bench.sweep.store) and the manifest run.json, which
        rgbt_bench.report.load_results reads.

    Raises:
        ConfigError: an invalid setting, model, suite or output directory, or finished cells in `config.out`
            computed with other weights, data or settings (unless `replace_stale`).
        DataError: a dataset that cannot be read, or unreadable or old-layout cells in `config.out`.
        CheckpointError: a checkpoint that is unreadable or does not fit its model.

    Example:
        MFNet (tiny, trained on the fly for one iteration into models/) on four built-in images, clean
        and with the thermal camera missing:

        >>> from rgbt_bench.sweep import SweepConfig, run_sweep
        >>> config = SweepConfig(models=["mfnet"], dataset_options={"size": (32, 48), "counts": (8, 2, 4)},
        ...                      corruptions=["thermal_missing"], severities=[5], train_iterations=1,
        ...                      out="results/example", progress=False, efficiency=False)
        >>> out = run_sweep(config)
        >>> for cell in sorted((out / "cells").glob("*.json")):
        ...     print(cell.name)
        mfnet__synthetic__test__clean__s0__seed0__train1024.json
        mfnet__synthetic__test__thermal_missing__s5__seed0__train1024.json
    """
    config.validate()
    ctx = distributed.setup(config.device)
    try:
        return Sweep(config, ctx).run()
    finally:
        distributed.teardown(ctx)
