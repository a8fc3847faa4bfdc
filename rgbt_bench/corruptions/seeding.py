"""Per-sample random streams, so a corrupted sample depends on (seed, corruption, severity, sample)
and never on the batch it happens to be in.

Each sample gets its own CPU torch.Generator seeded from a SHA-256 of those four values; its random
tensors are drawn on the CPU (identical on every machine) and then moved to the batch's device.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
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


PARALLEL_MIN_ELEMENTS = 1 << 16


def for_each_sample(count: int, work: Callable[[int], object], elements: int) -> None:
    """Run work(0) .. work(count - 1), on up to torch.get_num_threads() threads when each is big enough.

    Random draws from a torch.Generator run on one thread however many torch uses, so a batch's per-sample
    draws are spread over threads instead; each sample has its own generator and output slice, so the
    result does not depend on the threading. `elements` is the size of one sample's work. Grad and
    inference mode are per thread in torch, so the caller's are set in each worker.
    """
    workers = min(torch.get_num_threads(), count)
    if workers < 2 or elements < PARALLEL_MIN_ELEMENTS:
        for i in range(count):
            work(i)
        return
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def run(i: int) -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            work(i)
    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(run, i) for i in range(count)]:
            done.result()


def per_sample(gens: Sequence[torch.Generator], draw: Callable[[torch.Generator], torch.Tensor],
               device: torch.device) -> torch.Tensor:
    """Stack `draw(g)` for each sample's generator and move the result to `device`."""
    return torch.stack([draw(g) for g in gens]).to(device)


def _filled(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device, normal: bool) -> torch.Tensor:
    out = torch.empty((len(gens), *shape))
    numel = out[0].numel() if len(gens) else 0

    def draw(i: int) -> None:
        if normal:
            out[i].normal_(generator=gens[i])
        else:
            out[i].uniform_(generator=gens[i])
    for_each_sample(len(gens), draw, numel)
    return out.to(device)


def uniform(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """[B, *shape] float32 uniform in [0, 1), one stream per sample (the numbers of torch.rand)."""
    return _filled(gens, shape, device, normal=False)


def normal(gens: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """[B, *shape] float32 standard normal, one stream per sample (the numbers of torch.randn)."""
    return _filled(gens, shape, device, normal=True)
