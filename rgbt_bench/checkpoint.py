"""Checkpoints: a plain dict of tensors and JSON-like values, written atomically, read with weights_only.

Layout: {"format": "rgbt-bench/1", "model": registry name or 'module:fn', "preset": str,
"num_classes": int, "class_names": [str], "dataset": spec, "config": {...training config...},
"metrics": {...}, "state_dict": {...}, "optimizer": {...} (optional), "scheduler_step": int (optional),
"iteration": int (optional), "input_convention": "imagenet" | "unit" (rgbt_bench.models.normalize; None
for a user model that does not say)}. Checkpoints written by `rgbt-bench models import` also hold "source"
(the published file's path, SHA-256, layout, description) and, for an ImageNet backbone file,
"initialisation" (a training start only: rgbt_bench.models.published.importer). Checkpoints written by
`train` also hold "ignore_mode" (models with a Mask2Former loss), and in their config: "recipe" and
"recipe_overrides" (rgbt_bench.training.recipes), "select_on" (with metrics["selected_on"],
rgbt_bench.training.selection) and "init" / "init_sha256" (`train --init`).
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
import struct
import zipfile
import zlib
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .errors import CheckpointError, writing
from .safe_pickle import RestrictedUnpickler, config_stubs

FORMAT = "rgbt-bench/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format tag) to `path` atomically: a crash or a full disk never leaves half a
    file, and files written before stay as they were."""
    path = Path(path)
    with writing(f"checkpoint {path}", "files written before are kept", CheckpointError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: _torch_save({"format": FORMAT, **payload}, fh))
    return path


def _torch_save(obj: Any, fh: BinaryIO) -> None:
    """torch.save into an open file, letting an OSError from its writes (a full disk) through.

    When a write fails inside torch.save, torch's zip writer tries to finish the archive on the way out and
    raises RuntimeError ("unexpected pos ...") instead, with the OSError only as its context.
    """
    try:
        torch.save(obj, fh)
    except RuntimeError as exc:
        cause = exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None


def _check_zip_integrity(path: Path, what: str, expected: str) -> None:
    """Refuse a zip-format torch file whose members fail their CRC-32 (bytes flipped on disk or in transit).

    torch.load does not check the CRCs, so a damaged tensor would otherwise load as silently wrong weights.
    A member flagged as a directory (MS-DOS attribute 0x10) is damage too: torch's reader would skip its bytes.
    Legacy (non-zip) torch files have no checksums and are left to torch.load.
    """
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip() or next((i.filename for i in archive.infolist()
                                             if i.is_dir() or i.external_attr & 0x10), None)
    except (zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError, ValueError, OSError, EOFError,
            KeyError) as exc:
        raise CheckpointError(f"{what} {path} is damaged ({exc}); expected {expected}") from exc
    if bad is not None:
        raise CheckpointError(f"{what} {path} is damaged: member '{bad}' fails its CRC-32 or attribute check; "
                              f"expected {expected}")


def _is_plain_pickle(path: Path) -> bool:
    """A pickle that is neither a torch zip archive nor a legacy torch file (which starts by pickling torch's
    magic number), e.g. a Detectron2-converted .pkl."""
    with open(path, "rb") as fh:
        head = fh.read(len(_LEGACY_TORCH_HEAD))
    return head[:1] == b"\x80" and head != _LEGACY_TORCH_HEAD and not zipfile.is_zipfile(path)


_LEGACY_TORCH_HEAD = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]


def _storage_from_bytes(data: bytes) -> Any:
    """A tensor storage that a plain pickle embeds as torch.save bytes, read with weights_only."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _arrays_to_tensors(obj: Any) -> Any:
    """numpy arrays inside (nested) dicts of a plain pickle -> tensors."""
    if isinstance(obj, dict):
        return type(obj)((k, _arrays_to_tensors(v)) for k, v in obj.items())
    return torch.from_numpy(np.array(obj)) if isinstance(obj, np.ndarray) else obj


def _load(path: Path, map_location: str | torch.device, plain_pickles: bool) -> Any:
    if plain_pickles and _is_plain_pickle(path):
        with open(path, "rb") as fh:
            return _arrays_to_tensors(RestrictedUnpickler(fh, _storage_from_bytes).load())
    with _config_stubs():
        return torch.load(path, map_location=map_location, weights_only=True)


def _config_stubs() -> AbstractContextManager:
    """safe_globals naming the config stand-ins (PyTorch >= 2.6); on older versions none, so files that
    pickle a config are refused as holding a non-tensor object."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    return safe_globals(config_stubs()) if safe_globals is not None else nullcontext()


def read_torch_file(path: str | Path, what: str = "checkpoint", expected: str = "a file written by torch.save",
                    map_location: str | torch.device = "cpu", plain_pickles: bool = False) -> Any:
    """Read a torch file without ever running pickled code, mapping every failure to one CheckpointError
    that names `what`, the path and `expected`.

    torch files are read with weights_only=True, pickled detectron2 / yacs configs in them becoming plain
    OrderedDicts; with `plain_pickles`, a plain pickle (a Detectron2-converted .pkl) is read through an
    allow-list of data constructors, numpy arrays becoming tensors (rgbt_bench.safe_pickle). Anything else
    that is not data is refused.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        state = "is a directory" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{what} {path} {state}; expected {expected}")
    _check_zip_integrity(path, what, expected)
    try:
        return _load(path, map_location, plain_pickles)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise CheckpointError(f"{what} {path} was refused: it holds objects other than tensors and plain "
                                  f"values (unsupported global {unsafe.group(1)}); it was not executed") from exc
        raise CheckpointError(f"{what} {path} is not a readable torch file; expected {expected}") from exc
    # malformed pickle streams fail inside the unpickler's stack with any of these
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError, TypeError,
            AttributeError, OverflowError, RecursionError, struct.error) as exc:
        raise CheckpointError(f"{what} {path} is not a readable torch file ({exc}); expected {expected}") from exc


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an rgbt-bench checkpoint with torch.load(weights_only=True): pickled code is never executed."""
    ckpt = read_torch_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict'; expected an rgbt-bench checkpoint or "
                              f"a dict with 'state_dict'")
    return ckpt


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, recorded with results so that a number names the exact weights."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_mismatch(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor], missing: list[str],
                      unexpected: list[str], given_name: str = "checkpoint", own_name: str = "model") -> str:
    """What keeps `given` tensors from fitting a module's `own` state dict, or "" when they fit.

    `missing` and `unexpected` are the key lists the caller decided on; shape differences are found here.
    The first example of each kind is named, with `given_name`/`own_name` labelling the two sides.
    """
    shape = [k for k in own if k in given and tuple(own[k].shape) != tuple(given[k].shape)]
    parts = []
    if shape:
        k = shape[0]
        parts.append(f"{len(shape)} tensors differ in shape (e.g. {k}: {given_name} "
                     f"{tuple(given[k].shape)} vs {own_name} {tuple(own[k].shape)})")
    if missing:
        parts.append(f"{len(missing)} {own_name} tensors missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    return "; ".join(parts)


def load_state_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
                    num_classes: Optional[int] = None) -> None:
    """Load weights strictly, turning shape or key mismatches into one clear CheckpointError."""
    own = model.state_dict()
    mismatch = describe_mismatch(own, state_dict, [k for k in own if k not in state_dict],
                                 [k for k in state_dict if k not in own])
    if mismatch:
        hint = f"; does it have {num_classes} classes and this architecture/preset?" if num_classes else ""
        raise CheckpointError(f"checkpoint {source} does not fit the model: {mismatch}{hint}")
    model.load_state_dict(state_dict, strict=True)
