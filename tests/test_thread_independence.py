"""Trained weights and sweep cells do not depend on the thread count or on `rgbt-bench run --jobs`.

Before rgbt_bench.threads, CPU kernels split their reductions over the intra-op threads: a model trained with
one thread and the same model trained with two differed in every parameter, and `run --quick --jobs 1` vs
the default --jobs gave 44 of 78 different cells, so a committed baseline failed `check --max-drop 0`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rgbt_bench.checkpoint import load_checkpoint
from rgbt_bench.pipeline import run_pipeline
from rgbt_bench.run_config import RunConfig
from rgbt_bench.sweep.store import read_cells
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


def test_run_jobs_one_with_two_threads_equals_two_single_threaded_jobs(tmp_path, threads):
    outcome = {}
    for jobs in (1, 2):
        threads(2)  # jobs 1: one process with two threads; jobs 2: two single-threaded processes
        config = RunConfig(out=str(tmp_path / f"res{jobs}"), models=["rtfnet", "mfnet"], quick=True,
                           models_dir=str(tmp_path / f"models{jobs}"), jobs=jobs, bootstrap=0, progress=False,
                           device="cpu")
        run_pipeline(config, echo=lambda _: None)
        checkpoints = {m: weights(config.train_config(m, (32, 40)).out_path) for m in config.models}
        cells = {c.record.cell_id: c.per_image for c in read_cells(config.out)}
        outcome[jobs] = checkpoints, cells
    (ckpt1, cells1), (ckpt2, cells2) = outcome[1], outcome[2]
    for model in ckpt1:
        assert all(torch.equal(ckpt1[model][k], ckpt2[model][k]) for k in ckpt1[model]), model
    assert cells1.keys() == cells2.keys() and len(cells1) == 2 * 13
    assert all(np.array_equal(cells1[k], cells2[k]) for k in cells1)
