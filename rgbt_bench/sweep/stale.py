"""Which finished cells may stay in a results directory a run writes to: the one rule of a resumed sweep.

A results directory describes exactly one sweep: one dataset split, one suite and set of seeds, one copy of
the data, one batch size and precision, and per model one set of weights. A finished cell found there by a
run (`conflict`) must be
- of the run's dataset and split (a `--split val` run into a `test` directory is refused);
- at a setting (suite label, severity, seed) the run evaluates (a disjoint suite is refused, not merged);
- reusable (rgbt_bench.sweep.cell.CellRecord.mismatch): with the run's data fingerprint, options, convention,
  batch size and precision, and for a model of the run also with its spec, preset, build kwargs and weights.
  Cells of other models at the run's settings stay (a model swept on its own into the same directory);
- for a model of the run, of a training seed the run evaluates (replicas of other seeds would be averaged
  with the run's by every report).
A plain sweep refuses the first conflicting cell, naming the difference; `rgbt-bench run` moves every
conflicting cell aside into `<out>/stale/` (never deletes it). The check runs twice: before any model is
trained or loaded (data and settings only, so a wrong directory is refused at once), and once the weights
are known. A planned cell whose files do not read (a torn record, a missing or damaged .npz) is not a
conflict: it was never finished, and is recomputed.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Mapping, Optional

from ..errors import ConfigError, DataError, RgbtBenchError
from .cell import CellIdentity, CellKey, CellRecord, StaleResultsError, difference, read_record
from .store import CELL_DIR

STALE_DIR = "stale"


@dataclass(frozen=True)
class RunCells:
    """The cells a run evaluates: `identities` by cell id, their `keys`, and whether the models' own identity
    fields are known yet (`models_known`; before the weights are trained or loaded they are not compared)."""

    dataset: str
    split: str
    keys: Mapping[str, CellKey]
    identities: Mapping[str, CellIdentity]
    models_known: bool = True

    @cached_property
    def _by_setting(self) -> dict[tuple[str, int, int], CellIdentity]:
        return {(k.corruption, k.severity, k.seed): self.identities[cell_id] for cell_id, k in self.keys.items()}

    @cached_property
    def replicas(self) -> dict[str, set[Optional[int]]]:
        """The training seeds the run evaluates, per model."""
        out: dict[str, set[Optional[int]]] = {}
        for key in self.keys.values():
            out.setdefault(key.model, set()).add(key.train_seed)
        return out

    def setting_identity(self, key: CellKey) -> Optional[CellIdentity]:
        """The identity of a planned cell at `key`'s setting (None when the run does not evaluate it)."""
        return self._by_setting.get((key.corruption, key.severity, key.seed))


def conflict(record: CellRecord, path: Path, run: RunCells) -> Optional[str]:
    """Why finished cell `record` (read from `path`) cannot stay beside the run's cells, or None."""
    key = record.key
    if record.cell_id != path.stem:
        return f"holds {path}, whose record is of cell {record.cell_id}"
    if (key.dataset, key.split) != (run.dataset, run.split):
        return (f"holds cell {record.cell_id} of {key.dataset} split '{key.split}', but this run evaluates "
                f"{run.dataset} split '{run.split}'")
    own = run.identities.get(record.cell_id)
    if own is None and key.model in run.replicas and key.train_seed not in run.replicas[key.model]:
        seeds = ", ".join("given weights" if t is None else str(t) for t in
                          sorted(run.replicas[key.model], key=lambda t: -1 if t is None else t))
        trained = "given weights" if key.train_seed is None else f"training seed {key.train_seed}"
        return (f"holds cell {record.cell_id} of model '{key.model}' with {trained}, but this run evaluates it with "
                f"{seeds} (a directory holds one set of replicas per model, and reports would average them all)")
    identity = own if own is not None else run.setting_identity(key)
    if identity is None:
        return (f"holds cell {record.cell_id} at {key.corruption} severity {key.severity} seed {key.seed}, which "
                "this run's suite and seeds do not evaluate (it was written by a sweep with another suite or seeds)")
    found = record.mismatch(identity, model=own is not None and run.models_known)
    if found is not None:
        return f"already holds cell {record.cell_id} computed with {difference(*found)}"
    return None


def stale_cells(out: Path, run: RunCells) -> list[tuple[Path, RgbtBenchError]]:
    """(record file, the error a plain sweep raises for it) for every finished cell in `out`/cells that cannot
    stay beside the run's cells (`conflict`), every old-layout record, and every unreadable record that is not
    one of the run's cells (an unreadable one of the run's cells is recomputed instead)."""
    stale: list[tuple[Path, RgbtBenchError]] = []
    for path in sorted((Path(out) / CELL_DIR).glob("*.json")):
        try:
            record = read_record(path)
        except StaleResultsError as exc:
            stale.append((path, exc))
            continue
        except DataError as exc:
            if path.stem not in run.identities:
                stale.append((path, exc))
            continue
        why = conflict(record, path, run)
        if why is not None:
            fix = ", or delete that cell to recompute it" if why.startswith("already holds") else ""
            stale.append((path, ConfigError(f"{out} {why}; use another --out{fix}")))
    return stale


def move_aside(out: Path, records: list[Path]) -> Optional[Path]:
    """Move each record and its arrays into `out`/stale/<UTC time>/; that folder (None when nothing moved)."""
    if not records:
        return None
    target = Path(out) / STALE_DIR / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for record in records:
        for path in (record.with_suffix(".npz"), record):
            if path.exists():
                shutil.move(str(path), str(target / path.name))
    return target
