"""Heap settings for the processes rgbt-bench starts: freed memory is kept for the next batch, not unmapped.

Why: glibc's malloc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and
returns it to the kernel on free. A sweep at MFNet's 480x640 allocates blocks of tens to hundreds of MB for
every batch (a tiny model's activations, logits, corrupted copies), so each batch faults in fresh zeroed
pages again. Measured on this project's 2-core machine (one thread, batch 8, 480x640, 2026-12-01): tiny MFNet's
forward took 3.0-3.2 s with the default heap and 1.6 s with `keep_freed_memory`, tiny CRM's 2.5-2.8 s and 1.9
s; a two-process sweep's model time fell by about a third. The cost is memory: a process keeps its peak heap
until it ends (its peak RSS was ~15% higher in the same test).

Applied by `rgbt-bench` itself (rgbt_bench.cli.main) and in the worker processes it starts
(rgbt_bench.processes), not on import: a program that imports rgbt_bench keeps its own heap settings (the same
effect from outside: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 in the environment). Only glibc has
these settings; elsewhere this does nothing. Numbers do not change: only where memory comes from does.
"""
from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes: never give the heap's free top back


def glibc() -> bool:
    """Whether this process runs on glibc, the only C library with these settings."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or not this name: not glibc
        return False


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap (no per-block mmap) and never trim it; True when applied (glibc)."""
    if not glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
