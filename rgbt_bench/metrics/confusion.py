"""Confusion-matrix accumulator: int64 [C, C], rows = ground truth, columns = prediction."""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist


class ConfusionMatrix:
    """Accumulates a confusion matrix on the predictions' device with one bincount per update.

    Pixels whose label equals `ignore_index` (or lies outside [0, C)) are not counted; predictions
    outside [0, C) raise, since they mean the model and the dataset disagree on the class count.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = None, device: torch.device | str = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @staticmethod
    def compute(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                ignore_index: Optional[int] = None) -> torch.Tensor:
        """The confusion matrix of one (pred, target) pair of equal shape, as a new int64 tensor."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
        target = target.reshape(-1)
        pred = pred.reshape(-1)
        keep = (target >= 0) & (target < num_classes)
        if ignore_index is not None:
            keep &= target != ignore_index
        target, pred = target[keep], pred[keep]
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
            raise ValueError(f"predicted class ids must lie in 0..{num_classes - 1}")
        idx = target.to(torch.int64) * num_classes + pred.to(torch.int64)
        return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)

    @staticmethod
    def per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                  ignore_index: Optional[int] = None) -> torch.Tensor:
        """One confusion matrix per image of a [B,H,W] batch: int64 [B, C, C], one bincount in all."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
        b = pred.shape[0]
        c2 = num_classes * num_classes
        target = target.reshape(b, -1).to(torch.int64)
        pred = pred.reshape(b, -1).to(torch.int64)
        keep = (target >= 0) & (target < num_classes)
        if ignore_index is not None:
            keep &= target != ignore_index
        if bool(((pred < 0) | (pred >= num_classes))[keep].any()):
            raise ValueError(f"predicted class ids must lie in 0..{num_classes - 1}")
        offset = torch.arange(b, device=pred.device).unsqueeze(1) * c2
        idx = (offset + target * num_classes + pred)[keep]
        return torch.bincount(idx, minlength=b * c2).reshape(b, num_classes, num_classes)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted ids and labels (any equal shapes, e.g. [B,H,W])."""
        self.matrix += self.compute(pred.to(self.matrix.device), target.to(self.matrix.device),
                                    self.num_classes, self.ignore_index)

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another accumulator's counts into this one (same class count)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class matrix into {self.num_classes}-class one")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> "ConfusionMatrix":
        """Sum the matrix over all processes of the default torch.distributed group (no-op without one)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    def reset(self) -> None:
        self.matrix.zero_()
