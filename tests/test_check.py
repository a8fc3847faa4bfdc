"""`rgbt-bench check`: pass on identical results, fail (exit 1) on a planted regression or a missing cell,
--update-baseline round trip, one clear line for a missing or malformed baseline, refusal (exit 2, naming
what differs) of a baseline made under another setup or written before baselines carried their setup."""
import numpy as np
import pandas as pd
import pytest
from test_report import matrix, write_results

from rgbt_bench.cli import main
from rgbt_bench.report.check import COLUMNS, compare, current_table, read_baseline, write_baseline
from rgbt_bench.report.load import load_results

CELLS = {("crm", "clean", 0, 0): matrix(0.8), ("crm", "fog", 3, 0): matrix(0.6), ("crm", "fog", 3, 1): matrix(0.5),
         ("rtf", "clean", 0, 0): np.array([[6, 2], [1, 3]]),  # mIoU 58.333...%: not exact in 4 decimals
         ("rtf", "fog", 3, 0): matrix(0.4), ("rtf", "fog", 3, 1): matrix(0.4)}


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def setup(tmp_path, capsys):
    results = write_results(tmp_path / "res", CELLS)
    baseline = tmp_path / "baselines" / "tiny.csv"
    code, out, _ = run(["check", str(results), "--baseline", str(baseline), "--update-baseline"], capsys)
    assert code == 0 and "written" in out
    return results, baseline


def test_update_baseline_round_trip(setup):
    results, baseline = setup
    frame = read_baseline(baseline)
    assert len(frame) == 6 and list(frame.columns) == ["model", "dataset", "split", "corruption", "severity", "seed",
                                                       "train_seed", "miou", "convention", "dataset_fingerprint",
                                                       "images", "suite", "evaluation", "preset", "weights"]
    assert set(frame["train_seed"]) == {"given"} and set(frame["images"]) == {4} and set(frame["weights"]) == {"none"}
    row = frame[(frame["model"] == "crm") & (frame["corruption"] == "fog") & (frame["seed"] == 1)].iloc[0]
    assert row["miou"] == pytest.approx(50.0) and row["severity"] == 3 and row["convention"] == "field"
    pd.testing.assert_frame_equal(frame, current_table(load_results(results)), check_exact=True)
    assert not list(baseline.parent.glob(".*.tmp"))


def test_identical_results_pass(setup, capsys):
    results, baseline = setup
    code, out, _ = run(["check", str(results), "--baseline", str(baseline), "--max-drop", "0"], capsys)
    assert code == 0
    assert "PASS: 6 ok" in out


def test_planted_regression_fails_with_diff_naming_the_cell(setup, capsys, tmp_path):
    results, baseline = setup
    write_results(results, {("rtf", "fog", 3, 1): matrix(0.38)}, manifest=False)  # -2 points
    code, out, _ = run(["check", str(results), "--baseline", str(baseline), "--max-drop", "1.0"], capsys)
    assert code == 1
    line = next(line for line in out.splitlines() if "rtf fog@3 seed 1" in line)
    assert "40.0" in line and "38.0" in line and "-2.0" in line and "regression" in line
    assert "FAIL: 5 ok, 1 regression" in out
    code, out, _ = run(["check", str(results), "--baseline", str(baseline), "--max-drop", "2.5"], capsys)
    assert code == 0 and "PASS" in out  # within a looser tolerance


def test_improvement_passes_and_missing_cell_fails(setup, capsys):
    results, baseline = setup
    write_results(results, {("crm", "clean", 0, 0): matrix(0.9), ("crm", "night", 5, 0): matrix(0.2)},
                  manifest=False)
    (results / "cells" / "rtf__synthetic__test__clean__s0__seed0.json").unlink()
    code, out, _ = run(["check", str(results), "--baseline", str(baseline), "--all"], capsys)
    assert code == 1
    assert "FAIL: 5 ok, 1 missing, 1 new" in out
    missing = next(line for line in out.splitlines() if "rtf clean@0 seed 0" in line)
    assert "missing" in missing
    improved = next(line for line in out.splitlines() if "crm clean@0 seed 0" in line)
    assert "10.0" in improved and "ok" in improved


def test_compare_tolerance_edges():
    base = pd.DataFrame([{"model": "m", "dataset": "d", "split": "s", "corruption": "c", "severity": 1, "seed": 0,
                          "train_seed": "0", "miou": 50.0, "convention": "field", "dataset_fingerprint": "f",
                          "images": 4, "suite": "h", "evaluation": "whole", "preset": "tiny",
                          "weights": "training:abc"}])
    for current, status in ((49.0, "ok"), (48.99, "regression"), (float("nan"), "regression"), (60.0, "ok")):
        outcome = compare(base, base.assign(miou=current), max_drop=1.0)
        assert outcome.diff.iloc[0]["status"] == status, current
        assert outcome.passed == (status == "ok")
    with pytest.raises(Exception, match="--max-drop must be >= 0"):
        compare(base, base, max_drop=-1)
    with pytest.raises(Exception, match="mmseg mIoU convention"):
        compare(base.assign(convention="mmseg"), base, max_drop=1)


