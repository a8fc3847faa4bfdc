"""Same seed, same numbers: corrupted inputs are bit-identical whatever the batch size, and a sweep writes
identical cells with batch sizes 1, 4 and 8 and with 1 or 2 processes (torchrun, gloo on CPU)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rgbt_bench.batch import collate
from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.corruptions import CORRUPTIONS, apply_corruption
from rgbt_bench.corruptions.plasma import CACHE
from rgbt_bench.datasets import open_dataset
from rgbt_bench.models.registry import build_model
from rgbt_bench.sweep.engine import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
USER = "user_model_example:build"
DATA = {"size": [32, 40], "counts": [8, 4, 8]}
SUITE = """\
entries:
  - corruption: thermal_noise
    severities: [2, 5]
  - corruption: complementary_patch_mask
    severities: [4]
    options: {patch: 8}
  - corruption: plasma_fog
    severities: [3]
  - corruption: thermal_stripes
    severities: [5]
"""


def corrupted(samples, name, severity, seed, batch_size):
    """The whole split corrupted in batches of `batch_size` (from scratch), concatenated back in dataset order."""
    CACHE.clear()
    parts = [apply_corruption(collate(samples[i:i + batch_size]), name, severity, seed)
             for i in range(0, len(samples), batch_size)]
    return torch.cat([p.rgb for p in parts]), torch.cat([p.thermal for p in parts])


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupted_inputs_are_bit_identical_across_batch_sizes(name):
    dataset = open_dataset("synthetic", "test", **DATA)
    samples = [dataset[i] for i in range(len(dataset))]
    clean = collate(samples)
    for severity in (1, 5):
        rgb, thermal = corrupted(samples, name, severity, 3, 8)
        if severity == 5:
            assert not (torch.equal(rgb, clean.rgb) and torch.equal(thermal, clean.thermal))  # it did something
        for batch_size in (1, 4):
            rgb_b, thermal_b = corrupted(samples, name, severity, 3, batch_size)
            assert torch.equal(rgb_b, rgb) and torch.equal(thermal_b, thermal), (name, severity, batch_size)
        again = corrupted(samples, name, severity, 3, 8)
        assert torch.equal(again[0], rgb) and torch.equal(again[1], thermal)
        other = corrupted(samples, name, severity, 4, 8)
        if not CORRUPTIONS[name].randomized:  # a deterministic corruption never depends on the seed
            assert torch.equal(other[0], rgb) and torch.equal(other[1], thermal)


def test_sweep_cells_identical_across_batch_sizes_and_process_counts(tmp_path):
    open_dataset("synthetic", "test", **DATA)
    torch.manual_seed(5)
    state = build_model(USER, 7).state_dict()
    state["head.2.weight"] *= 20  # an untrained head predicts one class everywhere; this one follows the input
    state["head.2.bias"].zero_()
    ckpt = str(save_checkpoint(tmp_path / "u.pt", {"model": USER, "preset": "tiny", "num_classes": 7, "config": {},
                                                    "state_dict": state}))
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    ddp = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(REPO / "cli.py"),
         "sweep", "--models", f"u={USER}", "--checkpoint", f"u={ckpt}", "--suite", str(suite), "--out",
         str(tmp_path / "ddp"), "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,8]",
         "--batch-size", "3", "--seeds", "0,7", "--device", "cpu", "--no-progress"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = {}
    for batch_size in (1, 4, 8):  # in this process while the 2-process sweep runs beside it
        out = run_sweep(SweepConfig(models=[f"u={USER}"], checkpoints={"u": ckpt}, suite=str(suite),
                                    out=str(tmp_path / f"b{batch_size}"), dataset_options=DATA, seeds=[0, 7],
                                    batch_size=batch_size, device="cpu", progress=False))
        runs[f"batch {batch_size}"] = {c.record.cell_id: c for c in read_cells(out)}
    _, err = ddp.communicate(timeout=300)
    assert ddp.returncode == 0, err[-3000:]
    runs["2 processes"] = {c.record.cell_id: c for c in read_cells(tmp_path / "ddp")}
    reference = runs.pop("batch 1")
    assert len(reference) == 1 + 2 * 5
    assert len({c.record.metrics["miou"] for c in reference.values()}) > 3  # the settings do differ
    for label, cells in runs.items():
        assert sorted(cells) == sorted(reference), label
        for cell_id, ref in reference.items():
            np.testing.assert_array_equal(cells[cell_id].per_image, ref.per_image, err_msg=f"{label} {cell_id}")
            assert cells[cell_id].record.metrics == ref.record.metrics
            assert list(cells[cell_id].names) == list(ref.names)
    assert {c.record.world_size for c in runs["2 processes"].values()} == {2}
    assert {c.record.identity.batch_size for c in runs["batch 8"].values()} == {8}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_match_across_thread_counts_under_inference_mode(name):
    """1 and 2 torch threads give bit-identical corrupted images, under the sweep's torch.inference_mode
    (images large enough for torch to split element-wise work over threads)."""
    dataset = open_dataset("synthetic", "test", size=[256, 256], counts=[2, 2, 3])
    batch = collate([dataset[i] for i in range(3)])
    threads = torch.get_num_threads()
    try:
        outputs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            CACHE.clear()
            with torch.inference_mode():
                out = apply_corruption(batch, name, 4, 7)
            outputs.append((out.rgb, out.thermal))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
