"""Report figures (seaborn on matplotlib's Agg backend), each saved as PNG and SVG; mIoU axes span 0-100 %.

- heatmap: mIoU over corruption x severity, one panel per model, one shared colour scale;
- curves: mIoU against severity (0 = clean), one panel per corruption, one line per model;
- per-class bars: IoU per class and model, clean and under one chosen corruption setting.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..atomic import atomic_write  # noqa: E402
from .load import CLEAN  # noqa: E402

DPI = 120


def save(fig: plt.Figure, base: Path) -> list[Path]:
    """Write `base`.png and `base`.svg, each atomically, and close the figure."""
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    try:
        for path in paths:
            atomic_write(path, lambda fh: fig.savefig(fh, format=path.suffix[1:], dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return paths


def heatmap(miou: pd.DataFrame, base: Path) -> list[Path]:
    """One annotated heatmap panel per model (rows corruption, columns severity), shared 0-100 colour bar."""
    corrupted = miou[miou["corruption"] != CLEAN]
    models = list(dict.fromkeys(miou["model"]))
    corruptions = list(dict.fromkeys(corrupted["corruption"]))
    severities = sorted(corrupted["severity"].unique())
    ncols = min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=True, layout="constrained",
                             figsize=(1.9 + 0.75 * len(severities) * ncols + 1.2 * ncols,
                                      0.6 + (0.32 * len(corruptions) + 0.8) * nrows))
    for i, model in enumerate(models):
        ax = axes[i // ncols][i % ncols]
        rows = corrupted[corrupted["model"] == model]
        grid = rows.pivot(index="corruption", columns="severity", values="miou").reindex(
            index=corruptions, columns=severities)
        clean = miou[(miou["model"] == model) & (miou["corruption"] == CLEAN)]["miou"]
        sns.heatmap(grid, ax=ax, vmin=0, vmax=100, cmap="viridis", annot=True, fmt=".0f",
                    annot_kws={"fontsize": 7}, cbar=False, linewidths=0.3, linecolor="white")
        title = model if clean.empty else f"{model} (clean {clean.iloc[0]:.1f})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("severity")
        ax.set_ylabel("" if i % ncols else "corruption")
        ax.tick_params(labelsize=8)
    for j in range(len(models), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.colorbar(axes[0][0].collections[0], ax=axes, label="mIoU (%)", shrink=0.9, pad=0.02)
    return save(fig, base)


def curves(miou: pd.DataFrame, base: Path) -> list[Path]:
    """mIoU vs severity, one panel per corruption (severity 0 is the clean cell), one line per model."""
    clean = miou[miou["corruption"] == CLEAN].set_index("model")["miou"]
    corrupted = miou[miou["corruption"] != CLEAN]
    corruptions = list(dict.fromkeys(corrupted["corruption"]))
    models = list(dict.fromkeys(miou["model"]))
    colours = dict(zip(models, sns.color_palette(n_colors=len(models))))
    ncols = min(4, len(corruptions))
    nrows = math.ceil(len(corruptions) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True, layout="constrained",
                             figsize=(2.6 * ncols + 1.4, 2.1 * nrows + 0.3))
    ticks = sorted({0, *corrupted["severity"].unique()})
    for i, corruption in enumerate(corruptions):
        ax = axes[i // ncols][i % ncols]
        rows = corrupted[corrupted["corruption"] == corruption]
        for model in models:
            line = rows[rows["model"] == model].sort_values("severity")
            x, y = line["severity"].tolist(), line["miou"].tolist()
            if model in clean.index:
                x, y = [0, *x], [float(clean[model]), *y]
            ax.plot(x, y, marker="o", markersize=3.5, linewidth=1.4, color=colours[model], label=model)
        ax.set_title(corruption, fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if i % ncols == 0:
            ax.set_ylabel("mIoU (%)", fontsize=9)
        if i // ncols == nrows - 1 or i + ncols >= len(corruptions):
            ax.set_xlabel("severity (0 = clean)", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    for j in range(len(corruptions), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="model", title_fontsize=9,
               frameon=False)
    return save(fig, base)


def per_class_bars(per_class: pd.DataFrame, class_names: tuple[str, ...], setting: tuple[str, int],
                   base: Path) -> list[Path]:
    """IoU per class and model: clean on top, `setting` (corruption, severity) below."""
    corruption, severity = setting
    chosen = per_class[((per_class["corruption"] == CLEAN) & (per_class["severity"] == 0))
                       | ((per_class["corruption"] == corruption) & (per_class["severity"] == severity))]
    long = chosen.melt(id_vars=["model", "corruption", "severity"], value_vars=list(class_names),
                       var_name="class", value_name="iou")
    long["setting"] = np.where(long["corruption"] == CLEAN, "clean", f"{corruption} severity {severity}")
    order = ["clean"] + ([f"{corruption} severity {severity}"] if corruption != CLEAN else [])
    grid = sns.catplot(data=long, x="class", y="iou", hue="model", row="setting", row_order=order, kind="bar",
                       order=list(class_names), hue_order=list(dict.fromkeys(per_class["model"])),
                       height=2.8, aspect=max(2.5, 0.45 * len(class_names)), legend_out=True)
    grid.set_titles("{row_name}", size=10)
    grid.set_axis_labels("", "IoU (%)")
    grid.set(ylim=(0, 100))
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=35, labelsize=8)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.grid(axis="y", alpha=0.3)
    return save(grid.figure, base)
