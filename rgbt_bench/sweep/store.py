"""On-disk results of a sweep: one pair of files per finished cell, written atomically.

Layout of ``results/NAME/``:
- ``run.json``: the sweep's manifest (versions, git hash, device, dataset, suite, models).
- ``cells/<cell_id>.npz``: ``per_image`` int64 [N, C, C] confusion matrices (rows = label, cols = pred),
  ``names`` [N] sample names, ``is_night`` [N] int8 (1 night, 0 day, -1 unknown).
- ``cells/<cell_id>.json``: the cell record (rgbt_bench.sweep.cell.CellRecord: key, identity, metrics of
  the summed matrix, timing). The JSON is written after the NPZ, so its presence marks a finished cell.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError
from .cell import CellKey, CellRecord, read_record

CELL_DIR = "cells"
# What numpy raises for a missing, truncated or foreign .npz file.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)

__all__ = ["CELL_DIR", "CellKey", "CellRecord", "CellResult", "cell_paths", "is_done", "read_cells", "write_cell",
           "write_json"]


@dataclass
class CellResult:
    """A finished cell as read back from disk."""

    record: CellRecord
    per_image: np.ndarray
    names: np.ndarray
    is_night: np.ndarray

    @property
    def confusion(self) -> np.ndarray:
        return self.per_image.sum(axis=0)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode()))


def cell_paths(out_dir: Path, key: CellKey) -> tuple[Path, Path]:
    """(arrays .npz, record .json) of cell `key` under `out_dir`/cells."""
    base = Path(out_dir) / CELL_DIR / key.cell_id
    return base.with_suffix(".npz"), base.with_suffix(".json")


def is_done(out_dir: Path, key: CellKey) -> bool:
    """Whether the cell is finished: its record reads (rgbt_bench.sweep.cell.read_record) and its arrays load.
    A torn or damaged file (a kill during a write before atomic writes, a disk error, a hand edit) is not."""
    npz_path, json_path = cell_paths(out_dir, key)
    try:
        read_record(json_path)
        with np.load(npz_path) as z:
            z["per_image"], z["names"], z["is_night"]
    except (DataError, *UNREADABLE):
        return False
    return True


def write_cell(out_dir: Path, record: CellRecord, per_image: np.ndarray, names: list[str],
               is_night: list[Optional[bool]]) -> None:
    """Write a finished cell: arrays first, then the JSON record that marks it complete."""
    npz_path, json_path = cell_paths(out_dir, record.key)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    night = np.array([-1 if n is None else int(n) for n in is_night], dtype=np.int8)
    atomic_write(npz_path, lambda fh: np.savez(fh, per_image=np.asarray(per_image, dtype=np.int64),
                                                 names=np.array(names, dtype=str), is_night=night))
    write_json(json_path, record.to_json())


def read_cells(out_dir: Path) -> Iterator[CellResult]:
    """Every finished cell under out_dir, in cell-id order. A record that does not read is a DataError naming
    it (rgbt_bench.sweep.cell.read_record); unreadable arrays raise what numpy raises."""
    for json_path in sorted((Path(out_dir) / CELL_DIR).glob("*.json")):
        record = read_record(json_path)
        with np.load(json_path.with_suffix(".npz")) as z:
            yield CellResult(record, z["per_image"], z["names"], z["is_night"])
