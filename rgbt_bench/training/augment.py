"""Training augmentation of the CRM recipe (CRM_RGBTSeg dataloaders), on tensors, seeded per sample.

Order: random resize -> random crop (padding the image with 0 and the label with the ignore index where the
resized image is smaller than the crop) -> horizontal flip -> photometric distortion.

Resize: by default a factor uniform in `scale_range` (both sides, antialiased when shrinking); with
`scale_choices` the official detectron2 ResizeShortestEdge "choice": the short side becomes
int(factor x short side) for a factor drawn from the set, the long side follows (rounded), and when
`max_size` is set the longest side is capped at it (MFNet 480x640 never reaches 1920; PST900 720x1280
stops at 1.5x). Labels use nearest-neighbour ("nearest-exact"; detectron2 uses torch's legacy "nearest",
half a pixel apart). `antialias=False` resizes like detectron2 does for float images.

Photometric: "default": colour jitter on RGB (brightness, contrast about the mean grey level, saturation
about each pixel's grey level, each with probability 0.5; Mask2Former's SSD ranges: brightness +-32/255,
contrast and saturation x[0.5, 1.5]; no hue) and contrast about the mean on thermal (the physically
plausible variation of an AGC thermal image; colour does not exist there). "ssd": the official
distortion (training.photometric: random order, gain contrast, HSV saturation, hue, thermal gain).

Every random number comes from a torch.Generator seeded by (run seed, epoch, sample index), so a sample's
augmentation is the same whatever the worker count, the process count or a resume in the middle of an epoch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..batch import Sample
from .photometric import ssd_distort

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentParams:
    """What the augmentation does; `ignore_index` pads the label (and must be the loss's ignore index)."""

    crop: tuple[int, int]
    ignore_index: int = 255
    scale_range: tuple[float, float] = (0.5, 2.0)
    scale_choices: Optional[tuple[float, ...]] = None
    max_size: Optional[int] = None
    antialias: bool = True
    photometric: str = "default"
    flip_prob: float = 0.5
    jitter_prob: float = 0.5
    brightness: float = 32 / 255
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    thermal_contrast: tuple[float, float] = (0.5, 1.5)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _chance(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def shortest_edge_size(h: int, w: int, short: int, max_size: Optional[int]) -> tuple[int, int]:
    """(H, W) with the short side `short` and the aspect kept, the longest side capped at `max_size`
    (detectron2 ResizeShortestEdge.get_output_shape: sides rounded half up at the end)."""
    scale = short / min(h, w)
    new_h, new_w = (short, scale * w) if h < w else (scale * h, short)
    if max_size is not None and max(new_h, new_w) > max_size:
        cap = max_size / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return int(new_h + 0.5), int(new_w + 0.5)


def resized_size(h: int, w: int, p: AugmentParams, g: torch.Generator) -> tuple[int, int]:
    """The random training size of an h x w sample (see the module doc)."""
    if p.scale_choices is not None:
        factor = p.scale_choices[int(torch.randint(0, len(p.scale_choices), (), generator=g))]
        return shortest_edge_size(h, w, int(factor * min(h, w) + 1e-9), p.max_size)
    scale = _uniform(g, *p.scale_range)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if p.max_size is not None and max(size) > p.max_size:
        return shortest_edge_size(h, w, min(size), p.max_size)
    return size


def _resize(rgb: torch.Tensor, thermal: torch.Tensor, label: torch.Tensor, size: tuple[int, int], antialias: bool):
    h, w = label.shape
    if size == (h, w):
        return rgb, thermal, label
    images = torch.cat([rgb, thermal]).unsqueeze(0)
    images = F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                           antialias=antialias and size[0] * size[1] < h * w)
    label = F.interpolate(label[None, None].float(), size=size, mode="nearest-exact")[0, 0].to(label.dtype)
    return images[0, :3].clamp(0, 1), images[0, 3:].clamp(0, 1), label


def _contrast(x: torch.Tensor, factor: float, grey_mean: torch.Tensor) -> torch.Tensor:
    return (grey_mean + (x - grey_mean) * factor).clamp(0, 1)


def _grey(rgb: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(0, keepdim=True)


def jitter_rgb(rgb: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """Brightness shift, contrast about the mean grey level, saturation about each pixel's grey level."""
    if _chance(g, p.jitter_prob):
        rgb = (rgb + _uniform(g, -p.brightness, p.brightness)).clamp(0, 1)
    if _chance(g, p.jitter_prob):
        rgb = _contrast(rgb, _uniform(g, *p.contrast), _grey(rgb).mean())
    if _chance(g, p.jitter_prob):
        rgb = _contrast(rgb, _uniform(g, *p.saturation), _grey(rgb))
    return rgb


def jitter_thermal(thermal: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """Contrast about the mean level: the only photometric change applied to thermal."""
    if _chance(g, p.jitter_prob):
        thermal = _contrast(thermal, _uniform(g, *p.thermal_contrast), thermal.mean())
    return thermal


def augment_sample(sample: Sample, p: AugmentParams, g: torch.Generator) -> Sample:
    """One augmented copy of `sample` at exactly p.crop, drawing every random number from `g`."""
    size = resized_size(*sample.label.shape, p, g)
    rgb, thermal, label = _resize(sample.rgb, sample.thermal, sample.label, size, p.antialias)
    ch, cw = p.crop
    h, w = label.shape
    top = int(torch.randint(0, max(h - ch, 0) + 1, (), generator=g))
    left = int(torch.randint(0, max(w - cw, 0) + 1, (), generator=g))
    rgb, thermal, label = (t[..., top:top + ch, left:left + cw] for t in (rgb, thermal, label))
    if _chance(g, p.flip_prob):
        rgb, thermal, label = (t.flip(-1) for t in (rgb, thermal, label))
    if p.photometric == "ssd":
        rgb, thermal = ssd_distort(rgb, thermal, g)
    else:
        rgb, thermal = jitter_rgb(rgb, p, g), jitter_thermal(thermal, p, g)
    pad = (0, cw - label.shape[-1], 0, ch - label.shape[-2])
    if pad[1] or pad[3]:
        rgb, thermal = F.pad(rgb, pad, value=0.0), F.pad(thermal, pad, value=0.0)
        label = F.pad(label, pad, value=p.ignore_index)
    return Sample(rgb=rgb.contiguous(), thermal=thermal.contiguous(), label=label.contiguous(), meta=sample.meta)


class AugmentedDataset(Dataset):
    """Wraps an RGBTDataset; items are addressed by (index, epoch) so augmentation is a pure function of
    (seed, epoch, index) — see EpochSampler in data.py, which yields those pairs."""

    def __init__(self, base: Dataset, params: AugmentParams, seed: int):
        self.base = base
        self.params = params
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        index, epoch = key
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index))
        return augment_sample(self.base[index], self.params, g)
