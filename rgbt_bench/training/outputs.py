"""The files a training run writes (`out`, `<stem>.last.pt`, `<stem>.log.jsonl`): checked before anything
slow starts, and locked while the run writes them (rank 0), so that two runs with one `--out` never mix best
weights of one with the resumable state and log of the other. Holding the lock, the run removes the
temporary files a killed run left beside them (rgbt_bench.atomic.remove_orphans)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from ..atomic import remove_orphans
from ..errors import ConfigError, RgbtBenchError
from ..lock import TrainLock
from . import distributed
from .config import TrainConfig


def check_outputs(config: TrainConfig) -> None:
    """ConfigError when a file the run will write is a directory (found now, not after training)."""
    for path in (config.out_path, config.last_path, config.log_path):
        if path.is_dir():
            raise ConfigError(f"--out {config.out_path}: {path} is a directory; expected the path of a checkpoint "
                              f"file to write, e.g. {config.out_path / 'model.pt'}"
                              if path == config.out_path else
                              f"--out {config.out_path}: {path}, which the run writes beside it, is a directory; "
                              "move it away or choose another --out")


@contextmanager
def locked_outputs(config: TrainConfig, ctx: distributed.DistContext) -> Iterator[None]:
    """Hold the outputs' lock (on rank 0; a refusal reaches every rank) and clear orphaned temporary files."""
    lock = TrainLock(config.out_path)
    error: Optional[RgbtBenchError] = None
    if ctx.is_main:
        try:
            lock.acquire()
            remove_orphans(config.out_path.parent, [config.out_path.name, config.last_path.name])
        except RgbtBenchError as exc:
            error = exc
    for err in distributed.all_gather_objects(error, ctx):
        if err is not None:
            lock.release()
            raise err
    try:
        yield
    finally:
        lock.release()
