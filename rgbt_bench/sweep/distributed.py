"""Sharding a sweep over torchrun processes without counting any image twice.

Rank r evaluates the images r, r + world, r + 2*world, ... (no DistributedSampler padding, whose duplicates
would be counted; torch DistributedSampler pads with duplicates). Per-image results are gathered to rank 0 and
interleaved back into dataset order, so a sharded sweep writes exactly the arrays one process would.
Every rank must read the same data and weights (`require_same`: on several nodes each reads its own copy of
the files, and a node with other files would write cells mixing two datasets). A user error on any rank is
shared with all ranks, so every process stops with the same message instead of
waiting forever in a collective; a process that dies makes the others stop with PeerLostError, and the cells
rank 0 wrote before stay valid for a rerun with any number of processes. Process-group setup is the training
package's (gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

import numpy as np
import torch.distributed as dist

from ..errors import ConfigError, RgbtBenchError
from ..training.distributed import DistContext, PeerLostError, all_gather_objects, barrier, peers, setup, teardown

T = TypeVar("T")

__all__ = ["DistContext", "PeerLostError", "barrier", "collective", "interleave", "on_main", "setup", "shard_indices",
           "require_same", "teardown"]


def shard_indices(n: int, ctx: DistContext) -> range:
    """The dataset indices this rank evaluates: rank, rank + world, ... (no padding)."""
    return range(ctx.rank, n, ctx.world_size)


def interleave(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Undo the sharding: parts[r] holds images r, r + world, ...; returns them in dataset order."""
    world = len(parts)
    out = np.empty((n, *parts[0].shape[1:]), dtype=parts[0].dtype)
    for rank, part in enumerate(parts):
        expected = len(range(rank, n, world))
        if len(part) != expected:
            raise RuntimeError(f"rank {rank} returned {len(part)} images, expected {expected}")
        out[rank::world] = part
    return out


def _raise_first(errors: list[Optional[RgbtBenchError]]) -> None:
    for err in errors:
        if err is not None:
            raise err


def collective(fn: Callable[[], T], ctx: DistContext) -> list[T]:
    """Run `fn` on every rank; return every rank's result to every rank, or raise the first rank's user error."""
    result: Any = None
    error: Optional[RgbtBenchError] = None
    try:
        result = fn()
    except RgbtBenchError as exc:
        error = exc
    if not ctx.enabled:
        _raise_first([error])
        return [result]
    gathered = all_gather_objects((error, result), ctx)
    _raise_first([e for e, _ in gathered])
    return [r for _, r in gathered]


def require_same(values: dict[str, Any], ctx: DistContext) -> None:
    """ConfigError on every rank when any rank's `values` (what it read: dataset fingerprint, checkpoint hashes)
    differ from rank 0's, naming the rank and the entries that differ."""
    gathered = all_gather_objects(values, ctx)
    for rank, other in enumerate(gathered):
        differ = [key for key in values if other.get(key) != gathered[0].get(key)]
        if differ:
            verb = "differs" if len(differ) == 1 else "differ"
            raise ConfigError(f"rank {rank} read other files than rank 0 ({', '.join(differ)} {verb}); every node "
                              f"must read the same dataset and checkpoints (copy them, or use a shared filesystem)")


def on_main(fn: Callable[[], T], ctx: DistContext) -> T:
    """Run `fn` on rank 0 only and share its result (or its user error) with every rank."""
    result: Any = None
    error: Optional[RgbtBenchError] = None
    if ctx.is_main:
        try:
            result = fn()
        except RgbtBenchError as exc:
            error = exc
    if ctx.enabled:
        box = [(error, result)]
        with peers("broadcast_object_list", ctx):
            dist.broadcast_object_list(box, src=0)
        error, result = box[0]
    _raise_first([error])
    return result
