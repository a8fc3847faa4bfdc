"""Report figures (PNG + SVG) and the end-to-end path: a real tiny sweep -> report with a qualitative grid.

SVG text stays text, so the tests read a figure's titles, legends and labels from its SVG."""
import json
import os
import re

import numpy as np
import pytest
import torch
from test_report import HAND, write_results

from rgbt_bench.checkpoint import file_sha256, save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.datasets import open_dataset
from rgbt_bench.metrics import compute_metrics
from rgbt_bench.models.registry import build_model
from rgbt_bench.report.build import build_report, worst_setting
from rgbt_bench.report.load import load_results
from rgbt_bench.report.plots import model_styles, upper_limit
from rgbt_bench.report.qualitative import colorize, ignore_colour, pick_images
from rgbt_bench.sweep import SweepConfig, run_sweep

USER = "user_model_example:build"
PNG = b"\x89PNG\r\n\x1a\n"


def assert_figure(base):
    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 5000


def svg_texts(base) -> list[str]:
    """The text elements of a figure's SVG, in drawing order."""
    return re.findall(r"<text[^>]*>([^<]*)</text>", base.with_suffix(".svg").read_text())


def test_plots_from_hand_made_results(tmp_path):
    results = write_results(tmp_path / "r", HAND)
    report = build_report(results, bootstrap=0, qualitative="none", per_class="blur:2")
    for name in ("heatmap", "curves", "class_heatmap", "per_class"):
        assert_figure(report.out_dir / name)
        assert "synthetic / test, 4 images, mIoU convention field" in svg_texts(report.out_dir / name), name
    assert not (report.out_dir / "qualitative.png").exists()
    meta = json.loads((report.out_dir / "report.json").read_text())
    assert meta["per_class_setting"] == "blur@2" and meta["qualitative_setting"] is None
    assert meta["bootstrap"] is None and "heatmap.svg" in meta["files"]
    assert "blur@2" in svg_texts(report.out_dir / "per_class")
    assert not any("CI" in t for t in svg_texts(report.out_dir / "curves"))  # no bootstrap, no bands
    report = build_report(results, bootstrap=0, qualitative="none", per_class="none")
    assert json.loads((report.out_dir / "report.json").read_text())["per_class_setting"] is None
    assert "per_class.png" not in [p.name for p in report.files]


def test_curves_carry_a_confidence_band_per_model_and_corruption(tmp_path):
    report = build_report(write_results(tmp_path / "r", HAND), bootstrap=50, qualitative="none", per_class="none")
    svg = (report.out_dir / "curves.svg").read_text()
    assert len(re.findall(r'id="FillBetweenPolyCollection_', svg)) == 2 * 2  # models x corruptions
    assert "95% CI (paired" in svg_texts(report.out_dir / "curves")


def test_every_model_gets_its_own_style():
    models = [f"m{i}" for i in range(12)]
    styles = model_styles(models)
    assert len({(s.colour, s.marker, s.linestyle) for s in styles.values()}) == 12
    first = [styles[m] for m in models[:8]]
    assert len({s.colour for s in first}) == 8 and len({s.marker for s in first}) == 8
    assert upper_limit([3.2, float("nan")]) == 10 and upper_limit([55.0], [61.0]) == 70 and upper_limit([99.0]) == 100


def test_zero_and_undefined_iou_are_labelled_differently(tmp_path):
    """mmseg: class b absent from labels and predictions is undefined (n/a); class c predicted nowhere right is 0."""
    m = np.array([[4, 0, 1], [0, 0, 0], [1, 0, 0]])
    report = build_report(write_results(tmp_path / "r", {("m", "clean", 0, 0): m, ("m", "noise", 1, 0): m},
                                        class_names=("a", "b", "c"), convention="mmseg"),
                          bootstrap=0, qualitative="none", per_class="noise@1")
    texts = svg_texts(report.out_dir / "per_class")
    assert texts.count("n/a") == 2 and texts.count("0") >= 2  # one of each per panel (+ axis ticks "0")
    assert "no IoU (class absent," in texts and "IoU exactly 0" in texts
    assert "grey: undefined, class absent" in " ".join(svg_texts(report.out_dir / "class_heatmap"))


def test_worst_setting_is_lowest_mean_over_models(tmp_path):
    report = build_report(write_results(tmp_path / "r", HAND), bootstrap=0, plot=False)
    assert worst_setting(report.miou) == ("noise", 2)  # (40 + 50) / 2


