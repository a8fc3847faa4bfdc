"""Night on the RGB camera: 3DCC `low_light` (Kar et al., CVPR 2022; EPFL-VILAB/3DCommonCorruptions).

Each image is stretched from its own [min, max] (over all channels) to [0, c] with gamma 2,
y = ((x - min) / (max - min))^2 * c, c = .6 .5 .4 .3 .2; then Poisson-Gaussian sensor noise as 3DCC
applies it: z = clip(Poisson(120 * y) / 120, 0, 1) + 0.018 * g, clipped to [0, 1], g ~ N(0, 1).
The Poisson counts are the inverse CDF at one uniform per pixel (poisson.py) and g one normal per pixel,
both from stream.Draws and the same at every severity: a darker severity lowers the rates, and with the
same uniform a lower rate never gives a higher count. Everything runs on the batch's device; thermal is
untouched (a thermal camera needs no light).
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import Batch
from .corruption import Corruption
from .poisson import poisson
from .stream import Draws

PEAK = (0.6, 0.5, 0.4, 0.3, 0.2)
POISSON_SCALE = 120.0
GAUSS_SIGMA = 0.018


def low_light(x: torch.Tensor, peak: float) -> torch.Tensor:
    """Per-image gamma-2 stretch of [min, max] to [0, peak] (MATLAB imadjust); a flat image goes to 0."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    unit = (x - lo).div_((hi - lo).clamp(min=1e-12))
    return unit.square_().mul_(peak)


def _night(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    shape = batch.rgb.shape[1:]
    rates = low_light(batch.rgb, p["peak"]).mul_(p["poisson_scale"])
    shot = poisson(rates, draws.symmetric("shot", shape)).div_(p["poisson_scale"]).clamp_(0.0, 1.0)
    read = draws.normal("read", shape).mul_(p["gauss_sigma"])
    return batch.with_images(shot.add_(read).clamp_(0.0, 1.0), batch.thermal)


CORRUPTIONS = (
    Corruption(
        name="night", modality="rgb",
        description="3DCC low light: RGB darkened with gamma 2, then Poisson-Gaussian sensor noise",
        params={"peak": PEAK, "poisson_scale": (POISSON_SCALE,) * 5, "gauss_sigma": (GAUSS_SIGMA,) * 5},
        apply=_night),
)
