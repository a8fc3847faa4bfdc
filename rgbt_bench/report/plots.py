"""Report figures (matplotlib, Agg backend), each saved as PNG and SVG, byte-identical for the same input.

Every figure's title names what it shows and where: dataset, split and mIoU convention (`context`). A model
keeps one style in every figure: a colour of Okabe & Ito's colour-blind-safe palette, a marker and a line
style, no two models alike (`model_styles`). Percent axes start at 0 and end at the next multiple of
10 above the data (at most 100), so small numbers stay readable.

- heatmap: mIoU over corruption x severity, one panel per model, one shared colour scale;
- curves: mIoU against severity (0 = clean), one panel per corruption, one line per model, shaded 95%
  confidence band per cell when the paired bootstrap ran;
- class_heatmap: IoU per class x corruption (mean over the corruption's severities; clean first), per model;
- per-class bars: IoU per class and model, clean and one corrupted setting; an IoU of exactly 0 is labelled
  "0" and a missing one (a class absent from labels and predictions under the mmseg convention, or a cell not
  evaluated) "n/a", so neither looks like the other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..atomic import atomic_write  # noqa: E402
from .load import CLEAN  # noqa: E402
from .notation import format_setting  # noqa: E402

DPI = 120
# SVG element ids are random unless salted, and SVG / PNG carry a date unless told not to: both would
# make two reports of the same cells differ. SVG text stays text (searchable, editable in a paper's figure).
RC = {"svg.hashsalt": "rgbt-bench", "svg.fonttype": "none"}
METADATA = {"svg": {"Date": None}, "png": {"Software": None}}
# Okabe & Ito's colour-blind-safe palette ("Color Universal Design", 2008; Wong, Nature Methods 8:441, 2011),
# ordered so that neighbours differ most; yellow, weakest on white, last.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#000000", "#56B4E9", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")  # 9: coprime with the 8 colours
LINESTYLES = ("-", "--", "-.", ":")
MISSING_COLOUR = "#d9d9d9"
CMAP = "viridis"  # perceptually uniform and colour-blind safe


@dataclass(frozen=True)
class Style:
    """How one model is drawn in every figure."""

    colour: str
    marker: str
    linestyle: str


def model_styles(models: list[str]) -> dict[str, Style]:
    """A distinct (colour, marker, line style) per model: colours differ between any two of the first 8 models,
    markers between any two of the first 9, and the pair for up to 72 (the two counts are coprime)."""
    return {m: Style(PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)])
            for i, m in enumerate(models)}


def upper_limit(*values) -> float:
    """The top of a percent axis: the next multiple of 10 above every finite value (10 to 100)."""
    finite = [float(v) for arr in values for v in np.ravel(np.asarray(arr, dtype=np.float64)) if np.isfinite(v)]
    top = max(finite, default=100.0)
    return float(min(100, max(10, 10 * math.ceil(top * 1.04 / 10))))


def save(fig: plt.Figure, base: Path) -> list[Path]:
    """Write `base`.png and `base`.svg, each atomically and deterministically, and close the figure.

    The layout is computed once, for the PNG: the SVG keeps it (recomputing the constrained layout per format
    took about 40% of each save)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    try:
        with matplotlib.rc_context(RC):
            for path in paths:
                kind = path.suffix[1:]
                atomic_write(path, lambda fh: fig.savefig(fh, format=kind, dpi=DPI,
                                                          metadata=METADATA[kind]))
                fig.set_layout_engine("none")
    finally:
        plt.close(fig)
    return paths


