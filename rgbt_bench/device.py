"""Device resolution shared by training, the sweep, the report and the main job: `--device` to torch.device."""
from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"invalid --device '{name}'; expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} requested but no CUDA GPU is available; use --device cpu or auto")
    return device
