"""Build a model and fill it with weights: from an rgbt-bench checkpoint, a bare state dict, or nothing.

`load_model` is for callers that know the model they want (train --resume, sweep with --model and
--checkpoint): a checkpoint that holds another architecture, preset or class count is refused with one
clear CheckpointError. `model_from_checkpoint` rebuilds whatever a checkpoint holds. Files are read with
torch.load(weights_only=True) (rgbt_bench.checkpoint), so a tampered file never runs code. Models are
returned as built (nn.Module's default train mode); callers choose train() or eval().

An INITIALISATION checkpoint (`rgbt-bench models import` of an ImageNet backbone: encoders loaded, the rest
random) is refused unless the caller passes allow_initialisation=True (a training start, never an
evaluation). A published file that was not imported (an official CRM .ckpt, an RTFNet .pth, ...) is named
for what it is, with the import command to run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..checkpoint import load_checkpoint, load_state_into, read_torch_file
from ..errors import CheckpointError
from .registry import build_model

# Model kwargs that only matter when building from scratch; a checkpoint's weights replace their effect.
BUILD_ONLY_KWARGS = ("pretrained",)


def _bare_state_dict(path: Path) -> Optional[dict[str, torch.Tensor]]:
    """The file as a plain {name: tensor} state dict (a 'module.' prefix from DDP removed), else None."""
    try:
        state = read_torch_file(path)
    except CheckpointError:
        return None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return None
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_weights(path: str | Path) -> dict[str, Any]:
    """An rgbt-bench checkpoint dict, or {"state_dict": ...} for a bare state-dict file."""
    path = Path(path).expanduser()
    try:
        return load_checkpoint(path)
    except CheckpointError:
        bare = _bare_state_dict(path) if path.is_file() else None
        if bare is None:
            raise
        return {"state_dict": bare}


def build_kwargs(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The model kwargs a checkpoint records (config["model_kwargs"]), minus build-only ones."""
    config = ckpt.get("config") or {}
    kwargs = dict(config.get("model_kwargs") or {}) if isinstance(config, dict) else {}
    return {k: v for k, v in kwargs.items() if k not in BUILD_ONLY_KWARGS}


def _refuse_initialisation(ckpt: dict[str, Any], path: Path, allow: bool) -> None:
    init = ckpt.get("initialisation")
    if init and not allow:
        raise CheckpointError(f"checkpoint {path} is an initialisation checkpoint (encoders from {init.get('from')}, "
                              f"every other layer random): evaluating it would score a random head; fine-tune it "
                              f"first (rgbt-bench train --init {path})")


def load_weights(model: nn.Module, ckpt: dict[str, Any], path: Path, num_classes: int) -> None:
    """load_state_into, naming a published file that was not imported and the command that imports it."""
    try:
        load_state_into(model, ckpt["state_dict"], str(path), num_classes)
    except CheckpointError:
        if "format" in ckpt:
            raise
        from .published.importer import identify
        found = identify(ckpt["state_dict"])
        if found is None:
            raise
        raise CheckpointError(f"checkpoint {path} is a published file ({found.description}), not an rgbt-bench "
                              f"checkpoint; convert it first: rgbt-bench models import {found.model} {path} "
                              f"--preset {found.preset or 'PRESET'} --num-classes {found.num_classes or 'N'} "
                              f"--out OUT.pt") from None


def _check_fits(ckpt: dict[str, Any], path: Path, spec: str, num_classes: int, preset: str) -> None:
    """Refuse a checkpoint made for another model, preset or class count, saying which."""
    held = ckpt.get("model")
    if held is not None and held != spec:
        raise CheckpointError(f"checkpoint {path} holds model '{held}' (preset '{ckpt.get('preset')}'), "
                              f"not '{spec}'; pass --model {held} or another checkpoint")
    if held is not None and ckpt.get("preset") not in (None, preset):
        raise CheckpointError(f"checkpoint {path} holds preset '{ckpt['preset']}' of '{spec}', not '{preset}'")
    if ckpt.get("num_classes") not in (None, num_classes):
        raise CheckpointError(f"checkpoint {path} was trained for {ckpt['num_classes']} classes, "
                              f"but {num_classes} are expected here (wrong dataset?)")


def load_model(spec: str, num_classes: int, preset: str = "tiny", checkpoint: Optional[str | Path] = None,
               device: str | torch.device = "cpu", allow_initialisation: bool = False,
               **model_kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Build `spec` (registry name or 'module:fn') and load `checkpoint` into it if given.

    The checkpoint's recorded model kwargs (config["model_kwargs"], minus build-only ones such as
    `pretrained`) are used, overridden by `model_kwargs`. A bare state-dict file is loaded strictly into the
    model built from the arguments.

    Args:
        spec: a registered model or a user model 'package.module:build_fn' (as for build_model).
        num_classes: classes the checkpoint was trained for.
        preset: the size preset the checkpoint was trained at.
        checkpoint: an rgbt-bench checkpoint (`train`, `models import`) or a bare state dict; None builds
            the model with fresh weights.
        device: where the model is moved.
        allow_initialisation: accept an initialisation checkpoint (a training start; see module docstring).
        **model_kwargs: builder options that override the checkpoint's recorded ones.

    Returns:
        (model on `device` in train mode, the checkpoint's payload: {} without a checkpoint).

    Raises:
        CheckpointError: an unreadable file, one of another model, preset or class count, a published file
            that was not imported, or an initialisation checkpoint without `allow_initialisation`.

    Example:
        >>> import torch
        >>> torch.save(build_model("mfnet", num_classes=9).state_dict(), "mfnet.pt")
        >>> model, payload = load_model("mfnet", 9, checkpoint="mfnet.pt")
        >>> type(model).__name__, list(payload)
        ('MFNet', ['state_dict'])
        >>> load_model("mfnet", 5, checkpoint="mfnet.pt")
        Traceback (most recent call last):
        ...
        rgbt_bench.errors.CheckpointError: checkpoint mfnet.pt does not fit the model: ... does it have 5 classes
        and this architecture/preset?
    """
    if checkpoint is None:
        return build_model(spec, num_classes, preset, **model_kwargs).to(device), {}
    path = Path(checkpoint).expanduser()
    ckpt = read_weights(path)
    _refuse_initialisation(ckpt, path, allow_initialisation)
    _check_fits(ckpt, path, spec, num_classes, preset)
    kwargs = {**build_kwargs(ckpt), **{k: v for k, v in model_kwargs.items() if k not in BUILD_ONLY_KWARGS}}
    model = build_model(spec, num_classes, preset, **kwargs)
    load_weights(model, ckpt, path, num_classes)
    return model.to(device), ckpt


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                          allow_initialisation: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model an rgbt-bench checkpoint records (model, preset, num_classes, model kwargs)."""
    path = Path(path).expanduser()
    ckpt = load_checkpoint(path)
    _refuse_initialisation(ckpt, path, allow_initialisation)
    missing = [k for k in ("model", "preset", "num_classes") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} does not record {', '.join(missing)}; expected an rgbt-bench "
                              f"checkpoint (for a bare state dict pass --model, --preset and the dataset)")
    model = build_model(ckpt["model"], int(ckpt["num_classes"]), ckpt["preset"], **build_kwargs(ckpt))
    load_state_into(model, ckpt["state_dict"], str(path), int(ckpt["num_classes"]))
    return model.to(device), ckpt
