"""Training augmentation and data stream: exact geometry, ignore-index padding, seeded determinism,
photometric invariants, batches independent of worker count and resume position."""
import numpy as np
import pytest
import torch

from rgbt_bench.batch import Sample, SampleMeta
from rgbt_bench.training.augment import (
    AugmentedDataset,
    AugmentParams,
    augment_sample,
    jitter_rgb,
    jitter_thermal,
    resized_size,
    sample_seed,
    shortest_edge_size,
)
from rgbt_bench.training.data import EpochSampler, train_loader
from rgbt_bench.training.photometric import hsv_to_rgb, rgb_to_hsv, ssd_distort

H, W = 30, 40
META = SampleMeta("test", "train", "img0", 0)


def _coded_sample() -> Sample:
    """Labels in large blocks; every image channel encodes the label, so geometry can be checked exactly."""
    label = torch.zeros(H, W, dtype=torch.int64)
    label[:, 10:20] = 1
    label[15:, 20:] = 2
    label[:8, 30:] = 3
    code = label.float() / 4
    return Sample(rgb=code.expand(3, H, W).clone(), thermal=code[None].clone(), label=label, meta=META)


def _geometry_only(crop, scale=(1.0, 1.0)) -> AugmentParams:
    return AugmentParams(crop=crop, scale_range=scale, jitter_prob=0.0, ignore_index=255)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_and_flip_keep_images_and_labels_aligned():
    sample = _coded_sample()
    flipped_seen = 0
    for seed in range(40):
        out = augment_sample(sample, _geometry_only((20, 24)), _g(seed))
        assert out.rgb.shape == (3, 20, 24) and out.thermal.shape == (1, 20, 24) and out.label.shape == (20, 24)
        assert out.label.dtype == torch.int64 and out.rgb.dtype == torch.float32
        assert torch.equal(out.rgb[0] * 4, out.label.float())
        assert torch.equal(out.thermal[0] * 4, out.label.float())
        # the crop is a window of the original, possibly mirrored
        found = [(t, left, f) for t in range(H - 20 + 1) for left in range(W - 24 + 1) for f in (False, True)
                 if torch.equal((sample.label.flip(-1) if f else sample.label)[t:t + 20, left:left + 24], out.label)]
        assert found
        flipped_seen += any(f for _, _, f in found) and not any(not f for _, _, f in found)
    assert 10 <= flipped_seen <= 30


def test_rescaled_images_follow_their_labels():
    sample = _coded_sample()
    for seed in range(10):
        out = augment_sample(sample, _geometry_only((24, 32), scale=(1.5, 2.0)), _g(seed))
        agree = ((out.rgb[0] * 4).round() == out.label.float()).float().mean()
        assert agree > 0.9


def test_downscaled_sample_is_padded_with_ignore_and_black():
    sample = _coded_sample()
    out = augment_sample(sample, _geometry_only((H, W), scale=(0.5, 0.5)), _g(0))
    assert out.label.shape == (H, W)
    h, w = round(H * 0.5), round(W * 0.5)
    assert (out.label[h:, :] == 255).all() and (out.label[:, w:] == 255).all()
    assert (out.label[:h, :w] != 255).all()
    assert out.rgb[:, h:, :].abs().sum() == 0 and out.thermal[:, :, w:].abs().sum() == 0
    assert set(out.label[:h, :w].unique().tolist()) <= {0, 1, 2, 3}


def test_same_seed_same_sample_and_keys_differ_by_epoch():
    sample = _coded_sample()
    sample.rgb.uniform_(0.2, 0.8, generator=_g(5))
    params = AugmentParams(crop=(20, 24))
    a = augment_sample(sample, params, _g(3))
    b = augment_sample(sample, params, _g(3))
    c = augment_sample(sample, params, _g(4))
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.label, b.label) and torch.equal(a.thermal, b.thermal)
    assert not torch.equal(a.rgb, c.rgb)
    ds = AugmentedDataset([sample, sample], params, seed=1024)
    assert torch.equal(ds[(1, 0)].rgb, ds[(1, 0)].rgb)
    assert not torch.equal(ds[(1, 0)].rgb, ds[(1, 1)].rgb)
    assert not torch.equal(ds[(0, 0)].rgb, ds[(1, 0)].rgb)
    assert sample_seed(1024, 0, 1) != sample_seed(1024, 1, 0) and sample_seed(1, 2, 3) == sample_seed(1, 2, 3)


def test_thermal_jitter_is_contrast_about_the_mean():
    thermal = torch.rand(1, H, W, generator=_g(1)) * 0.2 + 0.4
    params = AugmentParams(crop=(H, W), jitter_prob=1.0)
    factors = []
    for seed in range(20):
        out = jitter_thermal(thermal, params, _g(seed))
        assert torch.allclose(out.mean(), thermal.mean(), atol=1e-6)
        factor = float(out.std() / thermal.std())
        assert torch.allclose(out - out.mean(), (thermal - thermal.mean()) * factor, atol=1e-5)
        factors.append(factor)
    assert 0.5 <= min(factors) < 0.8 and 1.2 < max(factors) <= 1.5


