"""Mask2Former's MSDeformAttn pixel decoder (Cheng et al., CVPR 2022).

Stride 8/16/32 features are projected to `conv_dim`, refined jointly by `enc_layers` deformable-attention
encoder layers (post-norm, FFN `dim_feedforward`), and the stride-4 feature joins through an FPN lateral
(1x1 conv + GN) added to the upsampled stride-8 output and a 3x3 conv + GN + ReLU; a 1x1 conv then gives
the per-pixel mask features. Runs in float32 even under autocast, as the reference does.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .ms_deform_attn import MSDeformAttn
from .position import sine_position_embedding


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups as in the reference, fewer when `channels` is small (tiny presets)."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def encoder_reference_points(spatial_shapes: Sequence[tuple[int, int]], n_levels: int,
                             device: torch.device) -> Tensor:
    """[1, S, L, 2] pixel-centre (x, y) of every token in [0, 1], repeated for each level (no padding)."""
    refs = []
    for h, w in spatial_shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
        refs.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), dim=-1))
    return torch.cat(refs, 0)[None, :, None, :].expand(1, -1, n_levels, 2)


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention over all levels, then an FFN; residual + LayerNorm after each."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float, n_levels: int, n_heads: int,
                 n_points: int):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor,
                spatial_shapes: Sequence[tuple[int, int]]) -> Tensor:
        src = self.norm1(src + self.dropout(self.self_attn(src + pos, reference_points, src, spatial_shapes)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class MSDeformAttnPixelDecoder(nn.Module):
    """features at strides 4, 8, 16, 32 -> (mask_features [B, mask_dim, H4, W4],
    multi-scale features [stride 32, 16, 8], each [B, conv_dim, h, w])."""

    def __init__(self, in_channels: Sequence[int], conv_dim: int = 256, mask_dim: int = 256, nheads: int = 8,
                 enc_layers: int = 6, dim_feedforward: int = 1024, n_points: int = 4, dropout: float = 0.0):
        super().__init__()
        if len(in_channels) != 4:
            raise ConfigError(f"the pixel decoder takes 4 feature maps (strides 4, 8, 16, 32), "
                              f"got in_channels {list(in_channels)}")
        self.in_channels = list(in_channels)
        self.n_levels = 3
        # deformable levels ordered from low to high resolution: stride 32, 16, 8
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, conv_dim, kernel_size=1), group_norm(conv_dim))
            for c in self.in_channels[1:][::-1])
        self.level_embed = nn.Parameter(torch.empty(self.n_levels, conv_dim))
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(conv_dim, dim_feedforward, dropout, self.n_levels, nheads, n_points)
            for _ in range(enc_layers))
        self.lateral = nn.Sequential(nn.Conv2d(self.in_channels[0], conv_dim, 1, bias=False), group_norm(conv_dim))
        self.output = nn.Sequential(nn.Conv2d(conv_dim, conv_dim, 3, padding=1, bias=False),
                                    group_norm(conv_dim), nn.ReLU(inplace=True))
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.layers:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
            layer.self_attn.reset_parameters()
        nn.init.normal_(self.level_embed)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight)
            nn.init.zeros_(proj[0].bias)
        # detectron2's c2_xavier_fill: kaiming_uniform with a=1, zero bias
        for conv in (self.lateral[0], self.output[0], self.mask_features):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if len(features) != 4:
            raise ConfigError(f"the pixel decoder takes 4 feature maps (strides 4, 8, 16, 32), got {len(features)}")
        for i, (f, c) in enumerate(zip(features, self.in_channels)):
            if f.dim() != 4 or f.shape[1] != c:
                raise ConfigError(f"pixel decoder feature {i} has shape {tuple(f.shape)}, expected [B, {c}, H, W]")
        norm = self.input_proj[0][1]
        if features[3].shape[0] == 1 and norm.num_channels == norm.num_groups and features[3].shape[2:].numel() == 1:
            raise ConfigError("the image is too small for this preset's pixel decoder: its stride-32 feature map is "
                              "1x1 and GroupNorm with one channel per group cannot normalise one value; use images "
                              "larger than 32 px on at least one side")
        with torch.autocast(device_type=features[0].device.type, enabled=False):
            return self._forward_float(features)

    def _forward_float(self, features: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        levels = [f.float() for f in features[1:][::-1]]
        srcs, pos = [], []
        for lvl, (x, proj) in enumerate(zip(levels, self.input_proj)):
            srcs.append(proj(x).flatten(2).transpose(1, 2))
            embed = sine_position_embedding(x, self.level_embed.shape[1] // 2).flatten(2).transpose(1, 2)
            pos.append(embed + self.level_embed[lvl].view(1, 1, -1))
        shapes = [(x.shape[2], x.shape[3]) for x in levels]
        src, pos_all = torch.cat(srcs, 1), torch.cat(pos, 1)
        reference_points = encoder_reference_points(shapes, self.n_levels, src.device)
        for layer in self.layers:
            src = layer(src, pos_all, reference_points, shapes)
        b, _, c = src.shape
        outs = [z.transpose(1, 2).reshape(b, c, h, w)
                for z, (h, w) in zip(src.split([h * w for h, w in shapes], dim=1), shapes)]
        fine = self.lateral(features[0].float())
        fine = fine + F.interpolate(outs[-1], size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.mask_features(self.output(fine)), outs
