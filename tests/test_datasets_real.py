"""Real dataset loaders (MFNet, PST900, KP) on tiny fixtures in the published on-disk formats, their
error messages on damaged input, and rgbt_bench.datasets.verify."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from fixtures_real import (
    blocks,
    gradient,
    kp_paths,
    truncate,
    write_jpeg,
    write_kp,
    write_mfnet,
    write_png,
    write_pst900,
)
from PIL import Image
from torch.utils.data import DataLoader

from rgbt_bench.batch import collate
from rgbt_bench.datasets import dataset_class, open_dataset
from rgbt_bench.datasets.verify import problems, verify_dataset
from rgbt_bench.errors import ConfigError, DataError

H, W = 24, 32


def at(path) -> str:
    """Regex for an error message that starts with `path`."""
    return "^" + re.escape(f"{path}: ")


def as_float(array: np.ndarray, scale: float = 255.0) -> torch.Tensor:
    """uint array [H,W] / [H,W,C] -> float [C,H,W] / scale, the loaders' expected output."""
    t = torch.from_numpy(array.astype(np.float32))
    return (t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)) / scale


@pytest.fixture
def mfnet(tmp_path):
    return write_mfnet(tmp_path / "MFNet")


@pytest.fixture
def pst(tmp_path):
    return write_pst900(tmp_path / "PST900")


@pytest.fixture
def kp(tmp_path):
    return write_kp(tmp_path / "KP")


# ---------------------------------------------------------------- dataset facts

def test_infos_follow_domain_facts():
    mf, ps, k = (dataset_class(n).info for n in ("mfnet", "pst900", "kp"))
    assert (mf.num_classes, ps.num_classes, k.num_classes) == (9, 5, 19)
    assert (mf.ignore_index, ps.ignore_index, k.ignore_index) == (None, None, 19)
    assert {mf.convention, ps.convention, k.convention} == {"field"}
    assert (mf.native_size, ps.native_size, k.native_size) == ((480, 640), (720, 1280), (512, 640))
    assert mf.class_names[5] == "car_stop" and mf.palette[5] == (128, 128, 0) and mf.palette[8] == (192, 64, 0)
    assert ps.class_names[4] == "survivor" and ps.palette[1] == (0, 0, 255)
    assert k.class_names[0] == "road" and k.palette[0] == (128, 64, 128) and k.palette[18] == (119, 11, 32)
    assert all(len(i.palette) == i.num_classes for i in (mf, ps, k))
    assert (mf.has_day_night, ps.has_day_night, k.has_day_night) == (True, False, True)
    assert ps.splits == ("train", "test")
    assert set(k.splits) == {"train", "val", "test", "train_day", "train_night", "val_day", "val_night",
                             "test_day", "test_night"}


# ---------------------------------------------------------------- MFNet

def test_mfnet_round_trip_exact(mfnet):
    ds = open_dataset(f"mfnet:{mfnet.root}", "test")
    assert ds.names == mfnet.splits["test"] and len(ds) == 4
    for i, name in enumerate(ds.names):
        s, e = ds[i], mfnet.samples[name]
        assert s.rgb.dtype == torch.float32 and s.thermal.dtype == torch.float32 and s.label.dtype == torch.int64
        assert s.rgb.shape == (3, H, W) and s.thermal.shape == (1, H, W) and s.label.shape == (H, W)
        assert torch.equal(s.rgb, as_float(e["rgb"]))
        assert torch.equal(s.thermal, as_float(e["thermal"]))
        assert torch.equal(s.label, torch.from_numpy(e["label"]).long())
        assert (s.meta.dataset, s.meta.split, s.meta.name, s.meta.index) == ("mfnet", "test", name, i)
        assert s.meta.is_night == name.endswith("N") == ds.is_night(i)


def test_mfnet_day_night_splits_and_files(mfnet):
    root = mfnet.root
    day = open_dataset(f"mfnet:{root}", "test_day")
    night = open_dataset(f"mfnet:{root}", "test_night")
    assert day.names == mfnet.splits["test_day"]
    assert [day.is_night(i) for i in range(len(day))] == [False] * len(day)
    assert [night.is_night(i) for i in range(len(night))] == [True] * len(night)
    assert sorted(day.names + night.names) == sorted(mfnet.splits["test"])
    assert day.files(0) == [root / "images" / f"{day.names[0]}.png", root / "labels" / f"{day.names[0]}.png"]