def test_rgb_saturation_keeps_grey_level_and_brightness_shifts_within_range():
    rgb = torch.rand(3, H, W, generator=_g(2)) * 0.4 + 0.3
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    saturation_only = AugmentParams(crop=(H, W), jitter_prob=1.0, brightness=0.0, contrast=(1.0, 1.0))
    for seed in range(5):
        out = jitter_rgb(rgb, saturation_only, _g(seed))
        assert torch.allclose((out * luma).sum(0), (rgb * luma).sum(0), atol=1e-5)
        assert not torch.allclose(out, rgb)
    brightness_only = AugmentParams(crop=(H, W), jitter_prob=1.0, contrast=(1.0, 1.0), saturation=(1.0, 1.0))
    shifts = [float((jitter_rgb(rgb, brightness_only, _g(s)) - rgb).mean()) for s in range(30)]
    assert all(abs(d) <= 32 / 255 + 1e-6 for d in shifts)
    assert min(shifts) < -0.05 and max(shifts) > 0.05


def _stream(dataset, workers, epoch, skip, replicas=1, rank=0):
    sampler = EpochSampler(dataset, replicas, rank, seed=7)
    sampler.start_at(epoch, skip)
    return [b for b in train_loader(dataset, sampler, 2, workers, seed=7, pin_memory=False)]


def _names(stream):
    return [m.name for b in stream for m in b.meta]


