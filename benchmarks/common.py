"""Shared helpers of the benchmark scripts: load average, interleaved timing, Markdown tables.

The scripts run on a machine shared with other work, so every figure is printed with the 1-minute load
average read before and after it, and competing implementations are timed interleaved (A, B, A, B, ...)
so that a change of load affects both sides alike; the median of the repetitions is reported.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Sequence

import torch


def load_average() -> float:
    """The 1-minute load average (as `uptime` shows it)."""
    return os.getloadavg()[0]


def machine_line() -> str:
    """One line naming the CPU count, torch threads and load, printed at the top of every result."""
    return (f"cpus={os.cpu_count()} torch={torch.__version__} torch_threads={torch.get_num_threads()} "
            f"load1={load_average():.2f}")


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn `repeats` times after `warmup` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats printed with 3 significant digits (ratios with 1 decimal)."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
