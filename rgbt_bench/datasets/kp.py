"""KP: KAIST Multispectral Pedestrian images with the MS-UDA semantic labels, laid out as CRM reads
them (CRM_RGBTSeg dataloaders; MS-UDA labels):

    DIR/images/setXX/VYYY/visible/IZZZZZ.jpg   RGB JPEG, 512x640
    DIR/images/setXX/VYYY/lwir/IZZZZZ.jpg      thermal as a 3-channel grey JPEG (averaged to 1 channel)
    DIR/labels/setXX_VYYY_IZZZZZ.png           1-channel ids 0-18, 19 = void (ignored)
    DIR/{train,val,test}_{day,night}.txt       names like set00_V000_I00050.png

Split `train` is train_day.txt followed by train_night.txt (likewise val and test); the day/night flag
of a sample is the list it came from. The 19 Cityscapes classes and palette; void (19) is the ignore
index, so the field convention averages over the 19 classes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..batch import Sample, SampleMeta
from . import io
from .base import DatasetInfo, RGBTDataset, check_label_range

BASE_SPLITS = ("train", "val", "test")
SPLITS = BASE_SPLITS + tuple(f"{s}_{t}" for s in BASE_SPLITS for t in ("day", "night"))
NAME = re.compile(r"^(set\d+)_(V\d+)_(I\d+)(\.png)?$")
VOID = 19

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle")
CITYSCAPES_PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                      (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                      (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                      (0, 80, 100), (0, 0, 230), (119, 11, 32))


class KPDataset(RGBTDataset):
    """One split of KP read from `root`; samples are decoded on access."""

    info = DatasetInfo(
        name="kp",
        class_names=CITYSCAPES_CLASSES,
        palette=CITYSCAPES_PALETTE,
        ignore_index=VOID,
        convention="field",
        native_size=(512, 640),
        splits=SPLITS,
        recipe_crop=(256, 320),  # CRM_RGBTSeg configs
        has_day_night=True,
        description="KAIST Multispectral Pedestrian driving scenes with MS-UDA labels, 950 images, "
                    "19 Cityscapes classes (void 19 ignored).",
    )

    def __init__(self, root: Path, split: str = "train"):
        super().__init__(root, split)
        io.require_dir(self.root, "KP dataset root")
        times = ("day", "night") if split in BASE_SPLITS else (split.rsplit("_", 1)[1],)
        base = split.rsplit("_", 1)[0] if split not in BASE_SPLITS else split
        self.night: list[bool] = []
        self._parts: list[tuple[str, str, str]] = []
        listed: dict[str, Path] = {}
        for time in times:
            list_path = self.root / f"{base}_{time}.txt"
            for name in io.read_split_file(list_path):
                match = NAME.match(name)
                if match is None:
                    raise io.FileError(list_path, f"name '{name}' is not of the form setXX_VYYY_IZZZZZ.png")
                if name in listed:
                    raise io.FileError(list_path, f"lists image '{name}', already listed in {listed[name]}; "
                                                  "expected each image once (it would be counted twice)")
                listed[name] = list_path
                self.names.append(name)
                self.night.append(time == "night")
                self._parts.append(match.group(1, 2, 3))

    def files(self, i: int) -> list[Path]:
        set_id, video, frame = self._parts[i]
        folder = self.root / "images" / set_id / video
        label = self.root / "labels" / f"{set_id}_{video}_{frame}.png"
        return [folder / "visible" / f"{frame}.jpg", folder / "lwir" / f"{frame}.jpg", label]

    def is_night(self, i: int) -> Optional[bool]:
        return self.night[i]

    def load(self, i: int) -> Sample:
        rgb_path, lwir_path, label_path = self.files(i)
        rgb = io.read_image(rgb_path, channels=(3,), bits=8, what="KP visible image")
        lwir = io.read_image(lwir_path, channels=(3, 1), bits=8, what="KP lwir image")
        label = io.read_image(label_path, channels=(1,), bits=8, what="KP label", ids=True)
        io.check_sizes({rgb_path: rgb, lwir_path: lwir, label_path: label})
        label_t = io.label_tensor(label)
        check_label_range(label_t, self.info, label_path)
        thermal = io.image_tensor(lwir, 255.0)
        return Sample(
            rgb=io.image_tensor(rgb, 255.0),
            thermal=thermal.mean(dim=0, keepdim=True),
            label=label_t,
            meta=SampleMeta(self.info.name, self.split, self.names[i], i, self.night[i]),
        )
