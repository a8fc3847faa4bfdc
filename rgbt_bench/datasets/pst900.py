"""PST900 (Shivakumar et al. 2020) in its distributed layout (ShreyasSkandanS/pst900_thermal_rgb):

    DIR/{train,test}/{rgb,thermal,thermal_raw,depth,labels}/<name>.png   (720x1280)

rgb is 8-bit 3-channel, thermal 8-bit 1-channel (after the camera's automatic gain control),
thermal_raw 16-bit 1-channel, labels 8-bit ids 0-4. There are no split files: a split is the sorted list
of PNGs in DIR/<split>/rgb (not DIR/rgb, the official CRM loader's quirk), and there is no val split.
All 5 classes count, class 0 (background) included, as in the field convention.

Thermal source (`thermal=`):
- "thermal" (default, what RTFNet/CRM train on): value / 255.
- "thermal_raw": the 16-bit counts mapped linearly through ONE fixed window `raw_range=(lo, hi)`,
  (x - lo) / (hi - lo) clamped to [0, 1]; default (0, 65535), i.e. x / 65535 (a window given with the 8-bit
  source is an error: it would be ignored). A fixed window keeps the radiometric meaning: the same count
  gives the same value in every image, so hot stays hotter than cold
  across images and corruptions act on one physical scale. Per-image min-max would re-introduce the
  automatic gain control that `thermal` already has. The camera's counts occupy only part of the 16-bit
  range, so a tighter window measured on the training split (e.g. its 0.1 / 99.9 percentiles) gives more
  contrast; pass it as raw_range.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..batch import Sample, SampleMeta
from ..errors import ConfigError
from . import io
from .base import DatasetInfo, RGBTDataset, check_label_range

SPLITS = ("train", "test")
THERMAL_SOURCES = ("thermal", "thermal_raw")
RAW_MAX = 65535


def parse_raw_range(raw_range: Sequence[float]) -> tuple[float, float]:
    """Validate a (lo, hi) window of 16-bit counts: 0 <= lo < hi <= 65535."""
    try:
        lo, hi = (float(v) for v in raw_range)
    except (TypeError, ValueError):
        raise ConfigError(f"pst900 raw_range {raw_range!r} is invalid; expected (lo, hi) counts") from None
    if not 0 <= lo < hi <= RAW_MAX:
        raise ConfigError(f"pst900 raw_range {raw_range!r} is invalid; expected 0 <= lo < hi <= {RAW_MAX}")
    return lo, hi


class PST900Dataset(RGBTDataset):
    """One split of PST900 read from `root`; `thermal` picks the thermal source (module docstring)."""

    info = DatasetInfo(
        name="pst900",
        class_names=("background", "fire_extinguisher", "backpack", "hand_drill", "survivor"),
        palette=((0, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255)),
        ignore_index=None,
        convention="field",
        native_size=(720, 1280),
        splits=SPLITS,
        recipe_crop=(224, 320),  # CRM_RGBTSeg configs
        has_day_night=False,
        description="Subterranean (DARPA SubT) scenes, RGB + thermal, 5 classes (Shivakumar et al. 2020).",
    )

    def __init__(self, root: Path, split: str = "train", thermal: str = "thermal",
                 raw_range: Optional[Sequence[float]] = None):
        super().__init__(root, split)
        if thermal not in THERMAL_SOURCES:
            raise ConfigError(f"pst900 thermal source '{thermal}' is invalid; expected one of "
                              f"{', '.join(THERMAL_SOURCES)}")
        self.thermal_source = thermal
        self.raw_range = parse_raw_range((0, RAW_MAX) if raw_range is None else raw_range)
        if raw_range is not None and thermal != "thermal_raw":
            lo, hi = self.raw_range
            raise ConfigError(f"pst900 raw_range ({lo:g}, {hi:g}) applies to thermal='thermal_raw' only; pass "
                              "--dataset-option thermal=thermal_raw, or drop raw_range")
        io.require_dir(self.root, "PST900 dataset root")
        rgb_dir = io.require_dir(self.root / split / "rgb", f"PST900 '{split}' rgb folder")
        self.names = sorted(p.name for p in rgb_dir.iterdir() if p.suffix.lower() == ".png")
        if not self.names:
            raise io.FileError(rgb_dir, "PST900 rgb folder holds no .png images")

    def files(self, i: int) -> list[Path]:
        split_dir = self.root / self.split
        name = self.names[i]
        return [split_dir / "rgb" / name, split_dir / self.thermal_source / name, split_dir / "labels" / name]

    def is_night(self, i: int) -> Optional[bool]:
        return None

    def load(self, i: int) -> Sample:
        rgb_path, thermal_path, label_path = self.files(i)
        rgb = io.read_image(rgb_path, channels=(3,), bits=8, what="PST900 rgb image")
        if self.thermal_source == "thermal":
            thermal = io.read_image(thermal_path, channels=(1,), bits=8, what="PST900 thermal image")
        else:
            thermal = io.read_image(thermal_path, channels=(1,), bits=16, what="PST900 thermal_raw image")
        label = io.read_image(label_path, channels=(1,), bits=8, what="PST900 label", ids=True)
        io.check_sizes({rgb_path: rgb, thermal_path: thermal, label_path: label})
        label_t = io.label_tensor(label)
        check_label_range(label_t, self.info, label_path)
        if self.thermal_source == "thermal":
            thermal_t = io.image_tensor(thermal, 255.0)
        else:
            lo, hi = self.raw_range
            thermal_t = io.image_tensor(thermal, 1.0).sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)
        return Sample(
            rgb=io.image_tensor(rgb, 255.0),
            thermal=thermal_t,
            label=label_t,
            meta=SampleMeta(self.info.name, self.split, self.names[i], i, None),
        )
