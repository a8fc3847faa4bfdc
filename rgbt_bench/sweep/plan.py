"""Cell planning: which (model, training seed, corruption, severity, seed) cells a sweep evaluates, and in which passes.

A *setting* is one way of corrupting a batch (suite label, severity, seed; clean is label "clean" at
severity 0). Every model is evaluated under every setting; the cells are ordered setting by setting, so
that a group of consecutive cells shares its settings across models and a corrupted batch is computed
once for all of them. A *group* is the set of cells evaluated in one data pass: a killed sweep loses at
most the group in flight, and a re-run plans only the cells not yet on disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from ..corruptions import Suite
from ..errors import ConfigError
from .cell import CellKey

CLEAN = "clean"
# Clean evaluation involves no randomness; it is computed once per model and filed under this seed.
CLEAN_SEED = 0


@dataclass(frozen=True)
class Setting:
    """How a batch is corrupted: `corruption` None means clean. `label` names the results (suite label)."""

    label: str
    corruption: Optional[str]
    severity: int
    seed: int
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def clean(self) -> bool:
        return self.corruption is None


@dataclass(frozen=True)
class PlannedCell:
    """One cell to evaluate: the model (by its sweep name) under one setting."""

    key: CellKey
    setting: Setting


def settings_of(suite: Suite, seeds: Sequence[int]) -> list[Setting]:
    """Clean first, then every suite entry x severity x seed, in suite order."""
    out = [Setting(CLEAN, None, 0, CLEAN_SEED)]
    for entry in suite.entries:
        for severity in entry.severities:
            for seed in seeds:
                out.append(Setting(entry.label, entry.corruption, severity, seed, dict(entry.options)))
    return out


def plan_cells(models: Sequence[str | tuple[str, Optional[int]]], settings: Sequence[Setting], dataset: str,
               split: str) -> list[PlannedCell]:
    """Every (setting, model) cell, setting-major so that consecutive cells share corrupted batches. `models`
    are names or (name, training seed) replicas (a bare name: given weights, no training seed).

    ConfigError when two models would share result files: cell ids are distinct for distinct keys
    (CellKey.cell_id), but a case-insensitive filesystem (macOS, Windows) would still merge ids that
    differ only in case."""
    replicas = [(m, None) if isinstance(m, str) else tuple(m) for m in models]
    cells = [PlannedCell(CellKey(model, dataset, split, s.label, s.severity, s.seed, train_seed), s)
             for s in settings for model, train_seed in replicas]
    seen: dict[str, CellKey] = {}
    for cell in cells:
        other = seen.setdefault(cell.key.cell_id.casefold(), cell.key)
        if other != cell.key:
            what, fix = ((f"models '{other.model}' and '{cell.key.model}'", "give one of them another name with "
                          "NAME=SPEC") if other.model != cell.key.model else
                         (f"suite labels '{other.corruption}' and '{cell.key.corruption}'", "rename one label"))
            raise ConfigError(f"{what} would share result files ({cell.key.cell_id}); {fix}")
    return cells


def group_cells(cells: Sequence[PlannedCell], per_pass: Optional[int]) -> list[list[PlannedCell]]:
    """Consecutive chunks of at most `per_pass` cells (None: all cells in one pass)."""
    if per_pass is not None and per_pass < 1:
        raise ConfigError(f"cells per pass must be >= 1, got {per_pass}")
    if not cells:
        return []
    size = len(cells) if per_pass is None else per_pass
    return [list(cells[i:i + size]) for i in range(0, len(cells), size)]


def by_setting(cells: Iterable[PlannedCell]) -> list[tuple[Setting, list[PlannedCell]]]:
    """The group's distinct settings in order, each with the cells (models) evaluated under it."""
    out: dict[Setting, list[PlannedCell]] = {}
    for cell in cells:
        out.setdefault(cell.setting, []).append(cell)
    return list(out.items())


def parse_seeds(text: str | Sequence[int], what: str = "seeds") -> list[int]:
    """'0,1,2' or [0, 1, 2] -> [0, 1, 2]: distinct integers >= 0, at least one. `what` names the value in
    the one-line ConfigError (e.g. '--train-seeds')."""
    raw = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    wrong = "expected distinct comma-separated integers >= 0, e.g. 0,1,2"
    seeds = []
    for item in raw:
        if item == "":
            continue
        if isinstance(item, bool) or not isinstance(item, (int, str)) or not str(item).lstrip("-").isdigit():
            raise ConfigError(f"invalid {what} {text!r}: {item!r} is not an integer; {wrong}")
        seeds.append(int(item))
    negative = [s for s in seeds if s < 0]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if not seeds or negative or repeated:
        problem = ("no seed given" if not seeds else f"{negative[0]} is negative" if negative
                   else f"{repeated[0]} is listed twice")
        raise ConfigError(f"invalid {what} {text!r}: {problem}; {wrong}")
    return seeds
