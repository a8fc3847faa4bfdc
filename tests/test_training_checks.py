"""Training checks of a report: visible classes a network missed and val curves still rising, from hand-made
results directories, checkpoints and training logs (curves taken from real runs of the tiny models on synthetic)."""
import json

import numpy as np
import pytest

from rgbt_bench.datasets import scene
from rgbt_bench.report.build import build_report
from rgbt_bench.report.leaderboard import build_leaderboard, write_leaderboard
from rgbt_bench.report.load import load_results
from rgbt_bench.report.training_checks import check_lines, checks_table, model_flags, training_checks
from rgbt_bench.sweep.cell import CellKey, CellRecord
from rgbt_bench.training.convergence import training_curve
from tests.test_report import cell_record, write_results

CLASSES = scene.CLASS_NAMES
# Real val curves (iteration, val mIoU %) of tiny runs on synthetic, from their training logs:
CRM_1500 = [(150, 25.90), (300, 53.63), (450, 50.31), (600, 60.52), (750, 64.48), (900, 63.04), (1050, 70.63),
            (1200, 71.30), (1350, 75.81), (1500, 76.28)]                   # CRM tiny, still rising
RGB_NOAUG_800 = [(100, 25.25), (200, 27.42), (300, 30.12), (400, 32.32), (500, 33.59), (600, 33.85), (700, 34.17),
                 (800, 34.61)]                                              # rgb_only without augmentation: flat


def confusion(**iou):
    """7x7 matrix, 100 pixels per class: class c predicted right on round(100 * IoU) of them and as background
    on the rest, so every class but background has exactly the IoU given (0.6 unless named)."""
    m = np.zeros((7, 7), dtype=np.int64)
    m[0, 0] = 1000
    for c, name in enumerate(CLASSES[1:], start=1):
        hit = round(100 * iou.get(name, 0.6))
        m[c, c], m[c, 0] = hit, 100 - hit
    return m


def curve(points, iterations=None, unknown=None, source="checkpoint"):
    val = [{"iteration": it, "miou": m / 100} for it, m in points]
    return {"iterations": iterations or (val[-1]["iteration"] if val else None), "split": "val", "val": val,
            "source": source, "unknown": unknown}


IMPORTED = {"iterations": None, "split": None, "val": [], "source": None,
            "unknown": "no rgbt-bench training config in the checkpoint (imported or trained elsewhere)"}
TRAINING = {"crm": curve(CRM_1500), "rtfnet": curve(RGB_NOAUG_800), "thermal_only": curve(RGB_NOAUG_800),
            "rgb_only": curve(RGB_NOAUG_800), "mfnet": IMPORTED, "early_fusion": curve(RGB_NOAUG_800[3::4])}
CELLS = {
    ("crm", "clean", 0, 0): confusion(),
    ("rtfnet", "clean", 0, 0): confusion(lane_marking=0.0, person=0.03, color_cone=0.05),
    ("thermal_only", "clean", 0, 0): confusion(lane_marking=0.0, color_cone=0.0),   # cannot see them
    ("rgb_only", "clean", 0, 0): confusion(hot_pipe=0.0, person=0.0),                # cannot see hot pipes
    ("mfnet", "clean", 0, 0): confusion(),
    ("early_fusion", "clean", 0, 0): confusion(),
}


@pytest.fixture()
def results(tmp_path):
    path = write_results(tmp_path / "res", CELLS, class_names=CLASSES,
                         record=lambda model: {"training": TRAINING[model]})
    return load_results(path)


