"""User-facing errors: the CLI prints their message as one line and exits with code 2."""


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
