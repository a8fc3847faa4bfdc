"""CRM's RGB-T backbone: two unshared Swin encoders, a mask token per branch, per-scale fusion + BatchNorm.

Mirrors the official RGBT_D2SwinTransformer (UkcheolShin/CRM_RGBTSeg, models/mask2former/backbone/swin.py):
its outputs are (fused features, RGB features, thermal features); the fused ones are
BatchNorm2d(max(rgb, thermal)) per scale ("add" selectable), the single-branch ones are each encoder's
own outputs (after Swin's output LayerNorm, no BatchNorm). Masking acts on the patch-embedded map
(stride 4): x * (1 - m) + mask_token * m, with mask_token a learnable [1, C, 1, 1] per branch initialised
truncated-normal std 0.02 (CRM_RGBTSeg models/mask2former/backbone/swin.py).

The module is named `backbone` inside CRM so that the trainer's backbone learning-rate factor covers the
encoders, mask tokens and fusion norms, as the official optimiser groups do.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...errors import ConfigError
from ..masking import mask_features
from ..swin import SwinConfig, SwinTransformer

FUSIONS = ("max", "add")
Features = list[torch.Tensor]


class RGBTSwinBackbone(nn.Module):
    """rgb [B,3,H,W], thermal [B,1,H,W] (normalised) -> (fused, rgb, thermal) feature lists, strides 4..32."""

    def __init__(self, swin: SwinConfig, fusion: str = "max", drop_path: Optional[float] = None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"unknown CRM fusion '{fusion}'; expected one of {', '.join(FUSIONS)}")
        self.fusion = fusion
        self.rgb_encoder = SwinTransformer.from_config(swin, in_chans=3, drop_path=drop_path)
        self.thermal_encoder = SwinTransformer.from_config(swin, in_chans=1, drop_path=drop_path)
        self.channels = list(self.rgb_encoder.num_features)
        self.rgb_mask_token = nn.Parameter(torch.zeros(1, self.channels[0], 1, 1))
        self.thermal_mask_token = nn.Parameter(torch.zeros(1, self.channels[0], 1, 1))
        nn.init.trunc_normal_(self.rgb_mask_token, std=0.02, a=-0.04, b=0.04)
        nn.init.trunc_normal_(self.thermal_mask_token, std=0.02, a=-0.04, b=0.04)
        self.fusion_norms = nn.ModuleList(nn.BatchNorm2d(c) for c in self.channels)

    def fuse(self, rgb_feats: Features, thermal_feats: Features) -> Features:
        """Per scale: max (or sum) of the two branches, then that scale's BatchNorm2d."""
        combine = torch.maximum if self.fusion == "max" else torch.add
        return [norm(combine(r, t)) for norm, r, t in zip(self.fusion_norms, rgb_feats, thermal_feats)]

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[Features, Features, Features]:
        """Clean pass, no masking."""
        rgb_feats, thermal_feats = self.rgb_encoder(rgb), self.thermal_encoder(thermal)
        return self.fuse(rgb_feats, thermal_feats), rgb_feats, thermal_feats

    def forward_clean_and_masked(self, rgb: torch.Tensor, thermal: torch.Tensor,
                                 masks: tuple[torch.Tensor, torch.Tensor], cell: int
                                 ) -> tuple[tuple[Features, Features, Features], tuple[Features, Features, Features]]:
        """The clean and the masked pass of one training step: ((fused, rgb, thermal), same masked).

        `masks` = (mask_rgb, mask_thermal) [B,1,gh,gw]; `cell` = stride-4 cells per mask patch (32 px -> 8).
        Each encoder sees [clean; masked] as one 2B batch (Swin normalises per sample); the fusion
        BatchNorm sees the clean and the masked halves separately, as in the official two passes.
        """
        b = rgb.shape[0]

        def mask_second_half(token: nn.Parameter, grid: torch.Tensor):
            return lambda f: torch.cat([f[:b], mask_features(f[b:], grid, token.to(f.dtype), cell)])

        rgb_feats = self.rgb_encoder(torch.cat([rgb, rgb]), mask_second_half(self.rgb_mask_token, masks[0]))
        thermal_feats = self.thermal_encoder(torch.cat([thermal, thermal]),
                                             mask_second_half(self.thermal_mask_token, masks[1]))
        halves = []
        for part in (slice(0, b), slice(b, 2 * b)):
            r, t = [f[part] for f in rgb_feats], [f[part] for f in thermal_feats]
            halves.append((self.fuse(r, t), r, t))
        return halves[0], halves[1]


__all__ = ["FUSIONS", "RGBTSwinBackbone"]
