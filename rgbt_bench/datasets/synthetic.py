"""The built-in `synthetic` RGB-T dataset: procedural road scenes, generated once and cached on disk.

Nothing is downloaded. The first open of a (seed, size, counts) combination renders every split with
rgbt_bench.datasets.scene and writes it to the cache directory ($RGBT_BENCH_CACHE, else
~/.cache/rgbt-bench) laid out like a real dataset: one uncompressed .npz of uint8 arrays per stored split
(train, val, test) plus MFNet-style split files (train.txt ... test_night.txt) of names like 00012D /
00013N. The directory is written under a temporary name and renamed into place, so a killed or racing
process never leaves a half-written cache. Scene model, classes and what each modality shows:
docs/synthetic.md.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from ..batch import Sample, SampleMeta
from ..errors import ConfigError, DataError
from . import scene
from .base import DatasetInfo, RGBTDataset

SPLITS = ("train", "val", "test", "test_day", "test_night")
STORED_SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 400, "val": 100, "test": 100}
NATIVE_SIZE = (120, 160)
MIN_SIZE = 16


def default_cache_dir() -> Path:
    """$RGBT_BENCH_CACHE if set, else ~/.cache/rgbt-bench."""
    env = os.environ.get("RGBT_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rgbt-bench"


def parse_size(size: Any) -> tuple[int, int]:
    """(H, W) from None (native 120x160), a pair of ints or an 'HxW' string."""
    if size is None:
        return NATIVE_SIZE
    try:
        parts = [int(v) for v in size.lower().split("x")] if isinstance(size, str) else [int(v) for v in size]
    except (TypeError, ValueError, AttributeError):
        parts = []
    if len(parts) != 2 or min(parts) < MIN_SIZE:
        raise ConfigError(f"synthetic dataset size {size!r} is invalid; expected (H, W) or 'HxW' with both "
                          f">= {MIN_SIZE}")
    return parts[0], parts[1]


def parse_counts(counts: Optional[Mapping[str, int] | Sequence[int]]) -> dict[str, int]:
    """Images per stored split from None (400/100/100), a (train, val, test) triple or a mapping."""
    if counts is None:
        return dict(DEFAULT_COUNTS)
    if isinstance(counts, Mapping):
        unknown = set(counts) - set(STORED_SPLITS)
        if unknown:
            raise ConfigError(f"synthetic dataset counts name unknown splits {sorted(unknown)}; "
                              f"expected keys among {', '.join(STORED_SPLITS)}")
        merged = {**DEFAULT_COUNTS, **counts}
    else:
        values = list(counts)
        if len(values) != len(STORED_SPLITS):
            raise ConfigError(f"synthetic dataset counts {counts!r} must give (train, val, test) image counts")
        merged = dict(zip(STORED_SPLITS, values))
    for split, n in merged.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ConfigError(f"synthetic dataset count for '{split}' is {n!r}; expected an integer >= 2 "
                              "(one day and one night image)")
    return {k: int(merged[k]) for k in STORED_SPLITS}


def dataset_dir_name(seed: int, size: tuple[int, int], counts: Mapping[str, int]) -> str:
    """Cache key: generator version, seed, size and counts."""
    n = "-".join(str(counts[k]) for k in STORED_SPLITS)
    return f"synthetic-v{scene.GENERATOR_VERSION}-seed{seed}-{size[0]}x{size[1]}-n{n}"


def split_names(counts: Mapping[str, int]) -> dict[str, list[str]]:
    """Names per split: global indices in consecutive blocks (train, val, test) plus D/N suffixes."""
    names: dict[str, list[str]] = {}
    start = 0
    for split in STORED_SPLITS:
        names[split] = [f"{i:05d}{'N' if scene.is_night_index(i) else 'D'}"
                        for i in range(start, start + counts[split])]
        start += counts[split]
    names["test_day"] = [n for n in names["test"] if n.endswith("D")]
    names["test_night"] = [n for n in names["test"] if n.endswith("N")]
    return names


def generate(directory: Path, size: tuple[int, int], seed: int, counts: Mapping[str, int]) -> Path:
    """Render all splits into `directory` atomically (temporary sibling, then rename); returns it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        names = split_names(counts)
        for split in STORED_SPLITS:
            first = int(names[split][0][:5])
            images = scene.render(range(first, first + counts[split]), size, seed)
            with open(tmp / f"{split}.npz", "wb") as f:
                np.savez(f, names=np.array(names[split]), rgb=images.rgb, thermal=images.thermal,
                         label=images.label, element=images.element)
        for split in SPLITS:
            (tmp / f"{split}.txt").write_text("".join(f"{n}\n" for n in names[split]))
        manifest = {"generator_version": scene.GENERATOR_VERSION, "seed": seed, "size": list(size),
                    "counts": dict(counts), "class_names": list(scene.CLASS_NAMES),
                    "element_names": list(scene.ELEMENT_NAMES), "ignore_index": scene.IGNORE_INDEX}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(tmp, directory)
        except OSError:
            if not (directory / "manifest.json").is_file():
                raise
            shutil.rmtree(tmp)  # another process finished first; its copy is identical
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


