"""All corruptions by name, lookup with typo suggestions, and the one-call `apply_corruption`.

Names from ImageNet-C (Hendrycks & Dietterich, ICLR 2019) and 3D Common Corruptions (Kar et al., CVPR 2022)
are answered too. A name is an alias (`ALIASES`) only where our corruption computes that benchmark's
formula, with its parameter table, on the same modality; such a name evaluates exactly the registered
corruption and results are filed under the registered name. Where the formula exists only on the other
modality, or not at all, the name is an error saying which corruption comes closest (`HINTS`).
"""
from __future__ import annotations

import difflib
from typing import Any

from ..batch import Batch
from ..errors import ConfigError
from ..registry import Registry
from . import dropout, fog, masking, night, thermal
from .corruption import Corruption

CORRUPTIONS: Registry[Corruption] = Registry("corruption", {
    c.name: c
    for family in (dropout, masking, fog, night, thermal)
    for c in family.CORRUPTIONS
}, cutoff=0.5)

ALIASES = {
    "fog": "plasma_fog",  # ImageNet-C fog: same plasma fractal, formula and (c0, wibbledecay) table, on RGB
    "low_light": "night",  # 3DCC low_light: same gamma-2 stretch, peak table and Poisson-Gaussian noise, on RGB
}
HINTS = {
    "gaussian_noise": "ImageNet-C gaussian_noise (x + N(0, sigma^2) on RGB, sigma .08-.38) is not implemented; "
                      "the same formula on thermal is thermal_noise (sigma .01-.08). Did you mean 'thermal_noise'?",
    "gaussian_blur": "ImageNet-C gaussian_blur's sigma table (1 2 3 4 6 px at 224 rows) is implemented on thermal "
                     "as thermal_blur; RGB blur is not implemented. Did you mean 'thermal_blur'?",
    "contrast": "ImageNet-C contrast (m + c (x - m), c = .4 .3 .2 .1 .05) is implemented on thermal as "
                "thermal_crossover; RGB contrast is not implemented. Did you mean 'thermal_crossover'?",
    "shot_noise": "ImageNet-C shot_noise (Poisson noise on RGB) is not implemented; night adds Poisson-Gaussian "
                  "noise to darkened RGB (3DCC low_light). Did you mean 'night'?",
}


def canonical_name(name: str) -> str:
    """The registered name for `name` (itself, or the corruption an alias stands for); ConfigError for an
    unknown name, with the closest registered name or, for a benchmark name, which corruption implements it."""
    if name in CORRUPTIONS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    if name in HINTS:
        raise ConfigError(f"unknown corruption '{name}': {HINTS[name]}")
    alias = difflib.get_close_matches(name, ALIASES, n=1, cutoff=CORRUPTIONS.cutoff)
    if CORRUPTIONS.suggestion(name) or not alias:
        raise CORRUPTIONS.unknown(name)
    raise ConfigError(f"{CORRUPTIONS.unknown(name)} Did you mean '{alias[0]}' (= {ALIASES[alias[0]]})?")


def get_corruption(name: str) -> Corruption:
    """The corruption registered as `name` (or aliased by it); ConfigError with the closest name on a typo."""
    return CORRUPTIONS[canonical_name(name)]


def apply_corruption(batch: Batch, name: str, severity: int, seed: int, **options: Any) -> Batch:
    """Corrupt `batch` with corruption `name` at `severity` (0 = unchanged); its random numbers depend on
    (`seed`, corruption, image identity) only (rgbt_bench.corruptions.stream).

    Args:
        batch: images in rgbt_bench.batch's conventions, with one SampleMeta per sample (its `key` seeds
            that sample's random numbers, which therefore do not depend on the batch or the device).
        name: a registered corruption or an alias of one (`rgbt-bench corruptions list`).
        severity: 0 (the batch itself is returned) to 5.
        seed: corruption seed; the same (seed, corruption, image) always gives the same corruption.
        **options: the corruption's options (e.g. fill="mean"), checked against the ones it declares.

    Returns:
        A Batch with the corrupted images; labels and metadata are those of `batch`.

    Raises:
        ConfigError: an unknown name (naming the closest one), severity or option.

    Example:
        At severity 5 the thermal camera is missing from every sample; RGB is untouched:

        >>> import torch
        >>> from rgbt_bench.batch import Batch, SampleMeta
        >>> batch = Batch(rgb=torch.full((2, 3, 8, 8), 0.5), thermal=torch.full((2, 1, 8, 8), 0.5),
        ...               label=torch.zeros(2, 8, 8, dtype=torch.int64),
        ...               meta=[SampleMeta("demo", "test", f"image{i}", i) for i in range(2)])
        >>> out = apply_corruption(batch, "thermal_missing", severity=5, seed=0)
        >>> out.thermal.abs().sum().item(), torch.equal(out.rgb, batch.rgb)
        (0.0, True)
    """
    return get_corruption(name)(batch, severity, seed, **options)