def test_mfnet_dataloader_with_worker(mfnet):
    ds = open_dataset(f"mfnet:{mfnet.root}", "train")
    batches = list(DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=1))
    assert [len(b) for b in batches] == [2, 1]
    first = batches[0]
    assert first.rgb.shape == (2, 3, H, W) and first.label.shape == (2, H, W)
    assert torch.equal(first.thermal[1], as_float(mfnet.samples[ds.names[1]]["thermal"]))
    assert [m.name for m in first.meta] == ds.names[:2]


# ---------------------------------------------------------------- PST900

def test_pst900_round_trip_and_listing(pst):
    (pst.root / "rgb").mkdir()  # the official loader's DIR/rgb quirk must not be reproduced
    write_png(pst.root / "rgb" / "stray.png", gradient((H, W), 3, 0))
    ds = open_dataset(f"pst900:{pst.root}", "train")
    assert ds.names == pst.splits["train"] == sorted(pst.splits["train"])
    for i, name in enumerate(ds.names):
        s, e = ds[i], pst.samples[name]
        assert torch.equal(s.rgb, as_float(e["rgb"]))
        assert torch.equal(s.thermal, as_float(e["thermal"]))
        assert torch.equal(s.label, torch.from_numpy(e["label"]).long())
        assert s.meta.is_night is None and s.meta.split == "train"
    assert ds.files(0)[1] == pst.root / "train" / "thermal" / ds.names[0]
    assert open_dataset(f"pst900:{pst.root}", "test").names == pst.splits["test"]


def test_pst900_thermal_raw_scaling(pst):
    ds = open_dataset(f"pst900:{pst.root}", "test", thermal="thermal_raw")
    raw = pst.samples[ds.names[0]]["thermal_raw"]
    assert raw.dtype == np.uint16 and raw.max() > 255
    assert ds.files(0)[1] == pst.root / "test" / "thermal_raw" / ds.names[0]
    s = ds[0]
    assert torch.allclose(s.thermal, as_float(raw, 65535.0), atol=1e-7)
    windowed = open_dataset(f"pst900:{pst.root}", "test", thermal="thermal_raw", raw_range=(10000, 30000))[0]
    expected = ((torch.from_numpy(raw.astype(np.float32)) - 10000) / 20000).clamp(0, 1)
    assert torch.allclose(windowed.thermal[0], expected, atol=1e-6)
    assert float(windowed.thermal.min()) == 0.0 and float(windowed.thermal.max()) == 1.0


def test_pst900_bad_options_and_no_val_split(pst):
    with pytest.raises(ConfigError, match=r"no split 'val'; expected one of train, test"):
        open_dataset(f"pst900:{pst.root}", "val")
    with pytest.raises(ConfigError, match=r"no split 'val'.*train, test"):
        dataset_class("pst900")(pst.root, "val")
    with pytest.raises(ConfigError, match="thermal source 'raw'"):
        open_dataset(f"pst900:{pst.root}", "train", thermal="raw")
    with pytest.raises(ConfigError, match="raw_range"):
        open_dataset(f"pst900:{pst.root}", "train", thermal="thermal_raw", raw_range=(500, 100))
    # audit: a window without the raw source was ignored, the 8-bit thermal evaluated (exit 0)
    with pytest.raises(ConfigError, match=r"^pst900 raw_range \(1000, 20000\) applies to thermal='thermal_raw' only; "
                                          r"pass --dataset-option thermal=thermal_raw, or drop raw_range$"):
        open_dataset(f"pst900:{pst.root}", "train", raw_range=(1000, 20000))


# ---------------------------------------------------------------- KP

def test_kp_round_trip_within_jpeg_tolerance(kp):
    ds = open_dataset(f"kp:{kp.root}", "val")
    for i, name in enumerate(ds.names):
        s, e = ds[i], kp.samples[name]
        assert s.thermal.shape == (1, H, W)
        assert (s.rgb - as_float(e["rgb"])).abs().max() < 6 / 255
        assert (s.thermal - as_float(e["thermal"])).abs().max() < 4 / 255
        assert torch.equal(s.label, torch.from_numpy(e["label"]).long())
        visible, lwir, label = kp_paths(kp.root, name)
        assert ds.files(i) == [visible, lwir, label]
    assert int(ds[0].label.max()) == 19  # void stays 19: it is the ignore index


def test_kp_lwir_channels_averaged(kp):
    name = kp.splits["test_night"][0]
    _, lwir, _ = kp_paths(kp.root, name)
    grey = kp.samples[name]["thermal"].astype(np.int32)
    stacked = np.dstack([grey, np.clip(grey + 30, 0, 255), np.clip(grey - 30, 0, 255)]).astype(np.uint8)
    write_jpeg(lwir, stacked)
    s = open_dataset(f"kp:{kp.root}", "test_night")[0]
    decoded = np.asarray(Image.open(lwir).convert("RGB"), dtype=np.float32).mean(axis=2) / 255
    assert torch.allclose(s.thermal[0], torch.from_numpy(decoded), atol=1e-6)


