"""Diamond-square plasma fractal in torch, batched, with the ImageNet-C recurrence.

ImageNet-C's `plasma_fractal` (Hendrycks & Dietterich 2019; DOMAIN.md) fills a toroidal
mapsize x mapsize map from a zero corner: each pass sets square centres to the mean of their 4 corners
plus wibble * U(-wibble, wibble), then diamond midpoints likewise, halves the step and divides wibble
by `wibbledecay`; the map is finally min-max normalised to [0, 1]. Here the uniform draws of each
sample come from its own generator (`plasma_draws`) and the recurrence runs on the whole batch.
"""
from __future__ import annotations

import torch

INITIAL_WIBBLE = 100.0


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (the plasma map must be square with a power-of-two side)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def plasma_draws(mapsize: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The U(-1, 1) draws of one plasma map, in use order: per pass (squares, row diamonds, column diamonds),
    each [n, n] with n = mapsize / step."""
    draws = []
    step = mapsize
    while step >= 2:
        n = mapsize // step
        draws.extend(torch.rand((n, n), generator=generator) * 2 - 1 for _ in range(3))
        step //= 2
    return draws


def plasma_fractal(draws: list[torch.Tensor], mapsize: int, wibbledecay: float) -> torch.Tensor:
    """[B, mapsize, mapsize] plasma in [0, 1] from batched draws (each [B, n, n], as from plasma_draws)."""
    batch = draws[0].shape[0]
    m = torch.zeros(batch, mapsize, mapsize, dtype=torch.float32, device=draws[0].device)
    step, wibble, i = mapsize, INITIAL_WIBBLE, 0
    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, dims=1)
        squares = squares + squares.roll(-1, dims=2)
        m[:, half::step, half::step] = squares / 4 + wibble * wibble * draws[i]
        centres = m[:, half::step, half::step]
        corners = m[:, 0::step, 0::step]
        rows = (centres + centres.roll(1, dims=1)) + (corners + corners.roll(-1, dims=2))
        m[:, 0::step, half::step] = rows / 4 + wibble * wibble * draws[i + 1]
        cols = (centres + centres.roll(1, dims=2)) + (corners + corners.roll(-1, dims=1))
        m[:, half::step, 0::step] = cols / 4 + wibble * wibble * draws[i + 2]
        step, wibble, i = half, wibble / wibbledecay, i + 3
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)
