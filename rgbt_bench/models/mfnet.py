"""MFNet (Ha, Watanabe, Karasawa, Ushiku, Harada, IROS 2017): the original lightweight RGB-T network.

The network of the released weights (haqishen/MFNet-pytorch, model/MFNet.py with weights/MFNet/final.pth):
two encoders (RGB widths 16-48-48-96-96, thermal 16-16-16-36-36), each a 3x3 stem + max-pool, two
conv-conv encoder blocks with max-pool, a mini-inception block (parallel plain and dilation-2 3x3
convolutions, three times) with max-pool and a mini-inception centre; fusion by CONCATENATION of the two
centres; a short-cut decoder that upsamples x2 (NEAREST), adds the concatenated encoder features of that
scale and applies a 3x3 conv, three times, then upsamples x2 (nearest) to full resolution and classifies
with a conv unit. Every conv is conv(bias)-BN-LeakyReLU(0.2), the classifier's too, so the logits leave a
LeakyReLU as in the released network. Inputs are zero-padded to a multiple of 16 (the encoder stride) and
the logits cropped back; the released network needs no padding on MFNet's 480x640 images.
The released weights expect the `unit` input convention (x/255, no mean/std; rgbt_bench.models.normalize).

Presets: `mfnet` (the published widths: 736,275 parameters for 9 classes, reported as 0.73M) and `tiny`
(half the widths, same design).
CRM-style training options: see rgbt_bench.models.crm_style (masking after each branch's stem + max-pool).
Importing final.pth: rgbt_bench.models.published.mfnet.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .crm_style import TwoStreamBaseline, check_crm_options

NEGATIVE_SLOPE = 0.2  # LeakyReLU of the released network (model/MFNet.py, ConvBnLeakyRelu2d)
# preset -> (RGB widths, thermal widths)
MFNET_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((8, 24, 24, 48, 48), (8, 8, 8, 18, 18)),
    "mfnet": ((16, 48, 48, 96, 96), (16, 16, 16, 36, 36)),
}


class ConvBnLeaky(nn.Sequential):
    """3x3 conv (with bias) -> BatchNorm -> LeakyReLU(0.2), the unit MFNet is built from."""

    def __init__(self, cin: int, cout: int, dilation: int = 1):
        conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        nn.init.kaiming_normal_(conv.weight, a=NEGATIVE_SLOPE, mode="fan_out", nonlinearity="leaky_relu")
        super().__init__(conv, nn.BatchNorm2d(cout), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))


class EncoderBlock(nn.Sequential):
    """Two 3x3 conv units (the max-pool follows in the caller)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBnLeaky(cin, cout), ConvBnLeaky(cout, cout))


class MiniInception(nn.Module):
    """Three rounds of [plain 3x3 | dilation-2 3x3] convolutions, each half of the output channels."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        half = cout // 2
        self.branches = nn.ModuleList(
            nn.ModuleList([ConvBnLeaky(c, half), ConvBnLeaky(c, half, dilation=2)]) for c in (cin, 2 * half, 2 * half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for plain, dilated in self.branches:
            x = torch.cat([plain(x), dilated(x)], 1)
        return x


class MFNetEncoder(nn.Module):
    """One branch: stem + pool (stride 2), blocks at strides 2, 4, 8 (kept for the short-cuts), centre at 16."""

    def __init__(self, cin: int, ch: tuple[int, ...]):
        super().__init__()
        self.stem = ConvBnLeaky(cin, ch[0])
        self.down2 = EncoderBlock(ch[0], ch[1])
        self.down3 = EncoderBlock(ch[1], ch[2])
        self.down4 = MiniInception(ch[2], ch[3])
        self.center = MiniInception(ch[3], ch[4])
        self.out_channels = (ch[1], ch[2], 2 * (ch[3] // 2), 2 * (ch[4] // 2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x = the stem output after pooling (and masking); returns [stride 2, 4, 8, 16] features."""
        feats = []
        for block in (self.down2, self.down3, self.down4):
            x = block(x)
            feats.append(x)
            x = F.max_pool2d(x, 2, 2)
        feats.append(self.center(x))
        return feats


class ShortcutUp(nn.Module):
    """Upsample x2 (nearest), add the encoder short-cut of that scale, 3x3 conv unit."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBnLeaky(cin, cout)

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest") + skip)


class MFNet(TwoStreamBaseline):
    """Two mini-inception encoders, concatenation fusion and the short-cut decoder."""

    pad_multiple = 16

    def __init__(self, num_classes: int, rgb_ch: tuple[int, ...], thermal_ch: tuple[int, ...], **crm_options):
        super().__init__(num_classes, (rgb_ch[0], thermal_ch[0]), **crm_options)
        self.encoder_rgb = MFNetEncoder(3, rgb_ch)
        self.encoder_thermal = MFNetEncoder(1, thermal_ch)
        c = [a + b for a, b in zip(self.encoder_rgb.out_channels, self.encoder_thermal.out_channels)]
        self.up3 = ShortcutUp(c[2], c[1])
        self.up2 = ShortcutUp(c[1], c[0])
        self.up1 = ShortcutUp(c[0], rgb_ch[0] + thermal_ch[0])
        self.classify = ConvBnLeaky(rgb_ch[0] + thermal_ch[0], num_classes)

    def segment(self, rgb, thermal, grid_rgb, grid_thermal):
        r = self.mask_stem(F.max_pool2d(self.encoder_rgb.stem(rgb), 2, 2), grid_rgb, "rgb")
        t = self.mask_stem(F.max_pool2d(self.encoder_thermal.stem(thermal), 2, 2), grid_thermal, "thermal")
        fr, ft = self.encoder_rgb(r), self.encoder_thermal(t)
        s2, s4, s8, x = (torch.cat(pair, 1) for pair in zip(fr, ft))
        x = self.up1(s2, self.up2(s4, self.up3(s8, x)))
        return self.classify(F.interpolate(x, scale_factor=2, mode="nearest"))


def build_mfnet(num_classes: int, preset: str = "tiny", **crm_options) -> MFNet:
    """MFNet for `num_classes` classes at `preset` ("mfnet" = the published network)."""
    if preset not in MFNET_PRESETS:
        raise ConfigError(f"model 'mfnet' has no preset '{preset}'; expected one of {', '.join(MFNET_PRESETS)}")
    check_crm_options(crm_options, "mfnet")
    rgb_ch, thermal_ch = MFNET_PRESETS[preset]
    return MFNet(num_classes, rgb_ch, thermal_ch, **crm_options)
