"""An exclusive lock on a results directory, so two sweeps never write the same cells at once.

The lock is an advisory `fcntl.flock` on `<out>/.lock`, held by the sweep (rank 0 under torchrun) from
before it plans its cells until it returns or dies; the kernel drops it when the process ends, even on
kill -9, so a stale lock never blocks a resume. A second sweep on the same directory does not wait: it
stops at once with a ConfigError naming the directory and the holder's pid (written into the lock file),
since a queued sweep would only recompute nothing or fight over the manifest. Sweeps on different
directories never contend.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, writing

LOCK_NAME = ".lock"


class OutputLock:
    """`acquire()` takes the lock on `out` (creating the directory) or raises ConfigError; `release()` frees it."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        with writing(f"results to {self.out}"):
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"results directory {self.out} is in use by another sweep (pid {holder}); wait "
                              f"for it to finish, or choose another --out") from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            self.release()
            raise ConfigError(f"cannot write results to {self.out} ({exc.strerror or exc}); "
                              f"choose a writable --out") from None

    def release(self) -> None:
        """Free the lock if this object holds it (the file stays; only the flock matters)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