def test_colorize_marks_ignored_pixels_with_an_unused_colour():
    palette = ((0, 0, 0), (255, 255, 255))
    image = colorize(np.array([[0, 1, 255]]), palette)
    assert ignore_colour(palette) == (128, 128, 128)
    assert image.tolist() == [[[0, 0, 0], [255, 255, 255], [128, 128, 128]]]
    assert pick_images(10, 3) == [0, 4, 9] and pick_images(2, 5) == [0, 1]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep of two tiny user models on a 32x40 synthetic split (~2 s)."""
    tmp = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as patch:  # the same cache as conftest's per-test fixture
        patch.setenv("RGBT_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        num_classes = open_dataset("synthetic", "test", size=(32, 40), counts=(8, 4, 10)).info.num_classes
        ckpts = {}
        for i, name in enumerate(("u1", "u2")):
            torch.manual_seed(i)
            model = build_model(USER, num_classes, "tiny")
            ckpts[name] = str(tmp / f"{name}.pt")
            save_checkpoint(ckpts[name], {"model": USER, "preset": "tiny", "num_classes": num_classes, "config": {},
                                          "state_dict": model.state_dict()})
        (tmp / "suite.yaml").write_text("name: t\nentries:\n  - corruption: thermal_noise\n    severities: [1, 5]\n"
                                        "  - corruption: rgb_missing\n    severities: [5]\n")
        out = run_sweep(SweepConfig(models=[f"u1={USER},u2={USER}"], checkpoints=ckpts, suite=str(tmp / "suite.yaml"),
                                    out=str(tmp / "res"), dataset_options={"size": [32, 40], "counts": [8, 4, 10]},
                                    device="cpu", progress=False, seeds=[0], train_iterations=1))
    return out, ckpts


def test_end_to_end_report_on_a_real_sweep(swept, capsys):
    out, _ = swept
    main(["report", str(out), "--bootstrap", "200", "--qualitative", "thermal_noise@5", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert "u1" in printed and "u2" in printed and "report written to" in printed
    report = out / "report"
    for name in ("heatmap", "curves", "class_heatmap", "per_class", "qualitative"):
        assert_figure(report / name)
    results = load_results(out)
    assert results.dataset == "synthetic" and len(results.names) == 10 and results.has_day_night
    meta = json.loads((report / "report.json").read_text())
    assert meta["qualitative_setting"] == "thermal_noise@5"
    assert all(n.startswith("training check:") for n in meta["notes"])  # random weights, no training run
    assert meta["notes"][-1] == ("training check: cannot tell whether u1, u2 were still improving when training "
                                 "stopped: no rgbt-bench training config in the checkpoint (imported or trained "
                                 "elsewhere)")
    # the grid: a clean row and a corrupted row per image, thermal with its colour bar, the context in the title
    texts = svg_texts(report / "qualitative")
    assert texts.count("clean") == 3 and texts.count("thermal_noise@5") == 3
    assert "thermal (normalised)" in texts and "synthetic / test, 10 images, mIoU convention field" in texts
    # the report's numbers are those of the stored matrices and agree with the sweep's own record
    rows = json.loads((report / "miou.json").read_text())
    for cell in results.raw:
        r = cell.record
        row = next(x for x in rows if (x["model"], x["corruption"], x["severity"]) ==
                   (r.key.model, r.key.corruption, r.key.severity))
        assert row["miou_pct"] == pytest.approx(100 * r.metrics["miou"])
        assert row["miou_pct"] == pytest.approx(100 * compute_metrics(cell.confusion, "field").miou)
    day_night = json.loads((report / "day_night.json").read_text())
    assert all(d["images_day"] + d["images_night"] == 10 for d in day_night)
    # provenance: the sweep's own facts, each checkpoint's hash as it is on disk
    summary = {r["model"]: r for r in json.loads((report / "summary.json").read_text())}
    manifest = json.loads((out / "run.json").read_text())
    for name, ckpt in swept[1].items():
        assert summary[name]["checkpoint_sha256"] == file_sha256(ckpt)
        assert summary[name]["git_commit"].split("-")[0] == (manifest["git"]["commit"] or "unknown")
        assert summary[name]["dataset_fingerprint"] == manifest["dataset"]["fingerprint"]
        assert summary[name]["torch_version"] == manifest["torch_version"]


def test_missing_checkpoint_skips_only_the_qualitative_grid(swept, tmp_path, capsys):
    out, ckpts = swept
    moved = tmp_path / "u2.pt"
    os.replace(ckpts["u2"], moved)
    try:
        (out / "report" / "qualitative.png").unlink(missing_ok=True)
        main(["report", str(out), "--bootstrap", "0", "--qualitative", "rgb_missing@5", "--device", "cpu"])
    finally:
        os.replace(moved, ckpts["u2"])
    printed = capsys.readouterr().out
    note = next(line for line in printed.splitlines() if line.startswith("note: qualitative"))
    assert f"checkpoint {ckpts['u2']} of model 'u2' is gone" in note
    assert not (out / "report" / "qualitative.png").exists()
    assert_figure(out / "report" / "heatmap")
    assert "qualitative grid skipped" in json.loads((out / "report" / "report.json").read_text())["notes"][-1]
