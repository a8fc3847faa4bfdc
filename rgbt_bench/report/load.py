"""A sweep results directory read back for reporting: cells pooled over corruption seeds, in a stable order.

Every number of a report is computed from the per-image confusion matrices a sweep stored
(rgbt_bench.sweep.store), never from stored mIoUs. A corruption evaluated under several seeds is pooled:
the per-image matrices of its seeds are summed, so the pooled cell keeps one matrix per image (which the
paired bootstrap resamples) and its mIoU is that of all seeds' pixels together.

Replicas of a model trained with several training seeds (CellKey.train_seed) are never pooled: each is a
network of its own. `Results.views` holds one Results per replica index (view i: every model's i-th
replica, its training seeds in ascending order), each with one cell per (model, corruption, severity);
reports compute every number per view and give the mean and spread over views (rgbt_bench.report.replicas).
A Results is itself view 0, so code that reads one view sees every model's first replica.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from ..errors import ConfigError, DataError
from ..metrics import compute_metrics
from ..sweep.store import CELL_DIR, UNREADABLE, CellResult, read_cells

CLEAN = "clean"
MANIFEST = "run.json"


@dataclass
class Cell:
    """One (model, corruption, severity) of a sweep, pooled over its seeds: per_image int64 [N, C, C]."""

    model: str
    corruption: str
    severity: int
    seeds: tuple[int, ...]
    per_image: np.ndarray
    train_seed: Optional[int] = None

    @property
    def clean(self) -> bool:
        return self.corruption == CLEAN

    @property
    def confusion(self) -> np.ndarray:
        return self.per_image.sum(axis=0)


@dataclass
class Results:
    """All cells of one results directory (one dataset and split, one mIoU convention).

    `raw` keeps the unpooled cells (one per seed and replica) for the regression check. `names` / `is_night`
    describe the N images every cell shares (is_night: 1 night, 0 day, -1 unknown). `cells` are those of
    view 0; `views` every replica view (see the module docstring); `train_seeds` each model's training seeds
    (None: given weights) and `specs` each model's spec (a registered name or 'module:fn').
    """

    path: Path
    manifest: dict[str, Any]
    dataset: str
    split: str
    convention: str
    class_names: tuple[str, ...]
    names: np.ndarray
    is_night: np.ndarray
    models: list[str]
    corruptions: list[str]
    cells: dict[tuple[str, str, int], Cell] = field(repr=False)
    raw: list[CellResult] = field(repr=False)
    views: list[Results] = field(default_factory=list, repr=False)
    train_seeds: dict[str, tuple[Optional[int], ...]] = field(default_factory=dict)
    specs: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def replica_views(self) -> list[Results]:
        """One Results per replica index (just this one when no model has several training seeds)."""
        return self.views or [self]

    def replicas(self, model: str) -> int:
        """How many trained replicas of `model` the results hold (its training seeds)."""
        return len(self.train_seeds.get(model, (None,)))

    @property
    def has_day_night(self) -> bool:
        return bool((self.is_night >= 0).any())

    def cell(self, model: str, corruption: str, severity: int) -> Optional[Cell]:
        return self.cells.get((model, corruption, severity))

    def severities(self, corruption: str) -> list[int]:
        """Severities at which any model was evaluated under `corruption`, ascending."""
        return sorted({s for (_, c, s) in self.cells if c == corruption})

    def settings(self) -> list[tuple[str, int]]:
        """(corruption, severity) pairs in report order: clean first, then the suite's order."""
        out = [(CLEAN, 0)] if any(c == CLEAN for (_, c, _) in self.cells) else []
        return out + [(c, s) for c in self.corruptions for s in self.severities(c)]

    def restricted(self, corruptions: Iterable[str]) -> Results:
        """These results with only `corruptions` among the corrupted settings (all cells kept): what summary
        statistics average over when some corruptions are incomplete (rgbt_bench.report.completeness)."""
        keep = set(corruptions)
        views = [dataclasses.replace(v, corruptions=[c for c in v.corruptions if c in keep], views=[])
                 for v in self.replica_views()]
        if len(views) > 1:
            views[0].views = views
        return views[0]

    def miou(self, model: str, corruption: str, severity: int) -> float:
        """mIoU (fraction) of a cell's summed matrix under the results' convention; NaN if absent."""
        cell = self.cell(model, corruption, severity)
        return compute_metrics(cell.confusion, self.convention).miou if cell is not None else float("nan")


def read_manifest(path: Path) -> dict[str, Any]:
    """run.json of a results directory ({} when there is none); a corrupt one is a DataError."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return {}
    try:
        return json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{manifest} is not readable JSON ({exc}); expected the sweep's manifest") from None


def is_results_dir(path: Path) -> bool:
    """Whether `path` holds at least one finished sweep cell."""
    return any((Path(path) / CELL_DIR).glob("*.json"))


def _ordered(found: list[str], preferred: list[str]) -> list[str]:
    return [p for p in preferred if p in found] + sorted(set(found) - set(preferred))


def _one(values: set, what: str, path: Path):
    if len(values) != 1:
        raise DataError(f"{path} mixes {what} {sorted(map(str, values))}; expected one per results directory "
                        "(write each sweep to its own --out)")
    return next(iter(values))


def _unreadable_file(path: Path) -> Path:
    """The first cell's NPZ arrays under `path` that do not load (records are checked by read_record)."""
    for json_path in sorted((path / CELL_DIR).glob("*.json")):
        try:
            with np.load(json_path.with_suffix(".npz")) as z:
                z["per_image"], z["names"], z["is_night"]
        except UNREADABLE:
            return json_path.with_suffix(".npz")
    return path / CELL_DIR