def test_kp_split_composition(kp):
    root = kp.root
    train = open_dataset(f"kp:{root}", "train")
    assert train.names == kp.splits["train_day"] + kp.splits["train_night"]
    assert [train.is_night(i) for i in range(len(train))] == [False, False, True, True]
    assert [train[i].meta.is_night for i in range(len(train))] == [False, False, True, True]
    night = open_dataset(f"kp:{root}", "test_night")
    assert night.names == kp.splits["test_night"] and night.is_night(0) is True
    assert open_dataset(f"kp:{root}", "test").names == kp.splits["test_day"] + kp.splits["test_night"]


def test_kp_bad_name_in_split_file(kp):
    path = kp.root / "val_day.txt"
    path.write_text("set00_V000_I00050.png\nfoo.png\n")
    with pytest.raises(DataError, match=at(path) + r"name 'foo.png'"):
        open_dataset(f"kp:{kp.root}", "val")


# ---------------------------------------------------------------- bad input: one clear line naming the file

@pytest.mark.parametrize("name", ["mfnet", "pst900", "kp"])
def test_missing_root(tmp_path, name):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError, match=at(root) + r".*root not found$"):
        open_dataset(f"{name}:{root}", "train")


def test_missing_split_files(mfnet, kp):
    (mfnet.root / "val.txt").unlink()
    with pytest.raises(DataError, match=at(mfnet.root / 'val.txt') + r"split file not found$"):
        open_dataset(f"mfnet:{mfnet.root}", "val")
    (kp.root / "train_night.txt").unlink()
    with pytest.raises(DataError, match=at(kp.root / 'train_night.txt') + r"split file not found$"):
        open_dataset(f"kp:{kp.root}", "train")
    assert len(open_dataset(f"kp:{kp.root}", "train_day")) == 2


def test_empty_split_file_and_missing_pst_folder(mfnet, pst):
    (mfnet.root / "val.txt").write_text("\n\n")
    with pytest.raises(DataError, match=at(mfnet.root / 'val.txt') + r"split file lists no images$"):
        open_dataset(f"mfnet:{mfnet.root}", "val")
    folder = pst.root / "test" / "rgb"
    for f in folder.iterdir():
        f.unlink()
    with pytest.raises(DataError, match=at(folder) + r"PST900 rgb folder holds no .png images$"):
        open_dataset(f"pst900:{pst.root}", "test")
    folder.rmdir()
    with pytest.raises(DataError, match=at(folder) + r"PST900 'test' rgb folder not found$"):
        open_dataset(f"pst900:{pst.root}", "test")


def test_listed_image_missing(mfnet):
    ds = open_dataset(f"mfnet:{mfnet.root}", "train")
    image = mfnet.root / "images" / f"{ds.names[1]}.png"
    image.unlink()
    with pytest.raises(DataError, match=at(image) + r"file not found$"):
        ds[1]
    assert ds[0].rgb.shape == (3, H, W)


def test_truncated_png_jpeg_and_garbage(mfnet, kp, pst):
    ds = open_dataset(f"mfnet:{mfnet.root}", "train")
    image = truncate(ds.files(0)[0])
    with pytest.raises(DataError, match=at(image) + r"cannot decode image \(.*truncated"):
        ds[0]
    kds = open_dataset(f"kp:{kp.root}", "test")
    visible = truncate(kds.files(1)[0], keep=0.8)
    with pytest.raises(DataError, match=at(visible) + r"cannot decode image"):
        kds[1]
    pds = open_dataset(f"pst900:{pst.root}", "test")
    label = pds.files(0)[2]
    label.write_bytes(b"not a png at all" * 8)
    with pytest.raises(DataError, match=at(label) + r"not a readable image file$"):
        pds[0]


def test_size_mismatch(mfnet, pst):
    ds = open_dataset(f"mfnet:{mfnet.root}", "val")
    label = write_png(ds.files(0)[1], blocks((H, W + 8), 9, 0))
    expected = "size 24x40 differs from 24x32 of " + re.escape(str(ds.files(0)[0])) + "$"
    with pytest.raises(DataError, match=at(label) + expected):
        ds[0]
    pds = open_dataset(f"pst900:{pst.root}", "train")
    thermal = write_png(pds.files(2)[1], gradient((H - 4, W), 1, 0))
    with pytest.raises(DataError, match=at(thermal) + r"size 20x32 differs"):
        pds[2]


