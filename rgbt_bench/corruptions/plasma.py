"""Diamond-square plasma fractal in torch, with the ImageNet-C recurrence, for several roughnesses at once.

ImageNet-C's `plasma_fractal` (Hendrycks & Dietterich 2019; hendrycks/robustness, imagecorruptions) fills a
toroidal mapsize x mapsize map from a zero corner: each pass sets square centres to the mean of their 4
corners plus wibble * U(-wibble, wibble), then diamond midpoints likewise, halves the step and divides wibble
by `wibbledecay`; the map is finally min-max normalised to [0, 1].

Random numbers: pass k (n = 2^k squares per side) uses the 3 n^2 uniforms U(-1, 1) at flat indices
4^k - 1 .. 4^(k+1) - 2 of the sample's "plasma" block (stream.Draws) as [3, n, n]: square centres, row
diamonds, column diamonds. They do not depend on wibbledecay, so the maps of all decays are built together
from the same numbers (only each pass's noise scale differs) and the severities of plasma_fog share their
fractal. The map of each pass is kept dense and doubled by interleaving corners, diamonds and centres.

Building a map costs far more than using it, so `plasma_field` keeps each image's uniforms and its normalised
map per decay in the corruptions' LRU cache (cache.py; keyed by seed, image, size and device): the five severities
of a sweep, which corrupt the same batch one after another, hash each image's numbers once and build each of
its four maps once, and models evaluated on the same setting reuse them. A cached map is the same tensor a
fresh build gives.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .cache import CACHE
from .stream import Draws

INITIAL_WIBBLE = 100.0


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (the plasma map must be square with a power-of-two side)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def map_size(h: int, w: int) -> int:
    """Side of the map for an H x W image: next_power_of_2(max(H, W)), at least 2 (one diamond-square pass)."""
    return max(2, next_power_of_2(max(h, w)))


def noise_scales(mapsize: int, decays: Sequence[float]) -> list[list[float]]:
    """Per decay, wibble^2 of each pass (wibble = 100, then divided by the decay after each pass)."""
    out = []
    for decay in decays:
        wibbles = [INITIAL_WIBBLE]
        while len(wibbles) < mapsize.bit_length() - 1:
            wibbles.append(wibbles[-1] / decay)
        out.append([w * w for w in wibbles])
    return out


def _interleave_into(out: torch.Tensor, even_even: torch.Tensor, even_odd: torch.Tensor, odd_even: torch.Tensor,
                     odd_odd: torch.Tensor) -> torch.Tensor:
    """Fill out[..., H, W] with four grids at (even|odd row, even|odd column) positions, each cropped to fit."""
    h, w = out.shape[-2:]
    he, ho, we, wo = (h + 1) // 2, h // 2, (w + 1) // 2, w // 2
    out[..., 0::2, 0::2] = even_even[..., :he, :we]
    out[..., 0::2, 1::2] = even_odd[..., :he, :wo]
    out[..., 1::2, 0::2] = odd_even[..., :ho, :we]
    out[..., 1::2, 1::2] = odd_odd[..., :ho, :wo]
    return out


def _diamond_square_pass(corners: torch.Tensor, noise: torch.Tensor, scale: float) -> tuple[torch.Tensor, ...]:
    """One pass on [n + 1, n + 1] corners whose last row and column repeat the first (the map is a torus):
    (row diamonds [n + 1, n] whose last row repeats the first, column diamonds [n, n + 1] whose last column
    repeats the first, centres [n + 1, n + 1] whose first row and column repeat the last)."""
    n = corners.shape[-1] - 1
    down = corners[:n] + corners[1:]  # C[i, j] + C[i + 1, j]
    centres = torch.empty(n + 1, n + 1, device=corners.device)  # row and column 0 repeat n - 1
    inner = centres[1:, 1:]
    torch.add(down[:, :n], down[:, 1:], out=inner).div_(4).add_(noise[0], alpha=scale)
    centres[0, 1:] = inner[-1]
    centres[:, 0] = centres[:, -1]
    rows = torch.empty(n + 1, n, device=corners.device)
    torch.add(inner, centres[:n, 1:], out=rows[:n]).add_(corners[:n, :n] + corners[:n, 1:])
    rows[:n].div_(4).add_(noise[1], alpha=scale)
    rows[n] = rows[0]
    cols = torch.empty(n, n + 1, device=corners.device)
    torch.add(inner, centres[1:, :n], out=cols[:, :n]).add_(down[:, :n])
    cols[:, :n].div_(4).add_(noise[2], alpha=scale)
    cols[:, n] = cols[:, 0]
    return rows, cols, centres


def _plasma_one(uniforms: torch.Tensor, scales: list[float], crop: tuple[int, int]) -> torch.Tensor:
    """[H, W] normalised crop of one map, `scales` its passes' wibble^2 (mapsize = 2^len(scales) >= 2)."""
    corners = torch.zeros(2, 2, device=uniforms.device)
    for k, scale in enumerate(scales):
        n = 1 << k
        noise = uniforms[(1 << 2 * k) - 1:(1 << 2 * k + 2) - 1].view(3, n, n)
        rows, cols, centres = _diamond_square_pass(corners, noise, scale)
        if k + 1 < len(scales):
            corners = _interleave_into(torch.empty(2 * n + 1, 2 * n + 1, device=uniforms.device),
                                       corners, rows, cols, centres[1:, 1:])
    # the last pass: normalise over all of it (repeated rows and columns change no extreme), interleave the crop
    extremes = torch.stack([torch.stack(torch.aminmax(t)) for t in (corners, rows, cols, centres)])
    low, high = extremes[:, 0].min(), extremes[:, 1].max()
    out = _interleave_into(torch.empty(crop, device=uniforms.device), corners, rows, cols, centres[1:, 1:])
    return out.sub_(low).div_(high - low)


def plasma_maps(uniforms: torch.Tensor, mapsize: int, decays: Sequence[float],
                crop: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """[B, D, mapsize, mapsize] float32 plasma in [0, 1] for each decay, or its top-left `crop` (H, W) normalised
    over the whole map; `uniforms` [B, mapsize^2 - 1] in (-1, 1) in the order of the module docstring;
    mapsize >= 2. Each map is built on its own (one map fits in cache, several do not)."""
    scales = noise_scales(mapsize, decays)
    crop = crop or (mapsize, mapsize)
    return torch.stack([torch.stack([_plasma_one(u, column, crop) for column in scales]) for u in uniforms])


def plasma_field(draws: Draws, size: tuple[int, int], decay: float) -> torch.Tensor:
    """[B, 1, H, W] plasma with `decay` for each sample, built from its cached or fresh uniforms (both cached)."""
    h, w = size
    mapsize = map_size(h, w)
    images = [(*image, mapsize, str(draws.device)) for image in draws.images()]
    scales = noise_scales(mapsize, [decay])[0]

    def build(missing: list[int]) -> list[torch.Tensor]:
        uniforms = CACHE.per_sample([images[i] for i in missing], lambda fresh: draws.subset(
            [missing[j] for j in fresh]).symmetric("plasma", (mapsize * mapsize - 1,)))
        return [_plasma_one(u, scales, (h, w)) for u in uniforms]

    return torch.stack(CACHE.per_sample([(*image, h, w, decay) for image in images], build)).unsqueeze(1)
