"""Faults a long sweep meets: kill -9 at seeded random points, a full disk or unwritable directory mid-write,
and two sweeps started on the same results directory. Finished cells always equal an uninterrupted run's."""
import builtins
import errno
import io
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import pytest
import torch
from user_model_example import TinyRGBT

from rgbt_bench.checkpoint import load_checkpoint, save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.datasets import open_dataset
from rgbt_bench.datasets.io import FileError
from rgbt_bench.errors import DataError
from rgbt_bench.lock import OutputLock
from rgbt_bench.sweep import store
from rgbt_bench.sweep.engine import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DATA = {"size": [32, 40], "counts": [8, 4, 6]}
DATA_FLAGS = ["--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,6]"]
SLOW = "test_faults:build_slow"
SUITE = "entries:\n  - corruption: thermal_noise\n    severities: [1, 3, 5]\n  - corruption: rgb_missing\n" \
        "    severities: [5]\n"
CELLS = 1 + 2 * (3 + 1)  # clean once + 4 corrupted settings x 2 seeds


class SlowTiny(TinyRGBT):
    """The example user model, slowed down so that kills land in the middle of a sweep, and held while the
    file named by $FAULTS_GATE exists, so that a second sweep surely starts while the first is running."""

    def forward(self, rgb, thermal):
        time.sleep(0.03)
        while os.environ.get("FAULTS_GATE") and os.path.exists(os.environ["FAULTS_GATE"]):
            time.sleep(0.01)
        return super().forward(rgb, thermal)


