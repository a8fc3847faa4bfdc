"""Modality dropout: a whole camera stream is missing (rgb_missing, thermal_missing).

Severity s drops the modality of a sample when its uniform number u (one per sample, stream.Draws, the
same at every severity) is below p = s/5; severity 5 always drops it, which is the missing-modality
evaluation of the CRM paper. Because u does not depend on the severity, the images dropped at severity s
are also dropped at s + 1. The dropped image is replaced by
the fill colour (option `fill`, see fill.py); kept images are copied as they are, sample by sample (a
masked select over the whole batch costs several times more).
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import Batch
from .corruption import Corruption, with_modality
from .fill import FILL_OPTION, fill_value
from .stream import Draws

DROP_PROBABILITY = (0.2, 0.4, 0.6, 0.8, 1.0)


def _dropout(modality: str):
    def apply(batch: Batch, p: dict[str, float], draws: Draws, opts: dict[str, Any]) -> Batch:
        x = getattr(batch, modality)
        dropped = (draws.uniform("drop", ()) < p["drop_probability"]).tolist()
        if not any(dropped):
            return batch
        fill = fill_value(modality, opts["fill"], x)[0].expand(x.shape[1:])
        out = torch.empty_like(x)
        for i, drop in enumerate(dropped):
            out[i].copy_(fill if drop else x[i])
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
