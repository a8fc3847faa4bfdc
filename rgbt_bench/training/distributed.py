"""Process-group setup for torchrun (gloo on CPU, nccl on CUDA) and the few collectives training needs.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (or with WORLD_SIZE 1) training runs in one
process and every helper here is a no-op. When another process of the job dies (a node lost, a worker killed),
the collectives here raise PeerLostError, one line, instead of the backend's traceback (gloo: "Connection closed
by peer"); a peer that vanishes without closing its connections is noticed at the process-group timeout.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import ConfigError, RgbtBenchError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_world_size() -> int:
    """The number of processes of the torchrun job this process belongs to (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or "1")


def setup(device_name: str, timeout_s: float = 600.0) -> DistContext:
    """Resolve the device and, under torchrun with several processes, join the process group."""
    world_size = torchrun_world_size()
    device = resolve_device(device_name)
    if world_size <= 1:
        return DistContext(0, 1, 0, device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank, world_size, local_rank, device, owns_group)


class PeerLostError(RgbtBenchError):
    """Another process of the torchrun job died or became unreachable in the middle of a collective."""


# What the backends' errors say when a peer is gone (gloo: "[.../gloo/transport/tcp/pair.cc:537] Read error
# [host]:port: Connection reset by peer. ..."; NCCL: "NCCL error ..." / "ProcessGroupNCCL ... timeout").
_BACKEND_ERROR = re.compile(r"gloo|nccl|ProcessGroup|Connection (?:reset|closed|refused)|Broken pipe", re.IGNORECASE)


def _backend_error(exc: BaseException) -> bool:
    """Whether `exc`, or the exception it was raised from, is a communication backend's error."""
    return any(isinstance(e, dist.DistError) or (isinstance(e, RuntimeError) and _BACKEND_ERROR.search(str(e)))
               for e in (exc, exc.__cause__) if e is not None)


@contextmanager
def peers(what: str, ctx: DistContext, backend_errors_only: bool = False) -> Iterator[None]:
    """Turn the backend's error in a collective (a RuntimeError) into one PeerLostError line naming `what`.

    `backend_errors_only`: for code that also runs a model (a DDP step, whose forward and backward hold the
    gradient all-reduce): convert only errors that come from the communication backend, so that a model's own
    error (a shape mismatch, out of memory) keeps its message.
    """
    if not ctx.enabled:
        yield
        return
    try:
        yield
    except Exception as exc:
        if not (_backend_error(exc) if backend_errors_only else isinstance(exc, RuntimeError)):
            raise
        # gloo: "[.../pair.cc:553] Connection closed by peer [host]:port. This is typically caused by ..."
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip()).split("\n")[0].split(". ")[0] or type(exc).__name__
        raise PeerLostError(f"rank {ctx.rank} of {ctx.world_size} lost the other processes during {what} ({reason}): "
                            f"a node or process of this torchrun job died or the network failed; results already "
                            f"written are kept, rerun to resume (docs/distributed.md)") from None


def teardown(ctx: DistContext) -> None:
    """Leave the process group if `setup` created it (a caller's own group stays up)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...]; [obj] in a single process."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    with peers("all_gather_object", ctx):
        dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so all ranks evaluate one model."""
    if ctx.enabled:
        with peers("broadcast of buffers", ctx):
            for buf in module.buffers():
                dist.broadcast(buf, src=0)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op without torchrun); a lost peer is one PeerLostError line."""
    if ctx.enabled:
        with peers("barrier", ctx):
            dist.barrier()


def all_reduce_flag(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when any rank passed True (e.g. 'my loss is not finite')."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    with peers("all_reduce", ctx):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
