"""Comparison with the ImageNet-C reference implementation (package `imagecorruptions-imaug`, a test-only
dependency that imports as `imagecorruptions`). Deterministic corruptions must match it
exactly; random ones must match its seed-independent statistics (mean / std of the output)."""
import math

import numpy as np
import torch

from rgbt_bench.batch import Batch, SampleMeta
from rgbt_bench.corruptions import apply_corruption
from rgbt_bench.corruptions.blur import gaussian_blur

H, W = 120, 160


def scene_uint8() -> np.ndarray:
    """A smooth colour scene with a few objects, as an 8-bit H x W x 3 image."""
    yy, xx = np.mgrid[0:H, 0:W] / np.array([H, W]).reshape(2, 1, 1)
    img = np.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * yy * xx], axis=-1)
    img[70:100, 30:70] = (0.8, 0.1, 0.1)
    img[20:50, 100:140] = (0.9, 0.9, 0.7)
    return (img * 255).round().astype(np.uint8)


def batch_of(img8: np.ndarray, n: int) -> Batch:
    """n copies of the scene as RGB, its grey level as thermal, each copy with its own sample key."""
    rgb = torch.from_numpy(img8 / 255.0).float().permute(2, 0, 1)
    thermal = torch.from_numpy(img8[..., :1] / 255.0).float().permute(2, 0, 1)
    meta = [SampleMeta("fixture", "test", f"scene_{i}", i) for i in range(n)]
    return Batch(rgb[None].repeat(n, 1, 1, 1), thermal[None].repeat(n, 1, 1, 1),
                 torch.zeros(n, H, W, dtype=torch.long), meta)


def assert_same_mean(ref: np.ndarray, ours: np.ndarray, what: str) -> None:
    """Means of per-image statistics agree within 4 combined standard errors."""
    se = math.sqrt(ref.var(ddof=1) / len(ref) + ours.var(ddof=1) / len(ours))
    assert abs(ref.mean() - ours.mean()) <= 4 * se, (what, ref.mean(), ours.mean(), se)


def test_plasma_fog_statistics_match_imagecorruptions_fog():
    from imagecorruptions.corruptions import fog

    img8, n = scene_uint8(), 32
    b = batch_of(img8, n)
    for s in (1, 3, 5):
        np.random.seed(100 + s)
        ref = np.stack([fog(img8.copy(), s) / 255.0 for _ in range(n)])
        ours = apply_corruption(b, "plasma_fog", s, 2024).rgb.permute(0, 2, 3, 1).double().numpy()
        assert_same_mean(ref.mean(axis=(1, 2, 3)), ours.mean(axis=(1, 2, 3)), f"mean s{s}")
        assert_same_mean(ref.std(axis=(1, 2, 3)), ours.std(axis=(1, 2, 3)), f"std s{s}")
        # the content is compressed by max / (max + c0): the clean image's contrast is divided the same way
        clean_std = (img8 / 255.0).std()
        assert ours.std(axis=(1, 2, 3)).mean() < clean_std * 1.5


def test_thermal_noise_statistics_match_imagecorruptions_gaussian_noise():
    """Our severity 5 (sigma 0.08) against ImageNet-C gaussian_noise severity 1 (sigma 0.08)."""
    from imagecorruptions.corruptions import gaussian_noise

    img8, n = scene_uint8(), 6
    grey = np.repeat(img8[..., :1], 3, axis=-1)
    np.random.seed(7)
    ref = np.stack([gaussian_noise(grey.copy(), 1)[..., 0] / 255.0 for _ in range(n)])
    ours = apply_corruption(batch_of(img8, n), "thermal_noise", 5, 2024).thermal[:, 0].double().numpy()
    clean = grey[..., 0] / 255.0
    for stat in (np.mean, np.std):
        r = np.array([stat(x) for x in ref])
        o = np.array([stat(x) for x in ours])
        assert abs(r.mean() - o.mean()) < 0.002, (stat.__name__, r.mean(), o.mean())
    assert abs(np.std(ref - clean) - np.std(ours - clean)) < 0.002


def test_thermal_crossover_equals_imagecorruptions_contrast():
    from imagecorruptions.corruptions import contrast

    img8 = scene_uint8()
    grey = np.repeat(img8[..., :1], 3, axis=-1)
    b = batch_of(img8, 1)
    for s in range(1, 6):
        ref = contrast(grey.copy(), s)[..., 0] / 255.0
        ours = apply_corruption(b, "thermal_crossover", s, 0).thermal[0, 0].double().numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_blur_equals_imagecorruptions_gaussian_blur_at_224_rows():
    """At 224 rows (ImageNet-C's size) thermal_blur is exactly ImageNet-C's gaussian_blur."""
    from imagecorruptions.corruptions import gaussian_blur as ic_blur

    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 256, size=(224, 96, 3), dtype=np.uint8)
    thermal = torch.from_numpy(img8[..., :1] / 255.0).float().permute(2, 0, 1)[None]
    b = Batch(torch.zeros(1, 3, 224, 96), thermal, torch.zeros(1, 224, 96, dtype=torch.long),
              [SampleMeta("fixture", "test", "noise", 0)])
    for s in range(1, 6):
        ref = ic_blur(img8.copy(), s)[..., 0] / 255.0
        ours = apply_corruption(b, "thermal_blur", s, 0).thermal[0, 0].double().numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-6)
        direct = gaussian_blur(torch.from_numpy(img8 / 255.0).permute(2, 0, 1)[None], [1, 2, 3, 4, 6][s - 1])
        np.testing.assert_allclose(direct[0].permute(1, 2, 0).numpy(), ic_blur(img8.copy(), s) / 255.0, atol=1e-9)
