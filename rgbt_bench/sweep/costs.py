"""Each model's cost, measured once per sweep on its device and recorded in run.json's `models` entries.

rgbt_bench.efficiency measures parameters, FLOPs per image and forward images per second at the images'
size in the sweep's evaluation mode. A resumed sweep reuses an earlier entry of the same weights (checkpoint
SHA-256 and spec), image size, evaluation mode, batch size, AMP and device name, so that a rerun costs
nothing; anything else is measured again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..efficiency import format_count, measure
from ..inference import InferenceMode
from ..models.user_code import user_code
from .manifest import device_name
from .models import ModelRef


def _earlier(manifest: Path) -> dict[str, dict[str, Any]]:
    """The `models` entries of an existing run.json by name ({} when there is none or it does not read)."""
    try:
        models = json.loads(manifest.read_text()).get("models", [])
        return {m["name"]: m for m in models if isinstance(m, dict) and "name" in m}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def model_costs(refs: list[ModelRef], models: dict[tuple[str, Optional[int]], nn.Module], manifest: Path,
                image_size: tuple[int, int], device: torch.device, batch_size: int,
                amp_dtype: Optional[torch.dtype], mode: InferenceMode,
                note: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Model name -> Efficiency.as_dict() plus the evaluation mode, reused from `manifest` where it fits.
    Measured on each model's first training-seed replica (`models` is keyed by replica): the others share its
    architecture, hence its cost."""
    earlier = _earlier(manifest)
    name = device_name(device)
    key = {"image_size": list(image_size), "batch_size": batch_size, "device_name": name,
           "amp": amp_dtype is not None, "inference": mode.as_dict()}
    out = {}
    first: dict[str, ModelRef] = {}
    for r in refs:
        first.setdefault(r.name, r)
    for ref in first.values():
        entry = earlier.get(ref.name, {})
        old = entry.get("efficiency") or {}
        if old and entry.get("checkpoint_sha256") == ref.sha256 and entry.get("spec") == ref.spec \
                and all(old.get(k) == v for k, v in key.items()):
            out[ref.name] = old
            continue
        with user_code(ref.spec, "forward"):  # a user model's exception is one line naming it
            cost = measure(models[ref.replica], image_size, device, batch_size, amp_dtype=amp_dtype, device_name=name)
        out[ref.name] = {**cost.as_dict(), "inference": mode.as_dict()}
        note(f"model '{ref.name}': {format_count(cost.params)} parameters, {cost.gflops:.3g} GFLOPs per "
             f"{image_size[0]}x{image_size[1]} image ({mode.describe()}), {cost.images_per_s:.1f} images/s "
             f"({name}, batch {batch_size})")
    return out
