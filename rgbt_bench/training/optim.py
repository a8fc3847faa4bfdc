"""AdamW parameter groups and the poly learning-rate schedule of the CRM recipe
(CRM_RGBTSeg models/Model_RGBT_Mask2Former.py build_optimizer, as Mask2Former's; detectron2 WarmupPolyLR).

Groups are found by name and module type, as Mask2Former/detectron2 do:
- backbone (see is_backbone): lr x backbone_lr_mult;
- no weight decay, two sets (`no_decay`):
  "official": parameters of normalisation layers (BatchNorm/InstanceNorm/LayerNorm/GroupNorm/LocalResponseNorm)
  and nn.Embedding modules, and tables named relative_position_bias_table / absolute_pos_embed, exactly
  as the official build_optimizer (SOLVER.WEIGHT_DECAY_NORM = WEIGHT_DECAY_EMBED = 0); biases, mask tokens
  and the pixel decoder's level_embed (an nn.Parameter) DO decay there;
  "broad" (the built-in default): those, plus every bias and every other 1-d parameter, and parameters
  named pos_embed, level_embed, mask_token, query_embed, query_feat.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.Embedding)
OFFICIAL_NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed")
NO_DECAY_NAMES = (*OFFICIAL_NO_DECAY_NAMES, "pos_embed", "level_embed", "mask_token", "query_embed", "query_feat")


def is_backbone(name: str) -> bool:
    """A dotted component containing "backbone" (CRM, Mask2Former), or a top-level module whose name starts
    with "encoder" (encoder, encoder_rgb, encoder_thermal of the ResNet baselines); a head's nested
    "encoder" (pixel_decoder.encoder) is not a backbone."""
    parts = name.split(".")[:-1]
    return any("backbone" in part for part in parts) or (bool(parts) and parts[0].startswith("encoder"))


def _no_decay_names(model: nn.Module, no_decay: str) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if no_decay == "official":
                exempt = isinstance(module, NORM_TYPES) or any(t in param_name for t in OFFICIAL_NO_DECAY_NAMES)
            else:
                exempt = (isinstance(module, NORM_TYPES) or param.ndim <= 1 or param_name.endswith("bias")
                          or any(token in param_name for token in NO_DECAY_NAMES))
            if exempt:
                names.add(full)
    return names


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float,
                 no_decay: str = "broad") -> list[dict]:
    """Up to four AdamW groups (backbone or not) x (decay or not), each named, empty ones dropped;
    `no_decay` chooses the set without weight decay ("broad" or "official", see the module doc)."""
    if no_decay not in ("broad", "official"):
        raise ConfigError(f"no_decay must be 'broad' or 'official', got {no_decay!r}")
    exempt = _no_decay_names(model, no_decay)
    groups: dict[tuple[bool, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (is_backbone(name), name not in exempt)
        if key not in groups:
            backbone, decay = key
            groups[key] = {"name": f"{'backbone' if backbone else 'head'}{'' if decay else '_no_decay'}",
                           "params": [], "param_names": [],
                           "lr": lr * (backbone_lr_mult if backbone else 1.0),
                           "weight_decay": weight_decay if decay else 0.0}
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float,
                    no_decay: str = "broad") -> torch.optim.AdamW:
    """AdamW over `param_groups`; each group remembers its base lr in 'initial_lr' for the schedule."""
    groups = param_groups(model, lr, weight_decay, backbone_lr_mult, no_decay)
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def poly_factor(iteration: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """(1 - it/total)^power, after a linear warm-up from 1/warmup over the first `warmup` iterations."""
    factor = max(0.0, 1.0 - iteration / total) ** power
    if warmup and iteration < warmup:
        factor *= (iteration + 1) / warmup
    return factor


def schedule_step(iteration: int, iters_per_epoch: int, lr_step: str) -> int:
    """The poly schedule's step at `iteration`: the iteration itself, or with lr_step="epoch" the number of
    epochs completed (the official code calls scheduler.step() at the end of each epoch)."""
    return iteration // iters_per_epoch if lr_step == "epoch" else iteration


def set_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """Set every group's lr for schedule step `step` of `total` (see schedule_step); returns the factor."""
    factor = poly_factor(step, total, power, warmup)
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor
    return factor
