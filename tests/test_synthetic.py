"""The built-in synthetic dataset: format, splits, determinism, cache behaviour and, above all, that the
two modalities are complementary in the way docs/synthetic.md says."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.ndimage import maximum_filter
from torch.utils.data import DataLoader

from rgbt_bench.batch import collate
from rgbt_bench.datasets import open_dataset, scene, synthetic
from rgbt_bench.datasets.synthetic import SyntheticRGBT
from rgbt_bench.errors import ConfigError, DataError

SMALL = {"size": (32, 40), "counts": (8, 4, 8)}
STUFF = (scene.E_ROAD, scene.E_VERGE, scene.E_LANE, scene.E_BUILDING)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """A small cached dataset shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("synthetic")
    SyntheticRGBT(root, "train", **SMALL)
    return root


@pytest.fixture(scope="module")
def native():
    """48 images at the native 120x160 as float arrays, for statistics."""
    r = scene.render(range(1000, 1048), (120, 160), seed=3)
    night = np.array([scene.is_night_index(i) for i in range(1000, 1048)])
    return {"rgb": r.rgb.astype(np.float32) / 255, "thermal": r.thermal.astype(np.float32) / 255,
            "label": r.label, "element": r.element, "night": night}


def _dilate(mask, k):
    return maximum_filter(mask, size=(1, 2 * k + 1, 2 * k + 1))


def _contrast(img, region, allowed, inner=2, outer=4):
    """Per image: mean of `img` inside `region` minus mean over a ring 3..4 px around it (within
    `allowed`); returns the per-image differences (images with >= 8 pixels in both)."""
    ring = _dilate(region, outer) & ~_dilate(region, inner) & allowed
    diffs = [img[i][region[i]].mean(0) - img[i][ring[i]].mean(0)
             for i in range(len(img)) if region[i].sum() >= 8 and ring[i].sum() >= 8]
    return np.array(diffs)


def _typical(diffs):
    """Median over images of the absolute contrast (averaged over colour channels)."""
    a = np.abs(diffs)
    return float(np.median(a if a.ndim == 1 else a.mean(1)))


def test_info_describes_seven_classes_with_distinct_colours():
    info = SyntheticRGBT.info
    assert info.num_classes == 7
    assert info.class_names[0] == "background" and "lane_marking" in info.class_names
    assert len(set(info.palette)) == 7
    assert info.ignore_index == 255 and info.convention == "field"
    assert info.native_size == (120, 160) and info.has_day_night
    assert info.splits == ("train", "val", "test", "test_day", "test_night")


def test_samples_have_the_batch_conventions(small_root):
    ds = SyntheticRGBT(small_root, "train", **SMALL)
    assert len(ds) == 8
    for i in range(len(ds)):
        s = ds[i]
        assert s.rgb.dtype == torch.float32 and s.rgb.shape == (3, 32, 40)
        assert s.thermal.dtype == torch.float32 and s.thermal.shape == (1, 32, 40)
        assert s.label.dtype == torch.int64 and s.label.shape == (32, 40)
        assert 0 <= float(s.rgb.min()) and float(s.rgb.max()) <= 1
        assert 0 <= float(s.thermal.min()) and float(s.thermal.max()) <= 1
        ids = set(s.label.unique().tolist())
        assert ids <= set(range(7)) | {255} and scene.ROAD in ids
        assert re.fullmatch(r"\d{5}[DN]", s.meta.name)
        assert s.meta.is_night == s.meta.name.endswith("N") == ds.is_night(i)
        assert (s.meta.dataset, s.meta.split, s.meta.index) == ("synthetic", "train", i)
    assert ds.files(3) == [ds.directory / "train.npz"] and ds.files(3)[0].is_file()
    elements = torch.stack([ds.elements(i) for i in range(len(ds))])
    labels = torch.stack([ds[i].label for i in range(len(ds))])
    assert elements.dtype == torch.int64 and elements.shape == (8, 32, 40)
    assert bool((elements[labels == scene.ROAD] == scene.E_ROAD).all())
    assert bool(torch.isin(labels[elements == scene.E_SKY], torch.tensor([scene.BACKGROUND, 255])).all())


def test_default_size_is_native_and_uses_the_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RGBT_BENCH_CACHE", str(tmp_path))
    ds = open_dataset("synthetic", "val", counts=(2, 2, 2))
    assert ds.directory.parent == tmp_path
    assert ds[0].rgb.shape == (3, 120, 160) and ds[1].label.shape == (120, 160)
    assert ds.spec == "synthetic"


