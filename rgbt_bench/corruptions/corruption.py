"""The `Corruption` type: a named, seeded, batched image corruption with a severity table and options.

A corruption acts on a `Batch` in physical space (rgb [B,3,H,W], thermal [B,1,H,W], float32 in [0,1])
and returns a Batch whose images are in [0,1]; labels, metadata and untouched images are shared. Each
`apply` keeps the range itself (clamping its own fresh output in place, or only copying input pixels and
fill colours), so no extra pass over the batch is made here.
Severity 0 is the clean batch; severities 1..5 index the parameter table `params`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..batch import Batch
from ..errors import ConfigError
from .stream import Draws

SEVERITIES = (1, 2, 3, 4, 5)
# Bumped whenever a corruption gives other pixels for the same inputs; sweep cells record it, so cells of
# another version are never reused (2: counter-based draws shared across severities, docs/corruptions.md).
CORRUPTION_VERSION = 2
MODALITIES = ("rgb", "thermal", "both")

ApplyFn = Callable[[Batch, dict[str, float], Draws, dict[str, Any]], Batch]


@dataclass(frozen=True)
class Option:
    """One user-settable option of a corruption: its default, meaning and allowed values."""

    default: Any
    help: str
    choices: Optional[tuple[Any, ...]] = None
    kind: type = str
    minimum: Optional[float] = None
    maximum: Optional[float] = None

    def validate(self, where: str, value: Any) -> Any:
        """Return `value` checked against this option; ConfigError naming `where` otherwise."""
        if self.choices is not None:
            if value not in self.choices:
                allowed = ", ".join(str(c) for c in self.choices)
                raise ConfigError(f"{where}={value!r} is invalid; expected one of {allowed}")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}={value!r} is invalid; expected an integer")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}={value!r} is invalid; expected a number")
            value = float(value)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{where}={value!r} is too small; expected at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{where}={value!r} is too large; expected at most {self.maximum}")
        return value


def with_modality(batch: Batch, modality: str, x: torch.Tensor) -> Batch:
    """A copy of `batch` whose `modality` ("rgb" or "thermal") images are replaced by `x`."""
    return batch.with_images(x, batch.thermal) if modality == "rgb" else batch.with_images(batch.rgb, x)


def check_severity(name: str, severity: Any) -> int:
    """Severity must be an integer 0..5 (0 = clean)."""
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 5:
        raise ConfigError(f"severity {severity!r} for corruption '{name}' is out of range; expected an integer 0..5")
    return severity


@dataclass(frozen=True)
class Corruption:
    """A named corruption.

    `params` maps each parameter name to its five values for severities 1..5 (the documented table);
    `options` are the settings a user may change (e.g. the fill value of a dropped modality);
    `apply(batch, params_at_severity, draws, options)` does the batched work and returns images in [0,1]. Its
    random numbers come from `draws` (stream.Draws: a function of seed, corruption, image and element, never of
    the severity), and the severity only sets thresholds and scales, so severities share their random numbers:
    what a mask hides at severity s it also hides at s + 1, and a noise field is the same at every severity.
    `randomized` is False for deterministic corruptions.
    """

    name: str
    modality: str
    description: str
    params: dict[str, tuple[float, ...]]
    apply: ApplyFn = field(repr=False)
    options: dict[str, Option] = field(default_factory=dict)
    randomized: bool = True

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"corruption '{self.name}': modality must be one of {MODALITIES}")
        for key, values in self.params.items():
            if len(values) != len(SEVERITIES):
                raise ValueError(f"corruption '{self.name}': parameter '{key}' needs {len(SEVERITIES)} values")

    def severity_params(self, severity: int) -> dict[str, float]:
        """The parameter values at `severity` (1..5)."""
        check_severity(self.name, severity)
        if severity == 0:
            raise ConfigError(f"corruption '{self.name}' has no parameters at severity 0 (the clean image)")
        return {key: values[severity - 1] for key, values in self.params.items()}

    def resolve_options(self, **options: Any) -> dict[str, Any]:
        """All options with defaults filled in, each validated; unknown names are a ConfigError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) if self.options else "none"
            raise ConfigError(f"corruption '{self.name}' has no option '{unknown[0]}'; its options are: {known}")
        resolved = {}
        for key, spec in self.options.items():
            value = options.get(key, spec.default)
            resolved[key] = spec.validate(f"corruption '{self.name}' option {key}", value)
        return resolved

    def settings(self, severity: int, **options: Any) -> dict[str, Any]:
        """What a result should record about this corruption at `severity`: parameters and options."""
        params = {} if check_severity(self.name, severity) == 0 else self.severity_params(severity)
        return {"corruption": self.name, "modality": self.modality, "severity": severity,
                "params": params, "options": self.resolve_options(**options)}

    def summary(self) -> str:
        """One line per parameter, e.g. 'sigma: 0.01 0.02 0.04 0.06 0.08' (severities 1..5)."""
        return "\n".join(f"{key}: " + " ".join(f"{v:g}" for v in values) for key, values in self.params.items())

    def __call__(self, batch: Batch, severity: int, seed: int, **options: Any) -> Batch:
        """Corrupt `batch` at `severity` with random numbers derived from (seed, corruption, image)."""
        check_severity(self.name, severity)
        resolved = self.resolve_options(**options)
        if severity == 0:
            return batch
        if len(batch.meta) != len(batch):
            raise ConfigError(
                f"corruption '{self.name}': batch has {len(batch.meta)} SampleMeta for {len(batch)} samples; "
                "one per sample is needed to seed it")
        draws = Draws(batch.meta, seed, self.name, batch.rgb.device)
        return self.apply(batch, self.severity_params(severity), draws, resolved)
