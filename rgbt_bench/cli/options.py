"""Options shared by several commands, so that every command spells them the same way."""
from __future__ import annotations

import click
import torch

from ..errors import ConfigError


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


device_option = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA when present), cpu, cuda or cuda:N.")
dataset_option = click.option("--dataset", "dataset", default="synthetic", show_default=True,
                              help="Dataset spec: synthetic, mfnet:/path, pst900:/path or kp:/path.")
seed_option = click.option("--seed", default=1024, show_default=True, type=int,
                           help="Random seed (1024 is the CRM paper's).")