def test_wrong_channel_counts_and_bit_depth(mfnet, kp, pst):
    ds = open_dataset(f"mfnet:{mfnet.root}", "train")
    image = write_png(ds.files(0)[0], gradient((H, W), 3, 0))
    with pytest.raises(DataError, match=at(image) + r"MFNet image \(RGB \+ thermal\) has 3 channel\(s\) "
                                        r"\(PIL mode RGB\); expected 4$"):
        ds[0]
    label = write_png(ds.files(1)[1], np.dstack([blocks((H, W), 9, 0)] * 3))
    with pytest.raises(DataError, match=at(label) + r"MFNet label has 3 channel"):
        ds[1]
    kds = open_dataset(f"kp:{kp.root}", "train")
    visible = write_jpeg(kds.files(0)[0], gradient((H, W), 1, 0))
    with pytest.raises(DataError, match=at(visible) + r"KP visible image has 1 channel\(s\).*expected 3$"):
        kds[0]
    pds = open_dataset(f"pst900:{pst.root}", "train")
    thermal = write_png(pds.files(0)[1], gradient((H, W), 3, 0))
    with pytest.raises(DataError, match=at(thermal) + r"PST900 thermal image has 3 channel"):
        pds[0]
    rds = open_dataset(f"pst900:{pst.root}", "train", thermal="thermal_raw")
    raw = write_png(rds.files(1)[1], gradient((H, W), 1, 0))
    with pytest.raises(DataError, match=at(raw) + r"PST900 thermal_raw image is 8-bit .*expected 16-bit$"):
        rds[1]


