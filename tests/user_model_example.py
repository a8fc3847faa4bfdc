"""A small user model, as a user would bring one: `--model tests.user_model_example:build`.

Two stride-2 conv encoders (RGB, thermal) under `backbone`, concatenation fusion, dropout (global torch
RNG) and a conv head, upsampled to the input size. With `with_loss=True` the model also defines
``loss(rgb, thermal, label, ignore_index)``: cross-entropy of the clean pass plus cross-entropy of a pass
whose thermal features are replaced by a learnable `mask_token` in random cells drawn from the model's own
torch.Generator — enough to exercise a custom loss, a no-decay token and model-owned randomness in training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rgbt_bench.errors import ConfigError

WIDTHS = {"tiny": 8, "small": 16}


def _encoder(in_ch: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(inplace=True))


class TinyRGBT(nn.Module):
    def __init__(self, num_classes: int, width: int = 8, dropout: float = 0.1):
        super().__init__()
        self.backbone = nn.ModuleDict({"rgb": _encoder(3, width), "thermal": _encoder(1, width)})
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, num_classes, 1))

    def features(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone["rgb"]((rgb - 0.5) / 0.25), self.backbone["thermal"]((thermal - 0.5) / 0.25)

    def decode(self, f_rgb: torch.Tensor, f_thermal: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = self.head(self.drop(torch.cat([f_rgb, f_thermal], 1)))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.features(rgb, thermal), rgb.shape[-2:])


class TinyRGBTWithLoss(TinyRGBT):
    def __init__(self, num_classes: int, width: int = 8, dropout: float = 0.1, seed: int = 0):
        super().__init__(num_classes, width, dropout)
        self.mask_token = nn.Parameter(torch.zeros(1, width, 1, 1))
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, rgb, thermal, label, ignore_index):
        f_rgb, f_thermal = self.features(rgb, thermal)
        size = rgb.shape[-2:]
        clean = F.cross_entropy(self.decode(f_rgb, f_thermal, size), label, ignore_index=ignore_index)
        b, _, h, w = f_thermal.shape
        cells = (torch.rand(b, 1, h, w, generator=self.generator) < 0.5).to(f_thermal)
        masked_thermal = f_thermal * (1 - cells) + self.mask_token * cells
        masked = F.cross_entropy(self.decode(f_rgb, masked_thermal, size), label, ignore_index=ignore_index)
        return {"loss": clean + masked, "ce_clean": clean, "ce_masked": masked}


def build(num_classes: int, preset: str = "tiny", with_loss: bool = False, **kwargs) -> nn.Module:
    if preset not in WIDTHS:
        raise ConfigError(f"user model has no preset '{preset}'; expected one of {', '.join(WIDTHS)}")
    cls = TinyRGBTWithLoss if with_loss else TinyRGBT
    return cls(num_classes, width=WIDTHS[preset], **kwargs)
