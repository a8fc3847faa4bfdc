"""`rgbt-bench sweep --jobs`: a CPU sweep sharded over local single-threaded processes (rgbt_bench.sweep.local)
writes exactly the cells of one process; how many processes the default starts, and when it starts none."""
import json
import os

import numpy as np
import pytest
import torch
from test_sweep_engine import USER, write_checkpoint

from rgbt_bench.cli import main
from rgbt_bench.errors import ConfigError
from rgbt_bench.sweep import SweepConfig
from rgbt_bench.sweep import local as local_module
from rgbt_bench.sweep.local import MIN_PIXELS_PER_PROCESS, check_jobs, sweep_locally
from rgbt_bench.sweep.store import read_cells

SYN = ["--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,7]"]  # 7 images: uneven over 2


def sweep_cli(tmp_path, ckpt, out, *extra):
    return main(["sweep", "--models", f"u={USER}", "--checkpoint", f"u={ckpt}", "--out", str(tmp_path / out),
                 "--corruptions", "night,thermal_noise", "--severities", "1,5", "--batch-size", "2", "--device",
                 "cpu", "--no-progress", *SYN, *extra])


def test_two_jobs_write_the_cells_of_one(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "u.pt", USER)
    sweep_cli(tmp_path, ckpt, "one", "--jobs", "1")
    capsys.readouterr()
    sweep_cli(tmp_path, ckpt, "two", "--jobs", "2")
    assert capsys.readouterr().out == f"{tmp_path / 'two'}\n"  # the path once, from this process
    one = {c.record.cell_id: c for c in read_cells(tmp_path / "one")}
    two = {c.record.cell_id: c for c in read_cells(tmp_path / "two")}
    assert sorted(one) == sorted(two) and len(one) == 5
    for cell_id, cell in one.items():
        np.testing.assert_array_equal(two[cell_id].per_image, cell.per_image)
        assert two[cell_id].record.metrics == cell.record.metrics and list(two[cell_id].names) == list(cell.names)
        assert (cell.record.world_size, two[cell_id].record.world_size) == (1, 2)
    costs = [json.loads((tmp_path / d / "run.json").read_text())["models"][0]["efficiency"] for d in ("one", "two")]
    assert costs[0]["timed_images"] == costs[1]["timed_images"] == 7 * 5  # every rank's forwards counted
    assert costs[0]["flops"] == costs[1]["flops"] and costs[1]["images_per_s"] > 0
    sweep_cli(tmp_path, ckpt, "two")  # resumed by one process (the default for so little work): all kept
    assert {c.record.cell_id: c.record.finished_at for c in read_cells(tmp_path / "two")} == \
        {c: two[c].record.finished_at for c in two}


def test_bad_jobs_are_one_line(tmp_path, capsys, monkeypatch):
    ckpt = write_checkpoint(tmp_path / "u.pt", USER)
    for value, message in (("0", "Error: --jobs must be >= 1, got 0"), ("-2", "Error: --jobs must be >= 1, got -2")):
        with pytest.raises(SystemExit) as exc:
            sweep_cli(tmp_path, ckpt, "bad", "--jobs", value)
        assert exc.value.code == 2 and capsys.readouterr().err.strip().splitlines() == [message]
    with pytest.raises(SystemExit) as exc:
        sweep_cli(tmp_path, ckpt, "bad", "--jobs", "two")
    assert exc.value.code == 2 and "Invalid value for '--jobs': 'two' is not a valid integer" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: its processes already share the images
    with pytest.raises(SystemExit) as exc:
        sweep_cli(tmp_path, ckpt, "bad", "--jobs", "2")
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "already runs as one of 2 torchrun processes" in err[0]
    assert not (tmp_path / "bad").exists()


def test_no_extra_processes_on_cuda():
    check_jobs(None, "cpu")
    check_jobs(1, "cpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_module, "resolve_device", lambda name: torch.device("cuda"))
        check_jobs(None, "cuda")
        check_jobs(1, "cuda")
        with pytest.raises(ConfigError, match="on CUDA a sweep runs in one process"):
            check_jobs(2, "cuda")


class Launches:
    """Records what sweep_locally started instead of starting it."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(local_module, "run_sweep", lambda config: self.calls.append(("here", 1)) or config.out)
        monkeypatch.setattr(local_module, "run_distributed",
                            lambda fn, config, jobs, threads, what: self.calls.append(("processes", jobs)))


def test_default_count_follows_cores_and_work(tmp_path, monkeypatch):
    launches = Launches(monkeypatch)
    cores = len(os.sched_getaffinity(0))
    ckpt = write_checkpoint(tmp_path / "u.pt", USER)
    config = SweepConfig(models=[f"u={USER}"], checkpoints={"u": str(ckpt)}, out=str(tmp_path / "r"),
                         dataset_options={"size": [32, 40], "counts": [8, 4, 7]}, device="cpu", progress=False)
    sweep_locally(config)  # 7 images x 1280 pixels x 61 settings: far below a process's worth of work
    monkeypatch.setattr(local_module, "MIN_PIXELS_PER_PROCESS", 7 * 1280 * 61 // 3)  # three processes' worth
    sweep_locally(config)
    sweep_locally(config, jobs=64)  # asked for: never more processes than images
    assert launches.calls[0] == ("here", 1)
    assert launches.calls[1] == (("processes", min(cores, 3)) if cores > 1 else ("here", 1))
    assert launches.calls[2] == ("processes", 7)
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun: torchrun's processes, none started here
    sweep_locally(config)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr(local_module, "resolve_device", lambda name: torch.device("cuda"))
    sweep_locally(config)  # on CUDA: one process, this one
    assert launches.calls[3:] == [("here", 1), ("here", 1)] and MIN_PIXELS_PER_PROCESS == 16_000_000


def test_models_trained_on_the_fly_are_trained_before_the_processes_start(tmp_path, monkeypatch):
    launches = Launches(monkeypatch)
    config = SweepConfig(models=["mfnet"], out=str(tmp_path / "r"), models_dir=str(tmp_path / "models"),
                         dataset_options={"size": [32, 40], "counts": [8, 4, 7]}, train_iterations=1,
                         corruptions=["night"], severities=[1], device="cpu", progress=False)
    notes = []
    sweep_locally(config, jobs=2, note=notes.append)
    assert launches.calls == [("processes", 2)]
    assert list((tmp_path / "models").glob("mfnet_tiny_synthetic_seed*.pt"))  # by this one process, first
    assert any(n.startswith("model 'mfnet': training mfnet") for n in notes)


@pytest.mark.parametrize("jobs", [None, 2])
def test_a_wrong_suite_is_reported_before_the_dataset_is_opened(tmp_path, monkeypatch, jobs):
    """Opening the built-in dataset renders it (about 10 s at its default size): a missing suite file waited for
    that before its one-line error (before: open_dataset ran first)."""
    def not_yet(*args, **kwargs):
        raise AssertionError("the dataset was opened before the suite was checked")

    monkeypatch.setattr(local_module, "open_dataset", not_yet)
    config = SweepConfig(models=[f"u={USER}"], suite=str(tmp_path / "nope.yaml"), out=str(tmp_path / "out"),
                         device="cpu", progress=False)
    with pytest.raises(ConfigError, match="nope.yaml' does not exist"):
        sweep_locally(config, jobs)
