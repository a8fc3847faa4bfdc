"""`import_weights`: one published weight file -> one rgbt-bench checkpoint (`rgbt-bench models import`).

Order of work: check the arguments and the output path (nothing is read when `out` exists without `force`);
read the file without running pickled code (rgbt_bench.checkpoint.read_torch_file); recognise its layout
from its keys and shapes with every importer, so that a file of another model, preset or class count is
named for what it is; map it onto the model's state-dict names and check it strictly against the model
(built on the meta device, so even Swin-B costs no memory); write the checkpoint atomically. A complete
file gives an evaluable checkpoint. An ImageNet backbone file gives an INITIALISATION checkpoint: the
encoders from the file (exactly as `--model-kwarg pretrained=PATH` does), the rest at the initialisation
drawn with `seed`; it is marked "initialisation" and refused for evaluation (rgbt_bench.models.loading) but
can start a training run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ... import __version__
from ...checkpoint import describe_mismatch, file_sha256, read_torch_file, save_checkpoint
from ...errors import CheckpointError, ConfigError
from ...registry import import_target
from ..registry import MODELS, build_model
from .found import Found, Importer


@dataclass(frozen=True)
class Imported:
    """What `import_weights` wrote: the checkpoint path, what the file was found to be and its SHA-256."""

    out: Path
    found: Found
    sha256: str


def importable() -> list[str]:
    """The registered models whose entry names an importer, in registry order."""
    return [name for name, entry in MODELS.items() if entry.importer is not None]


def importer_for(model: str) -> Importer:
    """The importer of registered model `model`; ConfigError when it has none."""
    if model not in importable():
        raise ConfigError(f"model '{model}' has no importer for published weights; expected one of "
                          f"{', '.join(importable())}")
    return import_target(MODELS[model].importer)


def identify(obj: Any) -> Optional[Found]:
    """What a loaded file holds, tried against every importer; None when no known layout fits."""
    for model in importable():
        found = importer_for(model).identify(obj)
        if found is not None:
            return found
    return None


def summarize(obj: Any) -> str:
    """A few words on an unrecognised object, for the error message."""
    if isinstance(obj, dict):
        keys = ", ".join(str(k) for k in list(obj)[:3])
        return f"a dict of {len(obj)} entr{'y' if len(obj) == 1 else 'ies'}, first {keys}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"


def _fill_batch_counters(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    """BatchNorm counters that files from PyTorch < 0.4.1 lack (MFNet-pytorch): zero, as a fresh layer has.
    They only matter for momentum=None, which no model here uses."""
    for key, value in own.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros(value.shape, dtype=value.dtype)


def _check_request(found: Found, src: Path, model: str, preset: str, num_classes: int) -> None:
    """Refuse a file of another model, preset or class count, saying what it is."""
    if found.model != model:
        raise CheckpointError(f"{src} looks like {found.description}, not weights of '{model}'; "
                              f"import it with `rgbt-bench models import {found.model} ...`")
    if found.preset != preset:
        hint = f"; pass --preset {found.preset}" if found.preset else f"; no {model} preset has these sizes"
        raise CheckpointError(f"{src} looks like {found.description}, not {model} {preset}{hint}")
    if not found.backbone_only and found.num_classes != num_classes:
        raise CheckpointError(f"{src} looks like {found.description} for {found.num_classes} classes, not "
                              f"{num_classes}; pass the dataset it was trained on")


def import_weights(model: str, src: str | Path, preset: str, num_classes: int, out: str | Path,
                   class_names: Optional[Sequence[str]] = None, dataset: Optional[str] = None,
                   force: bool = False, seed: int = 0) -> Imported:
    """Turn the published file `src` into the rgbt-bench checkpoint `out` for `model` at `preset` (see the
    module docstring). `class_names` / `dataset` are recorded when given; `seed` draws what an ImageNet
    backbone file leaves at initialisation."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    importer = importer_for(model)
    if preset not in MODELS[model].presets:
        raise ConfigError(f"model '{model}' has no preset '{preset}'; expected one of "
                          f"{', '.join(MODELS[model].presets)}")
    if num_classes < 1 or (class_names is not None and len(class_names) != num_classes):
        raise ConfigError(f"number of classes {num_classes} is invalid; expected >= 1, matching the class names")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to replace it")
    if src.exists() and out.exists() and out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} is the file being imported; choose another path")
    obj = read_torch_file(src, "published weights", importer.expected, plain_pickles=True)
    found = identify(obj)
    if found is None:
        raise CheckpointError(f"{src} holds no known layout ({summarize(obj)}); expected {importer.expected}")
    _check_request(found, src, model, preset, num_classes)
    kwargs = {} if found.convention == "imagenet" else {"input_convention": found.convention}
    if found.backbone_only:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            state = build_model(model, num_classes, preset, pretrained=str(src), **kwargs).state_dict()
    else:
        with torch.device("meta"):  # only names, shapes and dtypes are needed: no memory, no initialisation
            net = build_model(model, num_classes, preset, **kwargs)
        state = _complete_state(net, importer, found, src, f"{model} {preset}")
    sha = file_sha256(src)
    source = {"file": str(src), "sha256": sha, "layout": found.layout, "description": found.description,
              "notes": list(found.notes), "rgbt_bench_version": __version__}
    payload: dict[str, Any] = {
        "model": model, "preset": preset, "num_classes": num_classes, "dataset": dataset,
        "config": {"model_kwargs": kwargs}, "metrics": {}, "input_convention": found.convention,
        "source": source, "state_dict": state}
    if class_names is not None:
        payload["class_names"] = list(class_names)
    if found.backbone_only:
        payload["initialisation"] = {"from": src.name, "sha256": sha, "seed": seed,
                                     "loaded": "the encoders; every other layer is at its seeded initialisation"}
    save_checkpoint(out, payload)
    return Imported(out, found, sha)


def _complete_state(net: torch.nn.Module, importer: Importer, found: Found, src: Path,
                    target: str) -> dict[str, torch.Tensor]:
    """`found` under `net`'s names, order and dtypes, checked strictly against `net` (built on the meta
    device); any key or shape mismatch names the file and the first case."""
    try:
        state = importer.to_model(found, net)
    except CheckpointError as exc:
        raise CheckpointError(f"{src} ({found.description}) {exc}") from None
    own = net.state_dict()
    _fill_batch_counters(own, state)
    mismatch = describe_mismatch(own, state, [k for k in own if k not in state], [k for k in state if k not in own],
                                 given_name="file", own_name=target)
    if mismatch:
        raise CheckpointError(f"{src} looks like {found.description} but does not fit rgbt-bench's {target}: "
                              f"{mismatch}")
    return {k: state[k].to(own[k].dtype).contiguous() for k in own}


__all__ = ["Imported", "importer_for", "identify", "import_weights"]
