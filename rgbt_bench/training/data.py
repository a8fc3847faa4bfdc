"""The training data stream: a resumable DistributedSampler over (index, epoch) keys and its DataLoader.

Epoch e visits a permutation seeded by (seed, e), sharded over ranks like DistributedSampler (padding with
duplicates so every rank gets the same count; harmless in training). `skip` drops the first samples of
the epoch, so a run resumed at iteration i reads exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..batch import collate
from ..loader import Loader
from .augment import AugmentedDataset


class EpochSampler(DistributedSampler):
    """DistributedSampler yielding (index, epoch) pairs, starting `skip` samples into the epoch."""

    def __init__(self, dataset: AugmentedDataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def start_at(self, epoch: int, skip: int) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip:]
        return iter([(i, self.epoch) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def seed_worker(worker_id: int) -> None:
    """Per-worker seeds for numpy and random from the worker's torch seed (base seed + worker id), for
    dataset code that uses them; the augmentation itself draws from per-sample generators."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def train_loader(dataset: AugmentedDataset, sampler: EpochSampler, batch_size: int, workers: int,
                 seed: int, pin_memory: bool) -> DataLoader:
    """Batches of `batch_size` (this process's share), the last incomplete batch of an epoch dropped.

    The loader owns its generator, so creating an iterator never consumes the global torch RNG (which
    the model's own randomness, e.g. masking or dropout, draws from)."""
    return Loader(dataset, collate, batch_size=batch_size, sampler=sampler, num_workers=workers,
                  drop_last=True, pin_memory=pin_memory, worker_init_fn=seed_worker,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)
