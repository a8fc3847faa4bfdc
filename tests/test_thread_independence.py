"""Trained weights and sweep cells do not depend on the thread count or on `rgbt-bench run --jobs`.

Before rgbt_bench.threads, CPU kernels split their reductions over the intra-op threads: a model trained with
one thread and the same model trained with two differed in every parameter, and `run --quick --jobs 1` vs
the default --jobs gave 44 of 78 different cells, so a committed baseline failed `check --max-drop 0`.
The same check for a whole `run` (jobs 1 with two threads vs two single-threaded jobs) is part of
tests/test_run_cmd.py::test_quick_run_end_to_end_and_rerun."""
from __future__ import annotations

import pytest
import torch

from rgbt_bench.checkpoint import load_checkpoint
from rgbt_bench.training import train
from rgbt_bench.training.config import TrainConfig

DATA = {"size": [32, 40], "counts": [8, 4, 4]}


@pytest.fixture
def threads():
    """Set torch's intra-op thread count for one test; restored after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def weights(path):
    return load_checkpoint(path)["state_dict"]


@pytest.mark.parametrize("model", ["rtfnet", "mfnet"])
def test_training_gives_identical_weights_with_one_or_two_threads(tmp_path, threads, model):
    trained = {}
    for n in (1, 2):
        threads(n)
        config = TrainConfig(model=model, iterations=3, batch_size=2, dataset_options=DATA, eval_every=0,
                             out=str(tmp_path / f"{n}.pt"), progress=False, device="cpu")
        trained[n] = weights(train(config))
        assert torch.get_num_threads() == n  # the caller's setting is restored
    assert trained[1].keys() == trained[2].keys()
    assert all(torch.equal(trained[1][k], trained[2][k]) for k in trained[1]), model
