"""Calls into a user's model code ('package.module:build_fn' models): their exceptions become one line.

A user model can fail in its module body (a SyntaxError, a raising import), in its builder (a signature that
does not take ``num_classes``, a raising body) or in its forward or loss. Any of these, and any exception
that is not already a user error (RgbtBenchError) or an interrupt, becomes one ConfigError naming the model,
what was called, the exception and the line of the user's file it came from, e.g.::

    model 'umod:build': forward raised ValueError: bad input (umod.py:12)
"""
from __future__ import annotations

import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..errors import ConfigError, RgbtBenchError

_INTERNAL = (str(Path(__file__).resolve().parents[1]), str(Path(torch.__file__).resolve().parent))


def is_user_spec(spec: str) -> bool:
    """Whether `spec` names a model by 'module:fn' (user code) rather than by a registered name."""
    return ":" in spec


def origin(exc: BaseException) -> str:
    """' (umod.py:12)': the innermost frame of `exc` outside rgbt-bench, torch and Python's import machinery
    ('' when there is none, e.g. a SyntaxError, whose message already names its file and line)."""
    if isinstance(exc, SyntaxError):
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_INTERNAL) and not f.filename.startswith("<")]
    if not frames:
        return ""
    return f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"


def describe(exc: BaseException) -> str:
    """'ValueError: bad input (umod.py:12)'."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}{': ' + text[0] if text else ''}{origin(exc)}"


@contextmanager
def user_code(spec: str, what: str) -> Iterator[None]:
    """Run a call into model `spec`'s code (`what`: 'forward', 'loss', ...); for a user spec, an exception
    other than a user error becomes one ConfigError. Registered models' exceptions pass through unchanged."""
    if not is_user_spec(spec):
        yield
        return
    try:
        yield
    except RgbtBenchError:
        raise
    except Exception as exc:
        raise ConfigError(f"model '{spec}': {what} raised {describe(exc)}") from exc
