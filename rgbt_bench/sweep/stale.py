"""Stale cells: finished cells a run would not reuse, moved aside (never deleted) so that a results directory
describes exactly one run's models, weights, data and settings. `rgbt-bench run` does this on every rerun;
a plain sweep refuses such cells instead (rgbt_bench.sweep.engine)."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Collection, Mapping, Optional

from ..errors import DataError
from .cell import CellIdentity, read_record
from .store import CELL_DIR

STALE_DIR = "stale"


def stale_cells(out: Path, planned: Mapping[str, CellIdentity], models: Collection[str]) -> list[Path]:
    """The record files in `out`/cells that a run planning `planned` (cell id -> identity) over `models` would
    not reuse: records of another layout or unreadable ones; and cells of `models` that are not planned or
    whose identity differs (CellRecord.mismatch). Cells of other models are left alone."""
    stale = []
    for path in sorted((Path(out) / CELL_DIR).glob("*.json")):
        try:
            record = read_record(path)
        except DataError:
            stale.append(path)
            continue
        if record.key.model not in models:
            continue
        identity = planned.get(path.stem)
        if identity is None or record.cell_id != path.stem or record.mismatch(identity) is not None:
            stale.append(path)
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
