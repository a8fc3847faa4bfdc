"""Shared test setup: one intra-op thread per test process.

The tests run tiny tensors, where a second OpenMP thread costs more in synchronisation than it saves,
and several tests start torchrun subprocesses beside the main process on a 2-core machine.
"""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the synthetic dataset cache out of the user's home directory, shared across one session."""
    monkeypatch.setenv("RGBT_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
