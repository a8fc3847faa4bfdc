"""Issue 13: ways to get a wrong number (or a wrong "OK") with exit 0, each through the CLI (rgbt_bench.cli.main).

One table: the command, its exit code, a fragment of its output, and for the cases whose wrong outcome was a
number, the correct number checked afterwards. The one-line errors of the same issue (devices, user code,
worker processes, mixed image sizes, ...) are in tests/test_bad_inputs.py; the kill during on-the-fly training
of a sweep is tests/test_training_cache.py. Every case starts from copies of one finished sweep (two models,
clean + two corrupted settings) computed once for the module.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_real import write_mfnet, write_pst900
from test_report import matrix, write_results
from user_model_example import TinyRGBT, build

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.lock import OutputLock
from rgbt_bench.metrics import compute_metrics
from rgbt_bench.report.check import COLUMNS as BASELINE_COLUMNS
from rgbt_bench.sweep.store import read_cells

USER = "user_model_example:build"
SYN = ["--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,6]"]
SUITE = ("entries:\n  - corruption: thermal_noise\n    severities: [1]\n"
         "  - corruption: rgb_missing\n    severities: [5]\n")
CLEAN_U = "u__synthetic__test__clean__s0__seed0"
MISSING_U = "u__synthetic__test__rgb_missing__s5__seed0"


def checkpoint(path: Path, seed: int, model_kwargs: Optional[dict] = None) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, {"model": USER, "preset": "tiny", "num_classes": 7,
                                  "config": {"model_kwargs": model_kwargs or {}},
                                  "state_dict": build(7, **(model_kwargs or {})).state_dict()})


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Two user models (u, v) swept over clean, thermal_noise@1 and rgb_missing@5; mIoU (%) of every cell."""
    root = tmp_path_factory.mktemp("silent")
    (root / "suite.yaml").write_text(SUITE)
    ckpts = {"u": checkpoint(root / "u.pt", 0), "v": checkpoint(root / "v.pt", 1)}
    assert run(sweep_args(root, root / "base", ckpts)) == 0
    miou = {c.record.cell_id: 100 * compute_metrics(c.confusion, "field").miou for c in read_cells(root / "base")}
    assert len(miou) == 6
    assert run(["check", str(root / "base"), "--baseline", str(root / "baseline.csv"), "--update-baseline"]) == 0
    (root / "fog.yaml").write_text("entries:\n  - corruption: plasma_fog\n    severities: [1]\n")
    return {"root": root, "ckpts": ckpts, "miou": miou}


def sweep_args(root: Path, out: Path, ckpts: Optional[dict] = None, *args: str) -> list[str]:
    models = ["--models", f"u={USER},v={USER}"]
    given = [f for name, path in (ckpts or {}).items() for f in ("--checkpoint", f"{name}={path}")]
    return ["sweep", *models, *given, "--suite", str(root / "suite.yaml"), "--out", str(out), "--device", "cpu",
            "--no-progress", "--batch-size", "2", "--models-dir", str(root / "models"), *SYN, *args]