def test_checks_per_network(results):
    checks = training_checks(results).set_index("model")
    assert checks["missed_classes"].to_dict() == {
        "crm": {}, "rtfnet": {"lane_marking": 0.0, "person": pytest.approx(3.0)}, "thermal_only": {},
        "rgb_only": {"person": 0.0}, "mfnet": {}, "early_fusion": {}}
    assert checks["still_rising"].to_dict() == {"crm": True, "rtfnet": False, "thermal_only": False,
                                                "rgb_only": False, "mfnet": None, "early_fusion": None}
    assert checks.loc["crm", "gain"] == pytest.approx(76.28 - 70.63)      # best after 1125 vs best before
    assert checks.loc["rtfnet", "gain"] == pytest.approx(34.61 - 33.85)
    assert checks.loc["crm", "iterations"] == 1500 and checks.loc["crm", "evaluations"] == 10
    assert checks.loc["early_fusion", "cannot_tell"] == {"still rising": "2 val evaluations, too few to judge the "
                                                                         "last quarter"}
    assert checks.loc["mfnet", "cannot_tell"]["still rising"].startswith("no rgbt-bench training config")
    assert checks.loc["crm", "cannot_tell"] == {}


def test_check_lines_name_each_finding_and_each_reason(results):
    lines = check_lines(training_checks(results), results)
    assert lines == [
        "training check: crm was still improving when training stopped: best val mIoU +5.7 points in the last 25% "
        "of its 1500 iterations over the best before (threshold 1); it needs more iterations",
        "training check: rtfnet did not learn classes its cameras show (IoU % on clean synthetic/test, below 5): "
        "lane_marking 0.0; person 3.0",
        "training check: rgb_only did not learn classes its cameras show (IoU % on clean synthetic/test, below 5): "
        "person 0.0",
        "training check: cannot tell whether mfnet was still improving when training stopped: no rgbt-bench "
        "training config in the checkpoint (imported or trained elsewhere)",
        "training check: cannot tell whether early_fusion was still improving when training stopped: 2 val "
        "evaluations, too few to judge the last quarter"]


def test_report_writes_the_checks_everywhere(results):
    report = build_report(results.path, bootstrap=0, plot=False)
    lines = check_lines(training_checks(results), results)
    assert report.notes[-len(lines):] == lines
    meta = json.loads((report.out_dir / "report.json").read_text())
    rows = {r["model"]: r for r in meta["training_checks"]}
    assert rows["crm"]["still_rising"] is True and rows["crm"]["gain_pct"] == pytest.approx(5.65)
    assert rows["mfnet"]["still_rising"] is None and rows["mfnet"]["train_seed"] is None
    assert rows["rtfnet"]["missed_classes"] == {"lane_marking": 0.0, "person": pytest.approx(3.0)}
    assert list(rows["mfnet"]["cannot_tell"]) == ["still rising"]
    assert meta["notes"][-len(lines):] == lines
    table = (report.out_dir / "training.md").read_text()
    assert table.startswith("| model | training seed | missed classes (IoU %) | still rising | val mIoU gain (%) |")
    assert "| rtfnet | – | lane_marking 0.0; person 3.0 | no |" in table
    assert "| mfnet | – | none | unknown |" in table
    assert "training check: rgb_only did not learn" in (report.out_dir / "index.html").read_text()


def test_leaderboard_rows_carry_their_models_training_checks(results, tmp_path):
    """A leaderboard row of an under-trained network says so by itself (before: the leaderboard had no such
    column, and only the report's notes named the findings)."""
    flags = {"crm": "still rising", "rtfnet": "missed lane_marking, person", "thermal_only": "ok",
             "rgb_only": "missed person", "mfnet": "unchecked: still rising", "early_fusion": "unchecked: still rising"}
    assert model_flags(training_checks(results)) == flags
    frame, _ = build_leaderboard([results.path], bootstrap=0)
    assert dict(zip(frame["model"], frame["training_checks"])) == flags
    write_leaderboard(frame, tmp_path / "board.csv")
    assert (tmp_path / "board.md").read_text().splitlines()[0].endswith("| cells | training checks |")


