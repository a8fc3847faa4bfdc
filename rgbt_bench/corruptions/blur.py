"""Separable Gaussian blur as a fixed-order sum of shifted slices.

Matches scipy.ndimage.gaussian_filter / skimage.filters.gaussian as ImageNet-C calls them: kernel radius
int(truncate * sigma + 0.5) with truncate 4, weights exp(-k^2 / (2 sigma^2)) normalised to 1, edges
replicated ('nearest'). Summing shifted slices elementwise in a fixed order (instead of conv2d) keeps
each sample's result bit-identical whatever the batch size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TRUNCATE = 4.0


def gaussian_kernel(sigma: float) -> list[float]:
    """Normalised 1-D Gaussian weights for offsets -r..r, r = int(4 sigma + 0.5)."""
    radius = int(TRUNCATE * sigma + 0.5)
    weights = [math.exp(-(k * k) / (2 * sigma * sigma)) for k in range(-radius, radius + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def _blur_last_dim(x: torch.Tensor, weights: list[float]) -> torch.Tensor:
    radius = len(weights) // 2
    n = x.shape[-1]
    padded = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    out = torch.zeros_like(x)
    for k, w in enumerate(weights):
        out = out + w * padded[..., k:k + n]
    return out


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur [B,C,H,W] with a Gaussian of `sigma` pixels along H then W."""
    weights = gaussian_kernel(sigma)
    rows = _blur_last_dim(x.transpose(-1, -2), weights).transpose(-1, -2)
    return _blur_last_dim(rows, weights)
