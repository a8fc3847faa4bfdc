"""User-facing errors: the CLI prints their message as one line and exits with code 2."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class RgbtBenchError(Exception):
    """An error the user can fix (bad path, bad flag, wrong class count, ...).

    The message must name the offending file or value and say what was expected.
    """


class DataError(RgbtBenchError):
    """A dataset file is missing, unreadable or inconsistent."""


class ConfigError(RgbtBenchError):
    """A flag, suite file or model spec is invalid."""


class CheckpointError(RgbtBenchError):
    """A checkpoint is missing, tampered with or does not fit the model/dataset."""


@contextmanager
def writing(what: str, then: str = "choose a writable --out",
            error: type[RgbtBenchError] = ConfigError) -> Iterator[None]:
    """Turn an OSError raised while writing `what` (full disk, read-only mount, no permission) into one
    user error: "cannot write <what> (<reason>); <then>"."""
    try:
        yield
    except OSError as exc:
        raise error(f"cannot write {what} ({exc.strerror or exc}); {then}") from None