def _grid(n: int, max_cols: int, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    ncols = min(max_cols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained", **kwargs)
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    return fig, axes


def _matrix(ax: plt.Axes, grid: pd.DataFrame, vmax: float, digits: int, fontsize: float):
    """An annotated colour grid of `grid` (first row on top); undefined cells stay grey. Drawn directly rather
    than with seaborn.heatmap, which redraws the whole figure per panel to pick its text colours."""
    values = grid.to_numpy(dtype=np.float64)
    cmap = matplotlib.colormaps[CMAP]
    mesh = ax.pcolormesh(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=vmax, edgecolors="white",
                         linewidth=0.5)
    ax.set_facecolor(MISSING_COLOUR)
    ax.set_xlim(0, values.shape[1])
    ax.set_ylim(values.shape[0], 0)
    ax.set_xticks(np.arange(values.shape[1]) + 0.5, [str(c) for c in grid.columns])
    ax.set_yticks(np.arange(values.shape[0]) + 0.5, [str(i) for i in grid.index])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            r, g, b, _ = cmap(min(v / vmax, 1.0))
            dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45
            ax.text(j + 0.5, i + 0.5, f"{v:.{digits}f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")
    return mesh


def _title(fig: plt.Figure, what: str, context: str) -> None:
    fig.suptitle(f"{what}\n{context}", fontsize=10)


def heatmap(miou: pd.DataFrame, base: Path, context: str) -> list[Path]:
    """One annotated heatmap panel per model (rows corruption, columns severity), one shared colour bar."""
    corrupted = miou[miou["corruption"] != CLEAN]
    models = list(dict.fromkeys(miou["model"]))
    corruptions = list(dict.fromkeys(corrupted["corruption"]))
    severities = sorted(corrupted["severity"].unique())
    ncols = min(3, len(models))
    fig, axes = _grid(len(models), 3, sharey=True,
                      figsize=(1.9 + (0.75 * len(severities) + 1.2) * ncols,
                               1.0 + (0.32 * len(corruptions) + 0.8) * math.ceil(len(models) / ncols)))
    vmax = upper_limit(miou["miou"])
    missing = False
    for i, model in enumerate(models):
        ax = axes[i // ncols][i % ncols]
        grid = corrupted[corrupted["model"] == model].pivot(index="corruption", columns="severity", values="miou")
        grid = grid.reindex(index=corruptions, columns=severities)
        missing |= bool(grid.isna().to_numpy().any())
        clean = miou[(miou["model"] == model) & (miou["corruption"] == CLEAN)]["miou"]
        mesh = _matrix(ax, grid, vmax, 1, 7)
        ax.set_title(model if clean.empty else f"{model} (clean {clean.iloc[0]:.1f})", fontsize=9)
        ax.set_xlabel("severity")
        ax.set_ylabel("" if i % ncols else "corruption")
        ax.tick_params(labelsize=8)
        if i % ncols:
            ax.tick_params(labelleft=False)
    fig.colorbar(mesh, ax=axes, label="mIoU (%)", shrink=0.9, pad=0.02)
    _title(fig, "mIoU (%) per corruption and severity" + (" (grey: not evaluated)" if missing else ""), context)
    return save(fig, base)


def curves(miou: pd.DataFrame, base: Path, context: str, ci: Optional[pd.DataFrame] = None,
           confidence: float = 0.95) -> list[Path]:
    """mIoU vs severity, one panel per corruption (severity 0 is the clean cell), one line per model; `ci`
    (the bootstrap's per-cell `low` / `high`) adds a shaded band around each line."""
    corrupted = miou[miou["corruption"] != CLEAN]
    corruptions = list(dict.fromkeys(corrupted["corruption"]))
    models = list(dict.fromkeys(miou["model"]))
    styles = model_styles(models)
    ncols = min(4, len(corruptions))
    nrows = math.ceil(len(corruptions) / ncols)
    fig, axes = _grid(len(corruptions), 4, sharex=True, sharey=True, figsize=(2.7 * ncols + 1.6, 2.2 * nrows + 0.6))
    bounds = None if ci is None else ci.set_index(["model", "corruption", "severity"])[["low", "high"]]
    top = upper_limit(miou["miou"], [] if ci is None else ci["high"])
    ticks = sorted({0, *corrupted["severity"].unique()})
    values = miou.set_index(["model", "corruption", "severity"])["miou"]
    for i, corruption in enumerate(corruptions):
        ax = axes[i // ncols][i % ncols]
        for model in models:
            keys = [k for k in [(model, CLEAN, 0), *((model, corruption, s) for s in ticks if s)]
                    if k in values.index]
            x = [k[2] for k in keys]
            y = [float(values[k]) for k in keys]
            style = styles[model]
            if bounds is not None:
                band = bounds.reindex(keys)
                ax.fill_between(x, band["low"], band["high"], color=style.colour, alpha=0.18, linewidth=0)
            ax.plot(x, y, color=style.colour, marker=style.marker, linestyle=style.linestyle, markersize=4.5,
                    linewidth=1.4, markeredgecolor="white", markeredgewidth=0.5, label=model)
        ax.set_title(corruption, fontsize=9)
        ax.set_ylim(0, top)
        ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if i % ncols == 0:
            ax.set_ylabel("mIoU (%)", fontsize=9)
        if i + ncols >= len(corruptions):
            ax.set_xlabel("severity (0 = clean)", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if bounds is not None:
        handles.append(Patch(facecolor="grey", alpha=0.3, linewidth=0))
        labels.append(f"{confidence:.0%} CI (paired\nbootstrap over images)")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="model", title_fontsize=9,
               frameon=False)
    _title(fig, "mIoU (%) against corruption severity", context)
    return save(fig, base)


def class_heatmap(per_class: pd.DataFrame, class_names: tuple[str, ...], base: Path, context: str) -> list[Path]:
    """IoU (%) per class (rows) and corruption (columns: clean, then each corruption's mean over its
    severities), one panel per model. Undefined IoUs are grey."""
    models = list(dict.fromkeys(per_class["model"]))
    columns = list(dict.fromkeys(per_class["corruption"]))
    columns = [c for c in columns if c == CLEAN] + [c for c in columns if c != CLEAN]
    ncols = min(3, len(models))
    fig, axes = _grid(len(models), 3, sharey=True,
                      figsize=(1.6 + (0.42 * len(columns) + 0.9) * ncols,
                               1.2 + (0.3 * len(class_names) + 1.6) * math.ceil(len(models) / ncols)))
    means = per_class.groupby(["model", "corruption"], sort=False)[list(class_names)].mean()
    vmax = upper_limit(means.to_numpy())
    for i, model in enumerate(models):
        ax = axes[i // ncols][i % ncols]
        grid = means.loc[model].reindex(columns).T.reindex(list(class_names))
        mesh = _matrix(ax, grid, vmax, 0, 6)
        ax.set_title(model, fontsize=9)
        ax.set_ylabel("" if i % ncols else "class")
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=90)
        if i % ncols:
            ax.tick_params(labelleft=False)
    fig.colorbar(mesh, ax=axes, label="IoU (%)", shrink=0.9, pad=0.02)
    undefined = " (grey: undefined, class absent)" if means.isna().to_numpy().any() else ""
    _title(fig, f"IoU (%) per class and corruption (mean over severities){undefined}", context)
    return save(fig, base)


def per_class_bars(per_class: pd.DataFrame, class_names: tuple[str, ...], setting: tuple[str, int], base: Path,
                   context: str) -> list[Path]:
    """IoU per class and model: clean on top, `setting` (corruption, severity) below."""
    settings = [(CLEAN, 0)] + ([setting] if setting[0] != CLEAN else [])
    models = list(dict.fromkeys(per_class["model"]))
    styles = model_styles(models)
    rows = per_class.set_index(["model", "corruption", "severity"])
    fig, axes = plt.subplots(len(settings), 1, squeeze=False, sharex=True, layout="constrained",
                             figsize=(max(7.0, 0.25 * len(models) * len(class_names) + 2.5), 2.6 * len(settings) + 1))
    width = 0.8 / len(models)
    positions = np.arange(len(class_names))
    top = upper_limit(rows[list(class_names)].to_numpy())
    for ax, (corruption, severity) in zip(axes[:, 0], settings):
        for i, model in enumerate(models):
            key = (model, corruption, severity)
            values = rows.loc[key, list(class_names)].to_numpy(dtype=np.float64) if key in rows.index \
                else np.full(len(class_names), np.nan)
            x = positions + (i - (len(models) - 1) / 2) * width
            ax.bar(x, np.nan_to_num(values), width, color=styles[model].colour, label=model, linewidth=0)
            for xi, v in zip(x, values):
                if v == 0 or np.isnan(v):
                    ax.text(xi, top * 0.01, "0" if v == 0 else "n/a", ha="center", va="bottom", rotation=90,
                            fontsize=7, fontweight="bold", color="black" if v == 0 else "dimgrey")
        ax.set_title(format_setting(corruption, severity), fontsize=9)
        ax.set_ylim(0, top)
        ax.set_ylabel("IoU (%)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=8)
    axes[-1][0].set_xticks(positions, list(class_names), rotation=35, ha="right")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], linestyle="none", marker="$0$", color="black"),
                Line2D([], [], linestyle="none", marker="$n/a$", color="dimgrey", markersize=14)]
    labels += ["IoU exactly 0", "no IoU (class absent,\nor not evaluated)"]
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="model", title_fontsize=9,
               frameon=False)
    _title(fig, "IoU (%) per class", context)
    return save(fig, base)
