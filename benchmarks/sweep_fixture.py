"""Inputs for the sweep benchmarks: an untrained checkpoint, a small suite file, an MFNet-format tree.

The benchmarks time the harness, not the accuracy, so a checkpoint of freshly initialised weights
(seeded) is enough; it has the payload keys rgbt_bench.models.loading expects. The MFNet tree holds
synthetic scenes written in MFNet's on-disk format (4-channel PNG + label PNG, as in the RTFNet release), so images are
decoded from files one at a time, as with the real dataset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.models import build_model

# Corruptions used by the sweep benchmarks: one per family (dropout, masking, fog, night, thermal).
DEFAULT_ENTRIES = ("thermal_missing", "complementary_patch_mask", "koschmieder_fog", "night", "thermal_noise",
                   "thermal_blur")


def write_checkpoint(path: Path, spec: str, num_classes: int, preset: str = "tiny", seed: int = 0) -> Path:
    """A checkpoint of seeded, untrained weights of `spec` for `num_classes` classes."""
    torch.manual_seed(seed)
    model = build_model(spec, num_classes, preset)
    return save_checkpoint(path, {"model": spec, "preset": preset, "num_classes": num_classes,
                                  "config": {"model_kwargs": {}}, "state_dict": model.state_dict()})


def write_suite(path: Path, corruptions: tuple[str, ...] | list[str], severities: list[int]) -> Path:
    """A suite YAML with `corruptions` at `severities`."""
    entries = [{"corruption": c, "severities": list(severities)} for c in corruptions]
    path.write_text(yaml.safe_dump({"name": path.stem, "description": "benchmark suite", "entries": entries}))
    return path


def write_mfnet_tree(root: Path, n: int, size: tuple[int, int]) -> Path:
    """`n` test images (plus 2 train, 2 val) of smooth random scenes in MFNet's layout under `root`."""
    rng = np.random.default_rng(0)
    h, w = size
    names = {"train": [], "val": [], "test": []}
    k = 0
    for split, count in (("train", 2), ("val", 2), ("test", n)):
        for _ in range(count):
            names[split].append(f"{k:05d}{'N' if k % 2 else 'D'}")
            k += 1
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, name in enumerate(names["train"] + names["val"] + names["test"]):
        base = (np.sin(xx / (7 + i % 5)) + np.cos(yy / (5 + i % 3))) * 60 + 128
        image = np.clip(base[..., None] + rng.normal(0, 20, (h, w, 4)), 0, 255).astype(np.uint8)
        label = ((xx // 16 + yy // 16 + i) % 9).astype(np.uint8)
        Image.fromarray(image, mode="RGBA").save(root / "images" / f"{name}.png")
        Image.fromarray(label, mode="L").save(root / "labels" / f"{name}.png")
    names["test_day"] = [s for s in names["test"] if s.endswith("D")]
    names["test_night"] = [s for s in names["test"] if s.endswith("N")]
    for split, items in names.items():
        (root / f"{split}.txt").write_text("".join(f"{s}\n" for s in items))
    return root