HEADER = ",".join(COLUMNS) + "\n"
SETUP = "f,4,h,whole,tiny,none"


@pytest.mark.parametrize("content, message", [
    ("", "is not a readable CSV"),
    ("model,dataset\ncrm,synthetic\n", "lacks column(s) split, corruption, severity, seed, train_seed, miou"),
    (HEADER + f"crm,synthetic,test,clean,zero,0,given,80,field,{SETUP}\n", "line 2: severity 'zero' is not a number"),
    (HEADER + f"crm,synthetic,test,clean,0,0,given,80,field,{SETUP}\ncrm,synthetic,test,clean,0,0,given,81,field,"
     f"{SETUP}\n", "line 3 repeats a cell"),
    ('model,dataset\n"crm,synthetic\n', "is not a readable CSV"),
    ("model,dataset,split,corruption,severity,seed,miou,convention\ncrm,synthetic,test,clean,0,0,80,field\n",
     "has no setup columns (train_seed, dataset_fingerprint, images, suite, evaluation, preset, weights): it was "
     "written by an older rgbt-bench"),
    (",".join(c for c in COLUMNS if c != "evaluation") + "\n"
     "crm,synthetic,test,clean,0,0,given,80,field,f,4,h,tiny,none\n",
     "has no setup columns (evaluation): it was written by an older rgbt-bench"),
])
def test_malformed_baseline_is_one_line(setup, tmp_path, capsys, content, message):
    results, _ = setup
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    code, _, err = run(["check", str(results), "--baseline", str(bad)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert str(bad) in err and message in err, err


def test_missing_baseline_is_one_line(setup, tmp_path, capsys):
    results, _ = setup
    code, _, err = run(["check", str(results), "--baseline", str(tmp_path / "none.csv")], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err and "--update-baseline" in err


def test_write_baseline_replaces_atomically(setup):
    results, baseline = setup
    before = baseline.read_text()
    write_results(results, {("crm", "clean", 0, 0): matrix(0.9)}, manifest=False)
    write_baseline(load_results(results), baseline)
    after = read_baseline(baseline)
    assert after.set_index(["model", "corruption", "seed"]).loc[("crm", "clean", 0), "miou"] == pytest.approx(90.0)
    assert baseline.read_text() != before and np.isfinite(after["miou"]).all()


def test_committed_baselines_are_well_formed():
    from pathlib import Path
    stored = sorted((Path(__file__).resolve().parents[1] / "results" / "baselines").glob("*.csv"))
    assert stored, "results/baselines/ holds no baseline"
    for path in stored:
        frame = read_baseline(path)
        assert len(frame) > 0 and frame["miou"].between(0, 100).all(), path
        clean = frame[frame["corruption"] == "clean"]
        assert (clean["severity"] == 0).all() and set(clean["model"]) == set(frame["model"]), path


def test_baseline_of_another_setup_is_refused_naming_what_differs(setup, tmp_path, capsys):
    results, baseline = setup
    fewer = write_results(tmp_path / "fewer", CELLS, images=2)
    code, _, err = run(["check", str(fewer), "--baseline", str(baseline)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "was made under another setup: images 4 in the baseline, 2 in the results" in err
    assert f"--baseline {baseline} --update-baseline" in err
    retrained = write_results(tmp_path / "other", CELLS, record=lambda m: {"training_sha256": "ab" * 32}
                              if m == "rtf" else {})
    code, _, err = run(["check", str(retrained), "--baseline", str(baseline)], capsys)
    assert code == 2 and "weights none in the baseline, training:abababababab in the results (cell rtf" in err
    # before: the evaluation mode was not part of the setup, so ms-flip results passed against a whole-image baseline
    flipped = write_results(tmp_path / "flip", CELLS, record=lambda m: {"inference": {
        "mode": "ms-flip", "scales": [0.5, 1.0], "flip": True}})
    code, _, err = run(["check", str(flipped), "--baseline", str(baseline)], capsys)
    assert code == 2 and "evaluation whole in the baseline, ms-flip scales 0.5,1 + flip in the results" in err
    mixed = write_results(tmp_path / "amp", CELLS, record=lambda m: {"amp": True})
    code, _, err = run(["check", str(mixed), "--baseline", str(baseline)], capsys)
    assert code == 2 and "evaluation whole in the baseline, whole + AMP in the results" in err


def test_old_baseline_says_how_to_regenerate_it(setup, tmp_path, capsys):
    results, _ = setup
    old = tmp_path / "old.csv"
    old.write_text("model,dataset,split,corruption,severity,seed,miou,convention\ncrm,synthetic,test,clean,0,0,80,"
                   "field\n")
    code, _, err = run(["check", str(results), "--baseline", str(old)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "rgbt-bench run --quick, then that command with RESULTS = results/quick" in err
