"""Night on the RGB camera: 3DCC `low_light` (Kar et al., CVPR 2022; EPFL-VILAB/3DCommonCorruptions).

Each image is stretched from its own [min, max] (over all channels) to [0, c] with gamma 2,
y = ((x - min) / (max - min))^2 * c, c = .6 .5 .4 .3 .2; then Poisson-Gaussian sensor noise as 3DCC
applies it: z = clip(Poisson(120 * y) / 120, 0, 1) + 0.018 * g, clipped to [0, 1], g ~ N(0, 1).
The Poisson counts are the inverse CDF at one uniform per pixel (poisson.py) and g one normal per pixel,
both from stream.Draws and the same at every severity: a darker severity lowers the rates, and with the
same uniform a lower rate never gives a higher count. Those noise fields (the uniforms, their normal
quantiles and g) cost about a third of a call, so each image's are kept in the corruptions' cache (cache.py)
for the next severity. Everything runs on the batch's device; thermal is untouched (a thermal camera needs no
light).
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import Batch
from .cache import CACHE
from .corruption import Corruption
from .poisson import poisson
from .stream import Draws, normal_quantile_

PEAK = (0.6, 0.5, 0.4, 0.3, 0.2)
POISSON_SCALE = 120.0
GAUSS_SIGMA = 0.018


def low_light(x: torch.Tensor, peak: float) -> torch.Tensor:
    """Per-image gamma-2 stretch of [min, max] to [0, peak] (MATLAB imadjust); a flat image goes to 0."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    unit = (x - lo).div_((hi - lo).clamp(min=1e-12))
    return unit.square_().mul_(peak)


def noise_fields(draws: Draws, shape: tuple[int, ...]) -> torch.Tensor:
    """[3, B, *shape]: the shot-noise uniforms v, their normal quantiles and the read noise g of each sample, from
    the cache where an earlier severity left them (a new tensor either way: the caller may modify it)."""
    def compute(missing: list[int]) -> torch.Tensor:
        fresh = draws.subset(missing)
        v = fresh.symmetric("shot", shape)
        return torch.stack([v, normal_quantile_(v.clone()), fresh.normal("read", shape)], 1)

    keys = [(*image, "night", tuple(shape), str(draws.device)) for image in draws.images()]
    return torch.stack(CACHE.per_sample(keys, compute), 1)


def _night(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    v, w, read = noise_fields(draws, tuple(batch.rgb.shape[1:]))
    rates = low_light(batch.rgb, p["peak"]).mul_(p["poisson_scale"])
    shot = poisson(rates, v, w).div_(p["poisson_scale"]).clamp_(0.0, 1.0)
    return batch.with_images(shot.add_(read.mul_(p["gauss_sigma"])).clamp_(0.0, 1.0), batch.thermal)


CORRUPTIONS = (
    Corruption(
        name="night", modality="rgb",
        description="3DCC low light: RGB darkened with gamma 2, then Poisson-Gaussian sensor noise",
        params={"peak": PEAK, "poisson_scale": (POISSON_SCALE,) * 5, "gauss_sigma": (GAUSS_SIGMA,) * 5},
        apply=_night),
)
