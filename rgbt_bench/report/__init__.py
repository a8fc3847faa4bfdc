"""Reports on sweep results: tables, robustness metrics, paired bootstrap CIs, plots, leaderboard, regression check.

Everything is computed from the per-image confusion matrices a sweep stored (rgbt_bench.sweep.store).
Entry points (imported on first use, so that `check` does not pay for matplotlib):
- `build_report(results_dir, reference=None, bootstrap=1000, ..., latex=False) -> Report` (build.py), writes
  `<dir>/report/`: tables (tables.py; CSV, JSON records, Markdown), LaTeX (latex.py), figures (plots.py,
  qualitative.py), provenance (provenance.py), index.html (html.py);
- `build_leaderboard(paths, rank_by="mean_corrupted") -> (DataFrame, skipped)`, `write_leaderboard(frame, out)`;
- `load_results(dir) -> Results`; `read_baseline`, `write_baseline`, `current_table`, `compare` (check.py).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Report": "build", "build_report": "build",
    "Results": "load", "load_results": "load",
    "build_leaderboard": "leaderboard", "write_leaderboard": "leaderboard",
    "CheckResult": "check", "compare": "check", "current_table": "check", "read_baseline": "check",
    "write_baseline": "check",
    "paired_bootstrap": "bootstrap",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
