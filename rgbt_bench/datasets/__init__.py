"""Dataset registry and command-line spec parsing (`mfnet:/path`, `pst900:/path`, `kp:/path`, `synthetic`)."""
from __future__ import annotations

import difflib
import importlib
import inspect
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import DatasetInfo, RGBTDataset

# name -> "module:class"; imported lazily so that one broken loader never blocks the others.
DATASETS: dict[str, str] = {
    "synthetic": "rgbt_bench.datasets.synthetic:SyntheticRGBT",
    "mfnet": "rgbt_bench.datasets.mfnet:MFNetDataset",
    "pst900": "rgbt_bench.datasets.pst900:PST900Dataset",
    "kp": "rgbt_bench.datasets.kp:KPDataset",
}

DEFAULT_DATASET = "synthetic"


def dataset_class(name: str) -> type[RGBTDataset]:
    """The dataset class registered under `name`, with a suggestion on a typo."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown dataset '{name}'; expected one of {', '.join(DATASETS)}.{hint}")
    module, attr = DATASETS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """Split 'name:/path' into (name, Path); 'synthetic' alone has no path."""
    name, sep, path = spec.partition(":")
    name = name.strip().lower()
    if not sep:
        if name != "synthetic":
            dataset_class(name)
            raise ConfigError(f"dataset spec '{spec}' needs a root directory, e.g. '{name}:/path/to/{name}'")
        return name, None
    if not path:
        raise ConfigError(f"dataset spec '{spec}' has an empty path after ':'")
    return name, Path(path).expanduser()


def open_dataset(spec: str, split: str, **options: Any) -> RGBTDataset:
    """Open split `split` of the dataset named by `spec`; extra options go to the dataset class."""
    name, root = parse_spec(spec)
    cls = dataset_class(name)
    if split not in cls.info.splits:
        raise ConfigError(f"dataset '{name}' has no split '{split}'; expected one of {', '.join(cls.info.splits)}")
    params = inspect.signature(cls).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        known = [k for k in params if k not in ("root", "split")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"dataset '{name}' has no option '{unknown[0]}'; expected "
                              + (f"one of {', '.join(known)}" if known else "no options"))
    return cls(root, split, **options) if root is not None else cls(None, split, **options)


__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetInfo", "RGBTDataset", "dataset_class", "open_dataset", "parse_spec"]
