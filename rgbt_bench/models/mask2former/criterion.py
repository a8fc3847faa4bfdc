"""Mask2Former's set-prediction loss for semantic segmentation (the CRM "Seg" loss;
facebookresearch/Mask2Former mask2former/modeling/criterion.py).

Per image, the semantic label becomes one binary mask per class present (the ignore label is not a class);
queries are matched to those masks (HungarianMatcher) and each prediction layer gets
  class_weight * CE (no-object class weighted no_object_weight)
+ mask_weight * sigmoid BCE + dice_weight * dice on num_points importance-sampled points per matched mask,
both normalised by the number of target masks in the batch (averaged over DDP ranks when running
distributed). Defaults are the reference ones: 2 / 5 / 5, no-object 0.1, 12544 points, oversample 3,
importance ratio 0.75.

Ignored pixels, `ignore_mode` (the matcher follows the same mode):
- "official" (default; as Mask2Former and CRM_RGBTSeg): an ignored pixel belongs to no mask, so it is a
  NEGATIVE of every target mask in the BCE and dice; a label padded with the ignore index (CRM pads its
  inputs to a multiple of 32) therefore acts like the official zero-padded masks. Points are sampled over
  the whole map and the losses are plain means over points.
- "valid": ignored pixels are left out: each point is weighted by the valid-pixel map (sampled with edge
  padding, so points near the border keep weight 1) and ignored pixels are never chosen as uncertain points.
With no ignored and no padded pixel the two modes give the same numbers.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import DataError
from .matcher import HungarianMatcher, SemanticTarget, check_ignore_mode
from .point_sampling import point_sample, uncertain_point_coords


def semantic_targets(label: Tensor, num_classes: int, ignore_index: Optional[int]) -> list[SemanticTarget]:
    """Per image of label [B, H, W]: the classes present (ignore index dropped), their binary masks and the
    valid-pixel map (1 where the label is not the ignore index)."""
    if label.dim() != 3:
        raise DataError(f"segmentation label must be [B, H, W], got shape {tuple(label.shape)}")
    targets = []
    for lab in label:
        valid = lab != ignore_index if ignore_index is not None else torch.ones_like(lab, dtype=torch.bool)
        classes = torch.unique(lab[valid])
        if classes.numel() and (classes.min() < 0 or classes.max() >= num_classes):
            bad = classes[(classes < 0) | (classes >= num_classes)].tolist()
            raise DataError(f"label contains class ids {bad}; expected 0..{num_classes - 1}"
                            f"{'' if ignore_index is None else f' or ignore index {ignore_index}'}")
        masks = (lab[None] == classes[:, None, None]).float()
        targets.append(SemanticTarget(labels=classes, masks=masks, valid=valid.float()))
    return targets


def weighted_sigmoid_ce(logits: Tensor, targets: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """Per mask [N]: BCE of logits vs targets [N, P] averaged over points, with weights [N, P] or plainly."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if weights is None:
        return bce.mean(-1)
    return (bce * weights).sum(-1) / weights.sum(-1).clamp(min=1e-6)


