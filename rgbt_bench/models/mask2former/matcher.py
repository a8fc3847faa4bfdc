"""Hungarian matching of predicted masks to target masks (Mask2Former's HungarianMatcher,
facebookresearch/Mask2Former mask2former/modeling/matcher.py).

cost = class_weight * (-p(target class)) + mask_weight * mean sigmoid BCE + dice_weight * dice loss,
the mask terms on `num_points` uniform random points shared by all pairs of one image (Mask2Former's
point-sampled matching). Assignment by scipy.optimize.linear_sum_assignment.

Ignored pixels (see IGNORE_MODES): "official" counts them, and padded pixels, as negatives of every target
mask (the official masks are built from the classes present and zero-padded) with plain means over the
points; "valid" weights each point by the valid-pixel map (edge-padded, so the border is not down-weighted)
and leaves ignored pixels out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ...errors import ConfigError
from .point_sampling import point_sample, rand_points

IGNORE_MODES = ("official", "valid")


def check_ignore_mode(mode: str) -> str:
    """`mode` if it is one of IGNORE_MODES, else a ConfigError naming it."""
    if mode not in IGNORE_MODES:
        raise ConfigError(f"unknown ignore_mode '{mode}'; expected one of {', '.join(IGNORE_MODES)} (official: "
                          f"ignored and padded pixels are negatives of every mask; valid: they are left out)")
    return mode


@dataclass
class SemanticTarget:
    """One image's targets: class ids [K], binary masks [K, H, W], valid-pixel map [H, W] (1 = not ignored)."""

    labels: Tensor
    masks: Tensor
    valid: Tensor


def hungarian_assignment(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-total-cost assignment of a [Q, K] cost matrix: (row indices, column indices), int64 on CPU."""
    rows, cols = linear_sum_assignment(cost.detach().cpu().float().numpy())
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def pairwise_sigmoid_ce(logits: Tensor, targets: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """[Q, K] mean BCE of every prediction logits [Q, P] against every target [K, P]; weights [P] or None
    (plain mean)."""
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    if weights is None:
        return (pos @ targets.T + neg @ (1.0 - targets).T) / logits.shape[-1]
    cost = (pos * weights) @ targets.T + (neg * weights) @ (1.0 - targets).T
    return cost / weights.sum().clamp(min=1e-6)


def pairwise_dice(logits: Tensor, targets: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """[Q, K] dice loss 1 - (2|p t| + 1) / (|p| + |t| + 1) for every prediction / target pair; weights [P]
    or None."""
    probs = logits.sigmoid()
    if weights is not None:
        probs, targets_w = probs * weights, targets * weights
    else:
        targets_w = targets
    numerator = 2.0 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets_w.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


class HungarianMatcher:
    """Matches the queries of each image to its target masks; weights as in the Seg loss."""

    def __init__(self, class_weight: float = 2.0, mask_weight: float = 5.0, dice_weight: float = 5.0,
                 num_points: int = 12544, ignore_mode: str = "official"):
        self.class_weight, self.mask_weight, self.dice_weight = class_weight, mask_weight, dice_weight
        self.num_points = num_points
        self.ignore_mode = check_ignore_mode(ignore_mode)

    @torch.no_grad()
    def cost_matrices(self, pred_logits: Tensor, pred_masks: Tensor, targets: list[SemanticTarget],
                      generator: Optional[torch.Generator] = None) -> list[Tensor]:
        """Per image, the [Q, K] matching cost (one fresh draw of points per image)."""
        costs = []
        for logits, masks, target in zip(pred_logits.float(), pred_masks.float(), targets):
            coords = rand_points(1, self.num_points, masks.device, generator)
            out = point_sample(masks[None], coords)[0]  # [Q, P]
            tgt = point_sample(target.masks[None].float(), coords)[0]  # [K, P]
            w = (point_sample(target.valid[None, None].float(), coords, "border")[0, 0]
                 if self.ignore_mode == "valid" else None)  # [P]
            cost_class = -logits.softmax(-1)[:, target.labels]
            costs.append(self.class_weight * cost_class + self.mask_weight * pairwise_sigmoid_ce(out, tgt, w)
                         + self.dice_weight * pairwise_dice(out, tgt, w))
        return costs

    def __call__(self, pred_logits: Tensor, pred_masks: Tensor, targets: list[SemanticTarget],
                 generator: Optional[torch.Generator] = None) -> list[tuple[Tensor, Tensor]]:
        """Per image, (query indices, target indices) of the optimal assignment."""
        return [hungarian_assignment(c) for c in self.cost_matrices(pred_logits, pred_masks, targets, generator)]
