"""`init`: start training from the weights of an rgbt-bench checkpoint (fine-tuning), not from scratch.

Unlike `resume`, nothing but the weights (and the model kwargs they were built with) is taken: optimiser,
schedule, RNG and iteration start afresh. The checkpoint (one written by `train`, or by `models import` from
published weights, including an ImageNet initialisation checkpoint; a bare state dict is accepted too) must
hold the same model and preset with the same class count; a published file that was not imported is named
with the import command to run; keys and shapes are checked strictly and any mismatch is one CheckpointError
naming the file and the first difference. Model kwargs the checkpoint records (e.g. an input convention) are used unless
the run sets them itself; the file's SHA-256 is recorded in the new run's config (`init_sha256`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import file_sha256
from ..errors import CheckpointError
from ..models.loading import BUILD_ONLY_KWARGS, load_weights, read_weights


def read_init(path: str | Path) -> tuple[dict[str, Any], str]:
    """(checkpoint payload, SHA-256) of the --init file; a missing file is a CheckpointError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"--init checkpoint {path} does not exist; expected an rgbt-bench checkpoint "
                              f"(written by train or models import)")
    return read_weights(path), file_sha256(path)


def init_model_kwargs(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The model kwargs the checkpoint's weights were built with, minus build-only ones (`pretrained`)."""
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    kwargs = config.get("model_kwargs") if isinstance(config.get("model_kwargs"), dict) else {}
    return {k: v for k, v in kwargs.items() if k not in BUILD_ONLY_KWARGS}


def load_init_weights(model: nn.Module, ckpt: dict[str, Any], path: str | Path, model_name: str, preset: str,
                      num_classes: int) -> None:
    """Load the weights of checkpoint payload `ckpt` (read from `path`) into `model` strictly."""
    held = (ckpt.get("model"), ckpt.get("preset"))
    if ckpt.get("model") is not None and held != (model_name, preset):
        raise CheckpointError(f"--init checkpoint {path} holds model '{held[0]}' preset '{held[1]}', not "
                              f"'{model_name}' preset '{preset}'; pass --model {held[0]} --preset {held[1]}")
    if ckpt.get("num_classes") not in (None, num_classes):
        raise CheckpointError(f"--init checkpoint {path} was trained for {ckpt['num_classes']} classes, but this "
                              f"dataset has {num_classes}")
    load_weights(model, ckpt, Path(path), num_classes)


__all__ = ["read_init", "init_model_kwargs", "load_init_weights"]
