"""Separable Gaussian blur, one sample at a time.

Matches scipy.ndimage.gaussian_filter / skimage.filters.gaussian as ImageNet-C calls them: kernel radius
r = int(truncate * sigma + 0.5) with truncate 4, weights exp(-k^2 / (2 sigma^2)) normalised to 1, edges
replicated ('nearest'). Each sample is padded and blurred along W, then along H, as a sum of shifted slices
weighted by the symmetric kernel (w_0 x + sum_k w_k (x_{-k} + x_{+k})): r + 1 multiply-adds per pixel and
axis on a sample-sized buffer that stays in cache. Measured (benchmarks/bench_corruptions.py) this is 2-3x
faster than torch's conv2d with the same weights, and float32 FFT convolution is no faster below ~100 taps
and less accurate. A sample's result does not depend on the batch it is in.
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


def _blur_axis(padded: torch.Tensor, weights: list[float], dim: int, length: int) -> torch.Tensor:
    """sum_j weights[j] * padded shifted by j along `dim`, for the `length` valid positions."""
    r = len(weights) // 2
    out = padded.narrow(dim, r, length) * weights[r]
    pair = torch.empty_like(out)
    for k in range(r):
        torch.add(padded.narrow(dim, k, length), padded.narrow(dim, 2 * r - k, length), out=pair)
        out.add_(pair, alpha=weights[k])
    return out


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur [B,C,H,W] with a Gaussian of `sigma` pixels along H and W (channels independently)."""
    weights = gaussian_kernel(sigma)
    r, (h, w) = len(weights) // 2, x.shape[-2:]
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        padded = F.pad(x[i:i + 1], (r, r, r, r), mode="replicate")
        out[i:i + 1] = _blur_axis(_blur_axis(padded, weights, -1, w), weights, -2, h)
    return out
