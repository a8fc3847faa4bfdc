"""Writers of tiny MFNet / PST900 / KP trees in exactly the published on-disk formats, plus
helpers that plant damage. Each writer returns the arrays it wrote, so tests can check round trips.

Images are smooth gradients (so JPEG round trips stay within a few grey levels) with a per-sample offset;
labels are blocks of class ids covering every class of the dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

SIZE = (24, 32)


@dataclass
class Fixture:
    """A written dataset: its root, names per split, and per name the arrays written
    ("rgb" uint8 [H,W,3], "thermal" uint8 [H,W], "thermal_raw" uint16 [H,W] for PST900, "label" uint8 [H,W])."""

    root: Path
    splits: dict[str, list[str]]
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def gradient(size: tuple[int, int], channels: int, offset: int, dtype=np.uint8, top: int = 235) -> np.ndarray:
    """Smooth ramps in [20, top], different per channel and per offset; [H,W] if channels == 1."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [20 + (top - 20) * ((x / max(w - 1, 1)) * (0.3 + 0.2 * c) + (y / max(h - 1, 1)) * (0.5 - 0.1 * c)
                                 + 0.1 * ((offset + c) % 3)) / 1.1 for c in range(channels)]
    image = np.stack(planes, axis=-1).round().astype(dtype)
    return image[..., 0] if channels == 1 else image


def blocks(size: tuple[int, int], num_ids: int, offset: int) -> np.ndarray:
    """Label map of 4x4-pixel blocks cycling through ids 0..num_ids-1 (every id appears)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    return (((y // 4) * ((w + 3) // 4) + x // 4 + offset) % num_ids).astype(np.uint8)


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a PNG (mode from the array: uint8 [H,W] L, [H,W,3] RGB, [H,W,4] RGBA, uint16 [H,W] I;16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def write_jpeg(path: Path, array: np.ndarray) -> Path:
    """Write a quality-95 JPEG of a uint8 [H,W,3] or [H,W] array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=95)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to `keep` of its bytes (a download that stopped half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def mfnet_names(counts: dict[str, int]) -> dict[str, list[str]]:
    """MFNet-style names per split (alternating D/N), with test_day / test_night taken from test."""
    splits: dict[str, list[str]] = {}
    start = 0
    for split in ("train", "val", "test"):
        splits[split] = [f"{i:05d}{'N' if i % 2 else 'D'}" for i in range(start, start + counts[split])]
        start += counts[split]
    splits["test_day"] = [n for n in splits["test"] if n.endswith("D")]
    splits["test_night"] = [n for n in splits["test"] if n.endswith("N")]
    return splits


def write_mfnet(root: Path, size: tuple[int, int] = SIZE, counts: Optional[dict[str, int]] = None) -> Fixture:
    """DIR/images/<name>.png (RGBA: RGB + thermal), DIR/labels/<name>.png (ids 0-8), DIR/<split>.txt."""
    splits = mfnet_names(counts or {"train": 3, "val": 2, "test": 4})
    fixture = Fixture(Path(root), splits)
    for k, name in enumerate(splits["train"] + splits["val"] + splits["test"]):
        rgb, thermal, label = gradient(size, 3, k), gradient(size, 1, k + 7), blocks(size, 9, k)
        write_png(fixture.root / "images" / f"{name}.png", np.dstack([rgb, thermal]))
        write_png(fixture.root / "labels" / f"{name}.png", label)
        fixture.samples[name] = {"rgb": rgb, "thermal": thermal, "label": label}
    for split, names in splits.items():
        (fixture.root / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return fixture


def write_pst900(root: Path, size: tuple[int, int] = SIZE, counts: Optional[dict[str, int]] = None) -> Fixture:
    """DIR/{train,test}/{rgb,thermal,thermal_raw,depth,labels}/<name>.png; thermal_raw and depth 16-bit."""
    counts = counts or {"train": 3, "test": 2}
    fixture = Fixture(Path(root), {})
    k = 0
    for split, n in counts.items():
        names = [f"{split}_{i:04d}.png" for i in range(n)][::-1]  # written in reverse to test sorting
        fixture.splits[split] = sorted(names)
        for name in names:
            rgb, thermal, label = gradient(size, 3, k), gradient(size, 1, k + 5), blocks(size, 5, k)
            raw = gradient(size, 1, k + 3, dtype=np.uint16, top=60000)
            base = fixture.root / split
            write_png(base / "rgb" / name, rgb)
            write_png(base / "thermal" / name, thermal)
            write_png(base / "thermal_raw" / name, raw)
            write_png(base / "depth" / name, gradient(size, 1, k, dtype=np.uint16, top=9000))
            write_png(base / "labels" / name, label)
            fixture.samples[name] = {"rgb": rgb, "thermal": thermal, "thermal_raw": raw, "label": label}
            k += 1
    return fixture


def kp_name(k: int) -> str:
    return f"set{k % 3:02d}_V{k % 2:03d}_I{50 * k:05d}.png"


def kp_paths(root: Path, name: str) -> tuple[Path, Path, Path]:
    """(visible jpg, lwir jpg, label png) of a KP name like set00_V000_I00050.png."""
    set_id, video, frame = name[:-4].split("_")
    folder = Path(root) / "images" / set_id / video
    return folder / "visible" / f"{frame}.jpg", folder / "lwir" / f"{frame}.jpg", Path(root) / "labels" / name


def write_kp(root: Path, size: tuple[int, int] = SIZE, counts: Optional[dict[str, tuple[int, int]]] = None) -> Fixture:
    """visible / 3-channel grey lwir JPEGs, 1-channel labels with ids 0-18 and void 19, {split}_{day,night}.txt.
    Split `train` (etc.) in the returned fixture is the day list followed by the night list."""
    counts = counts or {"train": (2, 2), "val": (1, 1), "test": (2, 1)}
    fixture = Fixture(Path(root), {})
    k = 0
    for split, (n_day, n_night) in counts.items():
        for time, n in (("day", n_day), ("night", n_night)):
            names = []
            for _ in range(n):
                name = kp_name(k)
                rgb, thermal, label = gradient(size, 3, k), gradient(size, 1, k + 4), blocks(size, 20, k)
                visible, lwir, label_path = kp_paths(fixture.root, name)
                write_jpeg(visible, rgb)
                write_jpeg(lwir, np.dstack([thermal] * 3))
                write_png(label_path, label)
                fixture.samples[name] = {"rgb": rgb, "thermal": thermal, "label": label}
                names.append(name)
                k += 1
            fixture.splits[f"{split}_{time}"] = names
            (fixture.root / f"{split}_{time}.txt").write_text("".join(f"{n}\n" for n in names))
        fixture.splits[split] = fixture.splits[f"{split}_day"] + fixture.splits[f"{split}_night"]
    return fixture
