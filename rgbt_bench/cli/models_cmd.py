"""`rgbt-bench models list`: the registered models, their presets, parameter counts and papers."""
from __future__ import annotations

import click
import torch

from ..errors import RgbtBenchError
from ..models.registry import MODELS, build_model

COUNT_CLASSES = 9  # MFNet's class count; only the classifier layers depend on it


def count_parameters(name: str, preset: str, num_classes: int = COUNT_CLASSES) -> int:
    """Parameters of `name` at `preset`, built on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        model = build_model(name, num_classes, preset)
    return sum(p.numel() for p in model.parameters())


def format_count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


@click.group()
def models() -> None:
    """List models and their presets."""


@models.command("list")
@click.option("--preset", default="tiny", show_default=True,
              help="Preset whose parameter count is shown; models without it show their 'tiny' count.")
def list_models(preset: str) -> None:
    """Table of registered models: parameter count, modalities, presets and paper.

    User models are given as --model package.module:build_fn and are not listed here.
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Models (parameters for preset '{preset}', {COUNT_CLASSES} classes)")
    for col in ("name", "params", "modalities", "presets", "paper"):
        table.add_column(col, overflow="fold")
    for name, entry in MODELS.items():
        shown = preset if preset in entry.presets else "tiny"
        try:
            count = format_count(count_parameters(name, shown))
        except (RgbtBenchError, ImportError, RuntimeError) as exc:
            count = f"unavailable: {str(exc).splitlines()[0]}"
        else:
            count = count if shown == preset else f"{count} (tiny)"
        table.add_row(name, count, "+".join(entry.modalities), ", ".join(entry.presets), entry.paper)
    Console().print(table)
