"""The CRM training objective (Shin et al., ICRA 2024; CRM_RGBTSeg models/mask2former/rgbt_maskformer_model.py):

    L = Seg(clean fused) + w_mws * [Seg(clean RGB-only) + Seg(clean thermal-only)] + Seg(masked fused)
        + w_sdc * L_sdc + w_sdn * L_sdn
    L_sdc = mean |stopgrad(clean fused class logits) - masked fused class logits|
    L_sdn = mean |stopgrad(clean fused) - masked RGB-only| + mean |stopgrad(clean fused) - masked thermal-only|

Seg is the Mask2Former loss (with deep supervision); the self-distillation terms are plain L1 on the raw
class logits `pred_logits` [B, Q, C+1] of the last decoder layer, no temperature, the teacher detached
(official models/mask2former/rgbt_maskformer_model.py).

Without masking (the ablation `crm_nomask`: outputs of the three CLEAN paths only) the objective keeps every
term that exists without a masked pass, L = Seg(clean fused) + w_mws * [Seg(clean RGB-only) + Seg(clean
thermal-only)], so that CRM and its control differ only by the masking and what needs it.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ..mask2former import Mask2FormerLoss

BRANCHES = ("fused", "rgb", "thermal", "masked_fused", "masked_rgb", "masked_thermal")
CLEAN_BRANCHES = BRANCHES[:3]


def self_distillation(teacher_logits: torch.Tensor, *student_logits: torch.Tensor) -> torch.Tensor:
    """Sum over students of mean |stopgrad(teacher) - student|: no gradient ever reaches the teacher."""
    target = teacher_logits.detach()
    return sum((target - s).abs().mean() for s in student_logits)


class CRMLoss(nn.Module):
    """Weighted sum of the four Mask2Former segmentation losses and the two self-distillation terms."""

    def __init__(self, criterion: Mask2FormerLoss, w_mws: float = 1.0, w_sdc: float = 1.0, w_sdn: float = 1.0):
        super().__init__()
        self.criterion = criterion
        self.w_mws, self.w_sdc, self.w_sdn = w_mws, w_sdc, w_sdn

    def forward(self, outputs: Mapping[str, dict], label: torch.Tensor, ignore_index: Optional[int],
                generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """`outputs` maps each name in BRANCHES (or only CLEAN_BRANCHES: no masked pass) to a Mask2Former head
        output for the same `label`; `generator` drives the loss's point sampling (None: torch's global one).

        Returns "loss" (the total) and each term: seg_fused, seg_rgb, seg_thermal, and with the masked
        branches seg_masked, sdc, sdn.
        """
        masked = "masked_fused" in outputs
        seg = {name: self.criterion(outputs[name], label, ignore_index, generator)["loss"]
               for name in (*CLEAN_BRANCHES, "masked_fused")[:4 if masked else 3]}
        terms = {"seg_fused": seg["fused"], "seg_rgb": seg["rgb"], "seg_thermal": seg["thermal"]}
        total = seg["fused"] + self.w_mws * (seg["rgb"] + seg["thermal"])
        if masked:
            teacher = outputs["fused"]["pred_logits"]
            sdc = self_distillation(teacher, outputs["masked_fused"]["pred_logits"])
            sdn = self_distillation(teacher, outputs["masked_rgb"]["pred_logits"],
                                    outputs["masked_thermal"]["pred_logits"])
            total = total + seg["masked_fused"] + self.w_sdc * sdc + self.w_sdn * sdn
            terms.update(seg_masked=seg["masked_fused"], sdc=sdc, sdn=sdn)
        return {"loss": total, **terms}


__all__ = ["BRANCHES", "CLEAN_BRANCHES", "CRMLoss", "self_distillation"]
