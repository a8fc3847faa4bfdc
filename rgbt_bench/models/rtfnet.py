"""RTFNet (Sun, Zuo, Liu, "RTFNet: RGB-Thermal Fusion Network for Semantic Segmentation", RA-L 2019).

As in the official code (yuxiangsun/RTFNet, model/RTFNet.py): two ResNet encoders, the thermal one with a
1-channel conv1; the thermal features are ADDED into the RGB stream after the stem (conv1/bn/relu) and
after each of the four stages; the decoder is five upsampling stages (deconv1..deconv5), each two
"TransBottleneck" blocks whose last one upsamples x2 with a 2x2 transposed convolution and halves the
channels (the last one outputs the classes). As in the official code, the logits leave the final block's
ReLU, so they are non-negative. Inputs are stretched to a multiple of 32 (the encoder stride) and the
logits resized back; the official code needs no such step on MFNet's 480x640 images. Zero-padding instead
left the padded output positions untrained (see rgbt_bench.models.normalize.resize_to_multiple).

`output_stride` 16 or 8 (not in the paper; default 32 = the published network) runs both encoders at a
finer stride (rgbt_bench.models.resnet) and keeps the decoder's five stages, the first one or two without
their x2 upsampling: for small images, where a stride-32 bottleneck is a few cells and thin classes are lost
(on the built-in 120x160 dataset a 4x5 grid; the README gives measured costs).

Presets: `rtfnet50` and `rtfnet152` (the published sizes, ResNet-50/152 encoders); `tiny` (a ResNet-18
layout with one block per stage at base width 16) for tests and CPU smoke runs. `pretrained=PATH` loads
torchvision ImageNet ResNet weights of the preset's depth into both encoders (thermal conv1 = RGB mean).
CRM-style training options: see rgbt_bench.models.crm_style.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
from .crm_style import TwoStreamBaseline, check_crm_options
from .normalize import resize_to, resize_to_multiple
from .resnet import build_resnet, load_pretrained

# preset -> (torchvision arch, base width, blocks per stage or None for the arch's own)
RTFNET_PRESETS: dict[str, tuple[str, int, Optional[tuple[int, int, int, int]]]] = {
    "tiny": ("resnet18", 16, (1, 1, 1, 1)),
    "rtfnet50": ("resnet50", 64, None),
    "rtfnet152": ("resnet152", 64, None),
}


class TransBottleneck(nn.Module):
    """1x1 -> 3x3 -> (2x2 transposed conv, stride 2 | 3x3 conv) with a residual, brought to the output's size
    and channels by `upsample` (the official name): a 2x2 transposed conv, or a 1x1 conv when only the channel
    count changes (a stage that keeps its resolution at output_stride < 32)."""

    def __init__(self, inplanes: int, planes: int, upsample: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = (nn.ConvTranspose2d(planes, planes, 2, 2, bias=False) if upsample
                      else nn.Conv2d(planes, planes, 3, 1, 1, bias=False))
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        shortcut = nn.ConvTranspose2d(inplanes, planes, 2, 2, bias=False) if upsample else \
            nn.Conv2d(inplanes, planes, 1, bias=False) if inplanes != planes else None
        self.upsample = None if shortcut is None else nn.Sequential(shortcut, nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class RTFDecoder(nn.Module):
    """Five stages from stride `output_stride` to stride 1, each x2 upsampling but the first 5 - log2(stride):
    channels halve, the last gives the classes."""

    def __init__(self, in_channels: int, num_classes: int, blocks: int = 2, output_stride: int = 32):
        super().__init__()
        channels = in_channels
        kept = 5 - int(math.log2(output_stride))  # stages that keep their resolution
        for i in range(1, 6):
            out = num_classes if i == 5 else channels // 2
            stage = [TransBottleneck(channels, channels) for _ in range(blocks - 1)]
            stage.append(TransBottleneck(channels, out, upsample=i > kept))
            setattr(self, f"deconv{i}", nn.Sequential(*stage))
            channels = out
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = getattr(self, f"deconv{i}")(x)
        return x


class RTFNet(TwoStreamBaseline):
    """Two ResNet encoders with additive thermal-into-RGB fusion and the RTFNet upsampling decoder."""

    pad_multiple = 32
    fit_input = staticmethod(resize_to_multiple)
    fit_output = staticmethod(resize_to)

    def __init__(self, num_classes: int, arch: str = "resnet50", base_width: int = 64,
                 layers: Optional[tuple[int, int, int, int]] = None, output_stride: int = 32, **crm_options):
        encoder_rgb = build_resnet(arch, 3, base_width, layers, output_stride)
        encoder_thermal = build_resnet(arch, 1, base_width, layers, output_stride)
        self.stem_stride = encoder_rgb.stem_stride  # read by the base class's mask_patch check
        super().__init__(num_classes, (encoder_rgb.stem_channels, encoder_thermal.stem_channels), **crm_options)
        self.encoder_rgb = encoder_rgb
        self.encoder_thermal = encoder_thermal
        self.decoder = RTFDecoder(encoder_rgb.out_channels, num_classes, output_stride=output_stride)

    def segment(self, rgb, thermal, grid_rgb, grid_thermal):
        er, et = self.encoder_rgb, self.encoder_thermal
        r = self.mask_stem(er.stem(rgb), grid_rgb, "rgb")
        t = self.mask_stem(et.stem(thermal), grid_thermal, "thermal")
        r = er.maxpool(r + t)
        t = et.maxpool(t)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            t = getattr(et, name)(t)
            r = getattr(er, name)(r) + t
        return self.decoder(r)


def build_rtfnet(num_classes: int, preset: str = "tiny", pretrained: Optional[str | Path] = None,
                 output_stride: int = 32, **crm_options) -> RTFNet:
    """RTFNet for `num_classes` classes at `preset`; `pretrained` = torchvision ResNet weights file;
    `output_stride` 8 or 16 for small images (module docstring)."""
    if preset not in RTFNET_PRESETS:
        raise ConfigError(f"model 'rtfnet' has no preset '{preset}'; expected one of {', '.join(RTFNET_PRESETS)}")
    check_crm_options(crm_options, "rtfnet", ("pretrained", "output_stride"))
    arch, width, layers = RTFNET_PRESETS[preset]
    model = RTFNet(num_classes, arch, width, layers, output_stride, **crm_options)
    if pretrained is not None:
        load_pretrained(model.encoder_rgb, pretrained)
        load_pretrained(model.encoder_thermal, pretrained)
    return model
