"""Evaluation modes of the field: whole image, sliding window, multi-scale + flip test-time augmentation.

`Inference` wraps any model's forward(rgb, thermal) -> logits [B, C, H, W] and returns scores at the input
resolution, whose per-pixel argmax is the prediction:

- whole: one forward pass on the full image (what the CRM, RTFNet and MFNet papers report).
- slide: mmsegmentation's `mode='slide'` (EncoderDecoder.slide_inference): windows of `window` (H, W) pixels
  every `stride` pixels; the last window of a row or column is shifted back to end at the image border, so
  every window is exactly `window` and every pixel is covered. Logits of the windows are summed with a
  count map and divided by it (mmseg accumulates logits, not probabilities). Windows run one after another
  over the batch, as in mmseg.
- ms-flip: mmsegmentation's multi-scale + flip test-time augmentation (`--aug-test` in mmseg 0.x,
  SegTTAModel in 1.x): the image is resized by each of `scales` (size int(H * s + 0.5) x int(W * s + 0.5),
  bilinear, as mmcv's rescale), run whole, optionally also flipped horizontally (the logits flipped back),
  the logits resized back to H x W (bilinear, align_corners False), turned into softmax probabilities and
  averaged; mmseg averages probabilities, not logits. The result is the mean probability map.
  Mask2Former / detectron2's SemanticSegmentorWithTTA averages its model's own output instead (already a
  probability-like score for Mask2Former heads); here every model is treated as mmseg treats logits.

Defaults, the field's where it has one:
- slide window: the training crop of the dataset's CRM recipe (CRM_RGBTSeg configs: MFNet 240x320, PST900
  224x320, KP 256x320; other datasets half the image, at least 32 px, at most the image) -- mmseg slides
  the training crop over the test image (e.g. ADE20K 512x512 crops). Stride: 2/3 of the window, rounded,
  as mmseg's configs (512 -> 341 on ADE20K, 769 -> 513 on Cityscapes): MFNet 160x213, PST900 149x213.
- ms-flip scales: mmseg's `img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]` with flip
  (configs/_base_/datasets/*.py, tta_pipeline), for 480x640 and 720x1280 images alike: 12 forward passes
  per image (at 1.75, PST900 runs at 1260x2240). RGB-T codebases built on CMX (RGBX_Semantic_Segmentation)
  use [0.75, 1, 1.25] with flip on MFNet: `--scales 0.75,1,1.25`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .registry import Registry

WHOLE, SLIDE, MS_FLIP = "whole", "slide", "ms-flip"
MODES: Registry[str] = Registry("inference mode", {
    WHOLE: "one forward pass on the whole image",
    SLIDE: "sliding window (mmseg mode='slide'): logits averaged over overlapping windows",
    MS_FLIP: "multi-scale + horizontal flip (mmseg --aug-test): softmax averaged over scales and flips",
})
MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
STRIDE_RATIO = 2 / 3
MIN_WINDOW = 32

Size = tuple[int, int]


@dataclass(frozen=True)
class InferenceMode:
    """One evaluation mode with its parameters (only those of its mode are set)."""

    mode: str = WHOLE
    window: Optional[Size] = None
    stride: Optional[Size] = None
    scales: tuple[float, ...] = ()
    flip: bool = False

    def as_dict(self) -> dict[str, Any]:
        """What a sweep cell records: {"mode": "whole"}, plus window and stride, or scales and flip."""
        if self.mode == SLIDE:
            return {"mode": SLIDE, "window": list(self.window), "stride": list(self.stride)}
        if self.mode == MS_FLIP:
            return {"mode": MS_FLIP, "scales": list(self.scales), "flip": self.flip}
        return {"mode": WHOLE}

    def describe(self) -> str:
        """'whole', 'slide 240x320 stride 160x213' or 'ms-flip scales 0.5,...,1.75 + flip'."""
        return describe(self.as_dict())


def describe(record: dict[str, Any]) -> str:
    """The one-line description of an `InferenceMode.as_dict()` record (as cells store it)."""
    mode = record.get("mode", WHOLE)
    if mode == SLIDE:
        return f"slide {_size(record['window'])} stride {_size(record['stride'])}"
    if mode == MS_FLIP:
        return f"ms-flip scales {','.join(f'{s:g}' for s in record['scales'])}" + (" + flip" if record["flip"] else "")
    return mode


def _size(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def parse_size(text: str, flag: str) -> Size:
    """'240x320' -> (240, 320); ConfigError naming `flag` otherwise."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"invalid {flag} '{text}'; expected HxW with positive integers, e.g. 240x320") from None
    if h < 1 or w < 1:
        raise ConfigError(f"invalid {flag} '{text}'; both sizes must be positive, e.g. 240x320")
    return h, w


