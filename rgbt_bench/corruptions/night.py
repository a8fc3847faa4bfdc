"""Night on the RGB camera: 3DCC `low_light` (Kar et al., CVPR 2022; EPFL-VILAB/3DCommonCorruptions).

Each image is stretched from its own [min, max] (over all channels) to [0, c] with gamma 2,
y = ((x - min) / (max - min))^2 * c, c = .6 .5 .4 .3 .2; then Poisson-Gaussian sensor noise as 3DCC
applies it: z = clip(Poisson(120 * y) / 120, 0, 1) + N(0, 0.018^2), clipped to [0, 1]. The Poisson
counts are drawn on the CPU from each sample's generator (torch.poisson needs a CPU generator), then
the Gaussian draws (both spread over torch's threads, sample by sample: seeding.for_each_sample); thermal
is untouched (a thermal camera needs no light).
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import Batch
from .corruption import Corruption
from .seeding import for_each_sample, normal

PEAK = (0.6, 0.5, 0.4, 0.3, 0.2)
POISSON_SCALE = 120.0
GAUSS_SIGMA = 0.018


def low_light(x: torch.Tensor, peak: float) -> torch.Tensor:
    """Per-image gamma-2 stretch of [min, max] to [0, peak] (MATLAB imadjust); a flat image goes to 0."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    unit = (x - lo).div_((hi - lo).clamp(min=1e-12))
    return unit.square_().mul_(peak)


def poisson_counts(rates: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
    """Poisson(rates) per sample from its own generator, computed on the CPU, returned on rates' device."""
    cpu = rates.detach().to("cpu", torch.float32)
    counts = torch.empty_like(cpu)

    def draw(i: int) -> None:
        counts[i] = torch.poisson(cpu[i], generator=gens[i])
    for_each_sample(len(gens), draw, cpu[0].numel() if len(gens) else 0)
    return counts.to(rates.device, rates.dtype)


def _night(batch: Batch, p: dict[str, float], gens: list[torch.Generator], opts: dict[str, Any]) -> Batch:
    rates = low_light(batch.rgb, p["peak"]).mul_(p["poisson_scale"])
    shot = poisson_counts(rates, gens).div_(p["poisson_scale"]).clamp_(0.0, 1.0)
    read = normal(gens, shot.shape[1:], shot.device).mul_(p["gauss_sigma"])
    return batch.with_images(shot.add_(read).clamp_(0.0, 1.0), batch.thermal)


CORRUPTIONS = (
    Corruption(
        name="night", modality="rgb",
        description="3DCC low light: RGB darkened with gamma 2, then Poisson-Gaussian sensor noise",
        params={"peak": PEAK, "poisson_scale": (POISSON_SCALE,) * 5, "gauss_sigma": (GAUSS_SIGMA,) * 5},
        apply=_night),
)
