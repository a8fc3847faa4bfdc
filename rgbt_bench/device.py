"""Device resolution shared by training, the sweep, the report and the main job: `--device` to torch.device.

A name torch parses is not enough: torch knows device types (mps, xpu, meta, hpu, ...) that this machine may
not have, and using one fails only later, deep inside a model. `resolve_device` accepts what this machine
can run: cpu, the visible CUDA GPUs, and mps / xpu where torch reports them available; anything else is one
ConfigError listing what is available. `meta` (tensors without values) can never produce results.
"""
from __future__ import annotations

import torch

from .errors import ConfigError

SYNTAX = "expected auto, cpu, cuda or cuda:N"


def available_devices() -> list[str]:
    """The --device values this machine can run: auto, cpu, cuda and cuda:0.. when CUDA GPUs are visible,
    mps / xpu when torch reports them available."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        names += ["xpu"] + [f"xpu:{i}" for i in range(xpu.device_count())]
    return names


def _unavailable(name: str, why: str) -> ConfigError:
    return ConfigError(f"--device {name} {why}; available here: {', '.join(available_devices())}")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; any device this machine cannot run is one ConfigError naming it
    and listing what is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"invalid --device '{name}'; {SYNTAX}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} requested but no CUDA GPU is available; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise _unavailable(name, f"names GPU {device.index}, but {torch.cuda.device_count()} CUDA GPU(s) are "
                                     "visible")
        return device
    if device.type == "meta":
        raise _unavailable(name, "holds tensors without values and cannot compute results")
    if name.partition(":")[0] in available_devices() and \
            (device.index is None or name in available_devices()):
        return device
    raise _unavailable(name, f"is not available on this machine (torch {torch.__version__})")
