"""The Mask2Former head (Cheng et al., CVPR 2022) used by CRM: pixel decoder + masked-attention decoder.

Defaults are the CRM / Mask2Former ones (CRM_RGBTSeg configs): hidden 256, 100 queries, 8 heads, FFN 2048,
9 decoder layers, 6 deformable encoder layers with FFN 1024 and 4 points, mask dim 256.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .pixel_decoder import MSDeformAttnPixelDecoder
from .transformer_decoder import MaskedTransformerDecoder


class Mask2FormerHead(nn.Module):
    """4 feature maps at strides 4, 8, 16, 32 -> {"pred_logits" [B, Q, C+1], "pred_masks" [B, Q, H/4, W/4],
    "aux_outputs": dec_layers dicts (initial queries, then each layer but the last) for deep supervision}."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, hidden_dim: int = 256, num_queries: int = 100,
                 nheads: int = 8, dim_feedforward: int = 2048, dec_layers: int = 9, enc_layers: int = 6,
                 mask_dim: int = 256, enc_dim_feedforward: int = 1024, n_points: int = 4, dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.pixel_decoder = MSDeformAttnPixelDecoder(in_channels, hidden_dim, mask_dim, nheads, enc_layers,
                                                      enc_dim_feedforward, n_points, dropout)
        self.decoder = MaskedTransformerDecoder(hidden_dim, num_classes, num_queries, nheads, dim_feedforward,
                                                dec_layers, mask_dim, dropout)

    def forward(self, features: Sequence[Tensor]) -> dict:
        mask_features, multi_scale = self.pixel_decoder(features)
        return self.decoder(multi_scale, mask_features)
