"""Counter-based random numbers for corruptions: each number is a pure function of
(seed, corruption, image, draw name, element index).

No generator state runs from one number to the next, so a sample's numbers do not depend on the batch
it is in, its position there, the severity asked for, the device or the thread count, and they are
computed with plain tensor operations on the batch's device.

Per sample and draw, SHA-256 of "seed|corruption|draw|image" (image = SampleMeta.key, dataset and sample
name) gives two 32-bit words on the host: an odd multiplier m and an offset c. Element i of the sample's
block (its flat index) has the state i * m + c (mod 2^32), mixed by the `lowbias32` integer hash (C.
Wellons, "Prospecting for hash functions", 2018): x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15;
x *= 0x846ca68b; x ^= x >> 16 (logical shifts). m is odd, so both steps are bijections of the 32-bit
integers and the hashes of one block are all distinct. The arithmetic is int32 with two's-complement
wrap-around and masked arithmetic shifts, which CPU and CUDA compute identically.

From a hash h (read as a signed int32) with s = h >> 9 (arithmetic shift, 23 bits):
- `symmetric`: v = (s + 0.5) / 2^22, uniform in (-1, 1) on a grid of 2^23 values, exact in float32;
- `uniform`: u = (v + 1) / 2, uniform in (0, 1), never 0 or 1;
- `normal`: sqrt(2) * erfinv(v), the standard normal quantile of u (inversion, one hash per number);
- `bits`: h itself, for ranking (`smallest`).
"""
from __future__ import annotations

import hashlib
import math
from typing import Callable, Sequence

import torch

from ..batch import SampleMeta

MULTIPLIER_1 = 0x7FEB352D
MULTIPLIER_2 = 0x846CA68B - (1 << 32)  # the same 32-bit pattern as a signed int32
CHUNK = 1 << 18  # elements hashed per step on the CPU: the int32 scratch (1 MB) stays in cache


def sample_words(seed: int, corruption: str, draw: str, image: str) -> tuple[int, int]:
    """(m, c) of one sample's block as signed int32 values; m is odd."""
    digest = hashlib.sha256(f"{seed}|{corruption}|{draw}|{image}".encode()).digest()
    m, c = int.from_bytes(digest[:4], "little") | 1, int.from_bytes(digest[4:8], "little")
    return m - (1 << 32) if m >= 1 << 31 else m, c - (1 << 32) if c >= 1 << 31 else c


def _shift_xor(x: torch.Tensor, shift: int) -> torch.Tensor:
    """x ^= x >>> shift (logical shift of the 32-bit pattern), in place."""
    return x.bitwise_xor_((x >> shift).bitwise_and_((1 << (32 - shift)) - 1))


def lowbias32(x: torch.Tensor) -> torch.Tensor:
    """The lowbias32 hash of every element of an int32 tensor, in place."""
    _shift_xor(x, 16).mul_(MULTIPLIER_1)
    _shift_xor(x, 15).mul_(MULTIPLIER_2)
    return _shift_xor(x, 16)


def normal_quantile_(v: torch.Tensor) -> torch.Tensor:
    """In place: v uniform in (-1, 1) -> sqrt(2) erfinv(v), the standard normal quantile of u = (v + 1) / 2."""
    return v.erfinv_().mul_(math.sqrt(2.0))


def _float_grid(h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = ((h >> 9) + 0.5) / 2^22 (the symmetric uniform of each hash); h is overwritten."""
    out.copy_(h.bitwise_right_shift_(9))
    return out.add_(0.5).mul_(2.0 ** -22)


class Draws:
    """The random numbers of one corruption call on one batch.

    Each method takes a draw name (which independent set of numbers) and the per-sample shape, and returns
    [B, *shape] on `device`. Asking again for the same name and shape gives the same numbers; a larger
    shape extends the block (element i is the same number whatever the shape around it). On the CPU the
    hashes are computed in steps of about CHUNK elements, so that their int32 scratch stays in cache.
    """

    def __init__(self, meta: Sequence[SampleMeta], seed: int, corruption: str, device: torch.device):
        self.meta, self.seed, self.corruption, self.device = list(meta), seed, corruption, device

    def images(self) -> list[tuple[int, str, str]]:
        """Per sample, what its numbers depend on besides the draw name: (seed, corruption, image)."""
        return [(self.seed, self.corruption, m.key) for m in self.meta]

    def subset(self, indices: Sequence[int]) -> Draws:
        """The draws of the samples at `indices` (their numbers do not change)."""
        return Draws([self.meta[i] for i in indices], self.seed, self.corruption, self.device)

    def _fill(self, draw: str, shape: Sequence[int], dtype: torch.dtype,
              convert: Callable[[torch.Tensor, torch.Tensor], object]) -> torch.Tensor:
        """[B, *shape] of `dtype`: convert(hashes, out) for each step of columns of the flat [B, count] block."""
        b, count = len(self.meta), math.prod(shape)
        words = [sample_words(self.seed, self.corruption, draw, m.key) for m in self.meta]
        m, c = torch.tensor(words, dtype=torch.int32, device=self.device).view(-1, 2, 1).unbind(1)
        out = torch.empty(b, count, dtype=dtype, device=self.device)
        step = max(1, CHUNK // max(b, 1)) if self.device.type == "cpu" else max(count, 1)
        scratch = torch.empty(b, min(step, count), dtype=torch.int32, device=self.device)
        for start in range(0, count, step):
            n = min(step, count - start)
            index = torch.arange(start, start + n, dtype=torch.int32, device=self.device)
            x = torch.mul(index, m, out=scratch[:, :n]).add_(c)
            convert(lowbias32(x), out[:, start:start + n])
        return out.view(b, *shape)

    def bits(self, draw: str, shape: Sequence[int]) -> torch.Tensor:
        """int32 [B, *shape]: the hashes; distinct within each sample."""
        return self._fill(draw, shape, torch.int32, lambda h, out: out.copy_(h))

    def symmetric(self, draw: str, shape: Sequence[int]) -> torch.Tensor:
        """float32 [B, *shape] uniform in (-1, 1)."""
        return self._fill(draw, shape, torch.float32, _float_grid)

    def uniform(self, draw: str, shape: Sequence[int]) -> torch.Tensor:
        """float32 [B, *shape] uniform in (0, 1)."""
        return self._fill(draw, shape, torch.float32, lambda h, out: _float_grid(h, out).add_(1.0).mul_(0.5))

    def normal(self, draw: str, shape: Sequence[int]) -> torch.Tensor:
        """float32 [B, *shape] standard normal (by inversion of `uniform`)."""
        return self._fill(draw, shape, torch.float32,
                          lambda h, out: normal_quantile_(_float_grid(h, out)))

    def smallest(self, draw: str, count: int, k: int) -> torch.Tensor:
        """bool [B, count], True on the k elements with the smallest hashes of each sample.

        The ranking does not depend on k, so the set for k is contained in the set for any larger k.
        """
        if k <= 0:
            return torch.zeros(len(self.meta), count, dtype=torch.bool, device=self.device)
        keys = self.bits(draw, (count,))
        if k >= count:
            return torch.ones_like(keys, dtype=torch.bool)
        kth = keys.kthvalue(k, dim=1, keepdim=True).values
        return keys <= kth
