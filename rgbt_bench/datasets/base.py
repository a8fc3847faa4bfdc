"""Dataset description and the base class every RGB-T dataset implements."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import Dataset

from ..batch import Sample
from ..errors import ConfigError, DataError
from .io import FileError, header_size

MODALITIES = ("rgb", "thermal")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset (each dataset module cites its source).

    `ignore_index` is the label id excluded from the confusion matrix (None: every pixel counts).
    `convention` names the default mIoU convention ("field" or "mmseg", rgbt_bench.metrics).
    `native_size` is (H, W). `splits` lists the split names the dataset understands (checked once, by
    `RGBTDataset.check_split`). `recipe_crop` is the training crop (H, W) of the CRM recipe (CRM_RGBTSeg
    configs; None: half the image size, rgbt_bench.training.config.default_crop). `needs_root`: False for
    datasets generated on the fly, named on the command line without a path.
    `visible_in` gives, per class (in `class_names` order), the modalities whose images show it; empty means
    every class is visible in both RGB and thermal (true of real scenes; the synthetic dataset hides some
    classes from one camera on purpose).
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: Optional[int]
    convention: str
    native_size: tuple[int, int]
    splits: tuple[str, ...]
    has_day_night: bool
    description: str = ""
    recipe_crop: Optional[tuple[int, int]] = None
    needs_root: bool = True
    visible_in: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.visible_in and len(self.visible_in) != len(self.class_names):
            raise ValueError(f"{self.name}: visible_in has {len(self.visible_in)} entries for "
                             f"{len(self.class_names)} classes")
        unknown = {m for mods in self.visible_in for m in mods} - set(MODALITIES)
        if unknown:
            raise ValueError(f"{self.name}: visible_in names unknown modalities {sorted(unknown)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def visible_classes(self, modalities: Sequence[str]) -> tuple[str, ...]:
        """The classes that at least one of `modalities` ("rgb", "thermal") shows, in class order."""
        if not self.visible_in:
            return self.class_names if modalities else ()
        return tuple(name for name, shown in zip(self.class_names, self.visible_in) if set(shown) & set(modalities))


class RGBTDataset(Dataset):
    """Base class: a list of sample names for one split, decoded on demand into `Sample`s.

    Subclasses set `info`, fill `self.names` in __init__, and implement `load(i) -> Sample`.
    `files(i)` lists the files sample i is read from (used by `datasets verify`). The split name is
    checked here, against `info.splits`, before a subclass reads anything.
    """

    info: DatasetInfo

    def __init__(self, root: Optional[Path], split: str):
        self.check_split(split)
        self.root = Path(root) if root is not None else None
        self.split = split
        self.names: list[str] = []

    @classmethod
    def check_split(cls, split: str) -> None:
        """ConfigError naming the dataset's splits when `split` is not one of them."""
        info = cls.info
        if split not in info.splits:
            note = f" ({info.name} has no validation split)" if split == "val" else ""
            raise ConfigError(f"dataset '{info.name}' has no split '{split}'; expected one of "
                              f"{', '.join(info.splits)}{note}")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Sample:
        return self.load(i)

    def load(self, i: int) -> Sample:
        raise NotImplementedError

    def files(self, i: int) -> list[Path]:
        raise NotImplementedError

    def is_night(self, i: int) -> Optional[bool]:
        """Day/night flag of sample i without decoding it (None if unknown)."""
        return None

    def image_size(self, i: int) -> tuple[int, int]:
        """(H, W) of sample i from the header of its first file, without decoding it."""
        return header_size(self.files(i)[0])

    def check_one_size(self) -> Optional[tuple[int, int]]:
        """The (H, W) every sample of the split shares (None for an empty split).

        Evaluation stacks whole images into batches, so a split that mixes sizes cannot be batched; every
        supported dataset has one size per split, so mixed sizes mean a damaged or mis-assembled dataset. It
        is a FileError naming the first sample of another size, raised before any batch is built (reading
        file headers only: ~0.25 ms a sample)."""
        if not len(self):
            return None
        first = self.image_size(0)
        for i in range(1, len(self)):
            size = self.image_size(i)
            if size != first:
                raise FileError(self.files(i)[0], f"size {size[0]}x{size[1]} differs from {first[0]}x{first[1]} of "
                                                  f"{self.files(0)[0]}; every image of split '{self.split}' must "
                                                  "have one size")
        return first

    @property
    def spec(self) -> str:
        """The command-line spec that reopens this dataset."""
        return self.info.name if self.root is None else f"{self.info.name}:{self.root}"


def check_label_range(label: torch.Tensor, info: DatasetInfo, path: Path) -> None:
    """Raise DataError if label ids fall outside [0, num_classes) other than the ignore index."""
    valid = label < info.num_classes
    if info.ignore_index is not None:
        valid |= label == info.ignore_index
    if not bool(valid.all()):
        bad = sorted(set(label[~valid].unique().tolist()))[:5]
        allowed = f"0..{info.num_classes - 1}"
        if info.ignore_index is not None:
            allowed += f" or {info.ignore_index} (ignored)"
        raise DataError(f"{path}: label ids {bad} out of range; expected {allowed} for {info.name}")