def parse_scales(text: str) -> tuple[float, ...]:
    """'0.5,1,1.5' -> (0.5, 1.0, 1.5): distinct positive numbers; ConfigError otherwise."""
    try:
        scales = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        scales = ()
    if not scales or any(not s > 0 or s == float("inf") for s in scales) or len(set(scales)) != len(scales):
        raise ConfigError(f"invalid --scales '{text}'; expected distinct positive numbers, comma-separated, "
                          f"e.g. {','.join(f'{s:g}' for s in MS_SCALES)}")
    return scales


def default_window(dataset: str, image_size: Size) -> Size:
    """The dataset's CRM recipe crop, else half the image (at least MIN_WINDOW px), never larger than the image."""
    from .training.config import default_crop
    crop = default_crop(dataset, image_size)
    return min(crop[0], image_size[0]), min(crop[1], image_size[1])


def default_stride(window: Size) -> Size:
    """2/3 of the window, rounded (mmseg: 512 -> 341, 769 -> 513), at least 1."""
    return max(1, round(window[0] * STRIDE_RATIO)), max(1, round(window[1] * STRIDE_RATIO))


def resolve_inference(mode: str = WHOLE, *, window: Optional[Size] = None, stride: Optional[Size] = None,
                      scales: Optional[Sequence[float]] = None, flip: Optional[bool] = None,
                      dataset: str = "", image_size: Size) -> InferenceMode:
    """The evaluation mode for images of `image_size` (H, W) of `dataset`, defaults filled in; ConfigError
    for an unknown mode, an option of another mode, a window larger than the image or a bad stride / scale."""
    if mode not in MODES:
        raise MODES.unknown(mode)
    given = {"--window": window, "--stride": stride, "--scales": scales, "--flip/--no-flip": flip}
    allowed = {SLIDE: ("--window", "--stride"), MS_FLIP: ("--scales", "--flip/--no-flip")}.get(mode, ())
    stray = [flag for flag, value in given.items() if value is not None and flag not in allowed]
    if stray:
        owner = SLIDE if stray[0] in ("--window", "--stride") else MS_FLIP
        raise ConfigError(f"{stray[0]} applies to --inference {owner}, not {mode}")
    h, w = image_size
    if mode == SLIDE:
        window = tuple(window) if window is not None else default_window(dataset, image_size)
        if window[0] > h or window[1] > w:
            raise ConfigError(f"--window {_size(window)} is larger than the {h}x{w} images; use a window of at most "
                              f"{h}x{w} (a window of the whole image is --inference whole)")
        stride = tuple(stride) if stride is not None else default_stride(window)
        if stride[0] > window[0] or stride[1] > window[1]:
            raise ConfigError(f"--stride {_size(stride)} is larger than the window {_size(window)}; pixels between "
                              f"windows would never be predicted; use a stride of at most {_size(window)}")
        return InferenceMode(SLIDE, window=window, stride=stride)
    if mode == MS_FLIP:
        scales = tuple(float(s) for s in scales) if scales is not None else MS_SCALES
        smallest = min(scales)
        if int(h * smallest + 0.5) < 1 or int(w * smallest + 0.5) < 1:
            raise ConfigError(f"--scales {smallest:g} shrinks the {h}x{w} images to nothing; use scales of at least "
                              f"{1 / min(h, w):.3g}")
        return InferenceMode(MS_FLIP, scales=scales, flip=True if flip is None else flip)
    return InferenceMode(WHOLE)


