"""The training objective as one nn.Module, so DDP wraps it and gradient sync covers `model.loss` too.

A model with ``loss(rgb, thermal, label, ignore_index) -> dict`` (key "loss" = total, other keys = its
terms) trains on that; any other model trains on cross-entropy of its logits with the ignore index.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


class TrainingObjective(nn.Module):
    """forward(rgb, thermal, label) -> {"loss": total, <term>: value, ...}."""

    def __init__(self, model: nn.Module, ignore_index: int):
        super().__init__()
        self.model = model
        self.ignore_index = ignore_index

    @property
    def uses_model_loss(self) -> bool:
        return callable(getattr(self.model, "loss", None))

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.uses_model_loss:
            terms = self.model.loss(rgb, thermal, label, self.ignore_index)
            if not isinstance(terms, dict) or "loss" not in terms:
                raise ConfigError(f"{type(self.model).__name__}.loss() must return a dict with a 'loss' key, "
                                  f"got {type(terms).__name__}")
            return terms
        logits = self.model(rgb, thermal)
        total = F.cross_entropy(logits.float(), label, ignore_index=self.ignore_index, reduction="sum")
        valid = (label != self.ignore_index).sum().clamp(min=1)
        return {"loss": total / valid}
