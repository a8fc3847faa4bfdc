"""Training augmentation and data stream: exact geometry, ignore-index padding, seeded determinism,
photometric invariants, batches independent of worker count and resume position."""
import torch

from rgbt_bench.batch import Sample, SampleMeta
from rgbt_bench.training.augment import (AugmentedDataset, AugmentParams, augment_sample, jitter_rgb,
                                         jitter_thermal, sample_seed)
from rgbt_bench.training.data import EpochSampler, train_loader

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
        found = [(t, l, f) for t in range(H - 20 + 1) for l in range(W - 24 + 1) for f in (False, True)
                 if torch.equal((sample.label.flip(-1) if f else sample.label)[t:t + 20, l:l + 24], out.label)]
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
