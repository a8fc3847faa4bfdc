"""Registry, severity handling, determinism across batch sizes, ranges, modality isolation, monotone strength."""
import math

import pytest
import torch

from rgbt_bench.batch import Batch, SampleMeta
from rgbt_bench.corruptions import CORRUPTIONS, apply_corruption, get_corruption
from rgbt_bench.corruptions.cache import CACHE
from rgbt_bench.corruptions.stream import sample_words
from rgbt_bench.errors import ConfigError

NAMES = sorted(CORRUPTIONS)


def make_batch(n: int, h: int = 60, w: int = 80, first: int = 0, seed: int = 0) -> Batch:
    """n random samples with distinct keys sample_<first>.. (images drawn per sample, so any slice matches)."""
    rgb, thermal = [], []
    for i in range(first, first + n):
        g = torch.Generator().manual_seed(seed * 100003 + i)
        rgb.append(torch.rand(3, h, w, generator=g))
        thermal.append(torch.rand(1, h, w, generator=g))
    meta = [SampleMeta("fixture", "test", f"sample_{i}", i) for i in range(first, first + n)]
    return Batch(torch.stack(rgb), torch.stack(thermal), torch.zeros(n, h, w, dtype=torch.long), meta)


def test_registry_lists_every_required_corruption():
    required = {"rgb_missing", "thermal_missing", "rgb_patch_mask", "thermal_patch_mask", "complementary_patch_mask",
                "rgb_pixel_missing", "thermal_pixel_missing", "plasma_fog", "koschmieder_fog", "night",
                "thermal_noise", "thermal_stripes", "thermal_crossover", "thermal_blur"}
    assert set(CORRUPTIONS) == required
    for c in CORRUPTIONS.values():
        assert c.modality in ("rgb", "thermal", "both")
        assert c.description and all(len(v) == 5 for v in c.params.values())


def test_typo_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="unknown corruption 'plasma_fgo'.*Did you mean 'plasma_fog'"):
        get_corruption("plasma_fgo")


@pytest.mark.parametrize("bad", [-1, 6, 2.5, True, "3"])
def test_severity_out_of_range_names_the_value(bad):
    with pytest.raises(ConfigError, match=f"severity {bad!r} for corruption 'night'.*0..5"):
        apply_corruption(make_batch(1), "night", bad, 0)


def test_bad_options_are_config_errors():
    b = make_batch(1)
    with pytest.raises(ConfigError, match="option fill='black'.*zero, mean"):
        apply_corruption(b, "rgb_missing", 3, 0, fill="black")
    with pytest.raises(ConfigError, match="has no option 'colour'; its options are: fill"):
        apply_corruption(b, "rgb_missing", 3, 0, colour="zero")
    with pytest.raises(ConfigError, match="option patch=0 is too small"):
        apply_corruption(b, "rgb_patch_mask", 3, 0, patch=0)
    with pytest.raises(ConfigError, match="has no option 'fill'; its options are: none"):
        apply_corruption(b, "night", 1, 0, fill="zero")


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_returns_the_batch_unchanged(name):
    b = make_batch(2)
    assert apply_corruption(b, name, 0, 7) is b


def fresh(batch: Batch, name: str, severity: int, seed: int) -> Batch:
    """The corruption computed from scratch (nothing taken from the corruptions' cache)."""
    CACHE.clear()
    return apply_corruption(batch, name, severity, seed)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_sample_whatever_the_batch_size(name):
    """Bit-identical per sample for batch sizes 8, 4 and 1, and reproducible across calls."""
    full = make_batch(8)
    for severity in (1, 3, 5):
        ref = fresh(full, name, severity, 1234)
        again = fresh(make_batch(8), name, severity, 1234)
        assert torch.equal(ref.rgb, again.rgb) and torch.equal(ref.thermal, again.thermal)
        for start, size in ((0, 4), (4, 4)) + tuple((i, 1) for i in range(8)):
            part = fresh(make_batch(size, first=start), name, severity, 1234)
            assert torch.equal(part.rgb, ref.rgb[start:start + size]), (severity, start, size)
            assert torch.equal(part.thermal, ref.thermal[start:start + size]), (severity, start, size)


@pytest.mark.parametrize("name", NAMES)
def test_what_an_earlier_severity_left_in_the_cache_changes_nothing(name):
    """plasma_fog and night keep per-image fields for the next severity (rgbt_bench.corruptions.cache)."""
    batch = make_batch(3)
    for severity in (1, 3, 5):
        cold = fresh(batch, name, severity, 77)
        apply_corruption(batch, name, 6 - severity if severity != 3 else 2, 77)
        warm = apply_corruption(batch, name, severity, 77)
        assert torch.equal(warm.rgb, cold.rgb) and torch.equal(warm.thermal, cold.thermal), severity


