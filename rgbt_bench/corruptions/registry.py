"""All corruptions by name, lookup with typo suggestions, and the one-call `apply_corruption`."""
from __future__ import annotations

from typing import Any

from ..batch import Batch
from ..registry import Registry
from . import dropout, fog, masking, night, thermal
from .corruption import Corruption

CORRUPTIONS: Registry[Corruption] = Registry("corruption", {
    c.name: c
    for family in (dropout, masking, fog, night, thermal)
    for c in family.CORRUPTIONS
}, cutoff=0.5)


def get_corruption(name: str) -> Corruption:
    """The corruption registered as `name`; ConfigError with the closest name on a typo."""
    return CORRUPTIONS.lookup(name)


def apply_corruption(batch: Batch, name: str, severity: int, seed: int, **options: Any) -> Batch:
    """Corrupt `batch` with corruption `name` at `severity` (0 = unchanged); its random numbers depend on
    (`seed`, corruption, image identity) only (rgbt_bench.corruptions.stream)."""
    return get_corruption(name)(batch, severity, seed, **options)
