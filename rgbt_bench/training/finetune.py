"""`init`: start training from the weights of an rgbt-bench checkpoint (fine-tuning), not from scratch.

Unlike `resume`, nothing but the weights is taken: optimiser, schedule, RNG and iteration start afresh.
The checkpoint (one written by `train`, or by `models import` from published weights; a bare state dict is
accepted too) must hold the same model and preset with the same class count; keys and shapes are checked
strictly and any mismatch is one CheckpointError naming the file and the first difference. The file's
SHA-256 is recorded in the new run's config (`init_sha256`).
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..checkpoint import file_sha256, load_state_into
from ..errors import CheckpointError
from ..models.loading import read_weights


def load_init_weights(model: nn.Module, path: str | Path, model_name: str, preset: str, num_classes: int) -> str:
    """Load the weights of checkpoint `path` into `model` strictly; returns the file's SHA-256."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"--init checkpoint {path} does not exist; expected an rgbt-bench checkpoint "
                              f"(written by train or models import)")
    ckpt = read_weights(path)
    held = (ckpt.get("model"), ckpt.get("preset"))
    if ckpt.get("model") is not None and held != (model_name, preset):
        raise CheckpointError(f"--init checkpoint {path} holds model '{held[0]}' preset '{held[1]}', not "
                              f"'{model_name}' preset '{preset}'; pass --model {held[0]} --preset {held[1]}")
    if ckpt.get("num_classes") not in (None, num_classes):
        raise CheckpointError(f"--init checkpoint {path} was trained for {ckpt['num_classes']} classes, but this "
                              f"dataset has {num_classes}")
    load_state_into(model, ckpt["state_dict"], f"{path} (--init)", num_classes)
    return file_sha256(path)


__all__ = ["load_init_weights"]
