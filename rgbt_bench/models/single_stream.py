"""Single-stream baselines: one ResNet encoder + the RTFNet decoder on RGB-T (early fusion), RGB or thermal.

Early fusion (as in Ha et al. 2017's comparison) concatenates the normalised RGB and thermal images into
a 4-channel input; `rgb_only` and `thermal_only` see one modality. All three use the same encoder-decoder
as RTFNet minus the second encoder, so their scores isolate the effect of the fusion design.
Presets: `resnet50` (published size) and `tiny` (a ResNet-18 layout, one block per stage, base width 16).
`pretrained=PATH` loads torchvision ImageNet ResNet weights (conv1 adapted: thermal = RGB mean; early
fusion = RGB kernel plus the mean as 4th channel). `output_stride=8|16` as for RTFNet (rgbt_bench.models.rtfnet).
`loss` is plain cross-entropy (CRM-style training needs two streams; see rgbt_bench.models.crm_style).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
from .crm_style import MODALITIES, segmentation_ce
from .normalize import normalize_rgb, normalize_thermal, resize_to, resize_to_multiple
from .resnet import build_resnet, load_pretrained
from .rtfnet import RTFDecoder

# preset -> (torchvision arch, base width, blocks per stage or None for the arch's own)
SINGLE_STREAM_PRESETS: dict[str, tuple[str, int, Optional[tuple[int, int, int, int]]]] = {
    "tiny": ("resnet18", 16, (1, 1, 1, 1)),
    "resnet50": ("resnet50", 64, None),
}

INPUTS = {"early_fusion": ("rgb", "thermal"), "rgb_only": ("rgb",), "thermal_only": ("thermal",)}


class SingleStream(nn.Module):
    """A ResNet encoder and RTFNet decoder on the concatenation of the normalised `inputs`.

    Inputs are stretched to a multiple of `pad_multiple` (the encoder stride) and the logits resized back
    (rgbt_bench.models.normalize.resize_to_multiple: zero-padding left decoder positions untrained).
    """

    pad_multiple = 32
    input_convention = "imagenet"  # rgbt_bench.models.normalize

    def __init__(self, num_classes: int, inputs: tuple[str, ...], arch: str, base_width: int,
                 layers: Optional[tuple[int, int, int, int]] = None, output_stride: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.inputs = inputs
        self.encoder = build_resnet(arch, sum(3 if m == "rgb" else 1 for m in inputs), base_width, layers,
                                    output_stride)
        self.decoder = RTFDecoder(self.encoder.out_channels, num_classes, output_stride=output_stride)

    def _run(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return resize_to(self.decoder(self.encoder(resize_to_multiple(x, self.pad_multiple))[-1]), size)

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """rgb [B,3,H,W], thermal [B,1,H,W] in [0,1] -> logits [B,C,H,W] (unused modalities are ignored)."""
        parts = {"rgb": normalize_rgb, "thermal": normalize_thermal}
        x = torch.cat([parts[m](rgb if m == "rgb" else thermal) for m in self.inputs], 1)
        return self._run(x, tuple(rgb.shape[-2:]))

    def loss(self, rgb: torch.Tensor, thermal: torch.Tensor, label: torch.Tensor,
             ignore_index: Optional[int] = None, generator: Optional[torch.Generator] = None
             ) -> dict[str, torch.Tensor]:
        """Plain cross-entropy (`generator` is accepted for a uniform signature; nothing here is random)."""
        ce = segmentation_ce(self(rgb, thermal), label, ignore_index)
        return {"loss": ce, "ce_fused": ce.detach()}


class SingleModality(SingleStream):
    """`rgb_only` / `thermal_only`: also runs from its one modality alone via `forward_single`."""

    def forward_single(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        if modality not in MODALITIES or (modality,) != self.inputs:
            raise ConfigError(f"this model sees only '{self.inputs[0]}', cannot run on '{modality}'")
        norm = normalize_rgb if modality == "rgb" else normalize_thermal
        return self._run(norm(x), tuple(x.shape[-2:]))


def _build(kind: str, num_classes: int, preset: str, pretrained: Optional[str | Path], options: dict) -> SingleStream:
    if preset not in SINGLE_STREAM_PRESETS:
        raise ConfigError(f"model '{kind}' has no preset '{preset}'; "
                          f"expected one of {', '.join(SINGLE_STREAM_PRESETS)}")
    if options.get("crm_training"):
        raise ConfigError(f"crm_training needs two streams (rtfnet, mfnet); '{kind}' has one")
    unknown = sorted(set(options) - {"crm_training", "output_stride"})
    if unknown:
        raise ConfigError(f"model '{kind}' got unknown option(s) {', '.join(unknown)}; "
                          "expected pretrained, output_stride")
    arch, width, layers = SINGLE_STREAM_PRESETS[preset]
    cls = SingleStream if kind == "early_fusion" else SingleModality
    model = cls(num_classes, INPUTS[kind], arch, width, layers, options.get("output_stride", 32))
    if pretrained is not None:
        load_pretrained(model.encoder, pretrained)
    return model


def build_early_fusion(num_classes: int, preset: str = "tiny", pretrained: Optional[str | Path] = None,
                       **options) -> SingleStream:
    """One encoder-decoder on the 4-channel normalised RGB-T input."""
    return _build("early_fusion", num_classes, preset, pretrained, options)


def build_rgb_only(num_classes: int, preset: str = "tiny", pretrained: Optional[str | Path] = None,
                   **options) -> SingleModality:
    """The encoder-decoder on RGB alone."""
    return _build("rgb_only", num_classes, preset, pretrained, options)


def build_thermal_only(num_classes: int, preset: str = "tiny", pretrained: Optional[str | Path] = None,
                       **options) -> SingleModality:
    """The encoder-decoder on thermal alone."""
    return _build("thermal_only", num_classes, preset, pretrained, options)
