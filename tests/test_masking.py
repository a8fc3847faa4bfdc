"""Complementary random masking: exact counts, complementarity, strategy frequencies, feature-level masking."""
import math

import pytest
import torch
from scipy.stats import chisquare

from rgbt_bench.errors import ConfigError
from rgbt_bench.models.masking import complementary_masks, grid_size, mask_features, upsample_grid


def test_grid_size_rounds_up():
    assert grid_size(256, 320) == (8, 10)
    assert grid_size(224, 320) == (7, 10)
    assert grid_size(120, 160) == (4, 5)
    assert grid_size(33, 64, patch=32) == (2, 2)


@pytest.mark.parametrize("strategy", ["rand_comp", "comp", "indiv"])
@pytest.mark.parametrize("grid,ratio", [((8, 10), 0.5), ((7, 10), 0.5), ((3, 5), 0.5), ((4, 5), 0.3)])
def test_exact_number_of_masked_cells(strategy, grid, ratio):
    n = grid[0] * grid[1]
    k = math.ceil(n * ratio)
    g = torch.Generator().manual_seed(3)
    mr, mt = complementary_masks(64, grid, ratio=ratio, strategy=strategy, generator=g)
    assert mr.shape == mt.shape == (64, 1, *grid)
    assert mr.dtype == torch.float32
    assert set(mr.unique().tolist()) <= {0.0, 1.0}
    cr, ct = mr.sum((1, 2, 3)), mt.sum((1, 2, 3))
    if strategy == "comp":
        assert (cr == k).all() and (ct == n - k).all()
        assert torch.equal(mr + mt, torch.ones_like(mr))
    elif strategy == "indiv":
        assert (cr == k).all() and (ct == k).all()
        assert not torch.equal(mr, mt)
    else:
        assert set(cr.tolist()) <= {0.0, k} and set(ct.tolist()) <= {0.0, n - k}
        # masked cells never overlap: complementary, or one side unmasked
        assert (mr * mt).sum() == 0


def test_rand_comp_cases_equally_frequent():
    g = torch.Generator().manual_seed(11)
    mr, mt = complementary_masks(3000, (8, 10), strategy="rand_comp", generator=g)
    rgb_clean = mr.sum((1, 2, 3)) == 0
    thr_clean = mt.sum((1, 2, 3)) == 0
    both = ~rgb_clean & ~thr_clean
    counts = [int(rgb_clean.sum()), int(thr_clean.sum()), int(both.sum())]
    assert sum(counts) == 3000 and not (rgb_clean & thr_clean).any()
    assert chisquare(counts).pvalue > 0.001
    assert torch.equal(mr[both] + mt[both], torch.ones_like(mr[both]))
    assert (mt[rgb_clean].sum((1, 2, 3)) == 40).all() and (mr[thr_clean].sum((1, 2, 3)) == 40).all()


def test_masked_cells_uniform_over_grid():
    g = torch.Generator().manual_seed(5)
    mr, _ = complementary_masks(4000, (4, 5), strategy="comp", generator=g)
    freq = mr.mean(0).flatten()
    assert torch.allclose(freq, torch.full_like(freq, 0.5), atol=0.04)


def test_same_seed_same_masks_and_device():
    a = complementary_masks(5, (4, 5), generator=torch.Generator().manual_seed(7), device="cpu")
    b = complementary_masks(5, (4, 5), generator=torch.Generator().manual_seed(7))
    c = complementary_masks(5, (4, 5), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))
    torch.manual_seed(1)
    d = complementary_masks(5, (4, 5))
    torch.manual_seed(1)
    e = complementary_masks(5, (4, 5))
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])


def test_bad_strategy_and_ratio_raise_config_error():
    with pytest.raises(ConfigError, match="unknown mask strategy 'random'"):
        complementary_masks(2, (4, 5), strategy="random")
    with pytest.raises(ConfigError, match="ratio"):
        complementary_masks(2, (4, 5), ratio=1.5)


def test_upsample_grid_makes_8x8_blocks_at_stride_4():
    grid = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    up = upsample_grid(grid, (16, 16))  # a 64x64 input at stride 4 -> 2x2 grid of 32-px patches
    assert up.shape == (1, 1, 16, 16)
    assert up[0, 0, :8, :8].eq(1).all() and up[0, 0, :8, 8:].eq(0).all()
    assert up[0, 0, 8:, :8].eq(0).all() and up[0, 0, 8:, 8:].eq(1).all()
    # an explicit cell size keeps 32-px patches when the last patch is cut short (48x64 input)
    up = upsample_grid(grid, (12, 16), cell=8)
    assert up[0, 0, :8, :8].eq(1).all() and up[0, 0, :8, 8:].eq(0).all()
    assert up[0, 0, 8:, :8].eq(0).all() and up[0, 0, 8:, 8:].eq(1).all()
    with pytest.raises(ConfigError, match="does not cover"):
        upsample_grid(grid, (20, 20), cell=8)


def test_mask_features_replaces_masked_cells_by_token():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 24, generator=g)
    token = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1)
    grid = torch.zeros(2, 1, 2, 3)
    grid[0, 0, 1, 2] = 1
    grid[1, 0, 0, 0] = 1
    out = mask_features(x, grid, token)
    assert torch.equal(out[0, :, 8:, 16:], token[0].expand(3, 8, 8))
    assert torch.equal(out[1, :, :8, :8], token[0].expand(3, 8, 8))
    keep = torch.ones(2, 1, 16, 24, dtype=torch.bool)
    keep[0, :, 8:, 16:] = False
    keep[1, :, :8, :8] = False
    assert torch.equal(out.masked_select(keep), x.masked_select(keep))