def windows(length: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) of the windows along one axis, mmseg's grid: starts 0, stride, 2 stride, ..., the last
    shifted back to end at `length`."""
    count = max(length - window + stride - 1, 0) // stride + 1
    out = []
    for i in range(count):
        end = min(i * stride + window, length)
        out.append((max(end - window, 0), end))
    return out


def scaled_size(size: Size, scale: float) -> Size:
    """mmcv's rescale of (H, W) by `scale`: int(x * scale + 0.5)."""
    return int(size[0] * scale + 0.5), int(size[1] * scale + 0.5)


def _resize(x: torch.Tensor, size: Size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Inference(nn.Module):
    """`model` evaluated in `mode`; forward(rgb, thermal) -> [B, C, H, W] scores at the input resolution:
    logits (whole), window-averaged logits (slide) or mean softmax probabilities (ms-flip). `name` names the
    model in errors. Logits not at the resolution of the (scaled or windowed) input are refused, as whole
    mode's are (rgbt_bench.sweep.passes.check_logits), never resized into a score."""

    def __init__(self, model: nn.Module, mode: InferenceMode, name: str = "model"):
        super().__init__()
        self.model = model
        self.mode = mode
        self.name = name

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        if self.mode.mode == SLIDE:
            return self._slide(rgb, thermal)
        if self.mode.mode == MS_FLIP:
            return self._ms_flip(rgb, thermal)
        return self.model(rgb, thermal)

    def _slide(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        h, w = rgb.shape[-2:]
        sum_logits: Optional[torch.Tensor] = None
        count = rgb.new_zeros((1, 1, h, w))
        for y0, y1 in windows(h, self.mode.window[0], self.mode.stride[0]):
            for x0, x1 in windows(w, self.mode.window[1], self.mode.stride[1]):
                logits = self.model(rgb[..., y0:y1, x0:x1], thermal[..., y0:y1, x0:x1])
                if not isinstance(logits, torch.Tensor) or logits.dim() != 4 or \
                        tuple(logits.shape[-2:]) != (y1 - y0, x1 - x0) or logits.shape[0] != rgb.shape[0]:
                    return logits  # not [B, C, window]: the sweep's output check names the model and the shape
                if sum_logits is None:
                    sum_logits = logits.new_zeros((*logits.shape[:2], h, w), dtype=torch.float32)
                sum_logits[..., y0:y1, x0:x1] += logits
                count[..., y0:y1, x0:x1] += 1
        return sum_logits / count

    def _ms_flip(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        size = tuple(rgb.shape[-2:])
        flips = (False, True) if self.mode.flip else (False,)
        total: Optional[torch.Tensor] = None
        for scale in self.mode.scales:
            scaled = scaled_size(size, scale)
            x_rgb, x_thermal = _resize(rgb, scaled), _resize(thermal, scaled)
            for flip in flips:
                if flip:
                    logits = self.model(x_rgb.flip(-1), x_thermal.flip(-1))
                else:
                    logits = self.model(x_rgb, x_thermal)
                if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
                    return logits  # the sweep's output check names the model and what it returned
                if tuple(logits.shape[-2:]) != scaled:
                    raise ConfigError(f"model '{self.name}' returned {logits.shape[-2]}x{logits.shape[-1]} logits for "
                                      f"{scaled[0]}x{scaled[1]} inputs (--inference ms-flip at scale {scale:g}); "
                                      "expected logits at the input resolution")
                if flip:
                    logits = logits.flip(-1)
                probs = _resize(logits.float(), size).softmax(dim=1)
                total = probs if total is None else total + probs
        return total / (len(self.mode.scales) * len(flips))
