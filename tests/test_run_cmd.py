"""`rgbt-bench run --quick` end to end: files written, one finite leaderboard row per model, resume and cache."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from rgbt_bench.checkpoint import load_checkpoint, save_checkpoint
from rgbt_bench.cli import cli
from rgbt_bench.errors import ConfigError
from rgbt_bench.pipeline import sweep_config, train_models, write_suite
from rgbt_bench.processes import run_distributed
from rgbt_bench.run_config import DEFAULT_MODELS, RunConfig
from rgbt_bench.sweep import run_sweep
from rgbt_bench.sweep.store import read_cells
from rgbt_bench.training.cache import plan, training_key
from rgbt_bench.training.config import TrainConfig


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    """A fresh synthetic dataset cache per test, instead of the session-wide one set in conftest.py."""
    monkeypatch.setenv("RGBT_BENCH_CACHE", str(tmp_path / "cache"))


def _run(tmp_path, *extra):
    args = ["run", "--quick", "--out", str(tmp_path / "res"), "--models-dir", str(tmp_path / "models"),
            "--bootstrap", "20", "--device", "cpu", "--no-progress", *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_quick_run_end_to_end_and_rerun(tmp_path):
    result = _run(tmp_path, "--jobs", "2")  # two training processes, the sweep sharded over two ranks
    assert result.exit_code == 0, result.output
    res = tmp_path / "res"
    board = pd.read_csv(res / "leaderboard.csv")
    assert sorted(board["model"]) == sorted(DEFAULT_MODELS)
    for column in ("clean_miou_pct", "mean_corrupted_miou_pct", "worst_miou_pct"):
        assert board[column].map(math.isfinite).all(), board[column]
        assert ((board[column] >= 0) & (board[column] <= 100)).all()
    assert (res / "leaderboard.md").is_file()
    for name in ("miou.csv", "summary.csv", "robustness.csv", "report.json", "heatmap.png"):
        assert (res / "report" / name).is_file(), name
    for model in DEFAULT_MODELS:
        assert (tmp_path / "models" / f"{model}_tiny_synthetic_seed1024.pt").is_file()
    # quick: severity 5 of each of the 12 default entries plus clean, per model
    cells = list((res / "cells").glob("*.json"))
    assert len(cells) == len(DEFAULT_MODELS) * 13
    assert "rgb_missing s5" in result.output and "phases (wall):" in result.output
    clean = {json.loads(p.read_text())["model"]: json.loads(p.read_text())["metrics"]["miou"]
             for p in cells if "__clean__" in p.name}
    for row in board.itertuples():
        assert row.clean_miou_pct == pytest.approx(100 * clean[row.model], abs=1e-3)
    # every cell carries its network's val curve (3 iterations, evaluated at each), which the checks judge
    training = json.loads(next(p for p in cells if "__clean__" in p.name).read_text())["training"]
    assert training["iterations"] == 3 and [v["iteration"] for v in training["val"]] == [1, 2, 3]
    assert training["source"] == "checkpoint" and training["unknown"] is None
    checks = json.loads((res / "report" / "report.json").read_text())["training_checks"]
    assert len(checks) == len(DEFAULT_MODELS) and all(c["still_rising"] in (True, False) for c in checks)
    assert all(f"note: {line}" in result.output for line in json.loads((res / "report" / "report.json")
                                                                       .read_text())["notes"])

    # a fresh run in one process with two threads trains the same weights and computes the same cells
    # (before rgbt_bench.threads: every parameter and 44 of 78 cells differed)
    fresh = RunConfig(out=str(tmp_path / "fresh"), models=["crm", "rtfnet", "mfnet"], quick=True,
                      models_dir=str(tmp_path / "fresh_models"), jobs=1, progress=False, device="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_models(fresh, (32, 40), lambda _: None)
        suite = write_suite(fresh.suite, fresh.severities, Path(fresh.out))
        run_distributed(run_sweep, sweep_config(fresh, suite, (32, 40)), 1, 2, "sweep")
    finally:
        torch.set_num_threads(before)
    for model in fresh.models:
        name = f"{model}_tiny_synthetic_seed1024.pt"
        a, b = (load_checkpoint(d / name)["state_dict"] for d in (tmp_path / "models", tmp_path / "fresh_models"))
        assert all(torch.equal(a[k], b[k]) for k in a), model
    first = {c.record.cell_id: c.per_image for c in read_cells(res)}
    second = {c.record.cell_id: c.per_image for c in read_cells(fresh.out)}
    assert len(second) == 3 * 13 and all(np.array_equal(first[k], second[k]) for k in second)

    mtimes = {p: p.stat().st_mtime_ns for p in [*cells, *(tmp_path / "models").glob("*.pt")]}
    again = _run(tmp_path, "--jobs", "1")
    assert again.exit_code == 0, again.output
    assert again.output.count("reusing") == len(DEFAULT_MODELS)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing retrained, no cell recomputed
    assert pd.read_csv(res / "leaderboard.csv")["clean_miou_pct"].tolist() == board["clean_miou_pct"].tolist()


def test_cache_key_reuse_resume_retrain(tmp_path):
    config = RunConfig(quick=True, models=["rgb_only"], models_dir=str(tmp_path / "models"), progress=False)
    tc = config.train_config("rgb_only", (32, 40))
    assert plan(tc).state == "train" and plan(tc).reason == "no earlier run"
    from rgbt_bench.training import train
    train(tc)
    assert plan(tc).state == "ready"
    # an interrupted run (its resumable state short of the last iteration) is resumed, then ready again
    state = load_checkpoint(tc.last_path)
    save_checkpoint(tc.last_path, {**state, "iteration": 1})
    assert plan(tc).state == "resume" and plan(tc).config.resume
    assert train_models(config, (32, 40), lambda _: None) == {"rgb_only": "resumed"}
    assert plan(tc).state == "ready" and load_checkpoint(tc.last_path)["iteration"] == tc.iterations
    # runtime-only fields do not change the key; training fields do
    assert training_key(TrainConfig(**{**tc.__dict__, "workers": 1, "device": "cpu"})) == training_key(tc)
    longer = RunConfig(quick=True, models=["rgb_only"], models_dir=str(tmp_path / "models"), iterations=5,
                       progress=False).train_config("rgb_only", (32, 40))
    assert plan(longer).state == "train"
    assert plan(longer).reason == "its training config differs: iterations 3, requested 5"
    other_seed = RunConfig(quick=True, models=["rgb_only"], models_dir=str(tmp_path / "models"), seed=7,
                           progress=False).train_config("rgb_only", (32, 40))
    # another training seed is another replica, kept in its own file beside the first
    assert other_seed.out_path == tmp_path / "models" / "rgb_only_tiny_synthetic_seed7.pt" != tc.out_path
    assert plan(other_seed).state == "train" and plan(other_seed).reason == "no earlier run"
    assert plan(dataclasses.replace(other_seed, out=str(tc.out_path))).reason.endswith("seed 1024, requested 7")


def test_suite_restricted_to_the_run_severities(tmp_path):
    suite = write_suite("default", [1, 5], tmp_path)
    from rgbt_bench.corruptions import load_suite
    entries = load_suite(suite).entries
    assert len(entries) == 12 and all(e.severities == [1, 5] for e in entries)
    assert entries == [dataclasses.replace(e, severities=[1, 5]) for e in load_suite("default").entries]
    with pytest.raises(ConfigError, match=r"suite 'default' has no entry at severities \[\]"):
        load_suite("default").restrict([])


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="severities"):
        RunConfig(severities=[0, 6])
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        RunConfig(models="crm,nope")
    with pytest.raises(ConfigError, match="twice"):
        RunConfig(models="crm,crm")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ConfigError, match="writable --out"):
        write_suite("default", [5], blocked / "out")
    result = CliRunner().invoke(cli, ["run", "--severities", "1,x", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


def test_parallel_training_lines_name_the_replica(tmp_path, monkeypatch):
    """With several training seeds every parallel run's lines carry model@seed (they all said "[crm]" before)."""
    import rgbt_bench.pipeline as pipeline
    seen = {}

    def fake_map(fn, runs, jobs, threads, what, label=None):
        seen.update({label(run): run.seed for run in runs})
        return []

    monkeypatch.setattr(pipeline, "map_in_processes", fake_map)
    config = RunConfig(out=str(tmp_path / "out"), models="crm,mfnet", train_seeds="0,1", quick=True,
                       models_dir=str(tmp_path / "models"), progress=False)
    train_models(config, (32, 40), lambda text: None)
    assert seen == {"crm@0": 0, "crm@1": 1, "mfnet@0": 0, "mfnet@1": 1}
