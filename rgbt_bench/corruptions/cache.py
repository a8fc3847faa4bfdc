"""Per-image tensors that several severities of a corruption share, kept for the next call.

A sweep corrupts one batch at every severity of a corruption one after another, and each corruption's random
numbers depend on (seed, corruption, image) but not on the severity (stream.py). Where computing them costs far
more than reading them back (plasma_fog's fractal maps, night's noise fields), the per-image result is kept in
`CACHE`, an LRU bounded by bytes. A cached tensor is the same one a fresh computation gives, and callers never
modify it in place, so a hit and a miss give identical corruptions.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Optional, Sequence

import torch

CACHE_BYTES = 256 * 2**20


class SampleCache:
    """LRU of per-sample tensors by key, bounded by bytes; thread-safe."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> Optional[torch.Tensor]:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: tuple, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        with self.lock:
            if key in self.items or size > self.max_bytes:
                return
            self.items[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self.items.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()

    def per_sample(self, keys: Sequence[tuple],
                   compute: Callable[[list[int]], Sequence[torch.Tensor]]) -> list[torch.Tensor]:
        """The tensor of each key: cached, else computed for all missing keys at once by `compute` (given their
        positions in `keys`, it returns one tensor per position, in order) and cached."""
        found = [self.get(key) for key in keys]
        missing = [i for i, tensor in enumerate(found) if tensor is None]
        if missing:
            for i, tensor in zip(missing, compute(missing)):
                found[i] = tensor
                self.put(keys[i], tensor)
        return found

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.bytes = 0


CACHE = SampleCache(CACHE_BYTES)
