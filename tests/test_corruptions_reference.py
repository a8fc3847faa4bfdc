"""Each corruption against a plain numpy version of its formula, fed random numbers recomputed here from the
documented counter-based stream (numpy_stream.py), and against known noise statistics."""
import math

import numpy as np
import pytest
import torch
from numpy_stream import np_bits, np_normal, np_symmetric, np_uniform
from scipy.ndimage import gaussian_filter
from scipy.stats import poisson as scipy_poisson

from rgbt_bench.batch import Batch, SampleMeta
from rgbt_bench.corruptions import apply_corruption
from rgbt_bench.corruptions.night import low_light
from rgbt_bench.corruptions.plasma import CACHE, next_power_of_2, plasma_maps

SEED = 31


def make_batch(n: int, h: int = 60, w: int = 80) -> Batch:
    g = torch.Generator().manual_seed(11)
    meta = [SampleMeta("fixture", "test", f"ref_{i}", i) for i in range(n)]
    return Batch(torch.rand(n, 3, h, w, generator=g), torch.rand(n, 1, h, w, generator=g),
                 torch.zeros(n, h, w, dtype=torch.long), meta)


def smallest(name: str, meta: SampleMeta, n: int, k: int) -> np.ndarray:
    """Indices of the k cells with the smallest keys of the sample's "cells" block."""
    return np.argsort(np_bits(SEED, name, "cells", meta.key, n))[:k]


RGB_MEAN = np.array([123.675, 116.28, 103.53]) / 255
THERMAL_MEAN = 127 / 255


# ---- modality dropout ------------------------------------------------------------------------------

@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_dropout_matches_reference(fill):
    b = make_batch(12, 8, 10)
    for name, modality in (("rgb_missing", "rgb"), ("thermal_missing", "thermal")):
        for s in (2, 5):
            out = getattr(apply_corruption(b, name, s, SEED, fill=fill), modality).numpy()
            x = getattr(b, modality).numpy()
            for i, m in enumerate(b.meta):
                u = np_uniform(SEED, name, "drop", m.key, 1)[0]
                if u < s / 5:
                    colour = (RGB_MEAN if modality == "rgb" else np.array([THERMAL_MEAN])) if fill == "mean" else 0
                    expected = np.broadcast_to(np.reshape(colour, (-1, 1, 1)), x[i].shape)
                else:
                    expected = x[i]
                np.testing.assert_allclose(out[i], expected, atol=1e-7)


# ---- patch and pixel masking -----------------------------------------------------------------------

def numpy_cell_mask(chosen: np.ndarray, grid: tuple, patch: int, size: tuple) -> np.ndarray:
    cells = np.zeros(grid[0] * grid[1], dtype=bool)
    cells[chosen] = True
    full = np.kron(cells.reshape(grid), np.ones((patch, patch), dtype=bool))
    return full[:size[0], :size[1]]


@pytest.mark.parametrize("patch", [32, 16, 7])
def test_patch_masks_match_reference_and_count_exactly(patch):
    h, w = 60, 80
    b = make_batch(4, h, w)
    grid = (math.ceil(h / patch), math.ceil(w / patch))
    n = grid[0] * grid[1]
    for s, ratio in zip(range(1, 6), (0.1, 0.2, 0.3, 0.4, 0.5)):
        k = math.ceil(round(n * ratio, 9))
        for name in ("rgb_patch_mask", "thermal_patch_mask", "complementary_patch_mask"):
            out = apply_corruption(b, name, s, SEED, patch=patch, fill="mean")
            for i, m in enumerate(b.meta):
                mask = numpy_cell_mask(smallest(name, m, n, k), grid, patch, (h, w))
                rgb_mask = mask if name != "thermal_patch_mask" else np.zeros_like(mask)
                th_mask = {"rgb_patch_mask": np.zeros_like(mask), "thermal_patch_mask": mask,
                           "complementary_patch_mask": ~mask}[name]
                exp_rgb = np.where(rgb_mask[None], RGB_MEAN[:, None, None], b.rgb[i].numpy())
                exp_th = np.where(th_mask[None], THERMAL_MEAN, b.thermal[i].numpy())
                np.testing.assert_allclose(out.rgb[i].numpy(), exp_rgb, atol=1e-7)
                np.testing.assert_allclose(out.thermal[i].numpy(), exp_th, atol=1e-7)
                # exact count of masked cells, read back from the output on the cell grid
                cell_rgb = (out.rgb[i, 0].numpy() == np.float32(RGB_MEAN[0]))[::patch, ::patch]
                if name != "thermal_patch_mask":
                    assert cell_rgb.sum() == k


