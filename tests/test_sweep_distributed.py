"""A sweep sharded over 2 CPU processes (torchrun, gloo) writes exactly the cells one process writes."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.datasets import open_dataset
from rgbt_bench.models.registry import build_model
from rgbt_bench.sweep.engine import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
USER = "user_model_example:build"
DATA = {"size": [32, 40], "counts": [8, 4, 7]}  # 7 test images: an uneven split over 2 ranks
SUITE = "entries:\n  - corruption: thermal_noise\n    severities: [3]\n  - corruption: complementary_patch_mask\n" \
        "    severities: [5]\n    options: {patch: 8}\n"


def test_two_process_sweep_equals_one_process(tmp_path):
    open_dataset("synthetic", "test", **DATA)
    ckpts = {}
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        ckpts[name] = str(tmp_path / f"{name}.pt")
        save_checkpoint(ckpts[name], {"model": USER, "preset": "tiny", "num_classes": 7, "config": {},
                                      "state_dict": build_model(USER, 7).state_dict()})
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(REPO / "cli.py"), "sweep", "--models", f"a={USER},b={USER}", "--checkpoint", f"a={ckpts['a']}",
            "--checkpoint", f"b={ckpts['b']}", "--suite", str(suite), "--out", str(tmp_path / "ddp"),
            "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,7]", "--batch-size", "2",
            "--seeds", "0,1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "ddp")  # printed once, by rank 0

    single = run_sweep(SweepConfig(models=[f"a={USER},b={USER}"], checkpoints=ckpts, suite=str(suite),
                                   out=str(tmp_path / "one"), dataset_options=DATA, batch_size=3, seeds=[0, 1],
                                   device="cpu", progress=False))
    sharded = {c.record.cell_id: c for c in read_cells(tmp_path / "ddp")}
    reference = {c.record.cell_id: c for c in read_cells(single)}
    assert sorted(sharded) == sorted(reference) and len(reference) == 2 * (1 + 2 + 2)
    for cell_id, cell in reference.items():
        got = sharded[cell_id]
        assert got.per_image.shape == (7, 7, 7)
        np.testing.assert_array_equal(got.per_image, cell.per_image)
        assert list(got.names) == list(cell.names) and got.record.metrics == cell.record.metrics
        assert got.record.world_size == 2 and got.record.identity.num_images == 7


def test_ranks_that_read_other_files_are_refused(monkeypatch):
    """A node whose copy of the data (or of a checkpoint) differs from rank 0's stops every rank with one line
    naming it, instead of writing cells that mix two datasets."""
    import pytest

    from rgbt_bench.errors import ConfigError
    from rgbt_bench.sweep import distributed
    ctx = distributed.DistContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    mine = {"dataset fingerprint": "abc", "checkpoint of a@0": "111"}
    monkeypatch.setattr(distributed, "all_gather_objects", lambda obj, ctx: [obj, {**obj, "dataset fingerprint": "x"}])
    with pytest.raises(ConfigError, match=r"rank 1 read other files than rank 0 \(dataset fingerprint differs\)"):
        distributed.require_same(mine, ctx)
    monkeypatch.setattr(distributed, "all_gather_objects", lambda obj, ctx: [obj, dict(obj)])
    distributed.require_same(mine, ctx)
