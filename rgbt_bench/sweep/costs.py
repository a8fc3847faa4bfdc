"""Each model's cost, recorded in run.json's `models` entries: timed by the sweep's passes, counted after them.

The images per second come from the sweep's own model stage (`add_forwards`: images forwarded and seconds,
summed over every process), not from timed passes of its own. After the passes, rgbt_bench.efficiency counts
each model's parameters and the FLOPs of ONE image at the images' size in the sweep's evaluation mode
(`count_costs`: one forward of one image, the models shared out over the processes; after the passes so
that a model's warm-up stays in its forward time, where a loop without the harness pays it too). A resumed
sweep reuses an earlier record of the same weights (checkpoint SHA-256 and spec), image size, evaluation
mode, batch size, AMP and device (`earlier_costs`) and adds its forward passes to the earlier ones; anything
else is counted again.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..efficiency import format_count, static_cost, with_forwards
from ..inference import InferenceMode, describe
from ..models.user_code import user_code
from .manifest import device_name
from .models import ModelRef


def forward_device(device: torch.device) -> str:
    """The device the forwards ran on, as recorded with images/s: on CPU one intra-op thread per process
    (rgbt_bench.threads), whatever torch's setting; 'NVIDIA H200 (cuda:0)' on CUDA."""
    if device.type == "cuda":
        return device_name(device)
    return f"{platform.machine() or 'unknown'} CPU, 1 thread per process"


def _earlier(manifest: Path) -> dict[str, dict[str, Any]]:
    """The `models` entries of an existing run.json by name ({} when there is none or it does not read)."""
    try:
        models = json.loads(manifest.read_text()).get("models", [])
        return {m["name"]: m for m in models if isinstance(m, dict) and "name" in m}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def cost_key(image_size: tuple[int, int], device: torch.device, batch_size: int, amp_dtype: Optional[torch.dtype],
             mode: InferenceMode) -> dict[str, Any]:
    """What an earlier cost record must share with this sweep to be reused (besides the model's weights)."""
    return {"image_size": list(image_size), "batch_size": batch_size, "device_name": forward_device(device),
            "amp": amp_dtype is not None, "inference": mode.as_dict()}


def earlier_costs(refs: list[ModelRef], manifest: Path, key: dict[str, Any]) -> dict[str, Optional[dict[str, Any]]]:
    """Model name -> its cost record in an existing `manifest` when it fits this sweep (same checkpoint SHA-256,
    spec and `key`), with its earlier timed forwards; None for a model whose cost is still to count."""
    earlier = _earlier(manifest)
    out: dict[str, Optional[dict[str, Any]]] = {}
    for ref in refs:
        if ref.name in out:  # training-seed replicas share their model's architecture, hence its cost
            continue
        entry = earlier.get(ref.name, {})
        old = entry.get("efficiency") or {}
        fits = old and "timed_s" in old and entry.get("checkpoint_sha256") == ref.sha256 \
            and entry.get("spec") == ref.spec and all(old.get(k) == v for k, v in key.items())
        out[ref.name] = old if fits else None
    return out


def count_costs(refs: list[ModelRef], names: list[str], models: dict[tuple[str, Optional[int]], nn.Module],
                image_size: tuple[int, int], device: torch.device, key: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Model name -> Efficiency.as_dict() plus the evaluation mode, for each of `names`: parameters and the FLOPs
    of one image (one forward pass), counted on the model's first training-seed replica; no images/s yet."""
    out = {}
    for name in names:
        ref = next(r for r in refs if r.name == name)
        with user_code(ref.spec, "forward"):  # a user model's exception is one line naming it
            cost = static_cost(models[ref.replica], image_size, device, key["batch_size"], amp=key["amp"],
                               device_name=key["device_name"])
        out[name] = {**cost.as_dict(), "inference": key["inference"]}
    return out


def add_forwards(costs: dict[str, Optional[dict[str, Any]]], forwards: list[dict[str, tuple[float, int]]],
                 note: Callable[[str], None]) -> dict[str, Optional[dict[str, Any]]]:
    """`costs` with the forward passes every process timed (StageTimer.forwards, one dict per rank) added to
    each model's record; one note per model that forwarded images in this invocation."""
    out: dict[str, Optional[dict[str, Any]]] = {}
    for model, record in costs.items():
        seconds = sum(f.get(model, (0.0, 0))[0] for f in forwards)
        images = sum(f.get(model, (0.0, 0))[1] for f in forwards)
        if record is None or not images:
            out[model] = record
            continue
        out[model] = with_forwards(record, images, seconds)
        h, w = record["image_size"]
        note(f"model '{model}': {format_count(record['params'])} parameters, {record['gflops']:.3g} GFLOPs per "
             f"{h}x{w} image ({describe(record['inference'])}), {out[model]['images_per_s']:.1f} images/s per "
             f"process in this sweep's forward passes ({record['device_name']}, batch {record['batch_size']})")
    return out
