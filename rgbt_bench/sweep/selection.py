"""What a quick sweep evaluates without a suite file: `--corruptions`, `--severities` and `--limit`.

- `--corruptions a,b` keeps the suite entries whose label or corruption is named (an alias such as ImageNet-C
  `fog` names its registered corruption), in suite order; a registered corruption the suite lacks is added
  with its default options. A name that is neither is an error with the closest name.
- `--severities 1,3,5` cuts every entry to those severities (Suite.restrict).
- `--limit N` evaluates the first N images of the split. The limit is recorded in every cell and in the
  manifest, so that the cells of a limited run and of a full one never mix in one results directory.
"""
from __future__ import annotations

import copy
from typing import Optional, Sequence

from ..corruptions import Suite, SuiteEntry, get_corruption
from ..corruptions.corruption import SEVERITIES
from ..corruptions.registry import canonical_name
from ..datasets import RGBTDataset
from ..errors import ConfigError


def parse_names(text: str | Sequence[str]) -> list[str]:
    """'plasma_fog,night' (or a list) -> ['plasma_fog', 'night']: at least one name, none twice."""
    raw = text.split(",") if isinstance(text, str) else [p for item in text for p in item.split(",")]
    names = [p.strip() for p in raw if p.strip()]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"invalid --corruptions '{','.join(raw) if not isinstance(text, str) else text}'; "
                          "expected distinct comma-separated names, e.g. plasma_fog,thermal_noise")
    return names


def parse_severities(text: str | Sequence[int]) -> list[int]:
    """'1,3,5' (or a list) -> [1, 3, 5]: distinct integers among 1..5, ascending."""
    raw = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    try:
        severities = [int(s) for s in raw if s != ""]
    except (TypeError, ValueError):
        severities = []
    if not severities or any(s not in SEVERITIES for s in severities) or len(set(severities)) != len(severities):
        raise ConfigError(f"invalid --severities '{text if isinstance(text, str) else ','.join(map(str, raw))}'; "
                          "expected distinct integers among 1..5, comma-separated, e.g. 1,3,5 (clean, severity 0, "
                          "is always evaluated)")
    return sorted(severities)


def select_corruptions(suite: Suite, names: Sequence[str]) -> Suite:
    """The entries of `suite` named by label or corruption (in suite order), then the named registered
    corruptions it lacks (default options, every severity)."""
    wanted: set[str] = set()
    added: list[SuiteEntry] = []
    for name in names:
        matches = [e for e in suite.entries if e.label == name]
        if not matches:
            corruption = canonical_name(name)
            matches = [e for e in suite.entries if e.corruption == corruption]
            if not matches and all(e.corruption != corruption for e in added):
                added.append(SuiteEntry(corruption, corruption, list(SEVERITIES),
                                        get_corruption(corruption).resolve_options()))
        wanted.update(e.label for e in matches)
    kept = [e for e in suite.entries if e.label in wanted]
    clash = [e for e in added if any(k.label == e.label for k in kept)]
    if clash:
        raise ConfigError(f"--corruptions adds corruption '{clash[0].corruption}', but suite '{suite.name}' labels "
                          f"another entry '{clash[0].label}'; give that entry another label")
    return Suite(name=f"{suite.name}[{','.join(names)}]", entries=kept + added, path=None,
                 description=f"{suite.name} restricted to {', '.join(names)} (--corruptions)")


def select(suite: Suite, corruptions: Optional[Sequence[str]], severities: Optional[Sequence[int]]) -> Suite:
    """`suite` restricted to `corruptions` (None: all) and `severities` (None: all)."""
    if corruptions:
        suite = select_corruptions(suite, corruptions)
    if severities:
        suite = suite.restrict(severities)
    return suite


def effective_limit(limit: Optional[int], size: int) -> Optional[int]:
    """The limit a run records: None when it covers the whole split (a limit of at least its size)."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1 (the number of images to evaluate), got {limit}")
    return limit if limit is not None and limit < size else None


def first_images(dataset: RGBTDataset, limit: Optional[int]) -> RGBTDataset:
    """A view of `dataset` holding its first `limit` samples (the dataset itself for None). Samples are
    addressed by index 0..len-1 (RGBTDataset), so a shallow copy with a shorter `names` list serves them."""
    if limit is None:
        return dataset
    view = copy.copy(dataset)
    view.names = list(dataset.names[:limit])
    return view
