"""File reading shared by the real dataset loaders (MFNet, PST900, KP): split files, image decoding with
strict format checks, and conversion to the tensor conventions of rgbt_bench.batch.

Every failure raises FileError (a DataError) whose one-line message starts with the offending path.
Images are decoded eagerly with PIL's .load(), and truncated files are never tolerated
(PIL.ImageFile.LOAD_TRUNCATED_IMAGES is left off), so a damaged file fails here, not later.

A palette (PIL mode P) image is read as the colours it shows, grey when every colour is grey, since its indices
are not intensities: PNG optimisers and Image.quantize store an image of few colours as a palette in any order.
A label file is the exception: its palette indices are the class ids (the PASCAL VOC / Cityscapes convention).
"""
from __future__ import annotations

import struct
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

# PIL mode -> (channels, bits per channel) for the modes the datasets can contain.
MODES: dict[str, tuple[int, int]] = {
    "1": (1, 1), "L": (1, 8), "P": (1, 8), "LA": (2, 8), "PA": (2, 8), "RGB": (3, 8), "YCbCr": (3, 8),
    "RGBA": (4, 8), "RGBX": (4, 8), "CMYK": (4, 8), "I;16": (1, 16), "I;16B": (1, 16), "I;16L": (1, 16),
    "I": (1, 32), "F": (1, 32),
}
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
                 Image.DecompressionBombError)


class FileError(DataError):
    """A DataError about one file; `path` names it and `reason` says what is wrong with it."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self):
        """Rebuild from (path, reason), so that the error crosses from a `run --jobs N` worker process intact."""
        return type(self), (self.path, self.reason)


def require_dir(path: Path, what: str) -> Path:
    """Return `path` if it is a directory, else raise FileError saying what was expected there."""
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "not found"
        raise FileError(path, f"{what} {state}")
    return path


def read_split_file(path: Path) -> list[str]:
    """Names listed in a split file, one per line, blank lines skipped, a UTF-8 byte-order mark ignored;
    at least one name required, and none listed twice (it would count that image twice)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileError(path, "split file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(path, f"cannot read split file ({exc})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise FileError(path, "split file lists no images")
    check_unique(names, path)
    return names


def check_unique(names: list[str], path: Path) -> None:
    """FileError naming the first name that `path` (a split file) lists twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FileError(path, f"lists image '{name}' twice; expected each image once (it would be counted "
                                  "twice)")
        seen.add(name)


def header_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding its pixels; FileError when unreadable."""
    with _image_errors(path, "cannot read image header"), Image.open(path) as image:
        width, height = image.size
    return height, width


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image file; missing, unreadable or truncated files raise FileError."""
    with _image_errors(path, "cannot decode image"), open(path, "rb") as f:
        image = Image.open(f)
        image.load()
    return image


@contextmanager
def _image_errors(path: Path, failure: str) -> Iterator[None]:
    """Turn PIL's errors on `path` into FileError: missing, not an image, or `failure` (with the reason)."""
    try:
        yield
    except FileNotFoundError:
        raise FileError(path, "file not found") from None
    except UnidentifiedImageError:
        raise FileError(path, "not a readable image file") from None
    except DECODE_ERRORS as exc:
        raise FileError(path, f"{failure} ({exc})") from None


def read_image(path: Path, channels: Iterable[int], bits: int, what: str, ids: bool = False) -> np.ndarray:
    """Decode `path` into a uint8/uint16 array [H,W] (one channel) or [H,W,C].

    `channels`: the channel counts accepted; `bits`: the required bit depth (8 or 16); `what` names the
    image in error messages (e.g. "MFNet image (RGB + thermal)"); `ids`: the file holds class ids (a label),
    so a palette image's indices are kept (otherwise it is decoded through its palette: module docstring).
    """
    accepted = tuple(channels)
    image = open_image(path)
    mode = image.mode
    if mode in ("P", "PA") and not ids:
        image = palette_colours(image)
        mode = f"{mode}, colours {image.mode}"
    found_channels, found_bits = MODES.get(image.mode, (len(image.getbands()), 0))
    if image.mode == "I" and bits == 16 and is_16bit(np.array(image)):
        found_bits = 16  # older Pillow versions decode 16-bit grey PNGs as 32-bit "I"
    if found_channels not in accepted:
        expected = " or ".join(str(c) for c in accepted)
        raise FileError(path, f"{what} has {found_channels} channel(s) (PIL mode {mode}); expected {expected}")
    if found_bits != bits:
        raise FileError(path, f"{what} is {found_bits or 'an unsupported'}-bit (PIL mode {mode}); "
                              f"expected {bits}-bit")
    array = np.array(image)
    return array.astype(np.uint16 if bits == 16 else np.uint8, copy=False)


def palette_colours(image: Image.Image) -> Image.Image:
    """A palette image as the colours it shows: "L" when every colour is grey, else "RGB" ("RGBA" when the
    palette has transparency, as an RGBA image stored as a palette does)."""
    if image.mode == "PA" or "transparency" in image.info:
        return image.convert("RGBA")
    rgb = np.asarray(image.convert("RGB"))
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return Image.fromarray(np.ascontiguousarray(rgb[..., 0]), "L")
    return Image.fromarray(rgb, "RGB")


def is_16bit(array: np.ndarray) -> bool:
    """Whether every value of an integer array fits 16 unsigned bits."""
    return array.size == 0 or (int(array.min()) >= 0 and int(array.max()) <= 0xFFFF)


def check_sizes(images: dict[Path, np.ndarray]) -> None:
    """Raise FileError naming the first file whose height x width differs from the first file's."""
    (first_path, first), *rest = images.items()
    for path, array in rest:
        if array.shape[:2] != first.shape[:2]:
            raise FileError(path, f"size {array.shape[0]}x{array.shape[1]} differs from "
                                  f"{first.shape[0]}x{first.shape[1]} of {first_path}")


def image_tensor(array: np.ndarray, scale: float) -> torch.Tensor:
    """uint array [H,W] or [H,W,C] -> float32 [C,H,W] divided by `scale`."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.float().div_(scale).contiguous()


def label_tensor(array: np.ndarray) -> torch.Tensor:
    """uint array [H,W] of class ids -> int64 [H,W]."""
    return torch.from_numpy(array.astype(np.int64))
