"""Fog on the RGB image (long-wave infrared is far less attenuated, so thermal is untouched).

plasma_fog (ImageNet-C `fog`): a plasma fractal on a map of side next_power_of_2(max(H, W)) cropped to
the image, out = (x + c0 * plasma) * max / (max + c0), max = the image's maximum over all channels;
(c0, wibbledecay) = (1.5, 2) (2, 2) (2.5, 1.7) (2.5, 1.5) (3, 1.4). The fractal's random numbers are the
same at every severity (plasma.py), and each image's numbers and maps are cached for the next severity.

koschmieder_fog (Foggy Cityscapes' optical model): I = J * t + A * (1 - t), t = exp(-beta * d), with a
ground-plane depth proxy instead of a depth map. A camera at height h = 1.5 m with focal length
f = 1.0 * H pixels (vertical field of view ~53 deg) looks at flat ground, so the pixel row v (centre,
in pixels) below the horizon row v_h = horizon * H sees ground at d(v) = f * h / (v - v_h) metres;
rows at or above the horizon (and very far ground) are clamped to d_max = 200 m, a typical distance of
what a road scene shows above the horizon (buildings, trees; the sky is near the airlight anyway), so
that low severities thin out rather than erase it. The model is resolution-free: d depends on v / H.
beta = .005 .01 .02 .04 .08 per metre (meteorological visibility ~3/beta = 600 300 150 75 37.5 m; the first
three are Foggy Cityscapes' levels). Airlight
A = 0.8 (light grey) by default. Deterministic: the seed is not used.
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import Batch
from .corruption import Corruption, Option
from .plasma import plasma_field
from .stream import Draws

PLASMA_C0 = (1.5, 2.0, 2.5, 2.5, 3.0)
PLASMA_WIBBLEDECAY = (2.0, 2.0, 1.7, 1.5, 1.4)

BETA = (0.005, 0.01, 0.02, 0.04, 0.08)
CAMERA_HEIGHT_M = 1.5
FOCAL_PER_HEIGHT = 1.0
MAX_DISTANCE_M = 200.0


def _plasma_fog(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    x = batch.rgb
    plasma = plasma_field(draws, x.shape[-2:], p["wibbledecay"])
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    c0 = p["c0"]
    return batch.with_images(torch.add(x, plasma, alpha=c0).mul_(peak / (peak + c0)).clamp_(0.0, 1.0), batch.thermal)


def ground_distance(h: int, horizon: float, device: torch.device) -> torch.Tensor:
    """[H] distance in metres seen by each pixel row under the flat-ground proxy (see module docstring)."""
    rows = torch.arange(h, dtype=torch.float32, device=device) + 0.5
    below = rows - horizon * h
    d = FOCAL_PER_HEIGHT * h * CAMERA_HEIGHT_M / below.clamp(min=1e-6)
    return torch.where(below > 0, d.clamp(max=MAX_DISTANCE_M), torch.full_like(d, MAX_DISTANCE_M))


def _koschmieder(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    x = batch.rgb
    t = torch.exp(-p["beta"] * ground_distance(x.shape[-2], opts["horizon"], x.device)).view(1, 1, -1, 1)
    return batch.with_images(torch.addcmul(opts["airlight"] * (1 - t), x, t).clamp_(0.0, 1.0), batch.thermal)


CORRUPTIONS = (
    Corruption(
        name="plasma_fog", modality="rgb",
        description="ImageNet-C fog: plasma-fractal haze added to RGB, contrast compressed",
        params={"c0": PLASMA_C0, "wibbledecay": PLASMA_WIBBLEDECAY}, apply=_plasma_fog),
    Corruption(
        name="koschmieder_fog", modality="rgb",
        description="Koschmieder fog on RGB with a flat-ground depth proxy; denser with distance",
        params={"beta": BETA}, apply=_koschmieder, randomized=False,
        options={
            "airlight": Option(default=0.8, kind=float, minimum=0.0, maximum=1.0,
                               help="atmospheric light A in [0,1]"),
            "horizon": Option(default=0.45, kind=float, minimum=0.0, maximum=1.0,
                              help="horizon row as a fraction of the image height from the top"),
        }),
)
