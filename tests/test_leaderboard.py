"""`rgbt-bench leaderboard`: one row per model and results directory, ranked among results of one setup with one
mCE reference per group and shared ranks for ties; CSV + JSON + Markdown."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_report import matrix, write_results

from rgbt_bench.cli import main
from rgbt_bench.errors import ConfigError, DataError
from rgbt_bench.report.leaderboard import build_leaderboard

# mean corrupted: fast 55, slow 65, robust 60; clean: fast 85, slow 75, robust 70.
FIRST = {("fast", "clean", 0, 0): matrix(0.85), ("fast", "fog", 1, 0): matrix(0.6), ("fast", "fog", 2, 0): matrix(0.5),
         ("slow", "clean", 0, 0): matrix(0.75), ("slow", "fog", 1, 0): matrix(0.7), ("slow", "fog", 2, 0): matrix(0.6)}
SECOND = {("robust", "clean", 0, 0): matrix(0.7), ("robust", "fog", 1, 0): matrix(0.6),
          ("robust", "fog", 2, 0): matrix(0.6)}


@pytest.fixture()
def dirs(tmp_path):
    return [write_results(tmp_path / "one", FIRST), write_results(tmp_path / "two", SECOND)]


def test_ranked_by_mean_corrupted(dirs):
    frame, skipped = build_leaderboard(dirs, bootstrap=100)
    assert skipped == []
    assert list(frame["model"]) == ["slow", "robust", "fast"]
    assert list(frame["rank"]) == [1, 2, 3]
    assert frame["mean_corrupted_miou"].tolist() == pytest.approx([65.0, 60.0, 55.0])
    assert frame["clean_miou"].tolist() == pytest.approx([75.0, 70.0, 85.0])
    assert frame["rr"].tolist() == pytest.approx([100 * 65 / 75, 100 * 60 / 70, 100 * 55 / 85])
    # one reference for the group (the first model of its first directory), also for the second directory
    assert list(frame["reference"]) == ["fast"] * 3 and set(frame["reference_chosen_by"]) == {"first model"}
    assert frame.loc[2, "mce"] == pytest.approx(100.0)
    assert frame.loc[0, "mce"] == pytest.approx(100 * (0.3 + 0.4) / (0.4 + 0.5))
    assert frame.loc[1, "mce"] == pytest.approx(100 * (0.4 + 0.4) / (0.4 + 0.5))
    # relative mCE (ImageNet-C): sum_s (E_s - E_clean) / sum_s (E_ref,s - E_ref,clean)
    assert frame.loc[0, "rmce"] == pytest.approx(100 * (0.05 + 0.15) / (0.25 + 0.35))
    assert frame.loc[1, "rmce"] == pytest.approx(100 * (0.1 + 0.1) / (0.25 + 0.35))
    assert list(frame["group"]) == [1, 1, 1]
    # identical images give a zero-width interval; it still brackets the estimate
    assert (frame["mean_corrupted_low"] <= frame["mean_corrupted_miou"] + 1e-9).all()
    assert (frame["mean_corrupted_high"] >= frame["mean_corrupted_miou"] - 1e-9).all()


def test_rank_by_other_columns(dirs):
    assert list(build_leaderboard(dirs, "clean", bootstrap=0)[0]["model"]) == ["fast", "slow", "robust"]
    by_mce = build_leaderboard(dirs, "mce", bootstrap=0)[0]
    assert list(by_mce["model"]) == ["slow", "robust", "fast"]  # lower is better
    with pytest.raises(ConfigError, match="invalid --rank-by 'speed'"):
        build_leaderboard(dirs, "speed")


def test_ranks_within_dataset_and_split(tmp_path, dirs):
    other = write_results(tmp_path / "val", SECOND, split="val")
    frame, _ = build_leaderboard([*dirs, other], bootstrap=0)
    val = frame[frame["split"] == "val"]
    assert list(val["rank"]) == [1] and list(frame[frame["split"] == "test"]["rank"]) == [1, 2, 3]
    assert list(val["group"]) == [2] and list(val["reference"]) == ["robust"]


def test_ties_share_a_rank(tmp_path):
    tied = {**FIRST, **{("twin", *k[1:]): v for k, v in FIRST.items() if k[0] == "slow"}}
    frame, _ = build_leaderboard([write_results(tmp_path / "t", tied)], bootstrap=0)
    assert list(zip(frame["model"], frame["rank"])) == [("slow", 1), ("twin", 1), ("fast", 3)]


def test_only_results_of_one_setup_are_ranked_together(tmp_path, dirs):
    """Other images, suites or training seeds form their own group; directories all of different setups are
    refused, naming what differs."""
    fewer = write_results(tmp_path / "fewer", SECOND, images=2)
    seeded = write_results(tmp_path / "seeded", {(*k, 5): v for k, v in SECOND.items()})
    frame, _ = build_leaderboard([*dirs, fewer, seeded], bootstrap=0)
    groups = frame.groupby("group")["results"].agg(lambda r: sorted({Path(p).name for p in r}))
    assert groups.tolist() == [["one", "two"], ["fewer"], ["seeded"]]
    assert (frame.groupby("group")["rank"].min() == 1).all()
    assert frame.loc[frame["results"].str.endswith("seeded"), "train_seeds"].tolist() == ["5"]
    with pytest.raises(DataError, match=r"the 2 results directories are all of different setups, so none can be "
                                        r"ranked against another \(.*one vs .*fewer: images 4 vs 2\)"):
        build_leaderboard([dirs[0], fewer], bootstrap=0)



def test_other_evaluation_modes_are_ranked_apart(tmp_path, dirs):
    """Multi-scale + flip inference or mixed precision moves mIoU: such a directory forms its own group (before:
    ranked with whole-image results, the mode only shown in a provenance column)."""
    flipped = write_results(tmp_path / "flip", SECOND, record=lambda m: {"inference": {
        "mode": "ms-flip", "scales": [0.5, 1.0], "flip": True}})
    mixed = write_results(tmp_path / "amp", SECOND, record=lambda m: {"amp": True})
    frame, _ = build_leaderboard([*dirs, flipped, mixed], bootstrap=0)
    groups = frame.groupby("group")["results"].agg(lambda r: sorted({Path(p).name for p in r}))
    assert groups.tolist() == [["one", "two"], ["flip"], ["amp"]]
    assert frame.groupby("group")["evaluation"].first().tolist() == ["whole", "ms-flip scales 0.5,1 + flip",
                                                                     "whole + AMP"]
    with pytest.raises(DataError, match=r"evaluation whole vs ms-flip scales 0.5,1 \+ flip"):
        build_leaderboard([dirs[0], flipped], bootstrap=0)


def test_one_reference_per_group_from_the_flag_or_the_suite(tmp_path, dirs):
    frame, _ = build_leaderboard(dirs, bootstrap=0, reference="robust")
    assert set(frame["reference"]) == {"robust"} and set(frame["reference_chosen_by"]) == {"--reference"}
    assert frame.set_index("model").loc["robust", "mce"] == pytest.approx(100.0)
    with pytest.raises(ConfigError, match=r"--reference model 'nope' is not in group 1 \(.*one, .*two\); expected "
                                          r"one of fast, slow, robust"):
        build_leaderboard(dirs, bootstrap=0, reference="nope")
    named = [write_results(tmp_path / n, cells, run={"suite": {"entries": [{"label": "fog", "corruption": "fog"}],
                                                               "reference": "slow"}})
             for n, cells in (("a", FIRST), ("b", SECOND))]
    frame, _ = build_leaderboard(named, bootstrap=0)
    assert set(frame["reference"]) == {"slow"} and set(frame["reference_chosen_by"]) == {"suite"}


def test_cli_writes_csv_and_markdown_and_skips_non_results(dirs, tmp_path, capsys):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    out = tmp_path / "board" / "leaderboard.csv"
    main(["leaderboard", *map(str, dirs), str(baselines), "--out", str(out), "--bootstrap", "50"])
    printed = capsys.readouterr().out
    assert f"skipped (no sweep cells): {baselines}" in printed
    rows = [line.split("│")[1:3] for line in printed.splitlines() if line.startswith("│")]
    assert [(r.strip(), m.strip()) for r, m in rows] == [("1", "slow"), ("2", "robust"), ("3", "fast")]
    frame = pd.read_csv(out)
    assert list(frame["model"]) == ["slow", "robust", "fast"] and frame["clean_low_pct"].notna().all()
    md = out.with_suffix(".md").read_text()
    assert md.startswith("| group | rank | model | dataset | split | clean mIoU (%) |")
    assert "| 1 | 1 | slow | synthetic | test | 75.00 |" in md
    assert "mCE against fast (first model)" in md and "mCE against fast (first model)" in printed


def test_no_results_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds sweep results"):
        build_leaderboard([tmp_path / "empty"])
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", str(tmp_path / "empty"), "--out", str(tmp_path / "lb.csv")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "holds sweep results" in err
    assert not (tmp_path / "lb.csv").exists()


def test_leaderboard_prints_under_an_ascii_locale(tmp_path):
    """Regression: a missing value printed as an en dash crashed `leaderboard` with a traceback when stdout was
    ASCII (UnicodeEncodeError); terminal cells are ASCII now."""
    results, second = write_results(tmp_path / "r", FIRST), write_results(tmp_path / "s", SECOND)
    clean_only = write_results(tmp_path / "c", {("other", "clean", 0, 0): matrix(0.8)})  # no mean corrupted, no rank
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([sys.executable, "-m", "rgbt_bench.cli", "leaderboard", str(results), str(second),
                           str(clean_only),
                           "--out", str(tmp_path / "lb.csv"), "--bootstrap", "0"], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {cells[2].strip(): cells for line in done.stdout.splitlines() if len(cells := line.split("|")) > 4}
    assert rows["other"][4].strip() == "-" and rows["other"][1].strip() == "-" and rows["slow"][4].strip() == "65.0"


def test_rows_carry_the_cost_their_sweep_measured(tmp_path):
    """Issue 11 item 3: parameters, GFLOPs and forward images/s per row, with the device they were measured on
    (the leaderboard had none); a model whose sweep did not measure it gets empty values."""
    import json
    path = write_results(tmp_path / "one", FIRST)
    manifest = json.loads((path / "run.json").read_text())
    manifest["models"][0]["efficiency"] = {"params": 2523130, "gflops": 0.449, "images_per_s": 53.2,
                                           "batch_size": 20, "device_name": "x86_64 CPU, 1 threads"}
    (path / "run.json").write_text(json.dumps(manifest))
    frame, _ = build_leaderboard([path], bootstrap=0)
    fast = frame.set_index("model").loc["fast"]
    assert (fast["params"], fast["gflops"], fast["images_per_s"]) == (2523130, 0.449, 53.2)
    assert fast["cost_batch_size"] == 20 and fast["cost_device"] == "x86_64 CPU, 1 threads"
    assert pd.isna(frame.set_index("model").loc["slow", "params"])
    out = tmp_path / "board.csv"
    main(["leaderboard", str(path), "--out", str(out), "--bootstrap", "0"])
    assert pd.read_csv(out).set_index("model").loc["fast", "images_per_s"] == 53.2
    assert "| parameters | GFLOPs | images/s | measured on |" in out.with_suffix(".md").read_text()
