"""Point sampling for mask losses (PointRend, Kirillov et al. CVPR 2020, as used by Mask2Former).

Coordinates are (x, y) in [0, 1] over the whole map, so maps of different resolution (1/4-scale mask
logits, full-size targets) are sampled at the same physical points. Randomness comes from `generator`
(None: torch's global generator), drawn on the generator's device and moved to the maps' device; with the
global generator the draws are those of detectron2's point_features (same calls, same order).

Sampling is bilinear with align_corners=False, so a point within half a pixel of the border mixes in the
value outside the map: zero (detectron2's point_sample, used for predictions and targets as in
Mask2Former) or, with padding_mode="border", the edge pixel (used for a valid-pixel map, which must not
fade towards the border).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def rand_points(n: int, num_points: int, device: torch.device,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """[n, num_points, 2] uniform coordinates in [0, 1)."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(n, num_points, 2, generator=generator, device=gen_device).to(device)


def point_sample(maps: Tensor, coords: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Bilinear values of maps [N, C, H, W] at coords [N, P, 2] -> [N, C, P]; outside the map: zero, or the
    edge value with padding_mode="border"."""
    grid = (2.0 * coords - 1.0).unsqueeze(2).to(maps.dtype)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False).squeeze(3)


def uncertain_point_coords(logits: Tensor, num_points: int, oversample_ratio: float,
                           importance_sample_ratio: float, weights: Optional[Tensor] = None,
                           generator: Optional[torch.Generator] = None) -> Tensor:
    """[N, num_points, 2] points, mostly where the mask logits [N, 1, H, W] are closest to 0.

    Draws num_points * oversample_ratio uniform candidates, keeps the int(importance_sample_ratio *
    num_points) with the highest uncertainty -|logit| and fills the rest uniformly (detectron2's
    get_uncertain_point_coords_with_randomness). Where `weights` [N, 1, Hw, Ww] (e.g. a valid-pixel map,
    edge-padded) is 0 at a candidate, that candidate counts as least uncertain, so excluded pixels neither
    attract points nor steer the choice through their logits.
    """
    n = logits.shape[0]
    n_candidates = int(num_points * oversample_ratio)
    n_uncertain = int(importance_sample_ratio * num_points)
    candidates = rand_points(n, n_candidates, logits.device, generator)
    uncertainty = -point_sample(logits, candidates).abs()[:, 0]
    if weights is not None:
        keep = point_sample(weights.to(uncertainty.dtype), candidates, "border")[:, 0] > 0
        uncertainty = uncertainty.masked_fill(~keep, float("-inf"))
    top = uncertainty.topk(n_uncertain, dim=1).indices
    chosen = candidates.gather(1, top.unsqueeze(-1).expand(-1, -1, 2))
    extra = rand_points(n, num_points - n_uncertain, logits.device, generator)
    return torch.cat([chosen, extra], dim=1)
