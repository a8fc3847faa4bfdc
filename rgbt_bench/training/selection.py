"""Which split selected a checkpoint's weights, and the warning that must accompany a test-selected one.

The published CRM numbers come from the checkpoint with the best TEST mIoU seen during training
(CRM_RGBTSeg train.py validates on the test split and keeps the best), so they are optimistically biased.
rgbt-bench selects on val by default; `select_on="test"` reproduces the published behaviour, is recorded
in the checkpoint (config["select_on"] and metrics["selected_on"]) and every command that trains or
evaluates such a checkpoint prints `selection_warning`.
"""
from __future__ import annotations

from typing import Any, Optional


def selected_on(ckpt: dict[str, Any]) -> Optional[str]:
    """"val", "test", "last" (no split to select on) or None (not recorded) for a checkpoint payload."""
    metrics = ckpt.get("metrics") if isinstance(ckpt.get("metrics"), dict) else {}
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    return metrics.get("selected_on") or config.get("select_on")


def warning_for_test_selection(source: str) -> str:
    """The one-line warning for weights from `source` (a path or a run) selected on the test split."""
    return (f"WARNING: {source} was selected on the TEST split (best test mIoU during training, as the "
            f"published CRM numbers were): its test numbers are optimistically biased, not held-out results")


def selection_warning(ckpt: dict[str, Any], source: str) -> Optional[str]:
    """The warning line when checkpoint payload `ckpt` (read from `source`) was selected on test, else None."""
    return warning_for_test_selection(source) if selected_on(ckpt) == "test" else None


__all__ = ["selected_on", "selection_warning", "warning_for_test_selection"]
