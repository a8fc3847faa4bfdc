"""Confusion-matrix accumulator: int64 [C, C], rows = ground truth, columns = prediction."""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist

_INT32_MAX = 2**31 - 1


def _check_range(t: torch.Tensor, lo: int, hi: int) -> bool:
    """Whether every value of integer tensor `t` lies in [lo, hi] (one reduction pass)."""
    if not t.numel():
        return True
    t_lo, t_hi = torch.aminmax(t)
    return lo <= int(t_lo) and int(t_hi) <= hi


def _bin_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: Optional[int],
                images: int) -> torch.Tensor:
    """int64 [images, C, C] counts of (label, prediction) for `images` equal slices of pred and target.

    Per image, in one reused int32 buffer: label clamped to [-1, C] (so both kinds of out-of-range label land
    in discard bins), bin = C * (label + 1) + pred, one bincount. A cache-sized buffer reused image by image
    and int32 arithmetic make this faster than a per-image numpy bincount, where masking and boolean
    indexing of the whole int64 batch were several times slower (benchmarks/bench_metric.py).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
    c = num_classes
    if c * c + 2 * c > _INT32_MAX:
        raise ValueError(f"{c} classes are too many for a confusion matrix")
    if not _check_range(pred, 0, c - 1):
        lo, hi = torch.aminmax(pred)
        raise ValueError(f"predicted class ids must lie in 0..{c - 1}, got {int(lo)}..{int(hi)}")
    if not _check_range(target, -_INT32_MAX, _INT32_MAX):
        target = target.clamp(-1, c)
    labels = target.reshape(images, -1)
    preds = pred.reshape(images, -1)
    counts = torch.empty(images, c, c, dtype=torch.int64, device=pred.device)
    idx = torch.empty(labels.shape[1], dtype=torch.int32, device=pred.device)
    ignore_in_range = ignore_index is not None and 0 <= ignore_index < c
    for i in range(images):
        idx.copy_(labels[i]).clamp_(-1, c)
        if ignore_in_range:
            idx.masked_fill_(labels[i] == ignore_index, -1)
        torch.add(preds[i], idx, alpha=c, out=idx).add_(c)
        counts[i] = torch.bincount(idx, minlength=c * c + 2 * c)[c:c * c + c].view(c, c)
    return counts


class ConfusionMatrix:
    """Accumulates a confusion matrix on the predictions' device with one bincount per update.

    Pixels whose label equals `ignore_index` (or lies outside [0, C)) are not counted; predictions
    outside [0, C) raise, since they mean the model and the dataset disagree on the class count.

    Args:
        num_classes: C, the dataset's class count.
        ignore_index: label value that is never counted (e.g. 255), or None.
        device: where the int64 [C, C] `matrix` lives (the predictions' device avoids copies).

    Example:
        >>> import torch
        >>> cm = ConfusionMatrix(num_classes=3, ignore_index=255)
        >>> cm.update(torch.tensor([[0, 1], [2, 2]]), torch.tensor([[0, 1], [1, 255]]))
        >>> cm.matrix
        tensor([[1, 0, 0],
                [0, 1, 1],
                [0, 0, 0]])
        >>> from rgbt_bench.metrics import compute_metrics
        >>> compute_metrics(cm.matrix).iou
        (1.0, 0.5, 0.0)
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = None, device: torch.device | str = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @staticmethod
    def compute(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                ignore_index: Optional[int] = None) -> torch.Tensor:
        """The confusion matrix of one (pred, target) pair of equal shape, as a new int64 tensor."""
        return _bin_counts(pred, target, num_classes, ignore_index, images=1)[0]

    @staticmethod
    def per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                  ignore_index: Optional[int] = None) -> torch.Tensor:
        """One confusion matrix per image of a [B,H,W] batch: int64 [B, C, C], one bincount in all."""
        b = pred.shape[0] if pred.dim() else 1
        return _bin_counts(pred, target, num_classes, ignore_index, images=b)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted ids and labels (any equal shapes, e.g. [B,H,W])."""
        self.matrix += self.compute(pred.to(self.matrix.device), target.to(self.matrix.device),
                                    self.num_classes, self.ignore_index)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another accumulator's counts into this one (same class count)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class matrix into {self.num_classes}-class one")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all processes of the default torch.distributed group (no-op without one)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    def reset(self) -> None:
        self.matrix.zero_()
