"""Per-sample random streams, so a corrupted sample depends on (seed, corruption, severity, sample)
and never on the batch it happens to be in.

Each sample gets its own CPU torch.Generator seeded from a SHA-256 of those four values; its random
tensors are drawn on the CPU (identical on every machine) and then moved to the batch's device.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import torch

from ..batch import SampleMeta


def sample_seed(seed: int, corruption: str, severity: int, key: str) -> int:
    """A 63-bit seed from a stable hash (Python's hash() is salted per process, so not usable)."""
    digest = hashlib.sha256(f"{seed}|{corruption}|{severity}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sample_generators(meta: Sequence[SampleMeta], seed: int, corruption: str, severity: int) -> list[torch.Generator]:
    """One seeded CPU generator per sample, in batch order."""
    return [torch.Generator().manual_seed(sample_seed(seed, corruption, severity, m.key)) for m in meta]


def per_sample(gens: Sequence[torch.Generator], draw: Callable[[torch.Generator], torch.Tensor],
               device: torch.device) -> torch.Tensor:
    """Stack `draw(g)` for each sample's generator and move the result to `device`."""
    return torch.stack([draw(g) for g in gens]).to(device)


def uniform(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """[B, *shape] float32 uniform in [0, 1), one stream per sample."""
    return per_sample(gens, lambda g: torch.rand(tuple(shape), generator=g), device)


def normal(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """[B, *shape] float32 standard normal, one stream per sample."""
    return per_sample(gens, lambda g: torch.randn(tuple(shape), generator=g), device)
