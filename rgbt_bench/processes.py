"""Worker processes of `rgbt-bench run` and `rgbt-bench sweep --jobs`: how many, started how, and how their
failures are reported.

On CPU the main job (and a sweep, rgbt_bench.sweep.local) runs one single-threaded process per core (tiny
models use intra-op threads poorly, and oversubscribed OpenMP threads stall), on CUDA one process. Workers
are fresh interpreters (spawn: forking a process that has run OpenMP code can hang the child) that end when
the main process dies, even by kill -9, so no orphan keeps training or holds a sweep's lock while a rerun
resumes. Every file the workers write is written atomically, so ending them at any point loses no finished
result. Workers keep freed memory for their next batch (rgbt_bench.allocator) and skip the interpreter's
teardown when the pool ends them (`exit_quickly`).
"""
from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import signal
import socket
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Optional, Sequence

import torch

from .allocator import keep_freed_memory
from .console import PrefixedStream
from .device import resolve_device
from .errors import RgbtBenchError

PR_SET_PDEATHSIG = 1  # linux/prctl.h
DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def plan_processes(jobs: Optional[int], device: str, tasks: int) -> tuple[int, int]:
    """(parallel processes, torch threads each) for `tasks` independent pieces of work: `jobs` if given,
    else one process per CPU core on CPU and one on CUDA; never more processes than tasks."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs is None:
        jobs = 1 if resolve_device(device).type == "cuda" else cpus
    jobs = max(1, min(jobs, tasks))
    return jobs, max(1, cpus // jobs)


def in_process(env: dict[str, str], threads: int, fn: Callable[..., Any], *args: Any, label: str = "") -> Any:
    """Run fn(*args) in a worker process with `env` as its torch.distributed variables and `threads` threads;
    with a `label`, every line the worker writes to stderr starts with "[label] " (console.PrefixedStream)."""
    for name in DIST_ENV:
        os.environ.pop(name, None)
    os.environ.update(env)
    torch.set_num_threads(threads)
    if isinstance(sys.stderr, PrefixedStream):  # a pool worker runs several tasks: one prefix, this task's
        sys.stderr = sys.stderr.stream
    if label:
        sys.stderr = PrefixedStream(sys.stderr, f"[{label}] ")
    return fn(*args)


def exit_quickly() -> None:
    """End this worker now, skipping the rest of the interpreter's teardown.

    Registered at exit in each worker: the pool ends a worker after its last task, multiprocessing has by then
    flushed the standard streams and run its own exit handlers, and tearing down an interpreter that imported
    torch took another ~0.7 s (1.3 s for a sweep worker, measured 2026-12-01) that the main process waited for.
    Nothing is lost: results travel back before that, and every file a worker writes is written atomically."""
    os._exit(0)


def init_worker(parent: int) -> None:
    """Worker initializer: on Linux, end this worker when the main process dies (even by kill -9); end it
    without the interpreter's teardown when the pool ends it (`exit_quickly`); keep freed memory."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
    atexit.register(exit_quickly)
    keep_freed_memory()


def pool(workers: int) -> ProcessPoolExecutor:
    """`workers` fresh worker interpreters that die with this process."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(os.getpid(),))


def results(futures: list[Future], what: str) -> list[Any]:
    """Each worker's result in order; a worker that died (killed, out of memory) is one clear error."""
    try:
        return [f.result() for f in futures]
    except BrokenProcessPool:
        raise RgbtBenchError(f"a {what} worker process died unexpectedly (killed or out of memory?); what it "
                             f"finished is kept, rerun the same command to resume") from None


def free_port() -> int:
    """A TCP port free on this machine now, for a local torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def map_in_processes(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int, threads: int, what: str,
                     label: Optional[Callable[[Any], str]] = None) -> list[Any]:
    """fn(item) for every item, in this process when `jobs` is 1, else over `jobs` worker processes, whose
    stderr lines start with "[label(item)] " when `label` is given (parallel outputs interleave)."""
    if jobs == 1:
        return [fn(item) for item in items]
    with pool(jobs) as workers:
        return results([workers.submit(in_process, {}, threads, fn, item, label=label(item) if label else "")
                        for item in items], what)


def run_distributed(fn: Callable[[Any], Any], arg: Any, jobs: int, threads: int, what: str) -> None:
    """fn(arg) in this process when `jobs` is 1, else on `jobs` local torch.distributed ranks (torchrun's
    environment variables, a free port on 127.0.0.1), one worker process each."""
    if jobs == 1:
        fn(arg)
        return
    env = {"WORLD_SIZE": str(jobs), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    with pool(jobs) as workers:
        results([workers.submit(in_process, {**env, "RANK": str(r), "LOCAL_RANK": str(r)}, threads, fn, arg)
                 for r in range(jobs)], what)
