"""All corruptions by name, lookup with typo suggestions, and the one-call `apply_corruption`."""
from __future__ import annotations

import difflib
from typing import Any

from ..batch import Batch
from ..errors import ConfigError
from . import dropout, fog, masking, night, thermal
from .corruption import Corruption

CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for family in (dropout, masking, fog, night, thermal)
    for c in family.CORRUPTIONS
}


def get_corruption(name: str) -> Corruption:
    """The corruption registered as `name`; ConfigError with the closest name on a typo."""
    if name not in CORRUPTIONS:
        close = difflib.get_close_matches(name, CORRUPTIONS, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown corruption '{name}'; expected one of {', '.join(CORRUPTIONS)}.{hint}")
    return CORRUPTIONS[name]


def apply_corruption(batch: Batch, name: str, severity: int, seed: int, **options: Any) -> Batch:
    """Corrupt `batch` with corruption `name` at `severity` (0 = unchanged) and per-sample seeds from `seed`."""
    return get_corruption(name)(batch, severity, seed, **options)