def weighted_dice(logits: Tensor, targets: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """Per mask [N]: 1 - (2 sum w p t + 1) / (sum w p + sum w t + 1) over points [N, P] (w = 1 when None)."""
    probs = logits.sigmoid()
    if weights is not None:
        probs, targets_w = weights * probs, weights * targets
    else:
        targets_w = targets
    numerator = 2.0 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets_w.sum(-1)
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


class Mask2FormerLoss(nn.Module):
    """outputs of Mask2FormerHead + label [B, H, W] -> {"loss", "loss_ce", "loss_mask", "loss_dice"}.

    "loss" sums the weighted terms of the final prediction and of every aux prediction (deep supervision);
    the three named terms are the final prediction's, already weighted. Pass `generator` to make the point
    sampling reproducible independently of torch's global RNG. `ignore_mode`: see the module docstring.
    """

    def __init__(self, num_classes: int, class_weight: float = 2.0, mask_weight: float = 5.0,
                 dice_weight: float = 5.0, no_object_weight: float = 0.1, num_points: int = 12544,
                 oversample_ratio: float = 3.0, importance_sample_ratio: float = 0.75,
                 ignore_mode: str = "official"):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_mode = check_ignore_mode(ignore_mode)
        self.class_weight, self.mask_weight, self.dice_weight = class_weight, mask_weight, dice_weight
        self.num_points, self.oversample_ratio = num_points, oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.matcher = HungarianMatcher(class_weight, mask_weight, dice_weight, num_points, ignore_mode)
        class_weights = torch.ones(num_classes + 1)
        class_weights[-1] = no_object_weight
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, outputs: dict, label: Tensor, ignore_index: Optional[int],
                generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
        n_out = outputs["pred_logits"].shape[-1]
        if n_out != self.num_classes + 1:
            raise DataError(f"head predicts {n_out - 1} classes but the loss expects {self.num_classes}")
        targets = semantic_targets(label.to(outputs["pred_masks"].device), self.num_classes, ignore_index)
        num_masks = self._num_masks(targets, outputs["pred_masks"].device)
        final = self._layer_losses(outputs["pred_logits"], outputs["pred_masks"], targets, num_masks, generator)
        total = sum(final.values())
        for aux in outputs.get("aux_outputs", []):
            total = total + sum(self._layer_losses(aux["pred_logits"], aux["pred_masks"], targets, num_masks,
                                                   generator).values())
        return {"loss": total, **final}

    @staticmethod
    def _num_masks(targets: list[SemanticTarget], device: torch.device) -> float:
        """Target masks in the batch, averaged over DDP ranks, at least 1."""
        count = torch.tensor([float(sum(len(t.labels) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            count = count / dist.get_world_size()
        return max(count.item(), 1.0)

    def _layer_losses(self, pred_logits: Tensor, pred_masks: Tensor, targets: list[SemanticTarget],
                      num_masks: float, generator: Optional[torch.Generator]) -> dict[str, Tensor]:
        pred_logits, pred_masks = pred_logits.float(), pred_masks.float()
        indices = self.matcher(pred_logits, pred_masks, targets, generator)
        device = pred_logits.device
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)]).to(device)
        src_idx = torch.cat([src for src, _ in indices]).to(device)

        target_classes = torch.full(pred_logits.shape[:2], self.num_classes, dtype=torch.int64, device=device)
        target_classes[batch_idx, src_idx] = torch.cat(
            [t.labels[tgt.to(t.labels.device)] for t, (_, tgt) in zip(targets, indices)]).to(device)
        loss_ce = F.cross_entropy(pred_logits.transpose(1, 2), target_classes, self.class_weights.to(device))

        if src_idx.numel() == 0:
            zero = pred_masks.sum() * 0.0
            return {"loss_ce": self.class_weight * loss_ce, "loss_mask": zero, "loss_dice": zero}
        src_masks = pred_masks[batch_idx, src_idx][:, None]
        tgt_masks = torch.cat([t.masks[tgt.to(t.masks.device)] for t, (_, tgt) in zip(targets, indices)])[:, None]
        valid = (torch.cat([t.valid[None].expand(len(tgt), -1, -1) for t, (_, tgt) in zip(targets, indices)])[:, None]
                 if self.ignore_mode == "valid" else None)
        with torch.no_grad():
            coords = uncertain_point_coords(src_masks, self.num_points, self.oversample_ratio,
                                            self.importance_sample_ratio, weights=valid, generator=generator)
            point_labels = point_sample(tgt_masks, coords)[:, 0]
            point_weights = point_sample(valid, coords, "border")[:, 0] if valid is not None else None
        point_logits = point_sample(src_masks, coords)[:, 0]
        loss_mask = weighted_sigmoid_ce(point_logits, point_labels, point_weights).sum() / num_masks
        loss_dice = weighted_dice(point_logits, point_labels, point_weights).sum() / num_masks
        return {"loss_ce": self.class_weight * loss_ce, "loss_mask": self.mask_weight * loss_mask,
                "loss_dice": self.dice_weight * loss_dice}
