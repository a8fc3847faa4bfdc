"""Example grids for eyeballing a corruption: RGB and thermal rows, one column per severity 0..5.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend change), so it works
headless and never disturbs other plotting code in the same process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..batch import Batch
from ..errors import ConfigError
from .corruption import Corruption

HIGHLIGHT = "#d62728"


def severity_strip(sample: Batch, corruption: Corruption, seed: int, **options: Any) -> list[Batch]:
    """The one-sample batch corrupted at severities 0..5 (0 = clean)."""
    return [corruption(sample, s, seed, **options) for s in range(6)]


def _column_title(corruption: Corruption, severity: int) -> str:
    if severity == 0:
        return "clean"
    params = corruption.severity_params(severity)
    shown = ", ".join(f"{k}={v:g}" for k, v in list(params.items())[:2])
    return f"severity {severity}\n{shown}"


def render_grid(sample: Batch, corruption: Corruption, severity: int, seed: int, out: str | Path,
                **options: Any) -> Path:
    """Write a PNG grid of `sample` (a one-sample Batch) under `corruption`; `severity`'s column is framed."""
    if len(sample) != 1:
        raise ConfigError(f"render_grid needs a batch of one sample, got {len(sample)}")
    strip = severity_strip(sample, corruption, seed, **options)
    fig = Figure(figsize=(2.4 * len(strip), 4.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(strip), squeeze=False)
    for col, batch in enumerate(strip):
        rgb = batch.rgb[0].detach().float().cpu().permute(1, 2, 0).numpy()
        thermal = batch.thermal[0, 0].detach().float().cpu().numpy()
        axes[0, col].imshow(rgb, vmin=0, vmax=1)
        axes[1, col].imshow(thermal, cmap="inferno", vmin=0, vmax=1)
        chosen = col == severity
        axes[0, col].set_title(_column_title(corruption, col), fontsize=9,
                               color=HIGHLIGHT if chosen else "black", fontweight="bold" if chosen else "normal")
        for row in range(2):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(chosen)
                spine.set_color(HIGHLIGHT)
                spine.set_linewidth(3)
    axes[0, 0].set_ylabel("RGB")
    axes[1, 0].set_ylabel("thermal")
    opts = corruption.resolve_options(**options)
    suffix = ("  (" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")") if opts else ""
    fig.suptitle(f"{corruption.name} [{corruption.modality}] on {sample.meta[0].key}, seed {seed}{suffix}",
                 fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
