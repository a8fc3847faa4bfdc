"""Partial masking: square patches or single pixels of one or both modalities are missing.

The image is cut into a grid of `patch` x `patch` cells (default 32 px, CRM's mask patch in
CRM_RGBTSeg dataloaders/augmentation.py),
ceil(H/patch) x ceil(W/patch) cells with partial cells at the right and bottom edges. Each cell of a sample
has a random 32-bit key (stream.Draws, distinct within the sample and the same at every severity); severity
s masks the k = ceil(N * ratio_s) cells with the smallest keys (ratio .1 .2 .3 .4 .5; .5 is CRM's training
ratio), so the cells masked at severity s are also masked at s + 1.

- rgb_patch_mask / thermal_patch_mask: one modality loses the cells.
- complementary_patch_mask: RGB loses ceil(N * ratio) cells and thermal loses exactly the others, so
  every cell is seen by one modality only (CRM's (M, 1-M) pair; at severity 5 the 50/50 split used in
  training). Severity moves cells from the thermal side to the RGB side: s1 = RGB 10% / thermal 90%;
  RGB's masked set grows with severity and thermal's shrinks by exactly the same cells.
- rgb_pixel_missing / thermal_pixel_missing: the same with 1-pixel cells (exactly ceil(H*W*ratio)
  dead pixels per sample).
Missing pixels take the fill colour (option `fill`, see fill.py).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..batch import Batch
from .corruption import Corruption, Option, with_modality
from .fill import FILL_OPTION, fill_where
from .stream import Draws

RATIO = (0.1, 0.2, 0.3, 0.4, 0.5)
PATCH_OPTION = Option(default=32, kind=int, minimum=1, help="patch (grid cell) side in pixels; 32 as in CRM")


def grid_shape(h: int, w: int, patch: int) -> tuple[int, int]:
    """Cells per column and row: the grid covers the whole image (partial edge cells count)."""
    return math.ceil(h / patch), math.ceil(w / patch)


def masked_cell_count(cells: int, ratio: float) -> int:
    """ceil(N * ratio), computed so that float error (e.g. 20 * 0.3 = 6.000000000000001) cannot add a cell."""
    return math.ceil(round(cells * ratio, 9))


def cell_masks(draws: Draws, grid: tuple[int, int], ratio: float) -> torch.Tensor:
    """[B,1,gh,gw] bool grid, True on the ceil(N*ratio) cells with the smallest keys of each sample."""
    gh, gw = grid
    n = gh * gw
    return draws.smallest("cells", n, masked_cell_count(n, ratio)).view(-1, 1, gh, gw)


def expand_cells(mask: torch.Tensor, patch: int, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-upsample a [B,1,gh,gw] cell grid by `patch` and crop it to the image `size` (H, W)."""
    if patch == 1:
        return mask[:, :, :size[0], :size[1]]
    b, _, gh, gw = mask.shape
    full = mask[:, :, :, None, :, None].expand(b, 1, gh, patch, gw, patch).reshape(b, 1, gh * patch, gw * patch)
    return full[:, :, :size[0], :size[1]]


def pixel_masks(draws: Draws, x: torch.Tensor, ratio: float, patch: int) -> torch.Tensor:
    """[B,1,H,W] bool pixel mask of exactly ceil(N*ratio) masked `patch`-sized cells per sample."""
    h, w = x.shape[-2:]
    return expand_cells(cell_masks(draws, grid_shape(h, w, patch), ratio), patch, (h, w))


def _mask_one(modality: str, pixel: bool):
    def apply(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
        x = getattr(batch, modality)
        missing = pixel_masks(draws, x, p["ratio"], 1 if pixel else opts["patch"])
        return with_modality(batch, modality, fill_where(x, missing, modality, opts["fill"]))
    return apply


def _complementary(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
    rgb_missing = pixel_masks(draws, batch.rgb, p["rgb_ratio"], opts["patch"])
    return batch.with_images(fill_where(batch.rgb, rgb_missing, "rgb", opts["fill"]),
                             fill_where(batch.thermal, ~rgb_missing, "thermal", opts["fill"]))


PATCH_OPTIONS = {"patch": PATCH_OPTION, "fill": FILL_OPTION}

CORRUPTIONS = (
    Corruption(
        name="rgb_patch_mask", modality="rgb",
        description="RGB loses a random set of square patches; severity = fraction of patches",
        params={"ratio": RATIO}, apply=_mask_one("rgb", pixel=False), options=PATCH_OPTIONS),
    Corruption(
        name="thermal_patch_mask", modality="thermal",
        description="Thermal loses a random set of square patches; severity = fraction of patches",
        params={"ratio": RATIO}, apply=_mask_one("thermal", pixel=False), options=PATCH_OPTIONS),
    Corruption(
        name="complementary_patch_mask", modality="both",
        description="CRM-style complementary masking: thermal loses exactly the patches RGB keeps; "
                    "severity = RGB's masked fraction",
        params={"rgb_ratio": RATIO}, apply=_complementary, options=PATCH_OPTIONS),
    Corruption(
        name="rgb_pixel_missing", modality="rgb",
        description="Random RGB pixels missing (dead / dropped pixels); severity = fraction of pixels",
        params={"ratio": RATIO}, apply=_mask_one("rgb", pixel=True), options={"fill": FILL_OPTION}),
    Corruption(
        name="thermal_pixel_missing", modality="thermal",
        description="Random thermal pixels missing (dead / dropped pixels); severity = fraction of pixels",
        params={"ratio": RATIO}, apply=_mask_one("thermal", pixel=True), options={"fill": FILL_OPTION}),
)