def _read_raw(path: Path) -> list[CellResult]:
    try:
        return list(read_cells(path))
    except UNREADABLE:
        raise DataError(f"{_unreadable_file(path)} is not a readable sweep cell; expected the .json record and "
                        ".npz arrays a sweep writes (delete the cell's two files and rerun the sweep to recompute "
                        "it)") from None


def load_results(path: str | Path) -> Results:
    """Read every finished cell of `path`; DataError when there are none or they do not fit together.

    Args:
        path: the `out` directory of a sweep (rgbt_bench.sweep.run_sweep).

    Returns:
        Results: the cells pooled over corruption seeds, keyed by (model, corruption, severity), with
        per-image confusion matrices, image names and day/night flags, models, corruptions, class names,
        mIoU convention, each model's training seeds and the manifest (run.json).

    Raises:
        DataError: no directory, no finished cell, or cells of different datasets, splits, conventions,
            class lists or images.

    Example:
        >>> from rgbt_bench.sweep import SweepConfig, run_sweep
        >>> out = run_sweep(SweepConfig(models=["mfnet"], corruptions=["thermal_missing"], severities=[5],
        ...                             dataset_options={"size": (32, 48), "counts": (8, 2, 4)},
        ...                             train_iterations=1, out="results/example", progress=False,
        ...                             efficiency=False))
        >>> results = load_results("results/example")
        >>> results.models, results.settings(), results.num_classes, len(results.names)
        (['mfnet'], [('clean', 0), ('thermal_missing', 5)], 7, 4)
        >>> 0.0 <= results.miou("mfnet", "thermal_missing", 5) <= 1.0
        True
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"results directory {path} does not exist; expected the --out of a sweep")
    raw = _read_raw(path)
    if not raw:
        raise DataError(f"{path} holds no finished sweep cells (no {CELL_DIR}/*.json); run `rgbt-bench sweep "
                        f"--out {path}` first")
    manifest = read_manifest(path)
    dataset = _one({c.record.key.dataset for c in raw}, "datasets", path)
    split = _one({c.record.key.split for c in raw}, "splits", path)
    convention = _one({c.record.identity.convention for c in raw}, "mIoU conventions", path)
    class_names = _one({c.record.class_names for c in raw}, "class lists", path)
    first = raw[0]
    for cell in raw:
        if not np.array_equal(cell.names, first.names):
            raise DataError(f"cell {cell.record.cell_id} of {path} covers other images than cell "
                            f"{first.record.cell_id} ({len(cell.names)} vs {len(first.names)}); expected every "
                            "cell of a sweep to cover the same images")
        if cell.per_image.shape[1:] != (len(class_names),) * 2:
            raise DataError(f"cell {cell.record.cell_id} of {path} has confusion matrices of shape "
                            f"{cell.per_image.shape[1:]}; expected {len(class_names)}x{len(class_names)}")
    groups: dict[tuple[str, Optional[int], str, int], list[CellResult]] = {}
    for cell in raw:
        key = cell.record.key
        groups.setdefault((key.model, key.train_seed, key.corruption, key.severity), []).append(cell)
    cells = {key: Cell(key[0], key[2], key[3], tuple(sorted(c.record.key.seed for c in group)),
                       np.sum([c.per_image for c in group], axis=0), key[1])
             for key, group in groups.items()}
    models = _ordered(list(dict.fromkeys(m for m, _, _, _ in cells)),  # run.json lists a model once per replica
                      list(dict.fromkeys(m.get("name") for m in manifest.get("models", []))))
    train_seeds = {m: tuple(sorted({t for (mm, t, _, _) in cells if mm == m}, key=lambda t: -1 if t is None else t))
                   for m in models}
    specs = {c.record.key.model: c.record.identity.model_spec for c in raw}
    suite = [e.get("label") or e.get("corruption") for e in manifest.get("suite", {}).get("entries", [])]
    corruptions = _ordered([c for _, _, c, _ in cells if c != CLEAN], suite)
    views = []
    for i in range(max(len(seeds) for seeds in train_seeds.values())):
        chosen = {m: seeds[i] for m, seeds in train_seeds.items() if i < len(seeds)}
        view_cells = {(m, c, s): cell for (m, t, c, s), cell in cells.items() if m in chosen and chosen[m] == t}
        views.append(Results(path, manifest, dataset, split, convention, class_names, first.names, first.is_night,
                             [m for m in models if m in chosen], corruptions, view_cells, raw,
                             train_seeds=train_seeds, specs=specs))
    top = views[0]
    top.views = views if len(views) > 1 else []
    return top


def check_model(results: Results, model: str, flag: str = "--reference") -> str:
    """`model` if the results hold it, else a ConfigError listing the models they hold."""
    if model not in results.models:
        raise ConfigError(f"{flag} model '{model}' is not in {results.path}; expected one of "
                          f"{', '.join(results.models)}")
    return model