def test_data_stream_is_a_function_of_epoch_and_position_only():
    base = [Sample(rgb=torch.full((3, H, W), i / 10), thermal=torch.zeros(1, H, W),
                   label=torch.zeros(H, W, dtype=torch.int64), meta=SampleMeta("t", "train", f"n{i}", i))
            for i in range(7)]
    ds = AugmentedDataset(base, AugmentParams(crop=(20, 24)), seed=3)
    plain = _stream(ds, 0, epoch=1, skip=0)
    assert len(plain) == 3  # 7 samples, batches of 2, the incomplete one dropped
    with_workers = _stream(ds, 2, epoch=1, skip=0)
    assert all(torch.equal(a.rgb, b.rgb) and a.meta == b.meta for a, b in zip(plain, with_workers))
    resumed = _stream(ds, 0, epoch=1, skip=2)
    assert len(resumed) == 2 and all(torch.equal(a.rgb, b.rgb) for a, b in zip(plain[1:], resumed))
    assert _names(_stream(ds, 0, epoch=2, skip=0)) != _names(plain)
    ranks = [_names(_stream(ds, 0, epoch=1, skip=0, replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 4 and len(set(ranks[0]) | set(ranks[1])) == 7


def _blank(h, w) -> Sample:
    return Sample(rgb=torch.zeros(3, h, w), thermal=torch.zeros(1, h, w), label=torch.zeros(h, w, dtype=torch.int64),
                  meta=META)


def test_scale_choices_follow_detectron2_shortest_edge_with_the_size_cap():
    """crm_paper: short side = int(f x short side) for f in {0.5, ..., 2.0}, long side rounded, longest side
    capped at 1920: MFNet 480x640 reaches 960x1280, PST900 720x1280 stops at 1080x1920 (1.5x)."""
    choices = tuple(round(0.1 * x, 1) for x in range(5, 21))
    params = AugmentParams(crop=(4, 4), scale_choices=choices, max_size=1920)
    mfnet = {resized_size(480, 640, params, _g(s)) for s in range(400)}
    assert mfnet == {(int(x * 0.1 * 480), round(int(x * 0.1 * 480) * 640 / 480)) for x in range(5, 21)}
    pst = {resized_size(720, 1280, params, _g(s)) for s in range(400)}
    assert max(pst) == (1080, 1920) and (360, 640) in pst and len(pst) == 11  # 1.5x .. 2.0x all capped
    kp = {resized_size(512, 640, params, _g(s)) for s in range(400)}
    assert (409, 511) in kp and (1024, 1280) in kp  # int(0.8 * 512) = 409 as the official int(x * 0.1 * 512)
    assert shortest_edge_size(640, 480, 240, None) == (320, 240)


def test_continuous_scale_keeps_todays_sizes_and_respects_the_cap():
    params = AugmentParams(crop=(4, 4), scale_range=(2.0, 2.0))
    assert resized_size(30, 40, params, _g(0)) == (60, 80)
    assert resized_size(30, 40, AugmentParams(crop=(4, 4), scale_range=(2.0, 2.0), max_size=60), _g(0)) == (45, 60)


def test_resize_antialias_option():
    """Stripes two rows high, halved: plain bilinear (the official resize) keeps them at full contrast,
    antialiasing blurs them towards grey."""
    sample = _blank(40, 40)
    sample.rgb[:, (torch.arange(40) // 2) % 2 == 0] = 1.0
    geometry = dict(crop=(20, 20), scale_range=(0.5, 0.5), jitter_prob=0.0, flip_prob=0.0)
    plain = augment_sample(sample, AugmentParams(**geometry, antialias=False), _g(0)).rgb[0, :, 0]
    smooth = augment_sample(sample, AugmentParams(**geometry), _g(0)).rgb[0, 2:-2, 0]
    assert torch.equal(plain, (torch.arange(20) % 2 == 0).float())
    assert torch.allclose((smooth - 0.5).abs(), torch.full_like(smooth, 0.25))  # contrast halved


def _hsv_cv2(rgb):
    cv2 = pytest.importorskip("cv2")
    return cv2.cvtColor(rgb.permute(1, 2, 0).numpy().astype(np.float32), cv2.COLOR_RGB2HSV)


def test_hsv_conversion_matches_opencv():
    """OpenCV on float images: H in degrees [0, 360), S and V in [0, 1]."""
    rgb = torch.rand(3, 16, 20, generator=_g(3))
    rgb[:, 0, :4] = torch.tensor([0.5, 0.5, 0.5])[:, None]  # grey: hue and saturation 0
    rgb[:, 1, :2] = 0.0  # black
    hsv = rgb_to_hsv(rgb)
    expected = torch.from_numpy(_hsv_cv2(rgb)).permute(2, 0, 1)
    assert torch.allclose(hsv[1:], expected[1:], atol=1e-5)
    hue_diff = (hsv[0] * 360 - expected[0]).abs()
    assert torch.minimum(hue_diff, 360 - hue_diff).max() < 1e-3
    assert torch.allclose(hsv_to_rgb(hsv), rgb, atol=1e-5)


def test_ssd_hue_and_saturation_steps_match_opencv():
    """A hue shift of k OpenCV units (2 degrees each) and a saturation gain, done through cv2 on floats."""
    cv2 = pytest.importorskip("cv2")
    rgb = torch.rand(3, 8, 8, generator=_g(4))
    hsv = rgb_to_hsv(rgb)
    hsv[0] = torch.remainder(hsv[0] + 7 / 180, 1.0)
    hsv[1] = (hsv[1] * 1.3).clamp(0, 1)
    ref = _hsv_cv2(rgb)
    ref[..., 0] = np.mod(ref[..., 0] + 14.0, 360.0)
    ref[..., 1] = np.clip(ref[..., 1] * 1.3, 0, 1)
    back = torch.from_numpy(cv2.cvtColor(ref, cv2.COLOR_HSV2RGB)).permute(2, 0, 1)
    assert torch.allclose(hsv_to_rgb(hsv), back, atol=1e-5)


def test_ssd_distortion_draws_the_published_ranges():
    """Thermal: a gain x[0.5, 1.5] half the time; RGB: brightness +-32/255, each step half the time."""
    rgb = torch.full((3, 4, 4), 0.4)
    rgb[0] = 0.5
    thermal = torch.full((1, 4, 4), 0.4)
    gains, unchanged_rgb = [], 0
    for seed in range(400):
        out_rgb, out_thermal = ssd_distort(rgb.clone(), thermal.clone(), _g(seed))
        gains.append(float(out_thermal[0, 0, 0]) / 0.4)
        unchanged_rgb += torch.equal(out_rgb, rgb)
        assert out_rgb.min() >= 0 and out_rgb.max() <= 1
    ones = sum(abs(g - 1) < 1e-7 for g in gains)
    assert 160 < ones < 240  # applied with probability 0.5
    moved = [g for g in gains if abs(g - 1) >= 1e-7]
    assert min(moved) >= 0.5 - 1e-6 and max(moved) <= 1.5 + 1e-6 and min(moved) < 0.6 and max(moved) > 1.4
    assert 10 < unchanged_rgb < 45  # all four RGB steps skipped: 1/16 of the time
    hues = set()
    for seed in range(200):
        out_rgb, _ = ssd_distort(rgb.clone(), thermal.clone(), _g(seed))
        hues.add(round(float(rgb_to_hsv(out_rgb)[0, 0, 0]) * 180) % 180)
    assert hues <= set(range(0, 19)) | set(range(162, 180)) and len(hues) > 20  # red (hue 0) +- 18 units


def test_photometric_option_selects_the_distortion():
    sample = _coded_sample()
    sample.rgb.uniform_(0.2, 0.8, generator=_g(5))
    geometry = dict(crop=(H, W), scale_range=(1.0, 1.0), flip_prob=0.0)
    ssd = augment_sample(sample, AugmentParams(**geometry, photometric="ssd"), _g(9))
    g = _g(9)
    resized_size(H, W, AugmentParams(**geometry), g)
    torch.randint(0, 1, (), generator=g), torch.randint(0, 1, (), generator=g)  # crop offsets
    torch.rand((), generator=g)  # flip
    expected_rgb, expected_thermal = ssd_distort(sample.rgb, sample.thermal, g)
    assert torch.equal(ssd.rgb, expected_rgb) and torch.equal(ssd.thermal, expected_thermal)
