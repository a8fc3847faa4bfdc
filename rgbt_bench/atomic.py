"""Atomic file writes: a crash or kill never leaves half a file under the final name."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Optional

# The process umask, read once at import (os.umask has no getter: it is set and put back). Files written here
# get the mode open() would give them; mkstemp alone would leave them readable by their owner only.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
TEMP_SUFFIX = ".tmp"
# mkstemp's random part: 8 characters of tempfile's alphabet.
_RANDOM = r"[a-z0-9_]{8}"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write` on a temporary binary file beside `path`, fsync it, then rename it onto `path` with the
    mode open() would give a new file. On any failure the temporary file is removed and `path` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
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


def remove_orphans(directory: Path, names: Optional[Iterable[str]] = None) -> list[Path]:
    """Remove the temporary files `atomic_write` left in `directory` when its process was killed: those named
    `.<name>.<8 random characters>.tmp` for a final name in `names` (None: any final name). Only call it while
    holding the lock of whatever writes into `directory` (rgbt_bench.lock), so that no live writer's file goes.
    Returns the files removed."""
    wanted = r".+" if names is None else "|".join(re.escape(n) for n in names)
    pattern = re.compile(rf"^\.({wanted})\.{_RANDOM}{re.escape(TEMP_SUFFIX)}$")
    removed = []
    if not Path(directory).is_dir() or not wanted:
        return removed
    for path in Path(directory).iterdir():
        if pattern.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return sorted(removed)