def build_slow(num_classes: int, preset: str = "tiny") -> TinyRGBT:
    return SlowTiny(num_classes)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Dataset rendered, a checkpoint, a suite, and the uninterrupted reference run, shared by the module."""
    root = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RGBT_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        open_dataset("synthetic", "test", **DATA)
        torch.manual_seed(0)
        ckpt = root / "slow.pt"
        save_checkpoint(ckpt, {"model": SLOW, "preset": "tiny", "num_classes": 7, "config": {},
                               "state_dict": build_slow(7).state_dict()})
        suite = root / "suite.yaml"
        suite.write_text(SUITE)
        w = {"ckpt": str(ckpt), "suite": str(suite), "root": root}
        reference = run_sweep(sweep_config(w, root / "reference", batch_size=3))
    w["reference"] = {c.record.cell_id: c for c in read_cells(reference)}
    assert len(w["reference"]) == CELLS
    return w


def sweep_config(w, out, **kw):
    base = dict(models=[f"m={SLOW}"], checkpoints={"m": w["ckpt"]}, suite=w["suite"], out=str(out),
                dataset_options=DATA, seeds=[0, 1], batch_size=2, cells_per_pass=1, device="cpu", progress=False)
    return SweepConfig(**{**base, **kw})


def cli_args(w, out):
    return ["sweep", "--models", f"m={SLOW}", "--checkpoint", f"m={w['ckpt']}", "--suite", w["suite"], "--out",
            str(out), *DATA_FLAGS, "--seeds", "0,1", "--batch-size", "2", "--cells-per-pass", "1", "--device", "cpu",
            "--no-progress"]


def start_cli(w, out, gate: Optional[Path] = None) -> subprocess.Popen:
    env = {**os.environ, "FAULTS_GATE": str(gate or ""), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "rgbt_bench.cli", *cli_args(w, out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(out: Path) -> set[str]:
    return {p.stem for p in (out / "cells").glob("*.json")}


def wait_for_cells(child: subprocess.Popen, out: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(finished(out)) < count:
        assert child.poll() is None, f"sweep ended early: {child.stderr.read()}"
        assert time.monotonic() < deadline, f"sweep wrote fewer than {count} cells in {timeout} s"
        time.sleep(0.005)


def assert_equals_reference(w, out: Path) -> None:
    cells = {c.record.cell_id: c for c in read_cells(out)}
    assert sorted(cells) == sorted(w["reference"])
    for cell_id, ref in w["reference"].items():
        np.testing.assert_array_equal(cells[cell_id].per_image, ref.per_image)
        assert cells[cell_id].record.metrics == ref.record.metrics
        assert list(cells[cell_id].names) == list(ref.names)
        assert list(cells[cell_id].is_night) == list(ref.is_night)


def assert_intact(out: Path) -> None:
    """Every cell record has its arrays, both parse, and no temp file of a failed write is left behind."""
    for json_path in (out / "cells").glob("*.json"):
        record = json.loads(json_path.read_text())
        with np.load(json_path.with_suffix(".npz")) as z:
            assert z["per_image"].shape == (record["num_images"], 7, 7)
    assert not [p.name for p in out.rglob("*.tmp")]
    if (out / "run.json").exists():
        json.loads((out / "run.json").read_text())


def test_kill_9_at_seeded_random_points_then_resume_equals_uninterrupted(world, tmp_path):
    rng = random.Random(2024)
    out = tmp_path / "killed"
    stamps: dict[str, int] = {}
    for _ in range(3):
        done = len(finished(out)) if (out / "cells").is_dir() else 0
        target = rng.randint(done + 1, min(done + 3, CELLS - 1))
        child = start_cli(world, out)
        wait_for_cells(child, out, target)
        time.sleep(rng.uniform(0.0, 0.08))  # land anywhere inside the next cell's pass or its writes
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        now_done = finished(out)
        assert target <= len(now_done) < CELLS
        for cell_id, stamp in stamps.items():  # a finished cell is never rewritten by a later run
            assert (out / "cells" / f"{cell_id}.npz").stat().st_mtime_ns == stamp
        stamps.update({c: (out / "cells" / f"{c}.npz").stat().st_mtime_ns for c in now_done})
    (out / "cells" / ".m__synthetic__test__clean__s0__seed9.json.x1y2.tmp").write_text("{")  # a torn temp file
    run_sweep(sweep_config(world, out))
    assert_equals_reference(world, out)
    assert len(list(read_cells(out))) == CELLS
    assert all((out / "cells" / f"{c}.npz").stat().st_mtime_ns == s for c, s in stamps.items())
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["cells_total"] == CELLS


def failing_writes(monkeypatch, code: int, after: int, match: str = ".npz") -> list[Path]:
    """Make atomic writes of files whose name contains `match` fail with OSError(`code`) from the
    (`after` + 1)-th such write on, half-way through writing, like a disk filling up; returns the paths tried."""
    real = store.atomic_write
    tried: list[Path] = []

    def write(path, fn):
        if match not in path.name:
            return real(path, fn)
        tried.append(path)
        if len(tried) <= after:
            return real(path, fn)

        def half_then_fail(fh):
            fh.write(b"\x00" * 64)
            raise OSError(code, os.strerror(code))
        return real(path, half_then_fail)

    monkeypatch.setattr(store, "atomic_write", write)
    return tried


@pytest.mark.parametrize("code,after", [(errno.ENOSPC, 0), (errno.ENOSPC, 3), (errno.EROFS, 2), (errno.EACCES, 1)])
def test_write_failure_mid_sweep_is_one_line_and_keeps_finished_cells(world, tmp_path, capsys, monkeypatch, code,
                                                                      after):
    out = tmp_path / "r"
    failing_writes(monkeypatch, code, after)
    with pytest.raises(SystemExit) as exc:
        main(cli_args(world, out))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"Error: cannot write results to {out} ({os.strerror(code)}); the cells written so far are "
                   f"kept, rerun to finish\n")
    assert len(finished(out)) == after
    assert_intact(out)
    monkeypatch.undo()
    run_sweep(sweep_config(world, out))
    assert_equals_reference(world, out)


@pytest.mark.parametrize("when", [0, 1])
def test_manifest_write_failure_is_one_line(world, tmp_path, capsys, monkeypatch, when):
    """The disk fills up while the manifest is written: at the start (0) or at the end of the sweep (1)."""
    out = tmp_path / "r"
    failing_writes(monkeypatch, errno.ENOSPC, when, match="run.json")
    with pytest.raises(SystemExit) as exc:
        main(cli_args(world, out))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: cannot write results to {out} (No space left on device)")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert len(finished(out)) == (0 if when == 0 else CELLS)
    assert_intact(out)
    assert (out / "run.json").exists() == (when == 1)


def test_unwritable_output_directory_is_one_line_and_writes_nothing(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    real = os.open

    def deny(path, flags, *args, **kw):  # as a read-only directory does (the tests may run as root)
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(SystemExit) as exc:
        main(cli_args(world, out))
    assert exc.value.code == 2
    assert capsys.readouterr().err == (f"Error: cannot write results to {out} (Permission denied); choose a "
                                       f"writable --out\n")
    assert [p.name for p in out.rglob("*")] == ["cells"]


def test_second_sweep_on_a_locked_directory_stops_at_once_naming_the_holder(world, tmp_path, capsys):
    out = tmp_path / "locked"
    with OutputLock(out) as lock:
        assert lock.held
        with pytest.raises(SystemExit) as exc:
            main(cli_args(world, out))
        assert exc.value.code == 2
        assert capsys.readouterr().err == (f"Error: results directory {out} is in use by another sweep "
                                           f"(pid {os.getpid()}); wait for it to finish, or choose another --out\n")
        assert not finished(out) and not (out / "run.json").exists()
    assert not lock.held
    main(cli_args(world, out))
    assert capsys.readouterr().out.strip() == str(out)
    assert_equals_reference(world, out)


def test_two_concurrent_sweep_processes_do_not_corrupt_each_other(world, tmp_path):
    out, gate = tmp_path / "shared", tmp_path / "gate"
    first = start_cli(world, out, gate)
    wait_for_cells(first, out, 1)
    gate.touch()  # hold the first sweep mid-run until the second has given up
    second = start_cli(world, out)
    _, err = second.communicate(timeout=120)
    gate.unlink()
    assert second.returncode == 2
    assert err == (f"Error: results directory {out} is in use by another sweep (pid {first.pid}); wait for it to "
                   f"finish, or choose another --out\n")
    assert first.poll() is None, "the first sweep should still be running"
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert stdout.strip() == str(out)
    assert_equals_reference(world, out)
    assert_intact(out)
    again = run_sweep(sweep_config(world, out))  # the lock died with its holder
    assert json.loads((again / "run.json").read_text())["cells_computed"] == 0


TRAIN_ARGS = ["train", "--model", "user_model_example:build", "--iterations", "4", "--batch-size", "2",
              "--eval-every", "2", "--save-every", "2", "--crop", "24x32", "--no-progress",
              "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[4,2,2]"]


@pytest.mark.parametrize("fail_at", [1, 2])
def test_disk_full_while_saving_a_training_checkpoint_is_one_line_and_keeps_earlier_ones(tmp_path, capsys,
                                                                                        monkeypatch, fail_at):
    """Regression: ENOSPC inside torch.save printed a traceback (torch's zip writer turns it into a RuntimeError).
    The `fail_at`-th checkpoint write fails half-way; the error names the file, no temporary file is left, and
    checkpoints saved before are intact."""
    import rgbt_bench.checkpoint as checkpoint
    out = tmp_path / "m.pt"
    real = checkpoint.torch.save
    writes = []

    def save(obj, fh):
        writes.append(obj)
        if len(writes) < fail_at:
            return real(obj, fh)
        return real(obj, FillingFile(fh, SimpleNamespace(left=4096)))  # full part-way through torch's writes

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN_ARGS, "--out", str(out)])
    err = capsys.readouterr().err  # training's progress notes come first
    last = err.rstrip("\n").rsplit("\n", 1)[-1]
    assert exc.value.code == 2 and "Traceback" not in err and err.count("Error") == 1
    assert last.startswith("Error: cannot write checkpoint ") and last.endswith(
        ".pt (No space left on device); files written before are kept")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    kept = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert len(kept) == fail_at - 1
    for name in kept:
        load_checkpoint(tmp_path / name)


def test_disk_full_while_rewriting_the_resumable_state_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    """The resumable state (`.last.pt`) saved at iteration 2 survives a full disk while the one of iteration 4 is
    written: the error is one line naming it, no temporary file is left, and --resume continues from 2."""
    import rgbt_bench.checkpoint as checkpoint
    out = tmp_path / "m.pt"
    real = checkpoint.torch.save
    last_writes = []

    def save(obj, fh):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fh.fileno()}")).startswith(".m.last.pt."):
            last_writes.append(obj["iteration"])
            if len(last_writes) == 2:
                fh = FillingFile(fh, SimpleNamespace(left=4096))  # full part-way through torch's own writes
        return real(obj, fh)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN_ARGS, "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err and last_writes == [2, 4]
    assert err.rstrip("\n").rsplit("\n", 1)[-1] == (f"Error: cannot write checkpoint {tmp_path / 'm.last.pt'} "
                                                     f"(No space left on device); files written before are kept")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.pt.lock", "m.last.pt", "m.log.jsonl", "m.pt"]
    assert load_checkpoint(tmp_path / "m.last.pt")["iteration"] == 2
    main([*TRAIN_ARGS, "--out", str(out), "--resume"])
    assert "resumed from" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "m.last.pt")["iteration"] == 4


def test_disk_full_while_appending_the_training_log_then_resume(tmp_path, capsys, monkeypatch):
    """The disk fills up part-way through a training-log line: one error line naming the log; the torn line
    it leaves does not stop --resume (regression: it raised a JSONDecodeError traceback)."""
    out = tmp_path / "m.pt"
    FillingDisk(monkeypatch, tmp_path / "m.log.jsonl", 300)  # the first (val) record fits, the next does not
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN_ARGS, "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert err.rstrip("\n").rsplit("\n", 1)[-1] == (f"Error: cannot write training log {tmp_path / 'm.log.jsonl'} "
                                                     f"(No space left on device); the checkpoints written so far "
                                                     f"are kept")
    monkeypatch.undo()
    torn = (tmp_path / "m.log.jsonl").read_text()
    assert torn.count("\n") == 1 and not torn.endswith("\n")
    assert load_checkpoint(tmp_path / "m.last.pt")["iteration"] == 2
    main([*TRAIN_ARGS, "--out", str(out), "--resume"])
    records = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    assert [(r["iteration"], "split" in r) for r in records] == [(2, True), (4, False), (4, True)]


def test_disk_full_while_run_saves_a_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    """`rgbt-bench run` trains through the same save_checkpoint: the models directory filling up during the
    first checkpoint is one error line naming it (exit 2), and no checkpoint or temporary file is left."""
    monkeypatch.setenv("RGBT_BENCH_CACHE", str(tmp_path / "cache"))
    models = tmp_path / "models"
    models.mkdir()
    FillingDisk(monkeypatch, models, 4096)  # room for the training log, not for the checkpoint
    with pytest.raises(SystemExit) as exc:
        main(["run", "--quick", "--models", "rgb_only", "--iterations", "2", "--jobs", "1", "--out",
              str(tmp_path / "res"), "--models-dir", str(models), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err and err.count("Error") == 1
    assert err.rstrip("\n").rsplit("\n", 1)[-1] == (
        f"Error: cannot write checkpoint {models / 'rgb_only_tiny_synthetic_seed1024.pt'} (No space left on device); "
        f"files written before are kept")
    assert sorted(p.name for p in models.iterdir()) == [".rgb_only_tiny_synthetic_seed1024.pt.lock",
                                                         "rgb_only_tiny_synthetic_seed1024.log.jsonl"]


class FillingDisk:
    """A disk with `left` bytes free under `root`: builtins.open, io.open (pathlib) and os.fdopen (atomic
    writes) hand out files whose write stores what still fits, then fails with ENOSPC, as a filling disk does."""

    def __init__(self, monkeypatch, root: Path, left: int):
        self.root, self.left = str(root), left
        real_open, real_fdopen = io.open, os.fdopen

        def fill_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            return self.wrap(fh, str(file), mode)

        def fill_fdopen(fd, mode="r", *args, **kwargs):
            fh = real_fdopen(fd, mode, *args, **kwargs)
            return self.wrap(fh, os.readlink(f"/proc/self/fd/{fd}"), mode)

        monkeypatch.setattr(builtins, "open", fill_open)
        monkeypatch.setattr(io, "open", fill_open)
        monkeypatch.setattr(os, "fdopen", fill_fdopen)

    def wrap(self, fh, path: str, mode: str):
        writes = any(c in mode for c in "wax+")
        return FillingFile(fh, self) if writes and os.path.abspath(path).startswith(self.root) else fh


class FillingFile:
    """A file on a FillingDisk (or anything with a `left` byte count); all but write goes to the real file."""

    def __init__(self, fh, disk):
        self._fh, self._disk = fh, disk

    def write(self, data):
        if len(data) > self._disk.left:
            self._fh.write(data[:self._disk.left])
            self._disk.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __iter__(self):
        return iter(self._fh)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


@pytest.mark.parametrize("left", [0, 3000, 40000])
def test_disk_full_while_rewriting_the_report_is_one_line_and_keeps_the_old_report(world, tmp_path, capsys,
                                                                                     monkeypatch, left):
    """Regression: the report's CSV/Markdown tables and figures were written in place, so a disk filling up
    while a report was rewritten left truncated tables over the good ones. Now each file is the old one or
    the complete new one, no temporary file is left, and the error is one line naming the report directory."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # SVG metadata without the time of day
    out = tmp_path / "r"
    run_sweep(sweep_config(world, out))
    args = ["report", str(out), "--bootstrap", "0", "--images", "1"]
    main(args)
    capsys.readouterr()
    before = snapshot(out / "report")
    assert {"miou.csv", "miou.md", "summary.csv", "heatmap.png", "heatmap.svg"} <= set(before)
    FillingDisk(monkeypatch, out / "report", left)
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert one_error_line(capsys) == (f"Error: cannot write the report to {out / 'report'} (No space left on "
                                      f"device); free space or make it writable, then rerun")
    monkeypatch.undo()
    assert snapshot(out / "report") == before


@pytest.mark.parametrize("left", [0, 300])
def test_disk_full_while_rewriting_the_leaderboard_keeps_the_old_one(world, tmp_path, capsys, monkeypatch, left):
    """Regression: leaderboard.csv/.md were written in place; a full disk left a truncated leaderboard."""
    results = tmp_path / "r"
    run_sweep(sweep_config(world, results))
    board = tmp_path / "board" / "leaderboard.csv"
    args = ["leaderboard", str(results), "--out", str(board), "--bootstrap", "0"]
    main(args)
    capsys.readouterr()
    before = snapshot(board.parent)
    assert set(before) == {"leaderboard.csv", "leaderboard.json", "leaderboard.md"}
    FillingDisk(monkeypatch, board.parent, left)
    with pytest.raises(SystemExit) as exc:
        main([*args, "--rank-by", "clean"])
    assert exc.value.code == 2
    assert one_error_line(capsys) == (f"Error: cannot write the leaderboard {board} (No space left on device); "
                                      f"choose a writable --out")
    monkeypatch.undo()
    assert snapshot(board.parent) == before


def test_a_dataset_file_error_crosses_the_process_boundary_intact():
    """Regression: FileError(path, reason) did not unpickle (TypeError: missing 'reason'), so a damaged image
    met by a `run --jobs N` training worker was reported as the worker process dying."""
    error = FileError(Path("data/images/00001D.png"), "not a readable image file")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is FileError and isinstance(again, DataError)
    assert (str(again), again.path, again.reason) == (str(error), error.path, error.reason)

