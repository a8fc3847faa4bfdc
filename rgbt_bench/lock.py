"""Exclusive locks on output files, so two processes never write the same results at once.

A lock is an advisory `fcntl.flock` on a lock file beside what it guards, held from before the first write
until the holder returns or dies; the kernel drops it when the process ends, even on kill -9, so a stale
lock never blocks a resume. A second process does not wait: it stops at once with a ConfigError naming
what is in use and the holder's pid (written into the lock file), since a queued run would only redo the
work or fight over the files. While a lock is held, no other rgbt-bench process writes what it guards, so
the holder may remove the temporary files a killed writer left there (rgbt_bench.atomic.remove_orphans).

- `OutputLock(out)`: a sweep's results directory (`<out>/.lock`);
- `TrainLock(out)`: a training run's checkpoint, resumable state and log (`.<out name>.lock` beside them).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from .errors import ConfigError, writing

LOCK_NAME = ".lock"


class FileLock:
    """`acquire()` takes the lock file `path` (creating its directory) or raises ConfigError saying
    `busy` (its "{pid}" replaced by the holder's pid); `release()` frees it. `what`/`then` word a failed write
    (rgbt_bench.errors.writing)."""

    def __init__(self, path: str | Path, busy: str, what: str, then: str = "choose a writable --out"):
        self.path = Path(path)
        self.busy = busy
        self.what = what
        self.then = then
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        with writing(self.what, self.then):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(self.busy.replace("{pid}", holder)) from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            self.release()
            raise ConfigError(f"cannot write {self.what} ({exc.strerror or exc}); {self.then}") from None

    def release(self) -> None:
        """Free the lock if this object holds it (the file stays; only the flock matters)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class OutputLock(FileLock):
    """The lock of a sweep's results directory `out` (`<out>/.lock`)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        super().__init__(self.out / LOCK_NAME, f"results directory {self.out} is in use by another sweep (pid "
                         "{pid}); wait for it to finish, or choose another --out", f"results to {self.out}")


class TrainLock(FileLock):
    """The lock of a training run writing checkpoint `out` (and `<stem>.last.pt`, `<stem>.log.jsonl`)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        super().__init__(self.out.with_name(f".{self.out.name}.lock"),
                         f"checkpoint {self.out} is being trained by another process (pid {{pid}}); wait for it to "
                         "finish, or choose another --out", f"training outputs to {self.out.parent}")
