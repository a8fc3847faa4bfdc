"""Qualitative grid: corrupted RGB, corrupted thermal, ground truth and every model's prediction, in the
dataset's palette, for a few images of a sweep under one (corruption, severity).

Models, checkpoints, dataset and corruption options are the ones the sweep recorded in run.json, and the
corruption seed is the cell's first seed, so a grid shows what the sweep scored. A checkpoint that is gone
or changed since the sweep (SHA-256) makes the grid impossible to draw faithfully: `qualitative_grid`
returns a one-line reason instead and the rest of the report goes on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..batch import collate
from ..checkpoint import file_sha256
from ..corruptions import apply_corruption
from ..datasets import open_dataset
from ..errors import ConfigError, RgbtBenchError
from ..models.loading import load_model
from .load import CLEAN, Results

IGNORE_CANDIDATES = ((255, 255, 255), (128, 128, 128), (255, 0, 255), (0, 255, 255))


def parse_setting(text: str, results: Results, flag: str = "--qualitative") -> tuple[str, int]:
    """'CORRUPTION:SEVERITY' (or 'clean') -> (corruption, severity) present in `results`, else ConfigError."""
    name, sep, level = text.partition(":")
    name = name.strip()
    if name == CLEAN and not level.strip("0 "):
        return CLEAN, 0
    known = ", ".join(f"{c}:{s}" for c, s in results.settings()[1:4]) or "clean"
    try:
        severity = int(level)
    except ValueError:
        raise ConfigError(f"invalid {flag} '{text}'; expected CORRUPTION:SEVERITY, e.g. {known}, or clean") from None
    if not sep or (name, severity) not in results.settings():
        raise ConfigError(f"{flag} '{text}' is not a setting of {results.path}; expected a corruption and "
                          f"severity it evaluated (e.g. {known})")
    return name, severity


def ignore_colour(palette: tuple[tuple[int, int, int], ...]) -> tuple[int, int, int]:
    """A colour for the ignore label that no class of the palette uses (white, else grey, magenta, cyan)."""
    used = {tuple(c) for c in palette}
    return next((c for c in IGNORE_CANDIDATES if c not in used), IGNORE_CANDIDATES[-1])


def colorize(label: np.ndarray, palette: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """uint8 [H, W, 3] image of a class-id map; ids outside the palette (the ignore label) get `ignore_colour`."""
    lut = np.array(palette, dtype=np.uint8)
    out = np.empty(label.shape + (3,), dtype=np.uint8)
    out[:] = ignore_colour(palette)
    valid = (label >= 0) & (label < len(lut))
    out[valid] = lut[label[valid]]
    return out


@dataclass
class _Model:
    name: str
    spec: str
    preset: str
    checkpoint: Optional[Path]
    sha256: Optional[str]


def _models(results: Results) -> list[_Model]:
    entries = {m.get("name"): m for m in results.manifest.get("models", [])}
    out = []
    for name in results.models:
        m = entries.get(name)
        if m is None:
            raise ConfigError(f"model '{name}' is not described in {results.path}/run.json")
        ckpt = m.get("checkpoint")
        out.append(_Model(name, m["spec"], m.get("preset", "tiny"), Path(ckpt) if ckpt else None,
                          m.get("checkpoint_sha256")))
    return out


def _unusable(model: _Model) -> Optional[str]:
    if model.checkpoint is None:
        return None
    if not model.checkpoint.is_file():
        return f"checkpoint {model.checkpoint} of model '{model.name}' is gone"
    if model.sha256 and file_sha256(model.checkpoint) != model.sha256:
        return f"checkpoint {model.checkpoint} of model '{model.name}' changed since the sweep"
    return None


def _corruption(results: Results, label: str) -> tuple[str, dict]:
    for entry in results.manifest.get("suite", {}).get("entries", []):
        if (entry.get("label") or entry.get("corruption")) == label:
            return entry["corruption"], dict(entry.get("options") or {})
    return label, {}


def pick_images(n_total: int, count: int) -> list[int]:
    """`count` image indices spread evenly over the split."""
    return sorted(set(np.linspace(0, n_total - 1, num=min(count, n_total)).round().astype(int).tolist()))


def qualitative_grid(results: Results, setting: tuple[str, int], base: Path, images: int = 3,
                     device: str | torch.device = "cpu") -> tuple[list[Path], Optional[str]]:
    """Draw the grid into `base`.png/.svg. Returns (paths, None), or ([], reason) when it cannot be drawn."""
    if not results.manifest:
        return [], f"{results.path} has no run.json naming the models and dataset"
    try:
        models = _models(results)
        for model in models:
            reason = _unusable(model)
            if reason:
                return [], reason
        dataset_entry = results.manifest.get("dataset", {})
        dataset = open_dataset(dataset_entry.get("spec", results.dataset), results.split,
                               **(dataset_entry.get("options") or {}))
        info = dataset.info
        batch = collate([dataset[i] for i in pick_images(len(dataset), images)]).to(device)
        corruption, severity = setting
        if corruption != CLEAN:
            name, options = _corruption(results, corruption)
            cell = next(c for (m, cn, s), c in results.cells.items() if cn == corruption and s == severity)
            batch = apply_corruption(batch, name, severity, cell.seeds[0], **options)
        predictions = {}
        with torch.inference_mode():
            for model in models:
                net, _ = load_model(model.spec, info.num_classes, model.preset, checkpoint=model.checkpoint,
                                    device=device)
                predictions[model.name] = net.eval()(batch.rgb, batch.thermal).argmax(1).cpu().numpy()
    except RgbtBenchError as exc:
        return [], str(exc)
    return _draw(batch, predictions, info.palette, info.class_names, setting, base), None


def _draw(batch, predictions: dict[str, np.ndarray], palette, class_names, setting, base: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .plots import save

    rgb = batch.rgb.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy()
    thermal = batch.thermal[:, 0].clamp(0, 1).cpu().numpy()
    labels = batch.label.cpu().numpy()
    columns = ["RGB", "thermal", "ground truth", *predictions]
    n, (h, w) = rgb.shape[0], rgb.shape[1:3]
    panel = 2.2
    fig, axes = plt.subplots(n, len(columns), squeeze=False,
                             figsize=(panel * len(columns), panel * h / w * n + 0.9))
    for i in range(n):
        images = [rgb[i], thermal[i], colorize(labels[i], palette),
                  *(colorize(p[i], palette) for p in predictions.values())]
        for j, (title, image) in enumerate(zip(columns, images)):
            ax = axes[i][j]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
        axes[i][0].set_ylabel(batch.meta[i].name, fontsize=8)
    corruption, severity = setting
    fig.suptitle("clean" if corruption == CLEAN else f"{corruption}, severity {severity}", fontsize=10)
    handles = [Patch(facecolor=np.array(c) / 255, edgecolor="black", linewidth=0.3, label=name)
               for name, c in zip(class_names, palette)]
    if ((labels < 0) | (labels >= len(palette))).any():
        handles.append(Patch(facecolor=np.array(ignore_colour(palette)) / 255, edgecolor="black", linewidth=0.3,
                             label="ignored"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save(fig, base)
