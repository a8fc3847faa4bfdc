"""A quick look in one command: `sweep --corruptions --severities --limit --inference`, its records, manifest,
summary table and progress lines (issue 11 items 1-3)."""
import json
import re

import pytest
from test_sweep_engine import DATA, USER, write_checkpoint
from user_model_example import build

from rgbt_bench.cli import main
from rgbt_bench.corruptions import get_corruption, load_suite
from rgbt_bench.corruptions.registry import canonical_name
from rgbt_bench.errors import ConfigError
from rgbt_bench.metrics import compute_metrics
from rgbt_bench.sweep.selection import parse_severities, select
from rgbt_bench.sweep.store import read_cells

SYN = ["--dataset-option", f"size={DATA['size']}", "--dataset-option", f"counts={DATA['counts']}"]


def sweep_args(tmp_path, *extra):
    ckpt = write_checkpoint(tmp_path / "u.pt", USER)
    return ["sweep", "--models", f"u={USER}", "--checkpoint", f"u={ckpt}", "--out", str(tmp_path / "out"),
            "--device", "cpu", "--batch-size", "3", *SYN, *extra]


@pytest.fixture()
def quick(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RGBT_BENCH_PROGRESS_INTERVAL", "0")
    main(sweep_args(tmp_path, "--corruptions", "fog,thermal_noise,rgb_missing", "--severities", "1,5",
                    "--limit", "4", "--inference", "slide", "--window", "32x32", "--stride", "16x16"))
    out, err = capsys.readouterr()
    return tmp_path / "out", out, err


def test_only_the_chosen_cells_of_the_first_images(quick):
    out, _, _ = quick
    cells = {c.record.key.cell_id: c for c in read_cells(out)}
    expected = {"u__synthetic__test__clean__s0__seed0"} | {
        f"u__synthetic__test__{c}__s{s}__seed0" for c in ("rgb_missing", "plasma_fog", "thermal_noise") for s in (1, 5)}
    assert set(cells) == expected  # ImageNet-C `fog` is filed under plasma_fog
    for cell in cells.values():
        assert len(cell.names) == 4 and cell.record.identity.num_images == 4 and cell.record.identity.limit == 4
        assert cell.record.identity.inference == {"mode": "slide", "window": [32, 32], "stride": [16, 16]}
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["dataset"]["limit"] == 4 and manifest["dataset"]["num_images"] == 4
    assert manifest["inference"] == {"mode": "slide", "window": [32, 32], "stride": [16, 16]}
    assert [e["label"] for e in manifest["suite"]["entries"]] == ["rgb_missing", "plasma_fog", "thermal_noise"]
    assert all(e["severities"] == [1, 5] for e in manifest["suite"]["entries"])


def test_efficiency_recorded_once_per_model(quick, tmp_path, capsys):
    out, _, err = quick
    (entry,) = json.loads((out / "run.json").read_text())["models"]
    cost = entry["efficiency"]
    assert cost["params"] == sum(p.numel() for p in build(7).parameters())
    assert cost["image_size"] == [32, 40] and cost["batch_size"] == 3
    assert cost["inference"]["mode"] == "slide" and cost["flops"] > 0
    # images/s from the sweep's own forward passes: 4 images x 7 cells, no extra timed passes
    assert cost["timed_images"] == 4 * 7 and cost["images_per_s"] == cost["timed_images"] / cost["timed_s"] > 0
    assert cost["device_name"].endswith("CPU, 1 thread per process") and "warmup" not in cost
    assert "model 'u': " in err and "GFLOPs per 32x40 image (slide 32x32 stride 16x16)" in err
    assert "images/s per process in this sweep's forward passes" in err
    main(sweep_args(tmp_path, "--corruptions", "fog,thermal_noise,rgb_missing", "--severities", "1,5",
                    "--limit", "4", "--inference", "slide", "--window", "32x32", "--stride", "16x16"))
    again = capsys.readouterr().err
    assert "GFLOPs" not in again.split("mIoU (%)")[0]  # reused from run.json, not measured again
    assert json.loads((out / "run.json").read_text())["models"][0]["efficiency"] == cost


def test_summary_on_stderr_and_the_path_alone_on_stdout(quick):
    out, stdout, err = quick
    assert stdout == f"{out}\n"
    cells = {c.record.key.cell_id: c for c in read_cells(out)}
    clean = 100 * compute_metrics(cells["u__synthetic__test__clean__s0__seed0"].confusion, "field").miou
    rgb5 = 100 * compute_metrics(cells["u__synthetic__test__rgb_missing__s5__seed0"].confusion, "field").miou
    assert "mIoU (%) on synthetic/test, 4 images, inference slide 32x32 stride 16x16" in err
    row = next(line for line in err.splitlines() if line.startswith("│ u "))
    values = [v.strip() for v in row.strip("│").split("│")]
    assert values[:3] == ["u", f"{clean:.1f}", values[2]] and values[3] == f"{rgb5:.1f}"
    assert values[4] == "-"  # thermal_missing was not evaluated


def test_plain_progress_lines_when_stderr_is_not_a_terminal(quick):
    _, _, err = quick
    lines = [line for line in err.splitlines() if line.startswith("sweep: cells ")]
    assert lines and re.match(r"^sweep: cells 7/7, images 4/4 \(100%\).*, ETA 0:00:00", lines[-1])
    assert err.index(lines[-1]) < err.index("mIoU (%)")


def test_limit_and_mode_never_mix_with_other_runs(quick, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(sweep_args(tmp_path, "--corruptions", "fog", "--severities", "1", "--inference", "slide",
                        "--window", "32x32", "--stride", "16x16", "--no-progress"))
    assert exc.value.code == 2  # the full split against cells of the first 4 images (limit=4 vs None)
    with pytest.raises(SystemExit):
        main(sweep_args(tmp_path, "--corruptions", "fog", "--severities", "1", "--limit", "4", "--no-progress"))


def test_a_limit_of_the_whole_split_is_the_full_run(tmp_path, capsys):
    main(sweep_args(tmp_path, "--corruptions", "night", "--severities", "3", "--limit", "100", "--no-progress",
                    "--no-efficiency"))
    records = [c.record for c in read_cells(tmp_path / "out")]
    assert {r.identity.limit for r in records} == {None} and {r.identity.num_images for r in records} == {6}
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    assert manifest["models"][0]["efficiency"] is None


def test_suite_selection():
    default = load_suite("default")
    chosen = select(default, ["thermal_blur", "rgb_missing", "low_light", "rgb_pixel_missing"], [2, 4])
    assert [e.label for e in chosen.entries] == ["rgb_missing", "night", "thermal_blur", "rgb_pixel_missing"]
    assert all(e.severities == [2, 4] for e in chosen.entries)
    assert chosen.entries[0].options == {"fill": "zero"}  # the suite's own entry, with its options
    assert chosen.entries[-1].options == get_corruption("rgb_pixel_missing").resolve_options()  # added
    assert select(default, None, None) == default
    with pytest.raises(ConfigError, match=r"unknown corruption 'thermal_nosie'.*Did you mean 'thermal_noise'\?$"):
        select(default, ["thermal_nosie"], None)
    assert parse_severities("5,1") == [1, 5]


def test_imagenet_c_names():
    assert get_corruption("fog") is get_corruption("plasma_fog") and canonical_name("low_light") == "night"
    for name, target, modality in [("gaussian_blur", "thermal_blur", "on thermal"),
                                   ("contrast", "thermal_crossover", "on thermal"),
                                   ("gaussian_noise", "thermal_noise", "on thermal")]:
        with pytest.raises(ConfigError) as exc:
            get_corruption(name)
        message = str(exc.value)
        assert message.startswith(f"unknown corruption '{name}': ImageNet-C {name}") and "\n" not in message
        assert modality in message and message.endswith(f"Did you mean '{target}'?")
    with pytest.raises(ConfigError, match=r"Did you mean 'fog' \(= plasma_fog\)\?$"):
        get_corruption("fgo")


def test_a_suite_file_may_use_an_alias(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("entries:\n  - corruption: fog\n    severities: [2]\n")
    (entry,) = load_suite(path).entries
    assert (entry.corruption, entry.label) == ("plasma_fog", "plasma_fog")


def test_the_report_names_the_evaluation_mode(quick):
    from rgbt_bench.report.load import load_results
    from rgbt_bench.report.provenance import provenance, provenance_columns
    block = provenance(load_results(quick[0]))
    assert block["inference"] == {"u": "slide 32x32 stride 16x16"}
    assert provenance_columns(block, "u")["inference"] == "slide 32x32 stride 16x16"
