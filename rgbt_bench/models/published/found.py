"""What a published weight file holds (`Found`) and how one model's files are imported (`Importer`)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from ...errors import CheckpointError


@dataclass(frozen=True)
class Found:
    """A file's content as recognised from its keys and shapes.

    `model` is the rgbt-bench model the weights belong to and `preset` the preset with their sizes (None when
    no preset has them); `num_classes` is None for ImageNet backbones (`backbone_only`), which initialise
    a model's encoders and nothing else. `state` holds the tensors under their official names, the file's
    wrapper and prefixes removed. `convention` is the input convention the weights expect
    (rgbt_bench.models.normalize). `notes` are things the user should know (e.g. a config that was skipped).
    """

    model: str
    preset: Optional[str]
    num_classes: Optional[int]
    layout: str
    description: str
    convention: str
    state: dict[str, torch.Tensor] = field(repr=False)
    backbone_only: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Importer:
    """One model's published layouts: `identify` recognises a loaded file (None: not this model's) and
    `to_model` maps a complete file's official names onto a freshly built model's state-dict names, raising
    CheckpointError with a message fragment ("has tensor 'x' ...") that the caller prefixes with the file."""

    model: str
    expected: str  # the files accepted, for error messages
    identify: Callable[[Any], Optional[Found]]
    to_model: Callable[[Found, nn.Module], dict[str, torch.Tensor]]


Rule = tuple[re.Pattern, str]


def rules(*pairs: tuple[str, str]) -> list[Rule]:
    """(official-name regex, rgbt-bench replacement) pairs, tried in order."""
    return [(re.compile(p), r) for p, r in pairs]


def rename(state: dict[str, torch.Tensor], table: list[Rule]) -> dict[str, torch.Tensor]:
    """Every tensor of `state` under the name the first matching rule gives; a tensor no rule covers is an
    error naming it (the file has a part that rgbt-bench's model does not)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in table:
            if pattern.match(key):
                out[pattern.sub(replacement, key, count=1)] = value
                break
        else:
            raise CheckpointError(f"has tensor '{key}', which no part of rgbt-bench's model corresponds to")
    return out


__all__ = ["Found", "Importer", "rules", "rename"]
