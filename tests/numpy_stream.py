"""The corruptions' counter-based random stream written again in numpy from its documented definition
(rgbt_bench/corruptions/stream.py docstring), independently of the torch code, for the reference tests."""
import hashlib

import numpy as np
from scipy.special import erfinv

MASK = 0xFFFFFFFF


def np_bits(seed: int, corruption: str, draw: str, image: str, count: int) -> np.ndarray:
    """int32 hashes of elements 0..count-1 of one sample's block."""
    digest = hashlib.sha256(f"{seed}|{corruption}|{draw}|{image}".encode()).digest()
    m = np.uint64(int.from_bytes(digest[:4], "little") | 1)
    c = np.uint64(int.from_bytes(digest[4:8], "little"))
    x = (np.arange(count, dtype=np.uint64) * m + c) & MASK
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & MASK
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & MASK
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32).view(np.int32)


def np_symmetric(seed: int, corruption: str, draw: str, image: str, count: int) -> np.ndarray:
    """Uniform in (-1, 1): (s + 0.5) / 2^22 with s the hash shifted right by 9 (arithmetic), float64."""
    return ((np_bits(seed, corruption, draw, image, count) >> 9) + 0.5) / 2.0**22


def np_uniform(seed: int, corruption: str, draw: str, image: str, count: int) -> np.ndarray:
    return (np_symmetric(seed, corruption, draw, image, count) + 1) / 2


def np_normal(seed: int, corruption: str, draw: str, image: str, count: int) -> np.ndarray:
    return np.sqrt(2.0) * erfinv(np_symmetric(seed, corruption, draw, image, count))
