"""Evaluation of a model on a dataset split at full resolution, optionally sharded over DDP ranks.

Each rank evaluates the samples rank, rank + world, rank + 2*world, ... (no padding, so no duplicate is
counted; torch DistributedSampler pads with duplicates), then the confusion matrices are summed with
ConfusionMatrix.all_reduce. The convention defaults to the dataset's. The loader has its own generator, so
evaluating never advances the global torch RNG (training resumes depend on it). Logits whose per-pixel maximum
is NaN or infinite (weights gone bad, a broken eval-mode forward) are an error, as in the sweep
(rgbt_bench.sweep.passes): argmax would turn them into a confident-looking mIoU. The flag is summed over the
ranks with the matrix, so every rank raises together.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Subset

from ..batch import collate
from ..errors import ConfigError, RgbtBenchError
from ..loader import Loader
from ..metrics import ConfusionMatrix, SegMetrics, compute_metrics


def _shard(dataset: Dataset) -> Dataset:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Subset(dataset, range(dist.get_rank(), len(dataset), dist.get_world_size()))
    return dataset


@torch.no_grad()
def confusion_on(model: nn.Module, dataset: Dataset, batch_size: int = 8, device: torch.device | str = "cpu",
                 workers: int = 0, amp_dtype: Optional[torch.dtype] = None) -> ConfusionMatrix:
    """The summed confusion matrix of `model`'s argmax predictions over `dataset` (all ranks together)."""
    info = dataset.info
    device = torch.device(device)
    matrix = ConfusionMatrix(info.num_classes, info.ignore_index, device=device)
    loader = Loader(_shard(dataset), collate, batch_size=batch_size, shuffle=False, num_workers=workers,
                    pin_memory=device.type == "cuda", generator=torch.Generator())
    was_training = model.training
    bad_pixels: list[torch.Tensor] = []  # per batch, on the device: read once after the loop (no sync per batch)
    names: list[str] = []
    model.eval()
    try:
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(batch.rgb, batch.thermal)
            expected = (batch.label.shape[0], info.num_classes, *batch.label.shape[1:])
            if tuple(logits.shape) != expected:
                raise ConfigError(f"model returned logits of shape {tuple(logits.shape)} on {info.name}; expected "
                                  f"{expected} (batch, {info.num_classes} classes, input height, width)")
            bad_pixels.append((~torch.isfinite(logits.amax(1))).sum())
            names.append(", ".join(m.name for m in batch.meta[:4]) + (", ..." if len(batch) > 4 else ""))
            matrix.update(logits.argmax(1), batch.label)
    finally:
        model.train(was_training)
    per_batch = torch.stack(bad_pixels) if bad_pixels else torch.zeros(1, dtype=torch.int64, device=device)
    nonfinite = per_batch.sum().reshape(1)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(nonfinite, op=dist.ReduceOp.SUM)
    if int(nonfinite.item()):
        bad_batches = per_batch.nonzero().flatten().tolist()
        where = f"images {names[bad_batches[0]]}" if bad_batches else "on another process"
        split = getattr(dataset, "split", None)
        raise RgbtBenchError(f"model returned NaN or infinite logits for {int(nonfinite.item())} pixels of "
                             f"{info.name}" + (f" split '{split}'" if split else "") + f" ({where}) in eval mode; "
                             "its weights or its eval-mode forward are broken (a diverged run? try a lower --lr)")
    return matrix.all_reduce()


def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 8, device: torch.device | str = "cpu",
             convention: Optional[str] = None, workers: int = 0,
             amp_dtype: Optional[torch.dtype] = None) -> SegMetrics:
    """mIoU and accuracies of `model` on `dataset` under `convention` (default: the dataset's own)."""
    matrix = confusion_on(model, dataset, batch_size, device, workers, amp_dtype)
    return compute_metrics(matrix.matrix, convention or dataset.info.convention)
