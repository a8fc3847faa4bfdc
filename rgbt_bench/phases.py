"""`Phases`: wall-clock and CPU seconds of each named phase of a job, announced as each one completes."""
from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from typing import Callable, Iterator


class Phases:
    """Wall-clock and CPU seconds (this process and its finished worker processes) per named phase; CPU time
    tells what a phase costs when other work shares the machine."""

    def __init__(self, echo: Callable[[str], None]):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.echo = echo

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), self._cpu()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.cpu_seconds[name] = round(self._cpu() - cpu, 2)
        self.echo(f"phase {name}: {self.seconds[name]:.1f}s wall, {self.cpu_seconds[name]:.1f}s CPU")