def test_replicas_are_checked_one_by_one(tmp_path):
    cells = {("crm", "clean", 0, 0, 0): confusion(), ("crm", "clean", 0, 0, 1): confusion(car=0.01)}
    results = load_results(write_results(tmp_path / "r", cells, class_names=CLASSES,
                                         record=lambda model: {"training": curve(RGB_NOAUG_800)}))
    checks = training_checks(results)
    assert checks["train_seed"].tolist() == [0, 1]
    assert checks["missed_classes"].tolist() == [{}, {"car": pytest.approx(1.0)}]
    assert check_lines(checks, results) == [
        "training check: crm (training seed 1) did not learn classes its cameras show (IoU % on clean "
        "synthetic/test, below 5): car 1.0"]
    assert model_flags(checks) == {"crm": "missed car"}  # a class one replica missed flags the model


def test_cells_without_a_training_record_cannot_tell(tmp_path):
    results = load_results(write_results(tmp_path / "r", {("crm", "clean", 0, 0): confusion(),
                                                           ("rtfnet", "clean", 0, 0): confusion()},
                                         class_names=CLASSES))
    checks = training_checks(results)
    assert checks["still_rising"].tolist() == [None, None]
    assert checks_table(checks)["still_rising"].tolist() == ["unknown", "unknown"]
    assert check_lines(checks, results) == [
        "training check: cannot tell whether crm, rtfnet were still improving when training stopped: no training "
        "record in the cells (written before training curves were recorded)"]


def test_other_datasets_classes_count_as_visible_to_both_cameras(tmp_path):
    m = np.array([[90, 10], [10, 0]], dtype=np.int64)  # class "thing": IoU 0
    results = load_results(write_results(tmp_path / "r", {("thermal_only", "clean", 0, 0): m}))
    assert training_checks(results)["missed_classes"].tolist() == [{"thing": 0.0}]


def test_a_class_absent_from_the_images_is_not_a_miss(tmp_path):
    m = confusion(person=0.0)
    m[4] = 0  # no person pixel in the split: IoU 0 under the field convention, but nothing to learn from
    results = load_results(write_results(tmp_path / "r", {("crm", "clean", 0, 0): m}, class_names=CLASSES))
    assert training_checks(results)["missed_classes"].tolist() == [{}]


def test_record_without_training_field_reads_as_none(tmp_path):
    key = CellKey("crm", "synthetic", "test", "clean", 0, 0)
    data = cell_record(key, np.repeat(confusion()[None], 2, axis=0), CLASSES).to_json()
    assert data["training"] is None
    del data["training"]  # a record written before the field existed
    assert CellRecord.from_json(data, "old.json").training is None


def _checkpoint(points, iterations=None, **extra):
    history = [{"iteration": it, "split": "val", "miou": m / 100, "iou": []} for it, m in points]
    return {"config": {"iterations": iterations or points[-1][0], "select_on": "val"},
            "metrics": {"history": history}, **extra}


def test_training_curve_from_the_checkpoint(tmp_path):
    got = training_curve(_checkpoint(RGB_NOAUG_800), tmp_path / "m.pt")
    assert got == curve(RGB_NOAUG_800)
    assert training_curve({"state_dict": {}}, tmp_path / "m.pt") == IMPORTED


def test_training_curve_completed_from_the_log_of_the_same_run(tmp_path):
    ckpt = _checkpoint(CRM_1500[:-2], iterations=1500)  # best at 1200, saved before the last evaluations
    log = [{"iteration": it, "split": "val", "miou": m / 100} for it, m in CRM_1500]
    (tmp_path / "m.log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in
                                                  [{"iteration": 10, "loss": 1.0}, *log]))
    assert training_curve(ckpt, tmp_path / "m.pt") == curve(CRM_1500, source="m.log.jsonl")
    other = [dict(r, miou=r["miou"] / 2) for r in log]  # a log of another run (retrained since)
    (tmp_path / "m.log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    assert training_curve(ckpt, tmp_path / "m.pt") == curve(
        CRM_1500[:-2], iterations=1500, unknown="the recorded val curve ends at iteration 1200 of 1500")
