"""Report computations on hand-made results directories: tables, robustness metrics, bootstrap, errors.

Helpers here (`write_results`, `matrix`) build results directories with rgbt_bench.sweep.store.write_cell,
so the other report tests (plots, leaderboard, check) import them.
"""
import dataclasses
import json
import math

import numpy as np
import pytest

from rgbt_bench.cli import main
from rgbt_bench.errors import ConfigError, DataError
from rgbt_bench.metrics import compute_metrics
from rgbt_bench.report.bootstrap import (
    batched_miou,
    bootstrap_miou,
    paired_bootstrap,
    percentile_interval,
    resample_counts,
)
from rgbt_bench.report.build import build_report
from rgbt_bench.report.load import load_results
from rgbt_bench.report.robustness import Reference, choose_reference, robustness_tables
from rgbt_bench.report.tables import day_night_table, miou_table, per_class_table, to_markdown
from rgbt_bench.sweep.cell import CellIdentity, CellKey, CellRecord
from rgbt_bench.sweep.store import write_cell, write_json

CLASSES = ("background", "thing")


def matrix(miou: float, total: int = 200) -> np.ndarray:
    """2-class confusion matrix [[a, b], [b, a]] with a + 2b = total: both IoUs (and the mIoU) equal a/total."""
    a = round(miou * total)
    assert (total - a) % 2 == 0
    b = (total - a) // 2
    return np.array([[a, b], [b, a]], dtype=np.int64)


def cell_record(key: CellKey, per_image: np.ndarray, class_names=CLASSES, convention="field") -> CellRecord:
    """A complete record for a hand-made cell: what reports read is real, the provenance is placeholder."""
    identity = CellIdentity(model_spec=key.model, preset="tiny", model_kwargs={}, checkpoint_sha256=None,
                            num_classes=len(class_names), num_images=len(per_image), dataset_fingerprint="hand",
                            dataset_options={}, corruption_name=None if key.corruption == "clean" else key.corruption,
                            corruption_version=None if key.corruption == "clean" else 2,
                            options={}, convention=convention, batch_size=1, amp=False)
    return CellRecord(key=key, identity=identity, class_names=tuple(class_names), ignore_index=255,
                      metrics=compute_metrics(per_image.sum(0), convention).as_dict(), modality=None, params={},
                      checkpoint=None, checkpoint_source="given", input_convention="imagenet", selected_on="val",
                      dataset_spec=key.dataset, device="cpu", device_name="test", world_size=1, elapsed_s=0.0,
                      pass_elapsed_s=0.0, finished_at="2026-01-01T00:00:00+00:00", rgbt_bench_version="test")


def with_fields(rec: CellRecord, fields: dict) -> CellRecord:
    """`rec` with some record or identity fields replaced (e.g. a checkpoint SHA-256)."""
    names = {f.name for f in dataclasses.fields(CellIdentity)}
    identity = dataclasses.replace(rec.identity, **{k: v for k, v in fields.items() if k in names})
    return dataclasses.replace(rec, identity=identity, **{k: v for k, v in fields.items() if k not in names})


def write_results(path, cells, *, images=4, names=None, is_night=None, class_names=CLASSES, convention="field",
                  manifest=True, dataset="synthetic", split="test", record=None, run=None):
    """Write a results directory. `cells`: {(model, corruption, severity, seed[, train_seed]): per-image [N,C,C]
    or a [C,C] matrix repeated for every image}. A run.json lists the models in first-seen order when `manifest`.
    `record(model)` sets fields of each cell's record (`CellRecord` or `CellIdentity` fields), `run` adds
    fields to run.json."""
    stacked = [np.asarray(v) for v in cells.values() if np.ndim(v) == 3]
    names = names or [f"{i:05d}D" for i in range(len(stacked[0]) if stacked else images)]
    is_night = is_night if is_night is not None else [None] * len(names)
    for (model, corruption, severity, seed, *train_seed), value in cells.items():
        per_image = np.asarray(value)
        if per_image.ndim == 2:
            per_image = np.repeat(per_image[None], len(names), axis=0)
        key = CellKey(model, dataset, split, corruption, severity, seed, *train_seed)
        rec = with_fields(cell_record(key, per_image, class_names, convention), record(model) if record else {})
        write_cell(path, rec, per_image, names, is_night)
    if manifest:
        models = list(dict.fromkeys(k[0] for k in cells))
        corruptions = list(dict.fromkeys(k[1] for k in cells if k[1] != "clean"))
        write_json(path / "run.json", {"models": [{"name": m, "spec": m} for m in models],
                                       "suite": {"entries": [{"label": c, "corruption": c} for c in corruptions]},
                                       "dataset": {"spec": dataset, "split": split}, "seeds": [0], **(run or {})})
    return path


