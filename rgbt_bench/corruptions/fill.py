"""What a missing pixel becomes: black ("zero") or the normalisation mean ("mean").

Models normalise their inputs with the CRM / mmseg statistics (CRM_RGBTSeg configs, PIXEL_MEAN / PIXEL_STD): RGB mean
[123.675, 116.28, 103.53] / 255, thermal 127 / 255. Filling with that mean in physical space gives
exactly zero after normalisation, which is how much missing-modality code zeroes an input; "zero"
fills black in physical space, which a model sees as a strongly negative input.
"""
from __future__ import annotations

import torch

from .corruption import Option

RGB_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
THERMAL_MEAN = (127 / 255,)
FILLS = ("zero", "mean")

FILL_OPTION = Option(
    default="zero", choices=FILLS,
    help="value of missing pixels: zero = black in [0,1] space; mean = normalisation mean (0 after normalising)")


def fill_value(modality: str, fill: str, like: torch.Tensor) -> torch.Tensor:
    """[1,C,1,1] fill colour for `modality` ("rgb"/"thermal") on `like`'s device and dtype."""
    mean = RGB_MEAN if modality == "rgb" else THERMAL_MEAN
    values = mean if fill == "mean" else (0.0,) * len(mean)
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def fill_where(x: torch.Tensor, missing: torch.Tensor, modality: str, fill: str) -> torch.Tensor:
    """x with pixels where `missing` ([B,1,H,W] or broadcastable, 1 = missing) set to the fill colour."""
    return torch.where(missing.bool(), fill_value(modality, fill, x), x)
