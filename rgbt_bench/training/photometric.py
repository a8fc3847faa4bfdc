"""The official CRM photometric distortion (`photometric: ssd`), on [0, 1] float tensors.

CRM_RGBTSeg dataloaders/augmentation.py ColorAugSSDTransform (Mask2Former's SSD colour augmentation, Liu
et al. ECCV 2016, extended to RGB-T). On RGB: brightness (+-32 of 255), then, in one of two orders chosen
by a fair coin, contrast -> saturation -> hue or saturation -> hue -> contrast; each step happens with
probability 0.5. Contrast is a gain (x * U[0.5, 1.5]), saturation scales HSV S by U[0.5, 1.5], hue shifts
HSV H by an integer in [-18, 18] of OpenCV's 180 units per turn (2 degrees each). On thermal: the same
gain x U[0.5, 1.5] with probability 0.5. Values are clipped to [0, 1] after each step.

Departure: the official code rounds down to 8 bits after each step; here the values stay float.
HSV follows OpenCV's definitions (tests compare with cv2.cvtColor on float images).
"""
from __future__ import annotations

import torch

BRIGHTNESS = 32 / 255
GAIN = (0.5, 1.5)
SATURATION = (0.5, 1.5)
HUE_STEPS = 18  # of 180 per turn
_EPS = 1e-12


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """[3, H, W] RGB in [0, 1] -> [3, H, W] (hue in [0, 1) turns, saturation, value), OpenCV's formulas."""
    r, g, b = rgb.unbind(0)
    value, _ = rgb.max(0)
    delta = value - rgb.min(0).values
    saturation = torch.where(value > 0, delta / value.clamp(min=_EPS), torch.zeros_like(value))
    safe = delta.clamp(min=_EPS)
    hue = torch.where(value == r, (g - b) / safe, torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(delta > 0, torch.remainder(hue / 6, 1.0), torch.zeros_like(hue))
    return torch.stack([hue, saturation, value])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hsv."""
    hue, saturation, value = hsv.unbind(0)
    sector = hue * 6
    index = torch.floor(sector)
    f = sector - index
    p = value * (1 - saturation)
    q = value * (1 - saturation * f)
    t = value * (1 - saturation * (1 - f))
    index = index.long().remainder(6)
    table = torch.stack([torch.stack(c) for c in ((value, t, p), (q, value, p), (p, value, t),
                                                   (p, q, value), (t, p, value), (value, p, q))])  # [6, 3, H, W]
    return table.gather(0, index[None, None].expand(1, 3, *index.shape))[0]


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _coin(g: torch.Generator) -> bool:
    return bool(torch.randint(0, 2, (), generator=g))


def _gain(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return (x * _uniform(g, *GAIN)).clamp(0, 1) if _coin(g) else x


def _saturation(rgb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if not _coin(g):
        return rgb
    hsv = rgb_to_hsv(rgb)
    hsv[1] = (hsv[1] * _uniform(g, *SATURATION)).clamp(0, 1)
    return hsv_to_rgb(hsv).clamp(0, 1)


def _hue(rgb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if not _coin(g):
        return rgb
    hsv = rgb_to_hsv(rgb)
    hsv[0] = torch.remainder(hsv[0] + int(torch.randint(-HUE_STEPS, HUE_STEPS + 1, (), generator=g)) / 180, 1.0)
    return hsv_to_rgb(hsv).clamp(0, 1)


def ssd_distort(rgb: torch.Tensor, thermal: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb [3, H, W], thermal [1, H, W]) after the SSD-style distortion, every draw from `g`."""
    if _coin(g):
        rgb = (rgb + _uniform(g, -BRIGHTNESS, BRIGHTNESS)).clamp(0, 1)
    steps = (_gain, _saturation, _hue) if _coin(g) else (_saturation, _hue, _gain)
    for step in steps:
        rgb = step(rgb, g)
    return rgb, _gain(thermal, g)


__all__ = ["rgb_to_hsv", "hsv_to_rgb", "ssd_distort"]
