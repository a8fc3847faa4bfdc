"""The sample and batch types that flow dataset -> corruption -> model -> metric.

Conventions (DEVELOPERS.md): rgb float32 [B,3,H,W] in [0,1]; thermal float32 [B,1,H,W] in [0,1];
label int64 [B,H,W]. Corruptions work in this physical space; models normalise their own inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import torch


@dataclass(frozen=True)
class SampleMeta:
    """Where a sample came from. `is_night` is None when the dataset does not say."""

    dataset: str
    split: str
    name: str
    index: int
    is_night: Optional[bool] = None

    @property
    def key(self) -> str:
        """Identity of the image, "dataset/name", which corruptions derive their random numbers from.

        The split is not part of it: an image listed by several splits (test and test_day) is corrupted the
        same way in each. Sample names are unique within each supported dataset.
        """
        return f"{self.dataset}/{self.name}"


@dataclass
class Sample:
    """One decoded image pair: rgb [3,H,W], thermal [1,H,W] float32 in [0,1], label [H,W] int64."""

    rgb: torch.Tensor
    thermal: torch.Tensor
    label: torch.Tensor
    meta: SampleMeta


@dataclass
class Batch:
    """A batch of samples with the tensor conventions above and one SampleMeta per sample."""

    rgb: torch.Tensor
    thermal: torch.Tensor
    label: torch.Tensor
    meta: list[SampleMeta] = field(default_factory=list)

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return replace(
            self,
            rgb=self.rgb.to(device, non_blocking=non_blocking),
            thermal=self.thermal.to(device, non_blocking=non_blocking),
            label=self.label.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True) for custom batch types."""
        return replace(
            self, rgb=self.rgb.pin_memory(), thermal=self.thermal.pin_memory(), label=self.label.pin_memory()
        )

    def with_images(self, rgb: torch.Tensor, thermal: torch.Tensor) -> Batch:
        """A copy with replaced images (used by corruptions); labels and metadata are shared."""
        return replace(self, rgb=rgb, thermal=thermal)


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples into a Batch; all samples must share one resolution."""
    return Batch(
        rgb=torch.stack([s.rgb for s in samples]),
        thermal=torch.stack([s.thermal for s in samples]),
        label=torch.stack([s.label for s in samples]),
        meta=[s.meta for s in samples],
    )