class SyntheticRGBT(RGBTDataset):
    """Procedural RGB-T road scenes (7 classes, day and night), generated on first use and cached.

    `root`: base directory of the cache (None: default_cache_dir()); the dataset lives in a sub-directory
    keyed by generator version, seed, size and counts. `size`: (H, W), default 120x160 (MFNet aspect).
    `counts`: images in (train, val, test), default 400/100/100; test_day / test_night are the day and
    night halves of test, as in MFNet.
    """

    info = DatasetInfo(
        name="synthetic",
        class_names=scene.CLASS_NAMES,
        palette=scene.PALETTE,
        ignore_index=scene.IGNORE_INDEX,
        convention="field",
        native_size=NATIVE_SIZE,
        splits=SPLITS,
        needs_root=False,
        has_day_night=True,
        description="Procedural road scenes where lane markings and cones show only in RGB, hot pipes only "
                    "in thermal, and only thermal tells persons from person-shaped posters.",
        visible_in=scene.VISIBLE_IN,
    )

    def __init__(self, root: Optional[Path] = None, split: str = "train", size: Any = None, seed: int = 0,
                 counts: Optional[Mapping[str, int] | Sequence[int]] = None):
        super().__init__(root, split)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"synthetic dataset seed {seed!r} is invalid; expected an integer >= 0")
        self.size = parse_size(size)
        self.seed = int(seed)
        self.counts = parse_counts(counts)
        base = self.root if self.root is not None else default_cache_dir()
        self.directory = base / dataset_dir_name(self.seed, self.size, self.counts)
        if not (self.directory / "manifest.json").is_file():
            try:
                generate(self.directory, self.size, self.seed, self.counts)
            except OSError as exc:
                raise DataError(f"{self.directory}: cannot write the synthetic dataset ({exc.strerror or exc}); "
                                "set RGBT_BENCH_CACHE to a writable directory") from exc
        self.source = self.directory / f"{'test' if split.startswith('test') else split}.npz"
        self.names = self._read_split_file(self.directory / f"{split}.txt")
        self._arrays: Optional[dict[str, np.ndarray]] = None
        self._rows: list[int] = []

    @staticmethod
    def _read_split_file(path: Path) -> list[str]:
        try:
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise DataError(f"{path}: cannot read split file ({exc.strerror}); "
                            f"delete {path.parent} to regenerate the synthetic dataset") from exc

    def _load_arrays(self) -> dict[str, np.ndarray]:
        """Read the split's .npz once per process and map this split's names to its rows."""
        if self._arrays is not None:
            return self._arrays
        path = self.source
        try:
            with np.load(path) as npz:
                arrays = {k: npz[k] for k in ("names", "rgb", "thermal", "label", "element")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: unreadable synthetic dataset file ({exc}); "
                            f"delete {self.directory} to regenerate it") from exc
        h, w = self.size
        n = len(arrays["names"])
        expected = {"rgb": (n, h, w, 3), "thermal": (n, h, w), "label": (n, h, w), "element": (n, h, w)}
        for key, shape in expected.items():
            if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
                raise DataError(f"{path}: array '{key}' is {arrays[key].dtype} {arrays[key].shape}; expected uint8 "
                                f"{shape}; delete {self.directory} to regenerate it")
        row_of = {str(name): r for r, name in enumerate(arrays["names"])}
        missing = [name for name in self.names if name not in row_of]
        if missing:
            raise DataError(f"{path}: no images named {missing[:3]} listed in {self.split}.txt; "
                            f"delete {self.directory} to regenerate it")
        self._rows = [row_of[name] for name in self.names]
        self._arrays = arrays
        return arrays

    def __getstate__(self) -> dict:
        """Pickle without the image arrays; DataLoader workers reload them."""
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def load(self, i: int) -> Sample:
        arrays = self._load_arrays()
        r = self._rows[i]
        rgb = torch.from_numpy(arrays["rgb"][r]).permute(2, 0, 1).float().div_(255)
        thermal = torch.from_numpy(arrays["thermal"][r]).unsqueeze(0).float().div_(255)
        label = torch.from_numpy(arrays["label"][r]).long()
        meta = SampleMeta(self.info.name, self.split, self.names[i], i, self.is_night(i))
        return Sample(rgb=rgb, thermal=thermal, label=label, meta=meta)

    def elements(self, i: int) -> torch.Tensor:
        """What each pixel of sample i shows, finer than its label: int64 [H,W] ids of scene.ELEMENT_NAMES
        (tells posters and camouflaged persons apart, e.g. to count posters predicted as person)."""
        arrays = self._load_arrays()
        return torch.from_numpy(arrays["element"][self._rows[i]]).long()

    def files(self, i: int) -> list[Path]:
        if not 0 <= i < len(self.names):
            raise IndexError(f"sample {i} out of range for {len(self.names)} samples")
        return [self.source]

    def is_night(self, i: int) -> Optional[bool]:
        return self.names[i].endswith("N")

    def image_size(self, i: int) -> tuple[int, int]:
        """Every image of the synthetic dataset has its `size`."""
        return self.size
