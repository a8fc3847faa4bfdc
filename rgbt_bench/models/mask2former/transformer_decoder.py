"""Mask2Former's masked-attention transformer decoder (Cheng et al., CVPR 2022).

Learnable queries (features + positional embeddings) go through `dec_layers` layers of masked cross-attention
-> self-attention -> FFN (post-norm), visiting the 3 pixel-decoder scales round-robin from the coarsest.
Each layer's cross-attention only sees pixels where the previous prediction's sigmoid mask is >= 0.5
(a query whose mask is empty everywhere sees all pixels). A prediction (class logits + mask logits from a
shared LayerNorm, linear classifier and 3-layer mask MLP) is made from the initial queries and after every
layer: dec_layers + 1 predictions, the last one final, the others used for deep supervision.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .position import sine_position_embedding


class MLP(nn.Module):
    """Linear layers with ReLU between them."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """Masked cross-attention to one scale, self-attention among queries, FFN; residual + LayerNorm each."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.norm_self = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                attn_mask: Tensor) -> Tensor:
        """tgt, query_pos [B, Q, C]; memory, memory_pos [B, HW, C]; attn_mask [B*heads, Q, HW], True = blocked."""
        attended = self.cross_attn(tgt + query_pos, memory + memory_pos, memory, attn_mask=attn_mask,
                                   need_weights=False)[0]
        tgt = self.norm_cross(tgt + self.dropout(attended))
        q = tgt + query_pos
        tgt = self.norm_self(tgt + self.dropout(self.self_attn(q, q, tgt, need_weights=False)[0]))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm_ffn(tgt + self.dropout(ffn))


class MaskedTransformerDecoder(nn.Module):
    """(3 scales [B, hidden_dim, h, w] coarse to fine, mask_features [B, mask_dim, H4, W4]) ->
    {"pred_logits" [B, Q, C+1], "pred_masks" [B, Q, H4, W4], "aux_outputs": dec_layers earlier predictions}."""

    def __init__(self, hidden_dim: int, num_classes: int, num_queries: int = 100, nheads: int = 8,
                 dim_feedforward: int = 2048, dec_layers: int = 9, mask_dim: int = 256, dropout: float = 0.0):
        super().__init__()
        if dec_layers < 1 or num_queries < 1:
            raise ConfigError(f"the transformer decoder needs >= 1 layer and >= 1 query, "
                              f"got dec_layers {dec_layers}, num_queries {num_queries}")
        self.nheads, self.n_levels = nheads, 3
        self.layers = nn.ModuleList(DecoderLayer(hidden_dim, nheads, dim_feedforward, dropout)
                                    for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(self.n_levels, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def predict(self, queries: Tensor, mask_features: Tensor,
                attn_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """Class logits, mask logits and the next layer's attention mask (True = blocked, no gradient)."""
        out = self.decoder_norm(queries)
        logits = self.class_embed(out)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(out), mask_features)
        with torch.no_grad():
            small = F.interpolate(masks, size=attn_size, mode="bilinear", align_corners=False)
            blocked = small.sigmoid().flatten(2) < 0.5
            blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
            blocked = blocked.repeat_interleave(self.nheads, dim=0)
        return logits, masks, blocked

    def forward(self, multi_scale: Sequence[Tensor], mask_features: Tensor) -> dict:
        if len(multi_scale) != self.n_levels:
            raise ConfigError(f"the transformer decoder takes {self.n_levels} scales, got {len(multi_scale)}")
        b = mask_features.shape[0]
        sizes = [(x.shape[2], x.shape[3]) for x in multi_scale]
        memory = [x.flatten(2).transpose(1, 2) + self.level_embed.weight[i][None, None, :]
                  for i, x in enumerate(multi_scale)]
        memory_pos = [sine_position_embedding(x, x.shape[1] // 2).flatten(2).transpose(1, 2).to(x.dtype)
                      for x in multi_scale]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        queries = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        logits, masks, blocked = self.predict(queries, mask_features, sizes[0])
        predictions = [(logits, masks)]
        for i, layer in enumerate(self.layers):
            lvl = i % self.n_levels
            queries = layer(queries, query_pos, memory[lvl], memory_pos[lvl], blocked)
            logits, masks, blocked = self.predict(queries, mask_features, sizes[(i + 1) % self.n_levels])
            predictions.append((logits, masks))
        return {"pred_logits": predictions[-1][0], "pred_masks": predictions[-1][1],
                "aux_outputs": [{"pred_logits": c, "pred_masks": m} for c, m in predictions[:-1]]}