# Hand-computed example (mIoU fractions): reference B; A loses more under both corruptions.
HAND = {
    ("B", "clean", 0, 0): matrix(0.9), ("A", "clean", 0, 0): matrix(0.8),
    ("B", "noise", 1, 0): matrix(0.7), ("B", "noise", 2, 0): matrix(0.5),
    ("A", "noise", 1, 0): matrix(0.6), ("A", "noise", 2, 0): matrix(0.4),
    ("B", "blur", 1, 0): matrix(0.8), ("B", "blur", 2, 0): matrix(0.6),
    ("A", "blur", 1, 0): matrix(0.7), ("A", "blur", 2, 0): matrix(0.5),
}


@pytest.fixture()
def hand(tmp_path):
    return load_results(write_results(tmp_path / "hand", HAND))


def test_load_orders_models_and_corruptions_as_run_json(hand):
    assert hand.models == ["B", "A"]
    assert hand.corruptions == ["noise", "blur"]
    assert hand.settings() == [("clean", 0), ("noise", 1), ("noise", 2), ("blur", 1), ("blur", 2)]
    assert hand.miou("A", "noise", 2) == pytest.approx(0.4)
    assert math.isnan(hand.miou("A", "fog", 1))


def test_robustness_hand_computed(hand):
    per_corruption, per_model = robustness_tables(hand, Reference("B", "--reference"))
    a = per_corruption[per_corruption["model"] == "A"].set_index("corruption")
    assert a.loc["noise", "mean_miou"] == pytest.approx(50.0)
    assert a.loc["noise", "rr"] == pytest.approx(100 * 0.5 / 0.8)
    assert a.loc["noise", "ce"] == pytest.approx(100 * (0.4 + 0.6) / (0.3 + 0.5))
    assert a.loc["blur", "ce"] == pytest.approx(100 * (0.3 + 0.5) / (0.2 + 0.4))
    rows = per_model.set_index("model")
    assert rows.loc["A", "clean_miou"] == pytest.approx(80.0)
    assert rows.loc["A", "mean_corrupted_miou"] == pytest.approx(55.0)
    assert rows.loc["A", "rr"] == pytest.approx(100 * (0.625 + 0.75) / 2)
    assert rows.loc["A", "mce"] == pytest.approx(100 * (1.25 + 4 / 3) / 2)
    assert rows.loc["A", "worst_miou"] == pytest.approx(40.0)
    assert rows.loc["A", "worst_setting"] == "noise@2"
    assert rows.loc["B", "mce"] == pytest.approx(100.0)
    assert rows.loc["B", "reference"] == "B"


def test_reference_choice(hand, tmp_path):
    assert choose_reference(hand) == Reference("B", "first model")
    assert choose_reference(hand, "A") == Reference("A", "--reference")
    with pytest.raises(ConfigError, match="--reference model 'C' is not in .*expected one of B, A"):
        choose_reference(hand, "C")
    manifest = json.loads((hand.path / "run.json").read_text())
    write_json(hand.path / "run.json", {**manifest, "reference": "A"})
    assert choose_reference(load_results(hand.path)) == Reference("A", "run.json")