def test_splits_are_like_mfnet(small_root):
    split = {name: SyntheticRGBT(small_root, name, **SMALL) for name in SyntheticRGBT.info.splits}
    assert [len(split[k]) for k in ("train", "val", "test", "test_day", "test_night")] == [8, 4, 8, 4, 4]
    assert not set(split["train"].names) & set(split["val"].names)
    assert not set(split["val"].names) & set(split["test"].names)
    assert sum(split["train"].is_night(i) for i in range(8)) == 4
    assert all(n.endswith("D") for n in split["test_day"].names)
    assert all(split["test_night"].is_night(i) for i in range(4))
    assert sorted(split["test_day"].names + split["test_night"].names) == split["test"].names
    for name, ds in split.items():
        assert (ds.directory / f"{name}.txt").read_text().split() == ds.names
    night, test = split["test_night"], split["test"]
    assert night.files(0) == test.files(0)
    j = test.names.index(night.names[1])
    assert torch.equal(night[1].rgb, test[j].rgb) and torch.equal(night[1].label, test[j].label)
    assert night[1].meta.split == "test_night"


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    a = SyntheticRGBT(tmp_path / "a", "test", seed=5, **SMALL)
    b = SyntheticRGBT(tmp_path / "b", "test", seed=5, **SMALL)
    c = SyntheticRGBT(tmp_path / "c", "test", seed=6, **SMALL)
    with np.load(a.source) as za, np.load(b.source) as zb, np.load(c.source) as zc:
        for key in ("rgb", "thermal", "label", "element"):
            assert za[key].tobytes() == zb[key].tobytes()
        assert np.abs(za["rgb"].astype(int) - zc["rgb"].astype(int)).mean() > 10
        assert (za["label"] != zc["label"]).mean() > 0.2


def test_an_image_depends_only_on_seed_index_and_size():
    whole = scene.render(range(0, 70), (24, 32), seed=1)  # crosses a rendering chunk boundary
    part = scene.render([66, 3], (24, 32), seed=1)
    assert np.array_equal(part.rgb, whole.rgb[[66, 3]])
    assert np.array_equal(part.thermal, whole.thermal[[66, 3]])
    assert np.array_equal(part.label, whole.label[[66, 3]])


def test_second_open_reuses_the_cache(small_root, monkeypatch):
    first = SyntheticRGBT(small_root, "val", **SMALL)
    mtime = first.source.stat().st_mtime_ns

    def no_render(*args, **kwargs):
        raise AssertionError("the cached dataset was regenerated")

    monkeypatch.setattr(scene, "render", no_render)
    again = SyntheticRGBT(small_root, "val", **SMALL)
    assert torch.equal(again[2].thermal, first[2].thermal)
    assert again.source.stat().st_mtime_ns == mtime


