"""Normalised 2-D sine position embedding (DETR / Mask2Former ``PositionEmbeddingSine(normalize=True)``)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def sine_position_embedding(x: Tensor, num_pos_feats: int, temperature: float = 10000.0) -> Tensor:
    """[B, 2*num_pos_feats, H, W] embedding of x's pixel grid: y features first, then x features.

    Coordinates are the 1-based row/column index divided by the map size and scaled to (0, 2*pi];
    channels alternate sin/cos with frequencies temperature ** (2 * (i // 2) / num_pos_feats).
    """
    b, _, h, w = x.shape
    eps, scale = 1e-6, 2.0 * math.pi
    y_embed = torch.arange(1, h + 1, dtype=torch.float32, device=x.device) / (h + eps) * scale
    x_embed = torch.arange(1, w + 1, dtype=torch.float32, device=x.device) / (w + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=x.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)

    def encode(coord: Tensor) -> Tensor:
        phase = coord[:, None] / dim_t
        return torch.stack((phase[:, 0::2].sin(), phase[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y_embed)[:, None, :].expand(h, w, num_pos_feats)
    pos_x = encode(x_embed)[None, :, :].expand(h, w, num_pos_feats)
    pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)
    return pos.unsqueeze(0).expand(b, -1, -1, -1)