def test_seeds_are_pooled_by_summing_matrices(tmp_path):
    seed0, seed1 = np.array([[30, 10], [0, 60]]), np.array([[10, 30], [20, 40]])
    results = load_results(write_results(tmp_path / "r", {
        ("m", "clean", 0, 0): matrix(0.8), ("m", "noise", 3, 0): seed0, ("m", "noise", 3, 1): seed1}))
    cell = results.cell("m", "noise", 3)
    assert cell.seeds == (0, 1)
    assert results.miou("m", "noise", 3) == pytest.approx(compute_metrics(4 * (seed0 + seed1)).miou)
    table = miou_table(results)
    row = table[table["corruption"] == "noise"].iloc[0]
    assert row["seeds"] == "0,1" and row["images"] == 4
    assert len(results.raw) == 3


def test_miou_and_per_class_tables(hand):
    table = miou_table(hand)
    assert list(table.columns[:5]) == ["model", "dataset", "split", "corruption", "severity"]
    assert len(table) == 10
    assert table.set_index(["model", "corruption", "severity"]).loc[("A", "blur", 1), "miou"] == pytest.approx(70.0)
    per_class = per_class_table(hand)
    assert list(per_class.columns) == ["model", "corruption", "severity", *CLASSES]
    row = per_class[(per_class["model"] == "B") & (per_class["corruption"] == "clean")].iloc[0]
    assert row["background"] == pytest.approx(90.0) and row["thing"] == pytest.approx(90.0)


def test_per_class_iou_values(tmp_path):
    m = np.array([[6, 2], [1, 3]])  # IoU background 6/9, thing 3/6
    results = load_results(write_results(tmp_path / "r", {("m", "clean", 0, 0): m}))
    row = per_class_table(results).iloc[0]
    assert row["background"] == pytest.approx(100 * 6 / 9) and row["thing"] == pytest.approx(50.0)
    assert miou_table(results).iloc[0]["miou"] == pytest.approx(100 * (6 / 9 + 0.5) / 2)


def test_day_night_split(tmp_path):
    perfect, wrong = np.array([[5, 0], [0, 5]]), np.array([[0, 5], [5, 0]])
    per_image = np.stack([perfect, perfect, wrong, perfect])
    results = load_results(write_results(
        tmp_path / "r", {("m", "clean", 0, 0): per_image}, names=["1D", "2D", "3N", "4N"],
        is_night=[False, False, True, True]))
    row = day_night_table(results).iloc[0]
    assert row["miou_day"] == pytest.approx(100.0)
    assert row["miou_night"] == pytest.approx(100 * (5 / 15 + 5 / 15) / 2)
    assert row["miou"] == pytest.approx(100 * (15 / 25 + 15 / 25) / 2)
    assert (row["images_day"], row["images_night"]) == (2, 2)
    no_flags = load_results(write_results(tmp_path / "s", {("m", "clean", 0, 0): per_image}))
    assert day_night_table(no_flags) is None


def test_mmseg_convention_is_kept(tmp_path):
    m = np.array([[4, 0, 0], [0, 0, 0], [1, 0, 5]])  # class 1 absent from label and prediction -> NaN, not 0
    results = load_results(write_results(tmp_path / "r", {("m", "clean", 0, 0): m}, class_names=("a", "b", "c"),
                                         convention="mmseg"))
    assert results.convention == "mmseg"
    assert miou_table(results).iloc[0]["miou"] == pytest.approx(100 * (4 / 5 + 5 / 6) / 2)


def test_batched_miou_matches_compute_metrics():
    rng = np.random.default_rng(3)
    mats = rng.integers(0, 20, size=(50, 5, 5))
    mats[::3, 2, :] = 0
    mats[::3, :, 2] = 0  # class 2 absent in some matrices
    mats[7] = 0
    for convention in ("field", "mmseg"):
        got = batched_miou(mats, convention)
        want = np.array([compute_metrics(m, convention).miou for m in mats])
        np.testing.assert_allclose(got, want, equal_nan=True)


def test_resample_counts_seeded_and_complete():
    a, b = resample_counts(30, 200, seed=5), resample_counts(30, 200, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 30) and (a.sum(axis=1) == 30).all()
    assert not np.array_equal(a, resample_counts(30, 200, seed=6))
    assert 0.3 < (a == 0).mean() < 0.44  # each image is left out of ~ (1 - 1/N)^N ~ 36% of resamples


