"""Semantic inference from mask-classification outputs (Mask2Former ``semantic_inference``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def semantic_inference(pred_logits: Tensor, pred_masks: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Class scores [B, C, H, W] = einsum("bqc,bqhw->bchw", softmax(logits)[..., :-1], sigmoid(masks)).

    As in the reference, the mask logits [B, Q, h, w] are first upsampled bilinearly to `out_size`, then
    passed through the sigmoid; the no-object probability is dropped. One image at a time, so the
    full-size [Q, H, W] masks of only one image are held in memory.
    """
    probs = pred_logits.float().softmax(-1)[..., :-1]
    out_size = (int(out_size[0]), int(out_size[1]))
    scores = []
    for cls, masks in zip(probs, pred_masks.float()):
        if tuple(masks.shape[-2:]) != out_size:
            masks = F.interpolate(masks[None], size=out_size, mode="bilinear", align_corners=False)[0]
        scores.append(torch.einsum("qc,qhw->chw", cls, masks.sigmoid()))
    return torch.stack(scores)
