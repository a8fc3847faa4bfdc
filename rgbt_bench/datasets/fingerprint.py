"""The content fingerprint of a dataset split: what a resumed sweep compares to refuse mixing cells of other data.

SHA-256 over the sample names and, for every file they are read from, its name relative to the dataset root
and the SHA-256 of its bytes. A moved dataset keeps its fingerprint; a relabelled one does not, even when
every file keeps its size (an earlier fingerprint hashed names and sizes only, and let one through).

Hashing every byte of a large dataset takes seconds, so each file's digest is cached by its absolute path,
size, modification and change times (`digests.json` in the rgbt-bench cache directory, $RGBT_BENCH_CACHE or
~/.cache/rgbt-bench): an unchanged file is not read again. A write to a file changes its times, so a stale
digest is never used. The cache is rewritten atomically; when it cannot be written (read-only home), digests
are simply recomputed next time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

from ..atomic import atomic_write_text
from .base import RGBTDataset
from .synthetic import default_cache_dir

CACHE_NAME = "digests.json"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file at `path`, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class DigestCache:
    """SHA-256 of files, remembered by (absolute path, size, mtime, ctime) in a JSON file."""

    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path is not None else default_cache_dir() / CACHE_NAME
        self.entries: dict[str, Any] = {}
        self.changed = False
        try:
            loaded = json.loads(self.path.read_text())
            self.entries = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self.entries = {}

    def digest(self, path: Path) -> str:
        """The SHA-256 of `path`'s bytes (read only when the file changed since it was last hashed)."""
        resolved = str(Path(path).resolve())
        st = os.stat(resolved)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        entry = self.entries.get(resolved)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp:
            return entry[1]
        digest = file_sha256(Path(resolved))
        self.entries[resolved] = [stamp, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        """Write the cache if a digest was added (silently skipped when the directory is not writable)."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.entries))
            self.changed = False
        except OSError:
            pass


def dataset_fingerprint(dataset: RGBTDataset, cache: Optional[DigestCache] = None) -> str:
    """SHA-256 over the split's sample names and the relative name and content digest of every file they are
    read from (each file once). Files are named relative to the dataset root (for the synthetic dataset: with
    their cache folder, whose name holds the generator version, seed and size); a missing file counts as such."""
    cache = cache if cache is not None else DigestCache()
    h = hashlib.sha256()
    seen: set[Path] = set()
    for i, name in enumerate(dataset.names):
        h.update(f"{name}\n".encode())
        for path in dataset.files(i):
            if path in seen:
                continue
            seen.add(path)
            shown = path.relative_to(dataset.root) if dataset.root and path.is_relative_to(dataset.root) \
                else Path(path.parent.name, path.name)
            h.update(f"{shown}:{cache.digest(path) if path.is_file() else 'missing'}\n".encode())
    cache.save()
    return h.hexdigest()
