"""`rgbt-bench datasets list` and `rgbt-bench datasets verify` through click's CliRunner and main()."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_real import kp_paths, truncate, write_kp, write_mfnet, write_png

from rgbt_bench.cli import cli, main

WIDE = {"COLUMNS": "250"}  # rich wraps tables at the terminal width


def run(*args: str):
    return CliRunner().invoke(cli, list(args), env=WIDE)


def test_list_shows_every_registered_dataset():
    result = run("datasets", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in result.output.splitlines() if line.count("│") > 8}
    assert rows["mfnet"] == ["9", "none", "field", "480x640", "train, val, test, test_day, test_night", "yes",
                             "mfnet:/path/to/mfnet"]
    assert rows["pst900"] == ["5", "none", "field", "720x1280", "train, test", "no", "pst900:/path/to/pst900"]
    assert rows["kp"][:4] == ["19", "19", "field", "512x640"] and rows["kp"][-1] == "kp:/path/to/kp"
    assert rows["synthetic"][-1] == "synthetic" and rows["synthetic"][2] == "field"


def test_verify_clean_dataset_exits_0(tmp_path):
    fx = write_mfnet(tmp_path / "MFNet")
    result = run("datasets", "verify", f"mfnet:{fx.root}")
    assert result.exit_code == 0, result.output
    assert "PROBLEM" not in result.output
    assert f"mfnet:{fx.root}: 9 samples checked in 5 split(s); all files OK" in result.output


def test_verify_lists_each_planted_problem_and_exits_1(tmp_path):
    fx = write_kp(tmp_path / "KP")
    day, night = fx.splits["train_day"][0], fx.splits["test_night"][0]
    truncated = truncate(kp_paths(fx.root, day)[0])
    missing = kp_paths(fx.root, night)[2]
    missing.unlink()
    bad_label = kp_paths(fx.root, fx.splits["val_day"][0])[2]
    write_png(bad_label, np.full((24, 32), 40, np.uint8))
    result = run("datasets", "verify", f"kp:{fx.root}")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("PROBLEM ")]
    assert len(lines) == 3
    assert lines[0].startswith(f"PROBLEM {truncated}: cannot decode image")
    assert lines[1].startswith(f"PROBLEM {bad_label}: label ids [40] out of range")
    assert lines[2].startswith(f"PROBLEM {missing}: file not found")
    assert "9 samples checked in 9 split(s); 3 problem(s) found" in result.output


def test_verify_one_split_and_missing_root(tmp_path):
    fx = write_mfnet(tmp_path / "MFNet")
    truncate(fx.root / "images" / f"{fx.splits['train'][0]}.png")
    result = run("datasets", "verify", f"mfnet:{fx.root}", "--split", "val")
    assert result.exit_code == 0, result.output
    assert "2 samples checked in 1 split(s); all files OK" in result.output
    nowhere = tmp_path / "nowhere"
    result = run("datasets", "verify", f"mfnet:{nowhere}", "--split", "test")
    assert result.exit_code == 1
    assert f"PROBLEM {nowhere}: MFNet dataset root not found" in result.output


def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys):
    fx = write_mfnet(tmp_path / "MFNet")
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "verify", f"mfnet:{fx.root}", "--split", "night"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("Error: dataset 'mfnet' has no split 'night'; expected one of "
                   "train, val, test, test_day, test_night")
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "verify", "mfnet"])
    assert exit_info.value.code == 2
    assert "needs a root directory" in capsys.readouterr().err


def test_main_exits_1_on_problems(tmp_path, capsys):
    fx = write_mfnet(tmp_path / "MFNet")
    label = write_png(fx.root / "labels" / f"{fx.splits['val'][1]}.png", np.full((24, 32), 9, np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "verify", f"mfnet:{fx.root}", "--split", "val"])
    assert exit_info.value.code == 1
    assert f"PROBLEM {label}: label ids [9] out of range" in capsys.readouterr().out
    main(["datasets", "verify", f"mfnet:{fx.root}", "--split", "train"])  # clean split: returns, exit 0
    assert "3 samples checked in 1 split(s); all files OK" in capsys.readouterr().out
