"""Qualitative grid: RGB, thermal, ground truth and every model's prediction, in the dataset's palette, for a
few images of a sweep: each image once clean and once under one (corruption, severity), so the change a
corruption makes to the inputs and to each prediction is seen side by side. Thermal is drawn in a false
colour map with its colour bar (normalised intensity 0-1).

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
from ..threads import single_threaded
from .load import CLEAN, Results
from .notation import format_setting, split_setting

IGNORE_CANDIDATES = ((255, 255, 255), (128, 128, 128), (255, 0, 255), (0, 255, 255))


def parse_setting(text: str, results: Results, flag: str = "--qualitative") -> tuple[str, int]:
    """'CORRUPTION@SEVERITY' (alias 'CORRUPTION:SEVERITY') or 'clean' -> (corruption, severity) present in
    `results`, else ConfigError naming the settings it holds."""
    known = ", ".join(format_setting(c, s) for c, s in results.settings()[1:4]) or "clean"
    setting = split_setting(text)
    if setting is None:
        raise ConfigError(f"invalid {flag} '{text}'; expected CORRUPTION@SEVERITY, e.g. {known}, or clean")
    if setting not in results.settings():
        raise ConfigError(f"{flag} '{text}' is not a setting of {results.path}; expected a corruption and "
                          f"severity it evaluated (e.g. {known})")
    return setting


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
    entries: dict = {}
    for m in results.manifest.get("models", []):  # a model's first training-seed replica when it has several
        entries.setdefault(m.get("name"), m)
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


def qualitative_grid(results: Results, setting: tuple[str, int], base: Path, context: str, images: int = 3,
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
        clean = collate([dataset[i] for i in pick_images(len(dataset), images)]).to(device)
        rows = [(CLEAN, clean)]
        corruption, severity = setting
        if corruption != CLEAN:
            name, options = _corruption(results, corruption)
            cell = next(c for (m, cn, s), c in results.cells.items() if cn == corruption and s == severity)
            rows.append((format_setting(corruption, severity),
                         apply_corruption(clean, name, severity, cell.seeds[0], **options)))
        predictions: dict[str, list[np.ndarray]] = {}
        with torch.inference_mode(), single_threaded(device):
            for model in models:
                net, _ = load_model(model.spec, info.num_classes, model.preset, checkpoint=model.checkpoint,
                                    device=device)
                net.eval()
                predictions[model.name] = [net(b.rgb, b.thermal).argmax(1).cpu().numpy() for _, b in rows]
    except RgbtBenchError as exc:
        return [], str(exc)
    return _draw(rows, predictions, info.palette, info.class_names, setting, base, context), None


def _draw(rows, predictions: dict[str, list[np.ndarray]], palette, class_names, setting, base: Path,
          context: str) -> list[Path]:
    """One grid row per (image, input): the clean row of an image, then its corrupted row."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .plots import save

    columns = ["RGB", "thermal", "ground truth", *predictions]
    first = rows[0][1]
    n, (h, w) = first.rgb.shape[0], first.rgb.shape[2:4]
    panel = 2.0
    fig, axes = plt.subplots(n * len(rows), len(columns), squeeze=False, layout="constrained",
                             figsize=(panel * len(columns), panel * h / w * n * len(rows) + 1.6))
    labels = first.label.cpu().numpy()
    thermal_image = None
    for i in range(n):
        for k, (label, batch) in enumerate(rows):
            rgb = batch.rgb[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
            thermal = batch.thermal[i, 0].clamp(0, 1).cpu().numpy()
            images = [rgb, thermal, colorize(labels[i], palette),
                      *(colorize(p[k][i], palette) for p in predictions.values())]
            r = i * len(rows) + k
            for j, (title, image) in enumerate(zip(columns, images)):
                ax = axes[r][j]
                shown = ax.imshow(image, cmap="inferno" if image.ndim == 2 else None, vmin=0, vmax=1,
                                  interpolation="nearest")
                if j == 1:
                    thermal_image = shown
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=9)
            axes[r][0].set_ylabel(f"{first.meta[i].name}\n{label}", fontsize=8)
    fig.colorbar(thermal_image, ax=axes[:, 1], location="bottom", shrink=0.9, pad=0.01, aspect=12,
                 label="thermal (normalised)")
    what = "clean" if setting[0] == CLEAN else f"clean and {format_setting(*setting)}"
    fig.suptitle(f"Inputs, ground truth and predictions, {what}\n{context}", fontsize=10)
    handles = [Patch(facecolor=np.array(c) / 255, edgecolor="black", linewidth=0.3, label=name)
               for name, c in zip(class_names, palette)]
    if ((labels < 0) | (labels >= len(palette))).any():
        handles.append(Patch(facecolor=np.array(ignore_colour(palette)) / 255, edgecolor="black", linewidth=0.3,
                             label="ignored"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    return save(fig, base)
