"""Robustness sweeps: every model x every corruption setting of a suite, one resumable result file per cell.

`run_sweep(SweepConfig) -> Path` (engine.py) is the entry point; store.py is the on-disk results format that
reports read. Both names are importable from here; the engine is imported on first use, so that reading
results (`from rgbt_bench.sweep import store`) stays light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SweepConfig", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import engine
        return getattr(engine, name)
    raise AttributeError(f"module 'rgbt_bench.sweep' has no attribute '{name}'")
