"""The sweep manifest (`run.json`): what produced a results directory, so that a number can be traced.

It records the rgbt-bench, torch, numpy and Python versions, the git commit of the rgbt-bench checkout
(and whether it had uncommitted changes), the device, the command line, the suite (parsed entries and the
file's text), the models with their checkpoint SHA-256, the dataset's content fingerprint
(rgbt_bench.datasets.fingerprint), the seeds and the start time; the engine adds the planned cells ("plan":
model names and (label, severity, seed) settings; "cells_total") and "status" ("running" until the sweep
finishes), which report, leaderboard and check use to tell a finished sweep from an interrupted one
(rgbt_bench.report.completeness). A resumed sweep
keeps the earlier invocations under "history", newest last.
"""
from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .. import __version__
from ..corruptions import Suite

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = "run.json"


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """{"commit": hash or None, "dirty": bool or None} of the checkout rgbt-bench runs from."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def device_name(device: torch.device) -> str:
    """'NVIDIA H200 (cuda:0)' or 'x86_64 CPU, 2 threads'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"{platform.machine() or 'unknown'} CPU, {torch.get_num_threads()} threads"


def command_line(argv: Optional[list[str]] = None) -> str:
    """`argv` (default: sys.argv) as one shell-quoted line that can be pasted back into a shell."""
    argv = sys.argv if argv is None else argv
    return " ".join(shlex.quote(a) for a in argv)


def suite_record(suite: Suite) -> dict[str, Any]:
    """The suite as evaluated: parsed entries (options resolved) and the file's own text."""
    text = suite.path.read_text() if suite.path is not None and suite.path.is_file() else None
    return {"name": suite.name, "description": suite.description, "path": str(suite.path) if suite.path else None,
            "reference": suite.reference,
            "entries": [{"label": e.label, "corruption": e.corruption, "severities": list(e.severities),
                         "options": dict(e.options)} for e in suite.entries],
            "text": text}


def now() -> str:
    """The current UTC time in ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_manifest(*, command: Optional[str], device: torch.device, world_size: int, dataset: dict[str, Any],
                   suite: Suite, models: list[dict[str, Any]], seeds: list[int], settings: dict[str, Any]) -> dict:
    """The manifest of this invocation."""
    return {
        "rgbt_bench_version": __version__, "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "git": git_state(),
        "device": str(device), "device_name": device_name(device), "world_size": world_size,
        "command": command if command is not None else command_line(), "started_at": now(),
        "dataset": dataset, "suite": suite_record(suite), "models": models, "seeds": list(seeds),
        "settings": settings,
    }


def merge_previous(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """`manifest` with the earlier invocations of an existing run.json kept under "history"."""
    if not path.is_file():
        return {**manifest, "history": []}
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {**manifest, "history": []}
    history = list(old.pop("history", []) or [])
    return {**manifest, "history": history + [old]}


def update_manifest(path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """This invocation's run.json with `extra` fields set (e.g. status and timing at the end)."""
    return {**json.loads(path.read_text()), **extra}
