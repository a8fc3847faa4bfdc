"""MFNet (Ha et al. 2017) in the RTFNet-preprocessed layout read by RTFNet and CRM
(yuxiangsun/RTFNet util/MF_dataset.py):

    DIR/images/<name>.png   ONE 4-channel 8-bit PNG: channels 0-2 RGB, channel 3 thermal (480x640)
    DIR/labels/<name>.png   1-channel 8-bit class ids 0-8
    DIR/{train,val,test,test_day,test_night}.txt   one bare name per line

Names are 5 digits plus D (day) or N (night), e.g. 01234N. All 9 classes count, class 0 (unlabeled)
included, as in the field convention; there is no ignore index.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..batch import Sample, SampleMeta
from . import io
from .base import DatasetInfo, RGBTDataset, check_label_range

SPLITS = ("train", "val", "test", "test_day", "test_night")


class MFNetDataset(RGBTDataset):
    """One split of MFNet read from `root`; samples are decoded on access."""

    info = DatasetInfo(
        name="mfnet",
        class_names=("unlabeled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump"),
        palette=((0, 0, 0), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 192), (128, 128, 0),
                 (64, 64, 128), (192, 128, 128), (192, 64, 0)),
        ignore_index=None,
        convention="field",
        native_size=(480, 640),
        splits=SPLITS,
        recipe_crop=(240, 320),  # CRM_RGBTSeg configs
        has_day_night=True,
        description="Urban driving scenes, 1569 RGB-T pairs (820 day, 749 night), 9 classes (Ha et al. 2017).",
    )

    def __init__(self, root: Path, split: str = "train"):
        super().__init__(root, split)
        io.require_dir(self.root, "MFNet dataset root")
        self.names = io.read_split_file(self.root / f"{split}.txt")

    def files(self, i: int) -> list[Path]:
        name = self.names[i]
        return [self.root / "images" / f"{name}.png", self.root / "labels" / f"{name}.png"]

    def is_night(self, i: int) -> Optional[bool]:
        suffix = self.names[i][-1:].upper()
        return {"D": False, "N": True}.get(suffix)

    def load(self, i: int) -> Sample:
        image_path, label_path = self.files(i)
        image = io.read_image(image_path, channels=(4,), bits=8, what="MFNet image (RGB + thermal)")
        label = io.read_image(label_path, channels=(1,), bits=8, what="MFNet label", ids=True)
        io.check_sizes({image_path: image, label_path: label})
        label_t = io.label_tensor(label)
        check_label_range(label_t, self.info, label_path)
        return Sample(
            rgb=io.image_tensor(image[..., :3], 255.0),
            thermal=io.image_tensor(image[..., 3], 255.0),
            label=label_t,
            meta=SampleMeta(self.info.name, self.split, self.names[i], i, self.is_night(i)),
        )
