"""Input preparation shared by the models: normalisation, and padding or resizing to a size multiple.

Images arrive in physical space (float32 in [0, 1], see rgbt_bench.batch); each model prepares its own
inputs by one of two INPUT CONVENTIONS, a model option recorded in checkpoints:
- `imagenet` (the default): the statistics used by CRM and the ImageNet-pretrained baselines
  (CRM_RGBTSeg configs, MODEL.PIXEL_MEAN / PIXEL_STD): on the 0-255 scale, mean [123.675, 116.28, 103.53]
  and std [58.395, 57.12, 57.375] for RGB, mean 127 and std 60 for thermal;
- `unit`: the [0, 1] images as they are (the 8-bit image divided by 255, no mean or std), as the released
  RTFNet (yuxiangsun/RTFNet util/MF_dataset.py) and MFNet (haqishen/MFNet-pytorch util/MF_dataset.py)
  weights were trained.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

RGB_MEAN = (123.675, 116.28, 103.53)
RGB_STD = (58.395, 57.12, 57.375)
THERMAL_MEAN = (127.0,)
THERMAL_STD = (60.0,)
INPUT_CONVENTIONS = ("imagenet", "unit")


def _normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1) / 255.0
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1) / 255.0
    return (x - m) / s


def normalize_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> zero-mean, unit-std RGB (ImageNet statistics)."""
    return _normalize(rgb, RGB_MEAN, RGB_STD)


def normalize_thermal(thermal: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] in [0,1] -> thermal normalised with mean 127/255, std 60/255."""
    return _normalize(thermal, THERMAL_MEAN, THERMAL_STD)


def check_input_convention(convention: str) -> str:
    """`convention` if it is one of INPUT_CONVENTIONS, else a ConfigError naming the choices."""
    if convention not in INPUT_CONVENTIONS:
        raise ConfigError(f"unknown input_convention '{convention}'; expected one of {', '.join(INPUT_CONVENTIONS)}")
    return convention


def normalize_input(x: torch.Tensor, modality: str, convention: str = "imagenet") -> torch.Tensor:
    """One modality's [0,1] image prepared by `convention` ("rgb" or "thermal"; see the module docstring)."""
    if convention == "unit":
        return x
    return normalize_rgb(x) if modality == "rgb" else normalize_thermal(x)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right of [B,C,H,W] so H and W are multiples of `multiple`.

    Applied after normalisation, zero is the dataset-mean colour; `crop_to` undoes it on the output.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The top-left `size` = (H, W) window of [B,C,H',W'] (inverse of pad_to_multiple)."""
    return x[..., : size[0], : size[1]]


def resize_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Bilinearly stretch [B,C,H,W] up to the next multiples of `multiple` (unchanged when already there).

    For decoders without skips (RTFNet), whose output pixel is a learned function of its position inside
    a stride cell: padding + `crop_to` leaves the padded positions without any loss in training, so a
    model trained on crops that are not stride multiples never learns them and gets them wrong on images
    that are. Stretching keeps every output position on image content; `resize_to` maps the logits back.
    """
    h, w = x.shape[-2:]
    size = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
    return resize_to(x, size)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B,C,H',W'] bilinearly resized to `size` = (H, W) (the inverse of resize_to_multiple); no copy if equal."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