class World:
    """One case's directory with a copy of the base sweep in `out`."""

    def __init__(self, base: dict, tmp: Path, monkeypatch: pytest.MonkeyPatch):
        self.base, self.tmp, self.monkeypatch = base, tmp, monkeypatch
        self.out = tmp / "out"
        shutil.copytree(base["root"] / "base", self.out)
        self.locks: list[OutputLock] = []

    def sweep(self, *args: str, ckpts: Optional[dict] = None, out: Optional[Path] = None) -> list[str]:
        return sweep_args(self.base["root"], out or self.out, self.base["ckpts"] if ckpts is None else ckpts, *args)

    def cell(self, cell_id: str, suffix: str = ".json") -> Path:
        return self.out / "cells" / f"{cell_id}{suffix}"

    def interrupted(self) -> Path:
        """The sweep as a kill leaves it: u's rgb_missing cell not written, run.json still 'running'."""
        for suffix in (".json", ".npz"):
            self.cell(MISSING_U, suffix).unlink()
        manifest = json.loads((self.out / "run.json").read_text())
        (self.out / "run.json").write_text(json.dumps({**manifest, "status": "running"}))
        return self.out

    def baseline(self, rows: str) -> Path:
        path = self.tmp / "baseline.csv"
        path.write_text(",".join(BASELINE_COLUMNS) + "\n" + rows)
        return path

    def edit_record(self, cell_id: str, **fields) -> None:
        path = self.cell(cell_id)
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))

    def relabel(self) -> Path:
        """A private copy of the synthetic dataset, swept into `out`, then its test labels changed in place with
        the file's size (and modification time) kept: what the old names-and-sizes fingerprint let through."""
        self.monkeypatch.setenv("RGBT_BENCH_CACHE", str(self.tmp / "cache"))
        shutil.rmtree(self.out)
        run(self.sweep())
        npz = next((self.tmp / "cache").glob("synthetic-*/test.npz"))
        stat = npz.stat()
        with np.load(npz) as z:
            arrays = dict(z)
        arrays["label"] = np.where(arrays["label"] == 1, 3, arrays["label"]).astype(np.uint8)  # road becomes car
        with open(npz, "wb") as fh:
            np.savez(fh, **arrays)
        os.utime(npz, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert npz.stat().st_size == stat.st_size and npz.stat().st_mtime_ns == stat.st_mtime_ns
        return self.out

    def hold_lock(self) -> None:
        lock = OutputLock(self.out)
        lock.acquire()
        self.locks.append(lock)

    def orphans(self, *paths: str) -> None:
        for path in paths:
            (self.tmp / path).write_text("half a file")


def run(args: list[str]) -> int:
    """The exit code of the CLI on `args` (main returns normally on success)."""
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


@dataclass
class Case:
    id: str
    args: Callable[[World], list[str]]
    code: int
    message: str  # regex matched against one output line; {tmp} stands for the case's directory
    check: Optional[Callable[[World, str], None]] = None  # the correct number or state afterwards


# ----- the correct numbers --------------------------------------------------------------------------------------
def partial_report(w: World, output: str) -> None:
    """Summarised over thermal_noise alone: each model's mean corrupted mIoU is its thermal_noise@1 mIoU."""
    summary = csv(w.out / "report" / "summary.csv").set_index("model")
    for model in ("u", "v"):
        expected = w.base["miou"][f"{model}__synthetic__test__thermal_noise__s1__seed0"]
        assert summary.loc[model, "mean_corrupted_miou_pct"] == pytest.approx(expected, abs=1e-4)
        assert summary.loc[model, "worst_setting"] == "thermal_noise@1"
    record = json.loads((w.out / "report" / "report.json").read_text())
    assert (record["cells_present"], record["cells_planned"], record["summarised_corruptions"]) == \
        (5, 6, ["thermal_noise"])


def partial_leaderboard(w: World, output: str) -> None:
    frame = csv(w.tmp / "lb.csv").set_index("model")
    assert list(frame["cells"]) == ["5/6", "5/6"] and not frame["complete"].any()
    for model in ("u", "v"):
        expected = w.base["miou"][f"{model}__synthetic__test__thermal_noise__s1__seed0"]
        assert frame.loc[model, "mean_corrupted_miou_pct"] == pytest.approx(expected, abs=1e-4)


def unranked_empty(w: World, output: str) -> None:
    frame = csv(w.tmp / "lb.csv")
    ranked = frame[frame["results"] == str(w.out)]
    empty = frame[frame["results"] != str(w.out)]
    assert sorted(ranked["rank"]) == [1, 2] and empty["rank"].isna().all() and len(empty) == 4
    assert empty["mean_corrupted_miou_pct"].isna().all()
    assert len([line for line in (w.tmp / "lb.md").read_text().splitlines() if line.startswith("| 2 | – |")]) == 4


def listed_once(w: World, output: str) -> None:
    assert sorted(csv(w.tmp / "lb.csv")["model"]) == ["u", "v"]


def recomputed_equal(w: World, output: str) -> None:
    cells = {c.record.cell_id: c for c in read_cells(w.out)}
    assert len(cells) == 6
    for cell_id, value in w.base["miou"].items():
        assert 100 * compute_metrics(cells[cell_id].confusion, "field").miou == value, cell_id


def unchanged(w: World, output: str) -> None:
    assert sorted(p.name for p in (w.out / "cells").glob("*.json")) == sorted(f"{c}.json" for c in w.base["miou"])


def nothing_trained(w: World, output: str) -> None:
    unchanged(w, output)
    assert not (w.base["root"] / "models").exists()


def no_report(w: World, output: str) -> None:
    assert not (w.out / "report").exists()


def orphans_removed(w: World, output: str) -> None:
    names = {p.relative_to(w.tmp).as_posix() for p in w.tmp.rglob("*tmp*")}
    assert names == {"out/cells/.keep.tmp", "out/notes.tmp"}, names


def orphan_kept(w: World, output: str) -> None:
    assert (w.out / ".run.json.abcd1234.tmp").is_file()


def training_orphans_removed(w: World, output: str) -> None:
    assert sorted(p.name for p in w.tmp.glob(".*.tmp")) == [".other.pt.abcdefgh.tmp"]
    assert (w.tmp / "m.pt").is_file()


def complete_report(w: World, output: str) -> None:
    record = json.loads((w.out / "report" / "report.json").read_text())
    others = [n for n in record["notes"] if not n.startswith("training check:")]  # random weights: flagged
    assert (record["cells_present"], record["cells_planned"], others) == (6, 6, [])


STATE = r"5 of 6 planned cells; run.json status 'running'"
CASES = [
    # ----- item 3: completeness in every consumer -----------------------------------------------------------
    Case("report-of-interrupted-sweep-refused", lambda w: ["report", str(w.interrupted()), "--bootstrap", "0",
                                                           "--no-plots"], 2,
         rf"^Error: {{tmp}}/out holds {STATE} \(an interrupted sweep\?\): incomplete rgb_missing; rerun the sweep to "
         r"finish it, or pass --allow-partial to summarise over the complete corruptions only$", no_report),
    Case("report-of-interrupted-sweep-allow-partial", lambda w: ["report", str(w.interrupted()), "--bootstrap", "0",
                                                                 "--no-plots", "--allow-partial"], 0,
         rf"^note: partial results: {STATE} \(an interrupted sweep\?\); mean corrupted, RR, mCE and worst are over "
         r"the complete corruptions only \(thermal_noise\); incomplete: rgb_missing$", partial_report),
    Case("report-of-finished-sweep-counts-cells", lambda w: ["report", str(w.out), "--bootstrap", "0", "--no-plots"],
         0, r"synthetic/test, 6 images, 6/6 planned cells", complete_report),
    Case("leaderboard-of-interrupted-sweep-refused", lambda w: ["leaderboard", str(w.interrupted()), "--out",
                                                                str(w.tmp / "lb.csv"), "--bootstrap", "0"], 2,
         rf"^Error: {{tmp}}/out holds {STATE} \(an interrupted sweep\?\)"),
    Case("leaderboard-of-interrupted-sweep-allow-partial", lambda w: [
        "leaderboard", str(w.interrupted()), "--out", str(w.tmp / "lb.csv"), "--bootstrap", "0", "--allow-partial"],
        0, r"^note: partial results, summarised over their complete corruptions only: {tmp}/out \(5/6 planned "
           r"cells\)$", partial_leaderboard),
    Case("leaderboard-never-ranks-an-empty-value", lambda w: [
        "leaderboard", str(w.out), *(str(write_results(w.tmp / name, {("a", "clean", 0, 0): matrix(0.8),
                                                                       ("b", "clean", 0, 0): matrix(0.6)}))
                                     for name in ("clean_only", "clean_only_too")),  # a group of their own
        "--out", str(w.tmp / "lb.csv"), "--bootstrap", "0"], 0, r"^wrote ", unranked_empty),
    Case("check-of-interrupted-sweep-fails-and-says-so", lambda w: [
        "check", str(w.interrupted()), "--baseline", str(w.base["root"] / "baseline.csv")], 1,
        r"^FAIL: 5 ok, 1 missing \(tolerance 1 mIoU points; results hold 5/6 planned cells\)$"),
    Case("check-update-baseline-of-interrupted-sweep-refused", lambda w: [
        "check", str(w.interrupted()), "--baseline", str(w.tmp / "b.csv"), "--update-baseline"], 2,
        rf"^Error: {{tmp}}/out holds {STATE}"),
    # ----- item 4: resume identity --------------------------------------------------------------------------
    Case("resume-with-another-split-refused-before-training", lambda w: w.sweep(
        "--split", "val", "--train-iterations", "2", ckpts={}), 2,
        r"^Error: {tmp}/out holds cell u__synthetic__test__clean__s0__seed0 of synthetic split 'test', but this run "
        r"evaluates synthetic split 'val'; use another --out$", nothing_trained),
    Case("resume-with-a-disjoint-suite-refused", lambda w: w.sweep("--suite", str(w.base["root"] / "fog.yaml")), 2,
         rf"^Error: {{tmp}}/out holds cell {MISSING_U} at rgb_missing severity 5 seed 0, which this run's suite and "
         r"seeds do not evaluate \(it was written by a sweep with another suite or seeds\); use another --out$",
         unchanged),
    Case("resume-with-other-seeds-refused", lambda w: w.sweep("--seeds", "1"), 2,
         rf"^Error: {{tmp}}/out holds cell {MISSING_U} at rgb_missing severity 5 seed 0, which this run's suite and "
         r"seeds do not evaluate", unchanged),
    Case("resume-on-relabelled-data-of-equal-size-refused", lambda w: w.sweep(out=w.relabel()), 2,
         r"^Error: {tmp}/out already holds cell u__synthetic__test__clean__s0__seed0 computed with "
         r"dataset_fingerprint=[0-9a-f]{12}\.\.\., but this run has [0-9a-f]{12}\.\.\. \(the dataset's images or "
         r"labels differ\); use another --out, or delete that cell to recompute it$", unchanged),
    Case("resume-with-another-batch-size-refused", lambda w: w.sweep("--batch-size", "3"), 2,
         r"^Error: {tmp}/out already holds cell u__synthetic__test__clean__s0__seed0 computed with batch_size=2, but "
         r"this run has batch_size=3; use another --out, or delete that cell to recompute it$", unchanged),
    Case("resume-with-other-model-kwargs-refused", lambda w: w.sweep(ckpts={
        "u": checkpoint(w.tmp / "u2.pt", 0, {"dropout": 0.2}), "v": w.base["ckpts"]["v"]}), 2,
        r"^Error: {tmp}/out already holds cell u__synthetic__test__clean__s0__seed0 computed with model_kwargs=\{\}, "
        r"but this run has model_kwargs=\{'dropout': 0.2\}; use another --out", unchanged),
    Case("resume-of-the-same-sweep-reuses-every-cell", lambda w: w.sweep(), 0, r"^{tmp}/out$", recomputed_equal),
    # ----- item 10: damaged cells on resume, orphaned temporary files, baselines, a directory given twice ----
    Case("resume-with-a-truncated-record-recomputes-it", lambda w: (
        w.cell(CLEAN_U).write_text(w.cell(CLEAN_U).read_text()[:40]), w.sweep())[1], 0,
        rf"^recomputing 1 cell\(s\) whose files do not read \({CLEAN_U}\): an interrupted write or a damaged file$",
        recomputed_equal),
    Case("resume-with-a-missing-npz-recomputes-it", lambda w: (w.cell(CLEAN_U, ".npz").unlink(), w.sweep())[1], 0,
         r"^recomputing 1 cell\(s\) whose files do not read", recomputed_equal),
    Case("resume-with-a-truncated-npz-recomputes-it", lambda w: (
        w.cell(CLEAN_U, ".npz").write_bytes(w.cell(CLEAN_U, ".npz").read_bytes()[:100]), w.sweep())[1], 0,
        r"^recomputing 1 cell\(s\) whose files do not read", recomputed_equal),
    Case("resume-with-a-hand-edited-record-refused", lambda w: (w.edit_record(CLEAN_U, num_images=7), w.sweep())[1],
         2, rf"^Error: {{tmp}}/out already holds cell {CLEAN_U} computed with num_images=7, but this run has "
            r"num_images=6; use another --out, or delete that cell to recompute it$"),
    Case("sweep-removes-only-its-own-orphaned-temporary-files", lambda w: (w.orphans(
        "out/.run.json.abcd1234.tmp", f"out/cells/.{CLEAN_U}.json.zyxw9876.tmp", "out/cells/.keep.tmp",
        "out/notes.tmp"), w.sweep())[1], 0, r"^{tmp}/out$", orphans_removed),
    Case("sweep-leaves-the-files-of-a-live-sweep-alone", lambda w: (
        w.orphans("out/.run.json.abcd1234.tmp"), w.hold_lock(), w.sweep())[2], 2,
        r"^Error: results directory {tmp}/out is in use by another sweep \(pid \d+\)", orphan_kept),
    Case("train-removes-its-orphaned-temporary-files", lambda w: (w.orphans(
        ".m.pt.abcdefgh.tmp", ".m.last.pt.a1b2c3d4.tmp", ".other.pt.abcdefgh.tmp"), [
        "train", "--model", USER, "--out", str(w.tmp / "m.pt"), "--iterations", "1", "--device", "cpu",
        "--no-progress", *SYN])[1], 0, r"^{tmp}/m.pt$", training_orphans_removed),
    Case("check-refuses-a-nan-baseline", lambda w: ["check", str(w.out), "--baseline", str(w.baseline(
        "u,synthetic,test,clean,0,0,given,nan,field,f,6,h,tiny,none\n"))], 2,
        r"^Error: baseline {tmp}/baseline.csv line 2: miou is empty or NaN; expected a CSV with columns "),
    Case("check-refuses-a-baseline-without-convention", lambda w: [  # audit: exit 0 "OK" before
        "check", str(w.out), "--baseline", str(w.baseline(blank_convention(w)))], 2,
        r"^Error: baseline {tmp}/baseline.csv line 3: convention is empty; expected a CSV with columns "),
    Case("check-refuses-a-header-only-baseline", lambda w: ["check", str(w.out), "--baseline", str(w.baseline(""))],
         2, r"^Error: baseline {tmp}/baseline.csv has a header but no rows; expected a CSV with columns .*, one row "
            r"per cell \(write it with --update-baseline\)$"),
    Case("leaderboard-lists-a-directory-given-twice-once", lambda w: [
        "leaderboard", str(w.out), f"{w.out}/", str(w.tmp / "out" / ".." / "out"), "--out", str(w.tmp / "lb.csv"),
        "--bootstrap", "0"], 0, r"^wrote ", listed_once),
]


def blank_convention(w: World) -> str:
    """The base sweep's own baseline rows, the convention of the second one erased (a hand edit)."""
    rows = (w.base["root"] / "baseline.csv").read_text().splitlines()[1:]
    fields = rows[1].split(",")
    fields[BASELINE_COLUMNS.index("convention")] = ""
    return "\n".join([rows[0], ",".join(fields), *rows[2:]]) + "\n"


def datasets_case(id: str, make: Callable[[Path], list[str]], code: int, message: str) -> Case:
    return Case(id, lambda w: make(w.tmp), code, message)


def bom_split(tmp: Path) -> list[str]:
    fx = write_mfnet(tmp / "MFNet")
    (fx.root / "test.txt").write_bytes(b"\xef\xbb\xbf" + (fx.root / "test.txt").read_bytes())
    return ["datasets", "verify", f"mfnet:{fx.root}", "--split", "test"]


def duplicated_split(tmp: Path) -> list[str]:
    fx = write_mfnet(tmp / "MFNet")
    (fx.root / "test.txt").write_text("00005N\n00006D\n00005N\n")
    return ["datasets", "verify", f"mfnet:{fx.root}", "--split", "test"]


def raw_thermal(tmp: Path) -> list[str]:
    fx = write_pst900(tmp / "PST900")
    for path in (fx.root / "test" / "thermal").iterdir():  # only the 16-bit thermal_raw files are read
        path.unlink()
    return ["datasets", "verify", f"pst900:{fx.root}", "--split", "test", "--dataset-option", "thermal=thermal_raw"]


CASES += [
    # ----- item 7 and 10: split files and dataset options in `datasets verify` -------------------------------
    datasets_case("verify-strips-a-bom-from-a-split-file", bom_split, 0,
                  r"^mfnet:{tmp}/MFNet: 4 samples checked in 1 split\(s\); all files OK$"),
    datasets_case("verify-refuses-a-name-listed-twice", duplicated_split, 1,
                  r"^PROBLEM {tmp}/MFNet/test.txt: lists image '00005N' twice; expected each image once \(it would be "
                  r"counted twice\)$"),
    datasets_case("verify-takes-dataset-options", raw_thermal, 0,
                  r"^pst900:{tmp}/PST900: 2 samples checked in 1 split\(s\); all files OK$"),
]


class EvalNaN(TinyRGBT):
    """Trains normally, but its eval-mode forward gives NaN (as weights gone bad in the last step do)."""

    def forward(self, rgb, thermal):
        logits = super().forward(rgb, thermal)
        return logits if self.training else logits * float("nan")


def build_eval_nan(num_classes: int, preset: str = "tiny") -> EvalNaN:
    return EvalNaN(num_classes)


def nothing_selected(w: World, output: str) -> None:
    assert not (w.tmp / "m.pt").exists()


CASES += [
    # ----- audit: training's val evaluation, as the sweep, refuses NaN logits -------------------------------
    Case("train-with-nan-logits-in-evaluation-refused", lambda w: [
        "train", "--model", "test_silent_wrong:build_eval_nan", "--out", str(w.tmp / "m.pt"), "--iterations", "1",
        "--device", "cpu", "--no-progress", *SYN], 2,
        r"^Error: model returned NaN or infinite logits for 5120 pixels of synthetic split 'val' \(images 00008D, "
        r"00009N, 00010D, 00011N\) in eval mode; its weights or its eval-mode forward are broken", nothing_selected),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_no_silent_wrong_result(case, base, tmp_path, capsys, monkeypatch):
    w = World(base, tmp_path, monkeypatch)
    capsys.readouterr()
    try:
        code = run(case.args(w))
    finally:
        for lock in w.locks:
            lock.release()
    out, err = capsys.readouterr()
    assert code == case.code, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    pattern = case.message.replace("{tmp}", re.escape(str(tmp_path)))
    assert any(re.search(pattern, line) for line in lines), out + err
    if code == 2:
        assert [line for line in lines if line.startswith("Error:")] == lines[-1:], err
    if case.check is not None:
        case.check(w, out + err)
