"""Thermal-camera degradations (sources per corruption below); RGB is untouched.

- thermal_noise: temporal (white) noise, y = x + sigma * z with z ~ N(0, 1) per pixel, sigma = .01 .02
  .04 .06 .08; z is the same field at every severity (stream.Draws), only its scale changes.
- thermal_stripes: microbolometer column fixed-pattern noise (ASCNet model): each column gets an
  offset A1 = b1 * z1 and a gain error A2 = b2 * z2 (z1, z2 ~ N(0, 1) per column, the same at every
  severity), y = x + A1 + A2 * x, b1 = b2 = .02 .035 .05 .065 .08.
- thermal_crossover: thermal crossover (dawn / dusk, when objects and background reach the same
  temperature) as contrast loss toward the image mean, y = m + c (x - m), with ImageNet-C's contrast
  table c = .4 .3 .2 .1 .05.
- thermal_blur: Gaussian blur (defocus of a fixed-focus lens); ImageNet-C's gaussian_blur table,
  sigma = 1 2 3 4 6 px on its 224-px images, scaled by H / 224 so that the blur covers the same part of
  the image at any resolution (at 480 rows: 2.1 4.3 6.4 8.6 12.9 px; at 120 rows: 0.54 .. 3.2 px).
"""
from __future__ import annotations

from typing import Any

from ..batch import Batch
from .blur import gaussian_blur
from .corruption import Corruption
from .stream import Draws

NOISE_SIGMA = (0.01, 0.02, 0.04, 0.06, 0.08)
STRIPE_STD = (0.02, 0.035, 0.05, 0.065, 0.08)
CROSSOVER_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
BLUR_SIGMA_AT_224 = (1.0, 2.0, 3.0, 4.0, 6.0)
BLUR_REFERENCE_HEIGHT = 224


def _noise(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    t = batch.thermal
    return batch.with_images(batch.rgb, draws.normal("noise", t.shape[1:]).mul_(p["sigma"]).add_(t).clamp_(0.0, 1.0))


def _stripes(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    t = batch.thermal
    z = draws.normal("columns", (2, t.shape[-1]))
    offset = (p["offset_std"] * z[:, 0]).view(-1, 1, 1, t.shape[-1])
    gain = (p["gain_std"] * z[:, 1]).view(-1, 1, 1, t.shape[-1])
    return batch.with_images(batch.rgb, (t + offset).add_(gain * t).clamp_(0.0, 1.0))


def _crossover(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    t = batch.thermal
    mean = t.mean(dim=(1, 2, 3), keepdim=True)
    return batch.with_images(batch.rgb, (t - mean).mul_(p["contrast"]).add_(mean).clamp_(0.0, 1.0))


def blur_sigma(sigma_at_224: float, height: int) -> float:
    """Blur sigma in pixels for an image of `height` rows."""
    return sigma_at_224 * height / BLUR_REFERENCE_HEIGHT


def _blur(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    t = batch.thermal
    return batch.with_images(batch.rgb, gaussian_blur(t, blur_sigma(p["sigma_at_224"], t.shape[-2])).clamp_(0.0, 1.0))


CORRUPTIONS = (
    Corruption(
        name="thermal_noise", modality="thermal",
        description="Thermal temporal noise: additive white Gaussian noise",
        params={"sigma": NOISE_SIGMA}, apply=_noise),
    Corruption(
        name="thermal_stripes", modality="thermal",
        description="Thermal column fixed-pattern (stripe) noise: per-column offset and gain",
        params={"offset_std": STRIPE_STD, "gain_std": STRIPE_STD}, apply=_stripes),
    Corruption(
        name="thermal_crossover", modality="thermal",
        description="Thermal crossover: contrast collapses toward the image mean",
        params={"contrast": CROSSOVER_CONTRAST}, apply=_crossover, randomized=False),
    Corruption(
        name="thermal_blur", modality="thermal",
        description="Thermal Gaussian blur; sigma given for 224-px images, scaled with image height",
        params={"sigma_at_224": BLUR_SIGMA_AT_224}, apply=_blur, randomized=False),
)
