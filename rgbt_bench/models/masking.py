"""Complementary random masking (CRM, Shin et al. ICRA 2024), shared by CRM and the CRM-style baselines.

As in the official code (CRM_RGBTSeg dataloaders/augmentation.py and models/mask2former/backbone/swin.py):
- a grid of 32x32-pixel patches over the (padded) input; exactly ceil(N * ratio) of the N cells are masked
  in the random mask M (ratio 0.5);
- strategy "rand_comp" (the one used): per sample, uniformly one of (no mask on RGB, 1-M on thermal),
  (M on RGB, no mask on thermal), (M, 1-M); "comp": always (M, 1-M); "indiv": two independent masks;
- masking is at FEATURE level, after each branch's patch embedding: x * (1 - m) + mask_token * m.

Masks are float [B, 1, gh, gw] with 1 = masked. Randomness comes only from the `generator` argument
(None: torch's global generator), so the same seed gives the same masks.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import ConfigError

STRATEGIES = ("rand_comp", "comp", "indiv")


def grid_size(h: int, w: int, patch: int = 32) -> tuple[int, int]:
    """Cells of a `patch`-pixel mask grid covering an h x w image: (ceil(h/patch), ceil(w/patch))."""
    if patch < 1:
        raise ConfigError(f"mask patch size must be >= 1 pixel, got {patch}")
    return math.ceil(h / patch), math.ceil(w / patch)


def _random_masks(batch_size: int, n_cells: int, n_masked: int,
                  generator: Optional[torch.Generator]) -> torch.Tensor:
    """[B, N] float masks, each with exactly `n_masked` ones at uniformly random cells."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    scores = torch.rand(batch_size, n_cells, generator=generator, device=gen_device)
    chosen = scores.argsort(dim=1)[:, :n_masked]
    masks = torch.zeros(batch_size, n_cells, device=gen_device)
    return masks.scatter_(1, chosen, 1.0)


def complementary_masks(batch_size: int, grid_hw: tuple[int, int], ratio: float = 0.5,
                        strategy: str = "rand_comp", generator: Optional[torch.Generator] = None,
                        device: Optional[torch.device | str] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw (mask_rgb, mask_thermal), each float [B, 1, gh, gw] with 1 = masked, following `strategy`.

    M masks exactly ceil(gh * gw * ratio) cells per sample. The draws happen on the generator's device
    (CPU for the global generator) and the masks are then moved to `device`.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown mask strategy '{strategy}'; expected one of {', '.join(STRATEGIES)}")
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"mask ratio must be in [0, 1], got {ratio}")
    gh, gw = grid_hw
    if batch_size < 1 or gh < 1 or gw < 1:
        raise ConfigError(f"mask batch size and grid must be positive, got batch {batch_size}, grid {grid_hw}")
    n_cells = gh * gw
    n_masked = math.ceil(n_cells * ratio)
    m = _random_masks(batch_size, n_cells, n_masked, generator)
    if strategy == "comp":
        mask_rgb, mask_thermal = m, 1.0 - m
    elif strategy == "indiv":
        mask_rgb, mask_thermal = m, _random_masks(batch_size, n_cells, n_masked, generator)
    else:
        case = torch.randint(0, 3, (batch_size, 1), generator=generator, device=m.device)
        mask_rgb = torch.where(case == 0, torch.zeros_like(m), m)
        mask_thermal = torch.where(case == 1, torch.zeros_like(m), 1.0 - m)
    shape = (batch_size, 1, gh, gw)
    return mask_rgb.view(shape).to(device or m.device), mask_thermal.view(shape).to(device or m.device)


def upsample_grid(mask_grid: torch.Tensor, size: tuple[int, int], cell: Optional[int] = None) -> torch.Tensor:
    """Nearest-upsample a [B,1,gh,gw] grid to `size` by repeating each cell `cell` x `cell` times and cropping.

    `cell` = feature cells per grid cell (a 32-px patch is 8 cells at stride 4); None derives it as
    ceil(size / grid) per axis, which equals patch/stride when the input size is a multiple of the patch
    (CRM and the baselines pad their inputs to multiples of 32, as the official code does); otherwise pass
    `cell` so that a short last patch is cut rather than every patch shrunk.
    """
    h, w = size
    gh, gw = mask_grid.shape[-2:]
    ch, cw = (cell, cell) if cell is not None else (math.ceil(h / gh), math.ceil(w / gw))
    if ch * gh < h or cw * gw < w:
        raise ConfigError(f"a {gh}x{gw} mask grid with {ch}x{cw} cells per patch does not cover a "
                          f"{h}x{w} feature map")
    up = mask_grid.repeat_interleave(ch, dim=-2).repeat_interleave(cw, dim=-1)
    return up[..., :h, :w]


def mask_features(x: torch.Tensor, mask_grid: torch.Tensor, mask_token: torch.Tensor,
                  cell: Optional[int] = None) -> torch.Tensor:
    """x * (1 - m) + mask_token * m, with m the mask grid upsampled to x's spatial size (see upsample_grid).

    x [B,C,H,W]; mask_grid [B,1,gh,gw] (1 = masked); mask_token broadcastable to [B,C,1,1].
    """
    m = upsample_grid(mask_grid, tuple(x.shape[-2:]), cell).to(device=x.device, dtype=x.dtype)
    return x * (1.0 - m) + mask_token * m


__all__ = ["STRATEGIES", "grid_size", "complementary_masks", "upsample_grid", "mask_features"]
