"""One data pass of a sweep: every batch is decoded once, corrupted once per setting, and fed to every model.

For each batch, each distinct setting of the group (clean, or a corruption at a severity and seed) is
applied once, and every model of that setting runs on the result (eval mode, torch.inference_mode,
optional autocast; on CPU with one intra-op thread, rgbt_bench.threads, so that cells do not depend on the
core count). Per-image confusion matrices of the argmax predictions (equal to
ConfusionMatrix.per_image, with the label work shared by all cells: batch_confusion.LabelBins) and a
finite-logits flag are computed on the device for every cell and copied to the host together, once per batch.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..batch import Batch
from ..corruptions import apply_corruption
from ..datasets import DatasetInfo
from ..errors import ConfigError, RgbtBenchError
from ..models.user_code import user_code
from ..threads import single_threaded
from .batch_confusion import LabelBins
from .plan import PlannedCell, Setting, by_setting
from .progress import SweepProgress
from .timing import StageTimer


def check_logits(logits: object, batch: Batch, info: DatasetInfo, model_name: str) -> torch.Tensor:
    """The logits if they are [B, C, H, W] for this batch and dataset; else a ConfigError naming the model."""
    if not isinstance(logits, torch.Tensor):
        raise ConfigError(f"model '{model_name}' returned {type(logits).__name__}; expected a logits tensor "
                          f"[B, C, H, W]")
    b, h, w = batch.label.shape
    if logits.dtype == torch.bool or logits.is_complex():
        raise ConfigError(f"model '{model_name}' returned logits of dtype {logits.dtype}; expected real-valued "
                          f"scores [B, C, H, W] (float, or integer such as one-hot), whose argmax is the prediction")
    if logits.dim() != 4 or logits.shape[0] != b:
        raise ConfigError(f"model '{model_name}' returned logits of shape {tuple(logits.shape)}; expected "
                          f"[{b}, {info.num_classes}, {h}, {w}]")
    if logits.shape[1] != info.num_classes:
        raise ConfigError(f"model '{model_name}' outputs {logits.shape[1]} classes, but dataset '{info.name}' has "
                          f"{info.num_classes} classes; use a checkpoint trained on {info.name}")
    if tuple(logits.shape[2:]) != (h, w):
        raise ConfigError(f"model '{model_name}' returned {logits.shape[2]}x{logits.shape[3]} logits for "
                          f"{h}x{w} inputs; expected logits at the input resolution")
    return logits


def corrupt(batch: Batch, s: Setting) -> Batch:
    """The batch under setting `s` (the clean batch itself for 'clean')."""
    if s.clean:
        return batch
    return apply_corruption(batch, s.corruption, s.severity, s.seed, **s.options)


def run_pass(group: list[PlannedCell], models: dict[tuple[str, Optional[int]], nn.Module], loader: DataLoader,
             info: DatasetInfo, device: torch.device, amp_dtype: Optional[torch.dtype], timer: StageTimer,
             progress: SweepProgress, specs: Optional[dict[str, str]] = None) -> dict[str, np.ndarray]:
    """Evaluate every cell of `group` on this rank's images in one pass over `loader`; `models` are keyed by
    replica (CellKey.replica). `specs`: model name -> spec, so that an exception in a user model's forward is
    one line naming it (rgbt_bench.models.user_code).

    Returns each cell id's per-image matrices of this rank's images, int64 [n_local, C, C], in loader order.
    """
    settings = by_setting(group)
    order = [cell for _, cells in settings for cell in cells]
    c = info.num_classes
    # Filled in place: keeping each batch's small result array instead would pin freed batch-sized blocks
    # of the heap, and the process's memory would grow with the number of images (bench_scaling.py).
    results = {cell.key.cell_id: np.zeros((len(loader.dataset), c, c), dtype=np.int64) for cell in order}
    done = 0
    batches = iter(loader)
    with torch.inference_mode():
        while True:
            with timer.wall("data"):
                batch = next(batches, None)
            if batch is None:
                break
            with timer.device("transfer"):
                batch = batch.to(device, non_blocking=True)
            with timer.device("metric"):
                bins = LabelBins(batch.label, info.num_classes, info.ignore_index)
            matrices, finite = [], []
            for setting, cells in settings:
                with timer.device("corrupt"):
                    x = corrupt(batch, setting)
                for cell in cells:
                    cell_id = cell.key.cell_id
                    spec = (specs or {}).get(cell.key.model, cell.key.model)
                    forward = (cell.key.model, len(batch))  # counted into the model's images/s
                    with timer.device("model", cell_id, forward), single_threaded(device), torch.autocast(
                            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None), \
                            user_code(spec, "forward"):
                        logits = models[cell.key.replica](x.rgb, x.thermal)
                    logits = check_logits(logits, x, info, cell.key.model)
                    with timer.device("metric", cell_id):
                        per_image, all_finite = bins.score(logits)
                        matrices.append(per_image)
                        finite.append(all_finite)
            with timer.device("metric"):
                host = torch.stack(matrices).cpu().numpy()
                ok = torch.stack(finite).cpu().numpy()
            timer.collect()
            for cell, matrix, fine in zip(order, host, ok):
                if not fine:
                    names = ", ".join(m.name for m in batch.meta[:4]) + (", ..." if len(batch) > 4 else "")
                    raise RgbtBenchError(
                        f"model '{cell.key.model}' returned NaN or infinite logits in cell {cell.key.cell_id} "
                        f"(images {names}); check its checkpoint" + (" or run without --amp" if amp_dtype else ""))
                results[cell.key.cell_id][done:done + len(batch)] = matrix
            done += len(batch)
            progress.advance(len(batch))
    return results