def test_interrupted_generation_leaves_no_cache(tmp_path, monkeypatch):
    real = scene.render
    calls = []

    def dies_on_second_split(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(scene, "render", dies_on_second_split)
    with pytest.raises(KeyboardInterrupt):
        SyntheticRGBT(tmp_path, "train", **SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(scene, "render", real)
    ds = SyntheticRGBT(tmp_path, "train", **SMALL)
    assert len(ds) == 8 and [p.name for p in tmp_path.iterdir()] == [ds.directory.name]


def test_losing_a_generation_race_keeps_the_winner(tmp_path):
    counts = synthetic.parse_counts(SMALL["counts"])
    target = tmp_path / synthetic.dataset_dir_name(0, SMALL["size"], counts)
    synthetic.generate(target, SMALL["size"], 0, counts)
    before = (target / "train.npz").stat().st_mtime_ns
    synthetic.generate(target, SMALL["size"], 0, counts)  # the later finisher finds the cache in place
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert (target / "train.npz").stat().st_mtime_ns == before
    assert len(SyntheticRGBT(tmp_path, "test_day", **SMALL)) == 4


def test_corrupt_cache_file_is_a_clear_error(tmp_path):
    ds = SyntheticRGBT(tmp_path, "val", **SMALL)
    ds.source.write_bytes(ds.source.read_bytes()[:200])
    with pytest.raises(DataError, match=re.escape(str(ds.source))):
        SyntheticRGBT(tmp_path, "val", **SMALL)[0]


@pytest.mark.parametrize("options, match", [
    ({"size": (8, 8)}, "size"),
    ({"size": "big"}, "size"),
    ({"counts": (1, 2, 2)}, "count"),
    ({"counts": {"trian": 4}}, "trian"),
    ({"seed": -1}, "seed"),
])
def test_bad_options_are_config_errors(tmp_path, options, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticRGBT(tmp_path, "train", **options)


def test_bad_split_and_string_size(tmp_path):
    with pytest.raises(ConfigError, match="tset"):
        open_dataset("synthetic", "tset")
    ds = open_dataset(f"synthetic:{tmp_path}", "val", size="32x40", counts=(8, 4, 8))
    assert ds.size == (32, 40) and ds.spec == f"synthetic:{tmp_path}"


@pytest.mark.slow
def test_dataloader_with_two_workers(small_root):
    ds = SyntheticRGBT(small_root, "test", **SMALL)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3, 2]
    rgb = torch.cat([b.rgb for b in batches])
    label = torch.cat([b.label for b in batches])
    assert rgb.shape == (8, 3, 32, 40) and label.dtype == torch.int64
    assert torch.equal(rgb, torch.stack([ds[i].rgb for i in range(8)]))
    assert [m.name for b in batches for m in b.meta] == ds.names


def test_labels_agree_with_scene_elements(native):
    label, element = native["label"], native["element"]
    present = set(np.unique(label).tolist())
    assert set(range(7)) | {255} <= present
    person = np.isin(element, [scene.E_PERSON, scene.E_CAMO])
    assert np.all(np.isin(label[person], [scene.PERSON, 255]))
    assert np.all(np.isin(label[element == scene.E_POSTER], [scene.BACKGROUND, 255]))
    assert np.all(np.isin(label[element == scene.E_LANE], [scene.LANE, 255]))
    # Ignored pixels form a one-pixel halo around objects and nothing else.
    things = np.isin(label, scene.THINGS)
    ignored = label == 255
    assert np.all(_dilate(things, 1)[ignored])
    assert 0.01 < ignored.mean() < 0.05


def test_lane_markings_and_cones_are_invisible_in_thermal(native):
    rgb, th, el = native["rgb"], native["thermal"], native["element"]
    road = el == scene.E_ROAD
    ground = np.isin(el, [scene.E_ROAD, scene.E_VERGE, scene.E_LANE])
    lane_t = _contrast(th, el == scene.E_LANE, road)
    lane_rgb = _contrast(rgb, el == scene.E_LANE, road)
    cone_t = _contrast(th, el == scene.E_CONE, ground)
    cone_rgb = _contrast(rgb, el == scene.E_CONE, ground)
    person_t = _contrast(th, el == scene.E_PERSON, np.isin(el, STUFF))
    assert len(lane_t) >= 30 and len(cone_t) >= 15
    assert _typical(lane_t) < 0.01 and _typical(cone_t) < 0.02
    assert _typical(lane_t) < 0.1 * _typical(person_t) and _typical(cone_t) < 0.1 * _typical(person_t)
    assert np.median(lane_rgb.mean(1)) > 0.07  # paint is brighter than asphalt
    assert np.median(cone_rgb[:, 0] - cone_rgb[:, 2]) > 0.12  # orange: red up, blue down


def test_hot_pipes_are_invisible_in_rgb(native):
    rgb, th, el = native["rgb"], native["thermal"], native["element"]
    pipe_rgb = _contrast(rgb, el == scene.E_PIPE, el == scene.E_BUILDING)
    pipe_t = _contrast(th, el == scene.E_PIPE, el == scene.E_BUILDING)
    assert len(pipe_t) >= 15
    assert np.median(pipe_t) > 0.2 and pipe_t.min() > 0.1
    assert _typical(pipe_rgb) < 0.06 and _typical(pipe_rgb) < 0.25 * np.median(pipe_t)  # the walls' windows


def test_only_thermal_tells_persons_from_posters(native):
    rgb, th, el = native["rgb"], native["thermal"], native["element"]
    stuff = np.isin(el, STUFF)
    poster_t = _contrast(th, el == scene.E_POSTER, stuff)
    person_t = _contrast(th, el == scene.E_PERSON, stuff)
    camo_t = _contrast(th, el == scene.E_CAMO, stuff)
    poster_rgb, person_rgb, camo_rgb = (_typical(_contrast(rgb, el == e, stuff))
                                        for e in (scene.E_POSTER, scene.E_PERSON, scene.E_CAMO))
    assert min(len(poster_t), len(person_t), len(camo_t)) >= 10
    assert _typical(poster_t) < 0.03 and _typical(poster_t) < 0.2 * np.median(person_t)
    assert np.median(person_t) > 0.15 and np.median(camo_t) > 0.15
    assert np.quantile(person_t, 0.1) > 0.07 and np.quantile(camo_t, 0.1) > 0.07  # sun-heated roads come closest
    assert poster_rgb > 0.4 * person_rgb  # posters stand out in RGB like (visible) persons do
    assert camo_rgb < 0.75 * person_rgb and camo_rgb < 0.035  # camouflaged persons blend into their background


def test_night_rgb_is_dark_and_noisy_while_thermal_is_unchanged(native):
    rgb, th, el, night = native["rgb"], native["thermal"], native["element"], native["night"]
    assert night.sum() == 24
    assert rgb[night].mean() < 0.4 * rgb[~night].mean()
    sky = el == scene.E_SKY
    both = sky[:, :, 1:] & sky[:, :, :-1]  # horizontal neighbours in the (smooth) sky: differences are noise

    def noise(img, sel):
        d = img[sel][:, :, 1:] - img[sel][:, :, :-1]
        return d[both[sel]].std() / np.sqrt(2)

    assert noise(rgb, night) > 2 * noise(rgb, ~night)
    assert rgb[night][sky[night]].mean() < 0.1 < rgb[~night][sky[~night]].mean()
    assert 0.75 < noise(th, night) / noise(th, ~night) < 1.33
    assert abs(th[night].mean() - th[~night].mean()) < 0.15
