"""Per-image confusion matrices of many models' logits against one batch of labels (the sweep's inner loop).

A sweep scores every cell (model x corruption setting) against the same labels, so the label half of the
bincount index (image offset + label * C, or a discard bin for ignored pixels) is computed once per batch;
each cell then costs one add and one bincount instead of ConfusionMatrix.per_image's masking and boolean
indexing per call. The predicted class is argmax's (the first maximum), found with vectorised passes
(amax, compare, amax over a rank) because an index-returning reduction over the class axis of [B,C,H,W]
logits is several times slower on the CPU than the models' own work warrants. The matrices equal
ConfusionMatrix.per_image(logits.argmax(1), label, C, ignore_index): rows = label, columns = prediction,
pixels with the ignore label or a label outside [0, C) not counted.

The intermediate tensors are written into buffers kept from one `score` call to the next: a batch is scored
once per cell, and on the CPU a fresh tensor of a batch's size is fresh memory from the OS, whose page faults
cost more than the arithmetic (scoring 8 x 9 x 480x640 logits on one thread: 37 ms with kept buffers, 77 ms
without, measured 2026-12-01).

Two cheaper forms of the same computation on the CPU: the classes at the maximum are found with `>=` (equal
to `==` against the maximum, NaN included, and ~20% cheaper than `==`), and with at most 15 classes an
image's bins (C * C counted plus C discard bins) fit in uint8, so the bin index is a uint8 subtraction and one
bincount per image instead of an int64 subtraction (with type promotion) and one bincount over the batch.
Together: 49 -> 39 ms per 8 x 9 x 480x640 batch on one thread (medians of 40 interleaved calls, 2026-12-01).
Other devices keep the one bincount per batch (a bincount of a CUDA tensor waits for the device).
"""
from __future__ import annotations

from typing import Optional

import torch


class LabelBins:
    """The labels of one [B, H, W] batch, prepared for scoring any number of [B, C, H, W] logits."""

    def __init__(self, label: torch.Tensor, num_classes: int, ignore_index: Optional[int] = None):
        b = label.shape[0]
        c = num_classes
        label = label.reshape(b, -1).to(torch.int64)
        keep = (label >= 0) & (label < c)
        if ignore_index is not None:
            keep &= label != ignore_index
        # Bin of a pixel = base - rank, with rank = C - predicted id in 1..C (see `score`); ignored pixels land
        # in bins counted .. counted + C - 1 whatever the prediction, and are cut off.
        self.per_image = label.device.type == "cpu" and c * c + c <= torch.iinfo(torch.uint8).max
        if self.per_image:  # bins of one image, as uint8 (module docstring)
            self.counted = c * c
            self.base = torch.where(keep, label * c + c, c * c + c).to(torch.uint8)
        else:  # bins of the whole batch: image b's start at b * C * C
            offset = torch.arange(b, device=label.device).unsqueeze(1) * (c * c)
            self.counted = b * c * c
            self.base = torch.where(keep, offset + label * c + c, torch.full_like(label, self.counted + c))
        self.shape = (b, c, c)
        rank_dtype = torch.uint8 if c < 256 else torch.int32
        self.rank = torch.arange(c, 0, -1, dtype=rank_dtype, device=label.device).view(1, c, 1, 1)
        self._buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], like: torch.Tensor,
                dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The kept buffer `name`, (re)allocated when the shape, dtype or device asked for differs."""
        dtype = dtype or like.dtype
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype or buf.device != like.device:
            buf = self._buffers[name] = torch.empty(shape, dtype=dtype, device=like.device)
        return buf

    def score(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(int64 [B, C, C] per-image matrices of argmax(logits), 0-dim bool tensor: all maxima finite).

        The maxima are NaN wherever any class logit is NaN (amax propagates NaN), so the flag catches NaN logits.
        """
        b, c, h, w = logits.shape
        best = torch.amax(logits, 1, keepdim=True, out=self._buffer("best", (b, 1, h, w), logits))
        # rank = C - (first class reaching the maximum): the largest of (C - c) over the classes c at the maximum.
        at_max = torch.ge(logits, best, out=self._buffer("at_max", (b, c, h, w), logits, torch.bool))
        at_max = at_max.view(torch.uint8) if self.rank.dtype == torch.uint8 else at_max.int()
        rank = torch.amax(at_max.mul_(self.rank), 1, out=self._buffer("rank", (b, h, w), at_max))
        idx = torch.sub(self.base, rank.view(self.base.shape), out=self._buffer("idx", self.base.shape, self.base))
        if self.per_image:
            counts = torch.stack([torch.bincount(row, minlength=self.counted + c + 1)[:self.counted] for row in idx])
        else:
            counts = torch.bincount(idx.view(-1), minlength=self.counted + c)[:self.counted]
        return counts.reshape(self.shape), best.abs_().amax().isfinite()
