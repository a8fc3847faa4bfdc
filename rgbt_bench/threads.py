"""One intra-op thread for CPU computations whose results must not depend on the machine.

Why: CPU kernels split their reductions over the intra-op threads (oneDNN's convolution backward-weight,
BLAS GEMMs in Swin's attention and linear layers, BatchNorm statistics), so with another thread count the same
floats are added in another order and the last bits change. Over a training run those bits grow into other
weights: before this, `rgbt-bench run --quick --jobs 1` (one process, two threads on two cores) and the
default `--jobs` (two single-threaded processes) trained different models and 44 of 78 cells differed.
Training and sweep evaluation on CPU therefore run single-threaded whatever torch, OMP_NUM_THREADS or the
core count say; parallelism comes from processes (the --jobs of `rgbt-bench run` and `sweep`, torchrun
ranks). CUDA is untouched.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def single_threaded(device: torch.device | str) -> Iterator[None]:
    """On a CPU `device`, run the block with one intra-op thread (restored after); elsewhere do nothing."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
