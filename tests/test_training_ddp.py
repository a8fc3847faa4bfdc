"""Two-process DDP training with torchrun on CPU (gloo): completes, rank 0 writes loadable checkpoints, and
the sharded val evaluation counts every image exactly once (5 val images over 2 ranks: no padding)."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rgbt_bench.checkpoint import load_checkpoint
from rgbt_bench.datasets import open_dataset
from rgbt_bench.models.loading import model_from_checkpoint
from rgbt_bench.training import evaluate

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = {"size": [32, 40], "counts": [16, 5, 4]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_train_and_evaluate_without_duplicates(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "rgbt_bench.cli", "train",
           "--model", "tests.user_model_example:build", "--iterations", "6", "--batch-size", "4",
           "--eval-every", "3", "--eval-batch-size", "2", "--device", "cpu", "--no-progress", "--out", str(out),
           "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[16,5,4]"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)  # printed once, by rank 0
    assert "over 2 process(es)" in proc.stderr

    last = load_checkpoint(tmp_path / "ddp.last.pt")
    assert last["iteration"] == 6 and last["world_size"] == 2 and len(last["rng"]) == 2
    assert [h["iteration"] for h in last["metrics"]["history"]] == [3, 6]
    # the two ranks drew different RNG streams
    assert not (last["rng"][0]["torch"] == last["rng"][1]["torch"]).all()

    model, ckpt = model_from_checkpoint(tmp_path / "ddp.last.pt")
    val = open_dataset("synthetic", "val", **TINY_DATA)
    assert len(val) == 5
    single = evaluate(model, val, batch_size=2, device="cpu")
    recorded = ckpt["metrics"]["val"]
    assert single.miou == pytest.approx(recorded["miou"], abs=1e-12)
    assert list(single.iou) == pytest.approx(recorded["iou"], abs=1e-12)
    assert load_checkpoint(out)["metrics"]["selected_on"] == "val"


def test_a_step_turns_only_the_backends_errors_into_peer_lost():
    """A DDP step's own errors (a model's shape mismatch, out of memory) keep their message; the backend's
    "connection reset" becomes the one-line PeerLostError, also when a user model's wrapper re-raised it."""
    from rgbt_bench.training.distributed import DistContext, PeerLostError, peers

    ctx = DistContext(0, 2, 0, torch.device("cpu"), False)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        with peers("training step 1", ctx, backend_errors_only=True):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)")
    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:4: "
                        "Connection reset by peer. This is typically caused by a remote worker hanging")
    with pytest.raises(PeerLostError, match=r"^rank 0 of 2 lost the other processes during training step 1 "
                                            r"\(Read error \[127.0.0.1\]:4: Connection reset by peer\)"):
        with peers("training step 1", ctx, backend_errors_only=True):
            raise gloo
    with pytest.raises(PeerLostError):
        with peers("training step 1", ctx, backend_errors_only=True):
            raise ValueError("model 'my:build': forward or loss raised RuntimeError") from gloo