def _noisy_cell(rng, n):
    """Per-image 3-class matrices whose quality varies from image to image."""
    quality = rng.uniform(0.3, 0.9, size=n)
    mats = np.zeros((n, 3, 3), dtype=np.int64)
    for i, q in enumerate(quality):
        for c in range(3):
            hits = int(100 * q)
            mats[i, c, c] = hits
            mats[i, c, (c + 1) % 3] = 100 - hits
    return mats


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 320):
        cell = _noisy_cell(rng, n)
        estimate = compute_metrics(cell.sum(0)).miou
        low, high = percentile_interval(bootstrap_miou(cell, resample_counts(n, 1000, 0), "field"), 0.95)
        assert low < estimate < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(N): 4x narrower for 16x the images


def test_paired_bootstrap_difference_with_itself_is_zero(tmp_path):
    rng = np.random.default_rng(1)
    clean, noisy = _noisy_cell(rng, 40), _noisy_cell(rng, 40)
    other = _noisy_cell(rng, 40)
    results = load_results(write_results(tmp_path / "r", {
        ("m", "clean", 0, 0): clean, ("m", "noise", 1, 0): noisy,
        ("twin", "clean", 0, 0): clean, ("twin", "noise", 1, 0): noisy,
        ("other", "clean", 0, 0): other, ("other", "noise", 1, 0): noisy}, class_names=("a", "b", "c")))
    boot = paired_bootstrap(results, Reference("m", "--reference"), resamples=300, seed=0)
    twin = boot.differences[boot.differences["model"] == "twin"]
    assert len(twin) == 6 and (twin["low"] == 0).all() and (twin["high"] == 0).all()  # SUMMARY_STATS
    assert not twin["excludes_zero"].any()
    own = boot.cells[boot.cells["model"] == "m"]
    assert (own["diff_vs_reference_low"] == 0).all() and (own["diff_vs_reference_high"] == 0).all()
    # an unpaired copy of the same images would give a wide interval; paired, a shared cell differs by exactly 0
    noise = boot.cells[(boot.cells["model"] == "other") & (boot.cells["corruption"] == "noise")].iloc[0]
    assert noise["diff_vs_reference_low"] == 0 and noise["diff_vs_reference_high"] == 0
    clean_other = boot.cells[(boot.cells["model"] == "other") & (boot.cells["corruption"] == "clean")].iloc[0]
    assert clean_other["diff_vs_reference_low"] < clean_other["diff_vs_reference_high"]
    summary = boot.summary.set_index(["model", "statistic"])
    assert summary.loc[("m", "mce"), "low"] == summary.loc[("m", "mce"), "high"] == pytest.approx(100.0)
    for stat in ("clean", "mean_corrupted"):
        row = summary.loc[("other", stat)]
        assert row["low"] <= row["estimate"] <= row["high"]
    assert boot.meta()["convention"] == "field" and boot.meta()["resamples"] == 300


def test_build_report_writes_tables_and_records_choices(hand):
    report = build_report(hand.path, reference="B", bootstrap=200, plot=False)
    out = hand.path / "report"
    for name in ("miou.csv", "miou.md", "miou.json", "per_class.csv", "per_class.md", "robustness.csv",
                 "summary.csv", "bootstrap_summary.csv", "bootstrap_differences.csv", "report.json"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "day_night.csv").exists()
    meta = json.loads((out / "report.json").read_text())
    assert meta["reference"] == "B" and meta["reference_chosen_by"] == "--reference"
    assert meta["convention"] == "field" and meta["bootstrap"]["resamples"] == 200
    rows = json.loads((out / "miou.json").read_text())
    by_cell = {(r["model"], r["corruption"], r["severity"]): r["miou_pct"] for r in rows}
    assert by_cell[("A", "noise", 2)] == pytest.approx(40)
    md = (out / "miou.md").read_text()
    assert md.startswith("| corruption | severity | B (%) | A (%) |\n") and "| noise | 2 | 50.00 | 40.00 |" in md
    assert report.summary.set_index("model").loc["A", "mce"] == pytest.approx(100 * (1.25 + 4 / 3) / 2)


