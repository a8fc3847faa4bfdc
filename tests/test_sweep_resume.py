"""kill -9 in the middle of a sweep loses nothing finished and duplicates nothing; a rerun finishes the table,
which then equals an uninterrupted run's cell by cell."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from user_model_example import TinyRGBT

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.datasets import open_dataset
from rgbt_bench.sweep.engine import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DATA = {"size": [32, 40], "counts": [8, 4, 6]}
SLOW = "test_sweep_resume:build_slow"
SUITE = "entries:\n  - corruption: thermal_noise\n  - corruption: rgb_missing\n    severities: [5]\n"


class SlowTiny(TinyRGBT):
    """The example user model, slowed down so that a kill lands in the middle of the sweep."""

    def forward(self, rgb, thermal):
        time.sleep(0.05)
        return super().forward(rgb, thermal)


def build_slow(num_classes: int, preset: str = "tiny") -> TinyRGBT:
    return SlowTiny(num_classes)


def cell_files(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*") if p.suffix in (".json", ".npz")}


def test_kill_9_then_rerun_equals_uninterrupted_run(tmp_path):
    open_dataset("synthetic", "test", **DATA)  # render the dataset once, before the child starts
    torch.manual_seed(0)
    ckpt = tmp_path / "slow.pt"
    save_checkpoint(ckpt, {"model": SLOW, "preset": "tiny", "num_classes": 7, "config": {},
                           "state_dict": build_slow(7).state_dict()})
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "rgbt_bench.cli", "sweep", "--models", f"m={SLOW}", "--checkpoint", f"m={ckpt}",
            "--suite", str(suite), "--out", str(killed), "--dataset-option", "size=[32,40]", "--dataset-option",
            "counts=[8,4,6]", "--batch-size", "2", "--cells-per-pass", "1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list((killed / "cells").glob("*.json"))) < 2:
        assert child.poll() is None, f"sweep ended before it could be killed: {child.stderr.read().decode()}"
        assert time.monotonic() < deadline, "sweep wrote no cells within 120 s"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    before = cell_files(killed)
    done_before = {name for name in before if name.endswith(".json")}
    assert 2 <= len(done_before) < 7

    config = dict(models=[f"m={SLOW}"], checkpoints={"m": str(ckpt)}, suite=str(suite), dataset_options=DATA,
                  batch_size=2, device="cpu", progress=False)
    run_sweep(SweepConfig(out=str(killed), cells_per_pass=1, **config))
    after = cell_files(killed)
    assert all(after[name] == before[name] for name in done_before)  # finished cells were not recomputed
    assert all(after[name.replace(".json", ".npz")] == before[name.replace(".json", ".npz")] for name in done_before)

    whole = run_sweep(SweepConfig(out=str(tmp_path / "whole"), **config))
    resumed = {c.record.cell_id: c for c in read_cells(killed)}
    reference = {c.record.cell_id: c for c in read_cells(whole)}
    assert sorted(resumed) == sorted(reference) and len(reference) == 7
    assert sorted(p.name for p in (killed / "cells").iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in (whole / "cells").iterdir())
    for cell_id, cell in reference.items():
        np.testing.assert_array_equal(resumed[cell_id].per_image, cell.per_image)
        assert resumed[cell_id].record.metrics == cell.record.metrics
        assert list(resumed[cell_id].names) == list(cell.names)
