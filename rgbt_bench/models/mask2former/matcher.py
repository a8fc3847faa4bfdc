"""Hungarian matching of predicted masks to target masks (Mask2Former's HungarianMatcher).

cost = class_weight * (-p(target class)) + mask_weight * mean sigmoid BCE + dice_weight * dice loss,
the mask terms on `num_points` uniform random points shared by all pairs of one image (Mask2Former's
point-sampled matching), restricted to valid (non-ignored) pixels by the points' validity weights.
Assignment by scipy.optimize.linear_sum_assignment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .point_sampling import point_sample, rand_points


@dataclass
class SemanticTarget:
    """One image's targets: class ids [K], binary masks [K, H, W], valid-pixel map [H, W] (1 = counted)."""

    labels: Tensor
    masks: Tensor
    valid: Tensor


def hungarian_assignment(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-total-cost assignment of a [Q, K] cost matrix: (row indices, column indices), int64 on CPU."""
    rows, cols = linear_sum_assignment(cost.detach().cpu().float().numpy())
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def pairwise_sigmoid_ce(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """[Q, K] weighted mean BCE of every prediction logits [Q, P] against every target [K, P]; weights [P]."""
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none") * weights
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * weights
    cost = pos @ targets.T + neg @ (1.0 - targets).T
    return cost / weights.sum().clamp(min=1e-6)


def pairwise_dice(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """[Q, K] weighted dice loss 1 - (2|p t| + 1) / (|p| + |t| + 1) for every prediction / target pair."""
    probs = logits.sigmoid() * weights
    t = targets * weights
    numerator = 2.0 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + t.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


class HungarianMatcher:
    """Matches the queries of each image to its target masks; weights as in the Seg loss."""

    def __init__(self, class_weight: float = 2.0, mask_weight: float = 5.0, dice_weight: float = 5.0,
                 num_points: int = 12544):
        self.class_weight, self.mask_weight, self.dice_weight = class_weight, mask_weight, dice_weight
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrices(self, pred_logits: Tensor, pred_masks: Tensor, targets: list[SemanticTarget],
                      generator: Optional[torch.Generator] = None) -> list[Tensor]:
        """Per image, the [Q, K] matching cost (one fresh draw of points per image)."""
        costs = []
        for logits, masks, target in zip(pred_logits.float(), pred_masks.float(), targets):
            coords = rand_points(1, self.num_points, masks.device, generator)
            out = point_sample(masks[None], coords)[0]  # [Q, P]
            tgt = point_sample(target.masks[None].float(), coords)[0]  # [K, P]
            w = point_sample(target.valid[None, None].float(), coords)[0, 0]  # [P]
            cost_class = -logits.softmax(-1)[:, target.labels]
            costs.append(self.class_weight * cost_class + self.mask_weight * pairwise_sigmoid_ce(out, tgt, w)
                         + self.dice_weight * pairwise_dice(out, tgt, w))
        return costs

    def __call__(self, pred_logits: Tensor, pred_masks: Tensor, targets: list[SemanticTarget],
                 generator: Optional[torch.Generator] = None) -> list[tuple[Tensor, Tensor]]:
        """Per image, (query indices, target indices) of the optimal assignment."""
        return [hungarian_assignment(c) for c in self.cost_matrices(pred_logits, pred_masks, targets, generator)]