def test_to_markdown_formats_nan_and_escapes_pipes():
    import pandas as pd
    md = to_markdown(pd.DataFrame({"name": ["a|b"], "value": [float("nan")]}))
    assert md.splitlines() == ["| name | value |", "|---|---:|", "| a\\|b | – |"]


def test_load_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no finished sweep cells"):
        load_results(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        load_results(tmp_path / "nowhere")
    write_results(tmp_path / "mixed", {("m", "clean", 0, 0): matrix(0.8)}, images=4)
    write_results(tmp_path / "mixed", {("n", "clean", 0, 0): matrix(0.8)}, images=3, manifest=False)
    with pytest.raises(DataError, match="covers other images"):
        load_results(tmp_path / "mixed")


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_errors_are_one_line(hand, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv, message in [
        (["report", str(tmp_path / "empty")], "holds no finished sweep cells"),
        (["report", str(hand.path), "--reference", "C"], "--reference model 'C' is not in"),
        (["report", str(hand.path), "--qualitative", "noise"], "invalid --qualitative 'noise'"),
        (["report", str(hand.path), "--qualitative", "fog:3"], "--qualitative 'fog:3' is not a setting"),
        (["report", str(hand.path), "--qualitative", "fog@3"], "--qualitative 'fog@3' is not a setting"),
        (["report", str(hand.path), "--per-class", "noise@x"], "invalid --per-class 'noise@x'; expected "
                                                                "CORRUPTION@SEVERITY, e.g. noise@1, noise@2, blur@1"),
        (["report", str(hand.path), "--bootstrap", "-1"], "--bootstrap must be >= 0"),
        (["report", str(hand.path), "--bootstrap", "1", "--latex"], "--bootstrap must be >= 2 resamples"),
    ]:
        code, out, err = _cli(argv, capsys)
        assert code == 2, argv
        assert err.count("\n") == 1 and message in err, err
    assert not (hand.path / "report").exists()  # nothing written when the arguments are wrong


def test_cli_report_prints_summary(hand, capsys):
    main(["report", str(hand.path), "--bootstrap", "100", "--no-plots", "--reference", "B"])
    out = capsys.readouterr().out
    assert "mCE against 'B' (--reference)" in out
    line = next(line for line in out.splitlines() if line.startswith("│ A "))
    assert "80.0" in line and "55.0" in line and "129.2" in line and "noise@2" in line


def test_unfinished_sweep_is_refused_or_summarised_over_its_complete_corruptions(tmp_path):
    """Issue 13 item 3: means over whatever subset exists were presented as complete."""
    path = write_results(tmp_path / "r", {k: v for k, v in HAND.items() if k != ("A", "noise", 2, 0)})
    with pytest.raises(DataError, match=r"holds 9 of 10 planned cells \(an interrupted sweep\?\): incomplete noise; "
                                        r"rerun the sweep to finish it, or pass --allow-partial"):
        build_report(path, bootstrap=50, plot=False)
    report = build_report(path, bootstrap=50, plot=False, allow_partial=True)
    rows = report.summary.set_index("model")
    assert rows.loc["A", "mean_corrupted_miou"] == pytest.approx(60.0)  # blur only: (70 + 50) / 2
    assert rows.loc["B", "mean_corrupted_miou"] == pytest.approx(70.0)
    assert rows.loc["A", "worst_miou"] == pytest.approx(50.0) and rows.loc["A", "worst_setting"] == "blur@2"
    note = ("partial results: 9 of 10 planned cells (an interrupted sweep?); mean corrupted, RR, mCE and worst are "
            "over the complete corruptions only (blur); incomplete: noise")
    assert report.notes[0] == note  # then the training checks (hand-made cells: no curve)
    assert json.loads((report.out_dir / "report.json").read_text())["notes"] == report.notes
    for table in ("summary", "miou", "robustness"):
        assert note in " ".join((report.out_dir / f"{table}.md").read_text().split()), table


def test_unreadable_cell_is_named(tmp_path):
    path = write_results(tmp_path / "r", HAND)
    bad = path / "cells" / "A__synthetic__test__blur__s1__seed0.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(DataError, match=f"{bad} is not a readable sweep cell"):
        load_results(path)
