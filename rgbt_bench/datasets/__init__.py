"""Dataset registry and command-line spec parsing (`mfnet:/path`, `pst900:/path`, `kp:/path`, `synthetic`)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..registry import Registry
from .base import DatasetInfo, RGBTDataset

# name -> "module:class"; imported lazily so that one broken loader never blocks the others.
DATASETS: Registry[type[RGBTDataset]] = Registry("dataset", {
    "synthetic": "rgbt_bench.datasets.synthetic:SyntheticRGBT",
    "mfnet": "rgbt_bench.datasets.mfnet:MFNetDataset",
    "pst900": "rgbt_bench.datasets.pst900:PST900Dataset",
    "kp": "rgbt_bench.datasets.kp:KPDataset",
})

DEFAULT_DATASET = "synthetic"


def dataset_class(name: str) -> type[RGBTDataset]:
    """The dataset class registered under `name`, with a suggestion on a typo."""
    return DATASETS.lookup(name)


def spec_syntax(info: DatasetInfo, path: Optional[str] = None) -> str:
    """How a dataset is named on the command line: 'synthetic', or 'mfnet:<path>' for one read from disk."""
    return f"{info.name}:{path or f'/path/to/{info.name}'}" if info.needs_root else info.name


def parse_spec(spec: str) -> tuple[str, Optional[Path]]:
    """Split 'name:/path' into (name, Path); a generated dataset ('synthetic') alone has no path."""
    name, sep, path = spec.partition(":")
    name = name.strip().lower()
    if not sep:
        if dataset_class(name).info.needs_root:
            raise ConfigError(f"dataset spec '{spec}' needs a root directory, e.g. '{name}:/path/to/{name}'")
        return name, None
    if not path:
        raise ConfigError(f"dataset spec '{spec}' has an empty path after ':'")
    return name, Path(path).expanduser()


def open_dataset(spec: str, split: str, **options: Any) -> RGBTDataset:
    """Open split `split` of the dataset named by `spec`; extra options go to the dataset class.

    Args:
        spec: 'synthetic' (generated on first use and cached) or 'NAME:DIR' for a dataset on disk
            ('mfnet:/data/MFNet', 'pst900:...', 'kp:...'; on-disk layouts in the README).
        split: one of the dataset's splits (`DatasetInfo.splits`), e.g. 'test' or 'test_night'.
        **options: options of the dataset class, e.g. the synthetic dataset's `size`, `counts` and `seed`.

    Returns:
        The dataset: `len()` samples, each a Sample of rgb float32 [3,H,W] and thermal float32 [1,H,W] in
        [0, 1], label int64 [H,W] and its SampleMeta; `info` holds class names, ignore index and convention.

    Raises:
        ConfigError: an unknown dataset, split or option, or a spec without the directory it needs.
        DataError: a dataset directory that is missing or malformed (naming the file).

    Example:
        >>> ds = open_dataset("synthetic", "test", size=(32, 48), counts=(8, 2, 4))
        >>> len(ds), ds.info.num_classes, ds.info.ignore_index
        (4, 7, 255)
        >>> sample = ds[0]
        >>> tuple(sample.rgb.shape), tuple(sample.thermal.shape), sample.label.dtype, sample.meta.name
        ((3, 32, 48), (1, 32, 48), torch.int64, '00010D')
    """
    name, root = parse_spec(spec)
    cls = dataset_class(name)
    cls.check_split(split)
    params = inspect.signature(cls).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        known = [k for k in params if k not in ("root", "split")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"dataset '{name}' has no option '{unknown[0]}'; expected "
                              + (f"one of {', '.join(known)}" if known else "no options"))
    return cls(root, split, **options)


__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetInfo", "RGBTDataset", "dataset_class", "open_dataset", "parse_spec",
           "spec_syntax"]
