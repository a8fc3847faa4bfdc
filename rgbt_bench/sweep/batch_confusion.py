"""Per-image confusion matrices of many predictions against one batch of labels, for the sweep's inner loop.

A sweep scores every cell (model x corruption setting) against the same labels. The label half of the
bincount index (image offset + label * C, or a discard bin for ignored pixels) is computed once per batch;
each cell then costs one add and one bincount, instead of ConfusionMatrix.per_image's masking and boolean
indexing per call (about 15x less work per cell on the CPU). The result equals ConfusionMatrix.per_image
(rows = label, columns = prediction; pixels with the ignore label or a label outside [0, C) not counted).
"""
from __future__ import annotations

from typing import Optional

import torch


class LabelBins:
    """The labels of one [B, H, W] batch, prepared for `per_image(pred)`."""

    def __init__(self, label: torch.Tensor, num_classes: int, ignore_index: Optional[int] = None):
        b = label.shape[0]
        c = num_classes
        label = label.reshape(b, -1).to(torch.int64)
        keep = (label >= 0) & (label < c)
        if ignore_index is not None:
            keep &= label != ignore_index
        offset = torch.arange(b, device=label.device).unsqueeze(1) * (c * c)
        self.counted = b * c * c
        # Ignored pixels land in bins counted .. counted + c - 1 whatever the prediction, and are cut off.
        self.base = torch.where(keep, offset + label * c, torch.full_like(label, self.counted))
        self.shape = (b, c, c)

    def per_image(self, pred: torch.Tensor) -> torch.Tensor:
        """int64 [B, C, C] matrices of predicted class ids `pred` [B, H, W] (all in [0, C))."""
        idx = self.base + pred.reshape(self.base.shape)
        counts = torch.bincount(idx.reshape(-1), minlength=self.counted + self.shape[1])
        return counts[:self.counted].reshape(self.shape)
