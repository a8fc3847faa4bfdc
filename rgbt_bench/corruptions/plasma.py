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

Building a map costs far more than using it, so `plasma_field` keeps the normalised crops of every decay per
(seed, image, size, device) in a small LRU cache (`CACHE_BYTES`): the five severities of a sweep, which
corrupt the same batch one after another, build each image's maps once. A cached map is the same tensor a
fresh build gives.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

import torch

from .stream import Draws

INITIAL_WIBBLE = 100.0
CACHE_BYTES = 256 * 2**20


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (the plasma map must be square with a power-of-two side)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def noise_scales(mapsize: int, decays: Sequence[float]) -> torch.Tensor:
    """[passes, D] float64: wibble^2 of each pass for each decay (wibble = 100, then divided by the decay)."""
    scales, wibbles = [], [INITIAL_WIBBLE] * len(decays)
    for _ in range(mapsize.bit_length() - 1):
        scales.append([w * w for w in wibbles])
        wibbles = [w / d for w, d in zip(wibbles, decays)]
    return torch.tensor(scales, dtype=torch.float64)


def _interleave(even_even: torch.Tensor, even_odd: torch.Tensor, odd_even: torch.Tensor,
                odd_odd: torch.Tensor) -> torch.Tensor:
    """[..., 2n, 2n] with the four [..., n, n] grids at (even|odd row, even|odd column) positions."""
    *lead, n, _ = even_even.shape
    even = torch.stack((even_even, even_odd), dim=-1).view(*lead, n, 2 * n)
    odd = torch.stack((odd_even, odd_odd), dim=-1).view(*lead, n, 2 * n)
    return torch.stack((even, odd), dim=-2).view(*lead, 2 * n, 2 * n)


def plasma_maps(uniforms: torch.Tensor, mapsize: int, decays: Sequence[float],
                crop: tuple[int, int] | None = None) -> torch.Tensor:
    """[B, D, mapsize, mapsize] float32 plasma in [0, 1] for each decay, or its top-left `crop` (H, W) normalised
    over the whole map; `uniforms` [B, mapsize^2 - 1] in (-1, 1) in the order of the module docstring."""
    b, device = uniforms.shape[0], uniforms.device
    scales = noise_scales(mapsize, decays).to(device=device, dtype=torch.float32)
    corners = torch.zeros(b, len(decays), 1, 1, device=device)
    for k, scale in enumerate(scales):
        n = 1 << k
        noise = uniforms[:, (1 << 2 * k) - 1:(1 << 2 * k + 2) - 1].view(b, 1, 3, n, n)
        noise = noise * scale.view(1, -1, 1, 1, 1)
        down = corners.roll(-1, dims=-2)
        centres = corners + down
        centres = (centres + centres.roll(-1, dims=-1)).div_(4).add_(noise[:, :, 0])
        rows = (centres + centres.roll(1, dims=-2)).add_(corners + corners.roll(-1, dims=-1)).div_(4).add_(noise[:, :, 1])
        cols = (centres + centres.roll(1, dims=-1)).add_(corners + down).div_(4).add_(noise[:, :, 2])
        corners = _interleave(corners, rows, cols, centres)
    low = corners.amin(dim=(-2, -1), keepdim=True)
    high = corners.amax(dim=(-2, -1), keepdim=True)
    if crop is not None:
        corners = corners[..., :crop[0], :crop[1]]
    return (corners - low).div_(high - low)


class _Cache:
    """LRU of per-sample map stacks [D, H, W], bounded by bytes; thread-safe."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> torch.Tensor | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: tuple, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        with self.lock:
            if key in self.items or size > self.max_bytes:
                return
            self.items[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self.items.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.bytes = 0


CACHE = _Cache(CACHE_BYTES)


def plasma_field(draws: Draws, size: tuple[int, int], decays: Sequence[float], decay: float) -> torch.Tensor:
    """[B, 1, H, W] plasma for `decay` (one of `decays`), from the cache or built for all `decays` at once."""
    h, w = size
    keys = [(*image, h, w, tuple(decays), str(draws.device)) for image in draws.images()]
    maps = {i: m for i, m in enumerate(CACHE.get(k) for k in keys) if m is not None}
    missing = [i for i in range(len(keys)) if i not in maps]
    if missing:
        mapsize = next_power_of_2(max(h, w))
        subset = draws.subset(missing)
        built = plasma_maps(subset.symmetric("plasma", (mapsize * mapsize - 1,)), mapsize, decays, crop=(h, w))
        for i, m in zip(missing, built):
            maps[i] = m
            CACHE.put(keys[i], m)
    d = list(decays).index(decay)
    return torch.stack([maps[i][d] for i in range(len(keys))]).unsqueeze(1)
