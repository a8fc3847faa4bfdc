"""Multi-scale deformable attention (Zhu et al., Deformable DETR, ICLR 2021) in pure PyTorch.

The sampling is done with ``F.grid_sample`` (bilinear, zero padding, align_corners=False), which is the
reference semantics of the CUDA kernel used by Deformable-DETR / Mask2Former, so the module runs on CPU and
CUDA without a compiled extension.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError


def level_start_index(spatial_shapes: Sequence[tuple[int, int]]) -> list[int]:
    """Offsets of each level in a sequence that concatenates the flattened levels."""
    starts, total = [], 0
    for h, w in spatial_shapes:
        starts.append(total)
        total += h * w
    return starts


def ms_deform_attn_sample(value: Tensor, spatial_shapes: Sequence[tuple[int, int]],
                          sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Attention-weighted bilinear samples of `value` at the given locations.

    value [N, S, M, D] (S = sum of h*w over levels, M heads, D channels per head);
    sampling_locations [N, Lq, M, L, P, 2] as (x, y) in [0, 1] relative to each level's map;
    attention_weights [N, Lq, M, L, P]. Returns [N, Lq, M*D].
    """
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    grids = 2.0 * sampling_locations - 1.0
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels, n_points)
    out = value.new_zeros(n * m, d, lq)
    for lvl, ((h, w), start) in enumerate(zip(spatial_shapes, level_start_index(spatial_shapes))):
        v = value[:, start:start + h * w].permute(0, 2, 3, 1).reshape(n * m, d, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).reshape(n * m, lq, n_points, 2)
        sampled = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)  # [N*M, D, Lq, P]
        out = out + (sampled * weights[..., lvl, :]).sum(-1)
    return out.view(n, m * d, lq).transpose(1, 2)


class MSDeformAttn(nn.Module):
    """Each query attends to `n_points` learned offsets around its reference point in every level.

    Initialisation follows Deformable DETR: offsets start on a ring of head-specific directions scaled by
    the point index, uniform attention weights, xavier value/output projections.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 3, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ConfigError(f"deformable attention dim {d_model} is not divisible by {n_heads} heads")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        scale = torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        ring = directions.view(self.n_heads, 1, 1, 2).expand(-1, self.n_levels, self.n_points, -1) * scale
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(ring.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: Tensor, reference_points: Tensor, value_input: Tensor,
                spatial_shapes: Sequence[tuple[int, int]]) -> Tensor:
        """query [N, Lq, C]; reference_points [N, Lq, L, 2] (x, y) in [0, 1]; value_input [N, S, C]."""
        n, lq, _ = query.shape
        value = self.value_proj(value_input).view(n, value_input.shape[1], self.n_heads, -1)
        offsets = self.sampling_offsets(query).view(n, lq, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(n, lq, self.n_heads, self.n_levels * self.n_points)
        weights = weights.softmax(-1).view(n, lq, self.n_heads, self.n_levels, self.n_points)
        # offsets are in pixels of each level: normalise by (w, h)
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        return self.output_proj(ms_deform_attn_sample(value, spatial_shapes, locations, weights))
