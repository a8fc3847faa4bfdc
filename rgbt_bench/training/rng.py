"""Seeding and RNG state capture for exact resume, as plain tensors/values (checkpoints load weights_only).

Captured: torch CPU and CUDA generators, numpy's and Python's global generators, and any torch.Generator a
model keeps as a module attribute (e.g. a masking generator), keyed by module path and attribute name.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's random with one value."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _model_generators(model: nn.Module) -> dict[str, torch.Generator]:
    found = {}
    for module_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{module_name}:{attr}"] = value
    return found


def capture_rng(model: nn.Module) -> dict[str, Any]:
    """This process's RNG states."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "model": {k: g.get_state() for k, g in _model_generators(model).items()},
    }


def restore_rng(state: dict[str, Any], model: nn.Module) -> None:
    """Put back what capture_rng saved (CUDA states only where the device count matches)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    generators = _model_generators(model)
    for key, g_state in state["model"].items():
        if key in generators:
            generators[key].set_state(g_state.cpu())
