"""Modality dropout: a whole camera stream is missing (rgb_missing, thermal_missing).

Severity s drops the modality of each sample with probability p = s/5, decided by one uniform draw
from the sample's own generator (so the decision does not depend on the batch); severity 5 always
drops it, which is the missing-modality evaluation of the CRM paper. The dropped image is replaced by
the fill colour (option `fill`, see fill.py).
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import Batch
from .corruption import Corruption, with_modality
from .fill import FILL_OPTION, fill_where
from .seeding import uniform

DROP_PROBABILITY = (0.2, 0.4, 0.6, 0.8, 1.0)


def _dropout(modality: str):
    def apply(batch: Batch, p: dict[str, float], gens: list[torch.Generator], opts: dict[str, Any]) -> Batch:
        x = getattr(batch, modality)
        dropped = uniform(gens, (), x.device) < p["drop_probability"]
        out = fill_where(x, dropped.view(-1, 1, 1, 1), modality, opts["fill"])
        return with_modality(batch, modality, out)
    return apply


CORRUPTIONS = (
    Corruption(
        name="rgb_missing", modality="rgb",
        description="RGB camera missing: whole image filled; severity = probability a sample loses it",
        params={"drop_probability": DROP_PROBABILITY}, apply=_dropout("rgb"), options={"fill": FILL_OPTION}),
    Corruption(
        name="thermal_missing", modality="thermal",
        description="Thermal camera missing: whole image filled; severity = probability a sample loses it",
        params={"drop_probability": DROP_PROBABILITY}, apply=_dropout("thermal"), options={"fill": FILL_OPTION}),
)