@pytest.mark.parametrize("name", [n for n in NAMES if CORRUPTIONS[n].randomized])
def test_seed_and_sample_key_change_the_draws(name):
    b = make_batch(2)
    a = apply_corruption(b, name, 5 if "missing" not in name else 3, 1)
    c = apply_corruption(b, name, 5 if "missing" not in name else 3, 2)
    assert not (torch.equal(a.rgb, c.rgb) and torch.equal(a.thermal, c.thermal))
    assert sample_words(1, name, "x", "a/c") == sample_words(1, name, "x", "a/c")
    assert len({sample_words(1, name, "x", "a/c"), sample_words(2, name, "x", "a/c"),
                sample_words(1, name, "y", "a/c"), sample_words(1, name, "x", "a/d")}) == 4


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtype_range_and_untouched_modality(name):
    b = make_batch(3, 40, 56)
    c = CORRUPTIONS[name]
    for severity in range(1, 6):
        out = apply_corruption(b, name, severity, 3)
        assert out.rgb.shape == b.rgb.shape and out.thermal.shape == b.thermal.shape
        assert out.rgb.dtype == torch.float32 and out.thermal.dtype == torch.float32
        assert float(out.rgb.min()) >= 0 and float(out.rgb.max()) <= 1
        assert float(out.thermal.min()) >= 0 and float(out.thermal.max()) <= 1
        assert out.label is b.label and out.meta is b.meta
        if c.modality == "rgb":
            assert out.thermal is b.thermal
        if c.modality == "thermal":
            assert out.rgb is b.rgb
    touched = out.rgb if c.modality == "rgb" else out.thermal
    assert not torch.equal(touched, b.rgb if c.modality == "rgb" else b.thermal)


def _strength(name: str, severity: int, batch: Batch) -> float:
    options = {"patch": 8} if "patch" in CORRUPTIONS[name].options else {}
    out = apply_corruption(batch, name, severity, 99, **options)
    return float((out.rgb - batch.rgb).abs().mean() + (out.thermal - batch.thermal).abs().mean())


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("rgb_missing", "thermal_missing",
                                                                    "complementary_patch_mask")])
def test_strength_grows_with_severity(name):
    """Mean absolute change from the clean images grows with severity (plasma fog's severities 3 and 4 share
    c0 = 2.5 and differ only in fractal roughness, so there equality within 10% is accepted). Patch masks use
    8-px patches here: 48 cells give distinct counts 5, 10, 15, 20, 24 (a 2x2 grid of 32-px cells would not)."""
    batch = make_batch(16, 48, 64)
    strengths = [_strength(name, s, batch) for s in range(6)]
    assert strengths[0] == 0
    for s in range(1, 6):
        if name == "plasma_fog" and s == 4:
            assert strengths[4] >= 0.9 * strengths[3]
        else:
            assert strengths[s] > strengths[s - 1], strengths


@pytest.mark.parametrize("name", ["rgb_missing", "thermal_missing"])
def test_dropout_fraction_follows_severity(name):
    """Severity s drops the modality of about s/5 of the samples (per-sample draws; 5 drops all)."""
    batch = make_batch(400, 4, 4)
    modality = "rgb" if name == "rgb_missing" else "thermal"
    fractions = []
    for s in range(1, 6):
        out = getattr(apply_corruption(batch, name, s, 5), modality)
        dropped = (out == 0).flatten(1).all(dim=1)
        kept = (out == getattr(batch, modality)).flatten(1).all(dim=1)
        assert bool((dropped ^ kept).all())
        fractions.append(float(dropped.float().mean()))
    for s, f in enumerate(fractions, start=1):
        sd = math.sqrt(s / 5 * (1 - s / 5) / 400)
        assert abs(f - s / 5) <= 4 * sd + 1e-9, fractions
    assert fractions[-1] == 1.0


def test_settings_record_params_and_resolved_options():
    c = get_corruption("rgb_missing")
    assert c.settings(3, fill="mean") == {"corruption": "rgb_missing", "modality": "rgb", "severity": 3,
                                          "params": {"drop_probability": 0.6}, "options": {"fill": "mean"}}
    assert get_corruption("koschmieder_fog").settings(0)["options"] == {"airlight": 0.8, "horizon": 0.45}


def test_missing_metadata_is_a_clear_error():
    b = make_batch(2)
    b.meta = b.meta[:1]
    with pytest.raises(ConfigError, match="1 SampleMeta for 2 samples"):
        apply_corruption(b, "thermal_noise", 2, 0)


def test_docs_parameter_table_matches_the_registry():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "corruptions.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] in CORRUPTIONS:
            rows[(cells[0], cells[2])] = (cells[1], tuple(float(v) for v in cells[3:]))
    expected = {(c.name, k): (c.modality, tuple(v)) for c in CORRUPTIONS.values() for k, v in c.params.items()}
    assert rows == expected