def write_palette_png(path, colours: np.ndarray) -> None:
    """`colours` (uint8 [H,W] grey or [H,W,3] RGB) saved as a palette PNG whose index order is NOT the colours'
    (as PNG optimisers and Image.quantize store images with few colours): index i shows the i-th colour from
    the brightest down."""
    flat = colours.reshape(-1, colours.shape[-1]) if colours.ndim == 3 else colours.reshape(-1, 1)
    palette, index = np.unique(flat, axis=0, return_inverse=True)
    order = np.argsort(-palette.sum(axis=1), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    image = Image.fromarray(rank[index.reshape(-1)].reshape(colours.shape[:2]).astype(np.uint8), "P")
    image.putpalette(np.repeat(palette[order], 3 // palette.shape[1], axis=1).astype(np.uint8).reshape(-1).tolist())
    image.save(path, format="PNG")


def test_palette_images_read_as_the_colours_they_show(mfnet, kp, pst):
    """Audit: a palette image's indices were read as intensities, so a greyscale thermal image stored as a palette
    gave other values (exit 0). Images are decoded through their palette; label indices stay class ids."""
    pds = open_dataset(f"pst900:{pst.root}", "train")
    name = pds.names[0]
    thermal = pst.samples[name]["thermal"]
    write_palette_png(pds.files(0)[1], thermal)
    assert torch.equal(pds[0].thermal, as_float(thermal))
    rgb = pst.samples[name]["rgb"] // 32 * 32  # few enough colours for a palette
    write_palette_png(pds.files(0)[0], rgb)
    assert torch.equal(pds[0].rgb, as_float(rgb))
    kds = open_dataset(f"kp:{kp.root}", "train")
    lwir = kp.samples[kds.names[1]]["thermal"]
    write_palette_png(kds.files(1)[1], lwir)  # a PNG behind the .jpg name: PIL reads by content
    assert torch.equal(kds[1].thermal, as_float(lwir))
    coloured = np.dstack([thermal, 255 - thermal, thermal // 2])
    write_palette_png(pds.files(1)[1], coloured)
    with pytest.raises(DataError, match=at(pds.files(1)[1]) + r"PST900 thermal image has 3 channel\(s\) \(PIL mode "
                                                              r"P, colours RGB\); expected 1$"):
        pds[1]
    ds = open_dataset(f"mfnet:{mfnet.root}", "train")
    label = blocks((H, W), 9, 0)
    image = Image.fromarray(label, "P")
    image.putpalette([v for colour in dataset_class("mfnet").info.palette for v in colour])
    image.save(ds.files(0)[1], format="PNG")  # the VOC / Cityscapes convention: the index is the class id
    assert torch.equal(ds[0].label, torch.from_numpy(label.astype(np.int64)))


def test_label_ids_out_of_range(mfnet, kp):
    ds = open_dataset(f"mfnet:{mfnet.root}", "train")
    label = write_png(ds.files(0)[1], np.full((H, W), 9, np.uint8))
    with pytest.raises(DataError, match=at(label) + r"label ids \[9\] out of range; expected 0..8 for mfnet$"):
        ds[0]
    kds = open_dataset(f"kp:{kp.root}", "val")
    bad = blocks((H, W), 20, 0)
    bad[0, 0] = 20
    label = write_png(kds.files(0)[2], bad)
    with pytest.raises(DataError, match=at(label) + r"label ids \[20\] out of range; expected 0..18 or 19"):
        kds[0]


# ---------------------------------------------------------------- verify

@pytest.mark.parametrize("which", ["mfnet", "pst900", "kp"])
def test_verify_clean_datasets(tmp_path, which):
    writer = {"mfnet": write_mfnet, "pst900": write_pst900, "kp": write_kp}[which]
    fx = writer(tmp_path / which)
    reports = verify_dataset(f"{which}:{fx.root}")
    assert problems(reports) == []
    assert [r.split for r in reports] == list(dataset_class(which).info.splits)
    assert sum(r.checked for r in reports) == len(fx.samples)  # each sample once, even when in two splits
    assert {r.split: r.samples for r in reports} == {s: len(n) for s, n in fx.splits.items()}


def test_verify_reports_every_problem(mfnet):
    root = mfnet.root
    train, val, test = mfnet.splits["train"], mfnet.splits["val"], mfnet.splits["test"]
    missing_image = root / "images" / f"{train[0]}.png"
    missing_label = root / "labels" / f"{train[0]}.png"
    missing_image.unlink()
    missing_label.unlink()
    truncated = truncate(root / "images" / f"{train[1]}.png")
    out_of_range = write_png(root / "labels" / f"{val[0]}.png", np.full((H, W), 12, np.uint8))
    wrong_size = write_png(root / "labels" / f"{test[1]}.png", blocks((H + 2, W), 9, 0))
    (root / "val.txt").write_text((root / "val.txt").read_text() + "99999D\n")
    reports = verify_dataset(f"mfnet:{root}")
    found = problems(reports)
    paths = [p.path for p in found]
    assert paths == [missing_image, missing_label, truncated, out_of_range, root / "images" / "99999D.png",
                     root / "labels" / "99999D.png", wrong_size]
    assert "file not found" in found[0].message and "'train'" in found[0].message
    assert "truncated" in found[2].message and "out of range" in found[3].message
    assert "differs" in found[6].message
    assert [len(r.problems) for r in reports] == [3, 3, 1, 0, 0]  # test_day/test_night repeat nothing


def test_verify_flags_a_thermal_image_without_thermal_data(mfnet):
    """An RGB image saved as RGBA with an opaque alpha loads as a thermal image of 255 everywhere: the sweep would
    score it as a real thermal frame, so verify names it (before: no problem found)."""
    name = mfnet.splits["test"][0]
    rgb = mfnet.samples[name]["rgb"]
    image = write_png(mfnet.root / "images" / f"{name}.png", np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    found = problems(verify_dataset(f"mfnet:{mfnet.root}", ["test"]))
    assert [p.path for p in found] == [image]
    assert f"sample '{name}': its thermal image has one value everywhere (1 on the 0-1 scale)" in found[0].message


def test_verify_unopenable_split_and_chosen_splits(kp):
    (kp.root / "val_night.txt").unlink()
    reports = verify_dataset(f"kp:{kp.root}", ["val", "val_night", "test"])
    assert [r.split for r in reports] == ["val", "val_night", "test"]
    assert reports[0].problems[0].path == kp.root / "val_night.txt"
    assert reports[0].problems[0].message == "split file not found"
    assert reports[1].problems == []  # the same problem is reported once
    assert (reports[2].checked, reports[2].problems) == (3, [])
    with pytest.raises(ConfigError, match="no split 'nope'"):
        verify_dataset(f"kp:{kp.root}", ["nope"])


def test_verify_synthetic_through_the_generic_path(tmp_path):
    spec_root = tmp_path / "syn"
    options = {"size": (16, 20), "counts": (2, 2, 2)}
    clean = verify_dataset(f"synthetic:{spec_root}", options=options)
    assert problems(clean) == [] and sum(r.checked for r in clean) == 6
    source = open_dataset(f"synthetic:{spec_root}", "val", **options).files(0)[0]
    source.write_bytes(source.read_bytes()[:100])
    found = problems(verify_dataset(f"synthetic:{spec_root}", ["val"], options=options))
    assert len(found) == 1 and found[0].path == source and "unreadable" in found[0].message
