"""Atomic file writes: a crash or kill never leaves half a file under the final name."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

# The process umask, read once at import (os.umask has no getter: it is set and put back). Files written here
# get the mode open() would give them; mkstemp alone would leave them readable by their owner only.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write` on a temporary binary file beside `path`, fsync it, then rename it onto `path` with the
    mode open() would give a new file. On any failure the temporary file is removed and `path` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write of `text` as UTF-8: a full disk leaves the file as it was, never half of the new text."""
    atomic_write(path, lambda fh: fh.write(text.encode()))