def test_complementary_masks_partition_the_image():
    """Every pixel is missing from exactly one modality; RGB loses ceil(N*ratio) of the N cells."""
    b = make_batch(6, 120, 160)
    for s in range(1, 6):
        out = apply_corruption(b, "complementary_patch_mask", s, SEED, fill="zero")
        rgb_missing = (out.rgb == 0).all(dim=1)
        th_missing = (out.thermal == 0).all(dim=1)
        assert bool((rgb_missing ^ th_missing).all())
        cells = rgb_missing[:, ::32, ::32].flatten(1).sum(dim=1)
        assert cells.tolist() == [math.ceil(round(20 * s / 10, 9))] * 6


def test_pixel_missing_masks_an_exact_pixel_count():
    b = make_batch(3, 30, 40)
    for name, modality in (("rgb_pixel_missing", "rgb"), ("thermal_pixel_missing", "thermal")):
        for s in range(1, 6):
            out = getattr(apply_corruption(b, name, s, SEED), modality)
            missing = (out == 0).all(dim=1).flatten(1).sum(dim=1)
            assert missing.tolist() == [math.ceil(round(1200 * s / 10, 9))] * 3
            for i, m in enumerate(b.meta):
                mask = numpy_cell_mask(smallest(name, m, 1200, 1200 * s // 10), (30, 40), 1, (30, 40))
                np.testing.assert_array_equal((out[i] == 0).all(dim=0).numpy(), mask)


# ---- fog ---------------------------------------------------------------------------------------------

def numpy_plasma(draws: list, mapsize: int, wibbledecay: float) -> np.ndarray:
    """ImageNet-C's diamond-square recurrence in float64, with U(-1,1) draws given instead of np.random."""
    m = np.zeros((mapsize, mapsize))
    step, wibble, i = mapsize, 100.0, 0
    while step >= 2:
        half = step // 2
        corner = m[0::step, 0::step]
        acc = corner + np.roll(corner, -1, axis=0)
        acc = acc + np.roll(acc, -1, axis=1)
        m[half::step, half::step] = acc / 4 + wibble * (wibble * draws[i])
        dr, ul = m[half::step, half::step], m[0::step, 0::step]
        m[0::step, half::step] = ((dr + np.roll(dr, 1, axis=0)) + (ul + np.roll(ul, -1, axis=1))) / 4 \
            + wibble * (wibble * draws[i + 1])
        m[half::step, 0::step] = ((dr + np.roll(dr, 1, axis=1)) + (ul + np.roll(ul, -1, axis=0))) / 4 \
            + wibble * (wibble * draws[i + 2])
        step, wibble, i = half, wibble / wibbledecay, i + 3
    m -= m.min()
    return m / m.max()


def plasma_draws(name: str, meta: SampleMeta, mapsize: int) -> list[np.ndarray]:
    """The documented U(-1, 1) draws of each plasma pass: [3, n, n] at flat indices 4^k - 1 .. 4^(k+1) - 2."""
    flat = np_symmetric(SEED, name, "plasma", meta.key, mapsize * mapsize - 1)
    draws, n = [], 1
    while n < mapsize:
        draws.extend(flat[n * n - 1:4 * n * n - 1].reshape(3, n, n))
        n *= 2
    return draws


def test_plasma_matches_numpy_recurrence():
    meta = [SampleMeta("fixture", "test", f"plasma_{i}", i) for i in range(2)]
    for size in (64, 128):
        uniforms = torch.from_numpy(np.stack([np_symmetric(SEED, "plasma_fog", "plasma", m.key, size * size - 1)
                                              for m in meta])).float()
        maps = plasma_maps(uniforms, size, (2.0, 1.4)).numpy()
        for i, m in enumerate(meta):
            for d, decay in enumerate((2.0, 1.4)):
                ref = numpy_plasma(plasma_draws("plasma_fog", m, size), size, decay)
                np.testing.assert_allclose(maps[i, d], ref, atol=2e-5)
                assert maps[i, d].min() == 0 and maps[i, d].max() == 1
        crop = plasma_maps(uniforms, size, (2.0, 1.4), crop=(20, 30)).numpy()
        assert np.array_equal(crop, maps[:, :, :20, :30])
    assert [next_power_of_2(n) for n in (1, 2, 3, 160, 256, 640)] == [1, 2, 4, 256, 256, 1024]


def test_plasma_fog_matches_formula():
    b = make_batch(3, 50, 70)
    c0s, decays = (1.5, 2, 2.5, 2.5, 3), (2, 2, 1.7, 1.5, 1.4)
    for cached in (False, True):
        if not cached:
            CACHE.clear()
        for s in (1, 4):
            out = apply_corruption(b, "plasma_fog", s, SEED).rgb.numpy()
            for i, m in enumerate(b.meta):
                plasma = numpy_plasma(plasma_draws("plasma_fog", m, 128), 128, decays[s - 1])[:50, :70]
                x = b.rgb[i].double().numpy()
                peak = x.max()
                ref = np.clip((x + c0s[s - 1] * plasma) * peak / (peak + c0s[s - 1]), 0, 1)
                np.testing.assert_allclose(out[i], ref, atol=2e-5)


def test_koschmieder_matches_formula():
    h, w = 90, 40
    b = make_batch(2, h, w)
    for s, beta in zip(range(1, 6), (0.005, 0.01, 0.02, 0.04, 0.08)):
        for airlight, horizon in ((0.8, 0.45), (0.6, 0.3)):
            out = apply_corruption(b, "koschmieder_fog", s, SEED, airlight=airlight, horizon=horizon).rgb.numpy()
            v = np.arange(h) + 0.5
            below = v - horizon * h
            with np.errstate(divide="ignore"):
                d = np.where(below > 0, np.minimum(1.0 * h * 1.5 / below, 200.0), 200.0)
            t = np.exp(-beta * d)[None, None, :, None]
            ref = b.rgb.double().numpy() * t + airlight * (1 - t)
            np.testing.assert_allclose(out, ref, atol=2e-6)
    # the bottom row (closest ground, d = 1.5 / 0.55 m) barely changes; above the horizon t = exp(-200 beta)
    for s, beta in ((1, 0.005), (5, 0.08)):
        out = apply_corruption(b, "koschmieder_fog", s, SEED).rgb
        t = math.exp(-200 * beta)
        assert torch.allclose(out[..., 0, :], b.rgb[..., 0, :] * t + 0.8 * (1 - t), atol=1e-6)
        assert float((out[..., -1, :] - b.rgb[..., -1, :]).abs().max()) < 1 - math.exp(-beta * 1.5 / 0.55 * 1.02)


# ---- night -------------------------------------------------------------------------------------------

def test_low_light_matches_imadjust():
    b = make_batch(3)
    for c in (0.6, 0.2):
        ours = low_light(b.rgb, c).numpy()
        for i in range(3):
            x = b.rgb[i].double().numpy()
            ref = ((x - x.min()) / (x.max() - x.min())) ** 2 * (c - 0) + 0
            np.testing.assert_allclose(ours[i], ref, atol=1e-6)


def test_night_matches_formula_with_the_same_draws():
    """Counts are scipy's Poisson inverse CDF at the stream's uniforms; the read noise is the stream's normals."""
    b = make_batch(2, 20, 24)
    for s, c in ((2, 0.5), (5, 0.2)):
        out = apply_corruption(b, "night", s, SEED).rgb.numpy()
        for i, m in enumerate(b.meta):
            rates = (low_light(b.rgb[i:i + 1], c)[0] * 120).double().numpy()  # float32 rates, as computed there
            counts = scipy_poisson.ppf(np_uniform(SEED, "night", "shot", m.key, rates.size), rates.ravel())
            normals = np_normal(SEED, "night", "read", m.key, rates.size)
            ref = np.clip(np.clip(counts / 120, 0, 1) + 0.018 * normals, 0, 1).reshape(rates.shape)
            np.testing.assert_allclose(out[i], ref, atol=1e-5)


def test_night_noise_statistics():
    """On a two-level image the bright half maps to `peak` and keeps mean peak with variance
    peak/120 + 0.018^2 (Poisson-Gaussian); the dark half is 0 + N(0, 0.018^2) clipped at 0."""
    n, h, w = 4, 64, 64
    rgb = torch.zeros(n, 3, h, w)
    rgb[..., :, w // 2:] = 1.0
    b = Batch(rgb, torch.zeros(n, 1, h, w), torch.zeros(n, h, w, dtype=torch.long),
              [SampleMeta("fixture", "test", f"two_level_{i}", i) for i in range(n)])
    for s, peak in ((1, 0.6), (5, 0.2)):
        out = apply_corruption(b, "night", s, SEED).rgb
        bright = out[..., w // 2:].double()
        dark = out[..., : w // 2].double()
        assert abs(float(bright.mean()) - peak) < 0.003
        assert abs(float(bright.var()) / (peak / 120 + 0.018**2) - 1) < 0.05
        assert abs(float((dark == 0).double().mean()) - 0.5) < 0.02
        assert abs(float(dark.mean()) - 0.018 / math.sqrt(2 * math.pi)) < 0.0005


# ---- thermal -----------------------------------------------------------------------------------------

def test_thermal_noise_matches_formula_and_sigma():
    b = make_batch(3, 40, 50)
    for s, sigma in zip(range(1, 6), (0.01, 0.02, 0.04, 0.06, 0.08)):
        out = apply_corruption(b, "thermal_noise", s, SEED).thermal.numpy()
        for i, m in enumerate(b.meta):
            noise = np_normal(SEED, "thermal_noise", "noise", m.key, 40 * 50).reshape(1, 40, 50)
            x = b.thermal[i].double().numpy()
            np.testing.assert_allclose(out[i], np.clip(x + sigma * noise, 0, 1), atol=1e-6)
    flat = Batch(b.rgb, torch.full_like(b.thermal, 0.5), b.label, b.meta)
    diff = apply_corruption(flat, "thermal_noise", 3, SEED).thermal - 0.5
    assert abs(float(diff.std()) / 0.04 - 1) < 0.03 and abs(float(diff.mean())) < 0.002


def test_thermal_stripes_match_formula():
    b = make_batch(3, 30, 40)
    for s, std in zip((1, 3, 5), (0.02, 0.05, 0.08)):
        out = apply_corruption(b, "thermal_stripes", s, SEED).thermal.numpy()
        for i, m in enumerate(b.meta):
            draws = np_normal(SEED, "thermal_stripes", "columns", m.key, 80).reshape(2, 40)
            offset, gain = std * draws[0], std * draws[1]
            x = b.thermal[i].double().numpy()
            np.testing.assert_allclose(out[i], np.clip(x + offset + gain * x, 0, 1), atol=1e-6)
    # fixed pattern: on a flat image every column is constant, and columns differ
    flat = Batch(b.rgb, torch.full_like(b.thermal, 0.5), b.label, b.meta)
    y = apply_corruption(flat, "thermal_stripes", 5, SEED).thermal
    assert torch.equal(y, y[:, :, :1, :].expand_as(y)) and float(y[0, 0, 0].std()) > 0.05


def test_thermal_crossover_matches_formula():
    b = make_batch(3)
    for s, c in zip(range(1, 6), (0.4, 0.3, 0.2, 0.1, 0.05)):
        out = apply_corruption(b, "thermal_crossover", s, SEED).thermal.numpy()
        x = b.thermal.double().numpy()
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        np.testing.assert_allclose(out, mean + c * (x - mean), atol=1e-6)


def test_thermal_blur_matches_scipy():
    for h, w in ((96, 40), (60, 80)):
        b = make_batch(2, h, w)
        for s, sigma224 in zip(range(1, 6), (1, 2, 3, 4, 6)):
            out = apply_corruption(b, "thermal_blur", s, SEED).thermal.numpy()
            sigma = sigma224 * h / 224  # 224 rows (sigma = table) is checked against ImageNet-C itself
            for i in range(2):
                ref = gaussian_filter(b.thermal[i, 0].double().numpy(), sigma, mode="nearest", truncate=4.0)
                np.testing.assert_allclose(out[i, 0], ref, atol=2e-6)
