"""Shared test setup: tests run on the CPU with few threads so the suite fits 2 cores."""
import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the synthetic dataset cache out of the user's home directory, shared across one session."""
    monkeypatch.setenv("RGBT_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
