"""`rgbt-bench run --quick` end to end: files written, one finite leaderboard row per model, resume and cache."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from rgbt_bench.checkpoint import load_checkpoint, save_checkpoint
from rgbt_bench.cli import cli
from rgbt_bench.errors import ConfigError
from rgbt_bench.pipeline import (DEFAULT_MODELS, RunConfig, cache_state, derived_suite, move_stale_cells,
                                 train_models, training_key)
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
    for column in ("clean_miou", "mean_corrupted_miou", "worst_miou"):
        assert board[column].map(math.isfinite).all(), board[column]
        assert ((board[column] >= 0) & (board[column] <= 100)).all()
    assert (res / "leaderboard.md").is_file()
    for name in ("miou.csv", "summary.csv", "robustness.csv", "report.json", "heatmap.png"):
        assert (res / "report" / name).is_file(), name
    for model in DEFAULT_MODELS:
        assert (tmp_path / "models" / f"{model}_tiny_synthetic.pt").is_file()
    # quick: severity 5 of each of the 12 default entries plus clean, per model
    cells = list((res / "cells").glob("*.json"))
    assert len(cells) == len(DEFAULT_MODELS) * 13
    assert "rgb_missing s5" in result.output and "phases (wall):" in result.output
    clean = {json.loads(p.read_text())["model"]: json.loads(p.read_text())["metrics"]["miou"]
             for p in cells if "__clean__" in p.name}
    for row in board.itertuples():
        assert row.clean_miou == pytest.approx(100 * clean[row.model], abs=1e-3)

    mtimes = {p: p.stat().st_mtime_ns for p in [*cells, *(tmp_path / "models").glob("*.pt")]}
    again = _run(tmp_path, "--jobs", "1")
    assert again.exit_code == 0, again.output
    assert again.output.count("reusing") == len(DEFAULT_MODELS)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing retrained, no cell recomputed
    assert pd.read_csv(res / "leaderboard.csv")["clean_miou"].tolist() == board["clean_miou"].tolist()


def test_cache_key_reuse_resume_retrain(tmp_path):
    config = RunConfig(quick=True, models=["rgb_only"], models_dir=str(tmp_path / "models"), progress=False)
    tc = config.train_config("rgb_only", (32, 40))
    assert cache_state(tc) == "train"
    from rgbt_bench.training import train
    train(tc)
    assert cache_state(tc) == "ready"
    # an interrupted run (its resumable state short of the last iteration) is resumed, then ready again
    state = load_checkpoint(tc.last_path)
    save_checkpoint(tc.last_path, {**state, "iteration": 1})
    assert cache_state(tc) == "resume"
    assert train_models(config, (32, 40), lambda _: None) == {"rgb_only": "resumed"}
    assert cache_state(tc) == "ready" and load_checkpoint(tc.last_path)["iteration"] == tc.iterations
    # runtime-only fields do not change the key; training fields do
    assert training_key(TrainConfig(**{**tc.__dict__, "workers": 1, "device": "cpu"})) == training_key(tc)
    longer = RunConfig(quick=True, models=["rgb_only"], models_dir=str(tmp_path / "models"), iterations=5,
                       progress=False).train_config("rgb_only", (32, 40))
    assert cache_state(longer) == "train"
    other_seed = RunConfig(quick=True, models=["rgb_only"], models_dir=str(tmp_path / "models"), seed=7,
                           progress=False).train_config("rgb_only", (32, 40))
    assert cache_state(other_seed) == "train"


def test_derived_suite_and_stale_cells(tmp_path):
    suite = derived_suite("default", [1, 5], tmp_path)
    from rgbt_bench.corruptions import load_suite
    entries = load_suite(suite).entries
    assert len(entries) == 12 and all(e.severities == [1, 5] for e in entries)
    cells = tmp_path / "cells"
    cells.mkdir()
    for name, model, sha, severity in (("a", "a", "old", 1), ("b", "b", "new", 1), ("b4", "b", "new", 4),
                                       ("c", "c", "x", 4)):
        (cells / f"{name}.json").write_text(json.dumps({"model": model, "checkpoint_sha256": sha,
                                                        "corruption": "fog", "severity": severity}))
        (cells / f"{name}.npz").write_bytes(b"z")
    current = {"a": {"checkpoint_sha256": "new"}, "b": {"checkpoint_sha256": "new"}}
    # a: other weights; b4: a severity this run does not evaluate; c: not a model of this run
    assert move_stale_cells(tmp_path, current, {("clean", 0), ("fog", 1)}) == ["a", "b4"]
    assert sorted(p.name for p in cells.iterdir()) == ["b.json", "b.npz", "c.json", "c.npz"]
    assert sorted(p.name for p in (tmp_path / "stale").glob("*/*")) == ["a.json", "a.npz", "b4.json", "b4.npz"]


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
        derived_suite("default", [5], blocked / "out")
    result = CliRunner().invoke(cli, ["run", "--severities", "1,x", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
