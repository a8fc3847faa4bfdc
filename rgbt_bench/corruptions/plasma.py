"""Diamond-square plasma fractal in torch, with the ImageNet-C recurrence.

ImageNet-C's `plasma_fractal` (Hendrycks & Dietterich 2019; hendrycks/robustness, imagecorruptions) fills a toroidal
mapsize x mapsize map from a zero corner: each pass sets square centres to the mean of their 4 corners
plus wibble * U(-wibble, wibble), then diamond midpoints likewise, halves the step and divides wibble
by `wibbledecay`; the map is finally min-max normalised to [0, 1]. Each sample's map is built on its own
from its own generator (one map fits in cache, a batch of them does not, and maps of different samples
can then be built on different threads); per pass the draws are U(-1, 1) of shape [3, n, n], n =
mapsize / step, used for squares, row diamonds and column diamonds in that order.
"""
from __future__ import annotations

import torch

INITIAL_WIBBLE = 100.0


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (the plasma map must be square with a power-of-two side)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def plasma_map(mapsize: int, wibbledecay: float, generator: torch.Generator,
               crop: tuple[int, int] | None = None) -> torch.Tensor:
    """[mapsize, mapsize] float32 plasma in [0, 1] (or its top-left `crop` (H, W), normalised over the whole map)."""
    m = torch.zeros(mapsize, mapsize)
    step, wibble = mapsize, INITIAL_WIBBLE
    while step >= 2:
        half, n = step // 2, mapsize // step
        noise = torch.rand((3, n, n), generator=generator).mul_(2).sub_(1).mul_(wibble * wibble)
        corners = m[0::step, 0::step]
        squares = corners + corners.roll(-1, dims=0)
        squares += squares.roll(-1, dims=1)
        m[half::step, half::step] = squares.div_(4).add_(noise[0])
        centres = m[half::step, half::step]
        corners = m[0::step, 0::step]
        rows = (centres + centres.roll(1, dims=0)).add_(corners + corners.roll(-1, dims=1))
        m[0::step, half::step] = rows.div_(4).add_(noise[1])
        cols = (centres + centres.roll(1, dims=1)).add_(corners + corners.roll(-1, dims=0))
        m[half::step, 0::step] = cols.div_(4).add_(noise[2])
        step, wibble = half, wibble / wibbledecay
    low, high = torch.aminmax(m)
    if crop is not None:
        m = m[:crop[0], :crop[1]]
    return (m - low).div_(high - low)
