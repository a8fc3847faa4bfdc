"""AdamW parameter groups and the poly learning-rate schedule of the CRM recipe
(CRM_RGBTSeg; Mask2Former's build_optimizer).

Groups are found by name and module type, as Mask2Former/detectron2 do:
- backbone (see is_backbone): lr x backbone_lr_mult;
- no weight decay: parameters of normalisation layers (BatchNorm/InstanceNorm/LayerNorm/GroupNorm) and
  embeddings, every bias and every other 1-d parameter, position tables (relative_position_bias_table,
  absolute_pos_embed, pos_embed, level_embed) and mask tokens (mask_token), query tables (query_embed, query_feat).
"""
from __future__ import annotations

import torch
from torch import nn

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.Embedding)
NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "pos_embed", "level_embed",
                  "mask_token", "query_embed", "query_feat")


def is_backbone(name: str) -> bool:
    """A dotted component containing "backbone" (CRM, Mask2Former), or a top-level module whose name starts
    with "encoder" (encoder, encoder_rgb, encoder_thermal of the ResNet baselines); a head's nested
    "encoder" (pixel_decoder.encoder) is not a backbone."""
    parts = name.split(".")[:-1]
    return any("backbone" in part for part in parts) or (bool(parts) and parts[0].startswith("encoder"))


def _no_decay_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if (isinstance(module, NORM_TYPES) or param.ndim <= 1 or param_name.endswith("bias")
                    or any(token in param_name for token in NO_DECAY_NAMES)):
                names.add(full)
    return names


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float) -> list[dict]:
    """Up to four AdamW groups (backbone or not) x (decay or not), each named, empty ones dropped."""
    no_decay = _no_decay_names(model)
    groups: dict[tuple[bool, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (is_backbone(name), name not in no_decay)
        if key not in groups:
            backbone, decay = key
            groups[key] = {"name": f"{'backbone' if backbone else 'head'}{'' if decay else '_no_decay'}",
                           "params": [], "param_names": [],
                           "lr": lr * (backbone_lr_mult if backbone else 1.0),
                           "weight_decay": weight_decay if decay else 0.0}
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float) -> torch.optim.AdamW:
    """AdamW over `param_groups`; each group remembers its base lr in 'initial_lr' for the schedule."""
    groups = param_groups(model, lr, weight_decay, backbone_lr_mult)
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def poly_factor(iteration: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """(1 - it/total)^power, after a linear warm-up from 1/warmup over the first `warmup` iterations."""
    factor = max(0.0, 1.0 - iteration / total) ** power
    if warmup and iteration < warmup:
        factor *= (iteration + 1) / warmup
    return factor


def set_lr(optimizer: torch.optim.Optimizer, iteration: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """Set every group's lr for `iteration` (stepped per iteration, not per epoch); returns the factor."""
    factor = poly_factor(iteration, total, power, warmup)
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor
    return factor
