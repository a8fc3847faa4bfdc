"""Where a sweep's time goes: seconds per stage (data, transfer, corrupt, model, metric, write), per cell and,
for the model stage, per model with the images it forwarded (each model's images/s, rgbt_bench.efficiency),
so that the harness overhead (everything but the models) can be measured and reported.

Host-side stages use the wall clock. Device work on CUDA runs asynchronously, so it is timed with CUDA
events that are read once per batch, after the batch's results have been copied to the host anyway; no
extra synchronisation is added. On the CPU every stage is timed with the wall clock.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

STAGES = ("data", "transfer", "corrupt", "model", "metric", "write")


Forward = tuple[str, int]  # (model name, images) of one forward call


class StageTimer:
    """Accumulates seconds per stage and per cell id, and (seconds, images) of the forwards per model."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.stages: dict[str, float] = defaultdict(float)
        self.cells: dict[str, float] = defaultdict(float)
        self.forwards: dict[str, tuple[float, int]] = {}
        self._events: list[tuple[str, Optional[str], Optional[Forward], torch.cuda.Event, torch.cuda.Event]] = []

    def _add(self, stage: str, cell: Optional[str], forward: Optional[Forward], seconds: float) -> None:
        self.stages[stage] += seconds
        if cell is not None:
            self.cells[cell] += seconds
        if forward is not None:
            model, images = forward
            before = self.forwards.get(model, (0.0, 0))
            self.forwards[model] = (before[0] + seconds, before[1] + images)

    @contextmanager
    def wall(self, stage: str) -> Iterator[None]:
        """Time host-side work (waiting for the data loader, writing files)."""
        start = time.perf_counter()
        yield
        self._add(stage, None, None, time.perf_counter() - start)

    @contextmanager
    def device(self, stage: str, cell: Optional[str] = None, forward: Optional[Forward] = None) -> Iterator[None]:
        """Time work queued on the device; attributed to `cell` too when given, and with `forward` (model name,
        images) to that model's forward passes."""
        if not self.cuda:
            start = time.perf_counter()
            yield
            self._add(stage, cell, forward, time.perf_counter() - start)
            return
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        yield
        end.record()
        self._events.append((stage, cell, forward, begin, end))

    def collect(self) -> None:
        """Read the CUDA events recorded so far (call once the device work they bracket is done)."""
        if not self._events:
            return
        self._events[-1][-1].synchronize()
        for stage, cell, forward, begin, end in self._events:
            self._add(stage, cell, forward, begin.elapsed_time(end) / 1000.0)
        self._events.clear()

    def summary(self, total_s: float) -> dict[str, float]:
        """Seconds per stage, the total, and the harness overhead relative to model time."""
        self.collect()
        out = {f"{stage}_s": round(self.stages.get(stage, 0.0), 4) for stage in STAGES}
        model = self.stages.get("model", 0.0)
        out["total_s"] = round(total_s, 4)
        out["harness_s"] = round(max(total_s - model, 0.0), 4)
        out["harness_over_model"] = round((total_s - model) / model, 4) if model > 0 else None
        return out
