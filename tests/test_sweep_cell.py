"""The typed cell record (rgbt_bench.sweep.cell): file names that never collide, JSON round trip, the one
definition of a reusable cell, old result directories, and stale cells moved aside by `rgbt-bench run`."""
import json
import re

import numpy as np
import pytest
from test_report import HAND, cell_record, matrix, write_results
from test_sweep_engine import DATA, USER, write_checkpoint

from rgbt_bench.cli import main
from rgbt_bench.errors import ConfigError, DataError
from rgbt_bench.report.load import load_results
from rgbt_bench.sweep import SweepConfig, run_sweep
from rgbt_bench.sweep.cell import SCHEMA_VERSION, CellKey, CellRecord, StaleResultsError, read_record
from rgbt_bench.sweep.plan import plan_cells, settings_of
from rgbt_bench.sweep.stale import RunCells, move_aside, stale_cells
from rgbt_bench.sweep.store import read_cells, write_cell

ONE_SETTING = "entries:\n  - corruption: thermal_missing\n    severities: [5]\n"


def key(model, corruption="clean", severity=0):
    return CellKey(model, "synthetic", "test", corruption, severity, 0)


def test_cell_ids_are_readable_when_plain_and_distinct_always():
    assert key("crm").cell_id == "crm__synthetic__test__clean__s0__seed0"
    assert key("early_fusion", "rgb_missing", 5).cell_id == "early_fusion__synthetic__test__rgb_missing__s5__seed0"
    # the two collisions of the issue, and joins that would read back ambiguously
    models = ["a-b", "a:b", "pkg.mod:fn", "pkg.mod-fn", "a__b", "a_", "_a", "a", "a-b-0123456789ab"]
    ids = [key(m).cell_id for m in models]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "a-b__synthetic__test__clean__s0__seed0"
    assert re.fullmatch(r"a-b__synthetic__test__clean__s0__seed0-[0-9a-f]{12}", ids[1])
    assert re.fullmatch(r"pkg\.mod-fn__synthetic__test__clean__s0__seed0-[0-9a-f]{12}", ids[2])
    assert ids[3] == "pkg.mod-fn__synthetic__test__clean__s0__seed0"
    assert key("a__b").cell_id != CellKey("a", "b__synthetic", "test", "clean", 0, 0).cell_id
    assert key("a:b").cell_id == key("a:b").cell_id  # stable


def test_models_sharing_files_on_a_case_insensitive_filesystem_are_refused():
    settings = settings_of(load_suite_text(), [0])
    with pytest.raises(ConfigError, match=r"^models 'Net' and 'net' would share result files \(net__synthetic__"
                                          r"test__clean__s0__seed0\); give one of them another name with NAME=SPEC$"):
        plan_cells(["Net", "net"], settings, "synthetic", "test")
    assert len(plan_cells(["a-b", "a:b", "pkg.mod:fn", "pkg.mod-fn"], settings, "synthetic", "test")) == 8


def load_suite_text():
    from rgbt_bench.corruptions import Suite, SuiteEntry
    return Suite("one", "", [SuiteEntry("thermal_missing", "thermal_missing", [5])])


@pytest.mark.parametrize("models", [["a-b=mfnet", "a:b=rtfnet"], [USER, "user_model_example-build=" + USER]])
def test_models_named_alike_keep_their_own_cells(tmp_path, models):
    """Issue: 'a-b' and 'a:b' (or an unnamed pkg.mod:fn and a model named pkg.mod-fn) shared cell files."""
    names = [m.partition("=")[0] for m in models]
    specs = [m.partition("=")[2] or m for m in models]
    ckpts = {n: write_checkpoint(tmp_path / f"{i}.pt", s, seed=i) for i, (n, s) in enumerate(zip(names, specs))}
    (tmp_path / "one.yaml").write_text(ONE_SETTING)
    out = run_sweep(SweepConfig(models=models, checkpoints=ckpts, suite=str(tmp_path / "one.yaml"),
                                out=str(tmp_path / "out"), dataset_options=DATA, device="cpu", progress=False))
    cells = list(read_cells(out))
    assert len(cells) == 4 and len(list((out / "cells").glob("*.npz"))) == 4
    assert {(c.record.key.model, c.record.identity.model_spec) for c in cells} == set(zip(names, specs))
    for name in names:  # each model's cells are its own: one per setting
        assert sorted(c.record.key.corruption for c in cells if c.record.key.model == name) == \
            ["clean", "thermal_missing"]
    clean = {c.record.key.model: c.per_image for c in cells if c.record.key.corruption == "clean"}
    assert not np.array_equal(clean[names[0]], clean[names[1]])


def test_record_round_trip_and_the_one_reuse_rule():
    record = cell_record(key("a:b"), np.repeat(matrix(0.8)[None], 3, axis=0))
    data = record.to_json()
    assert data["schema"] == SCHEMA_VERSION and data["cell_id"] == key("a:b").cell_id and data["model"] == "a:b"
    assert data["num_images"] == 3 and data["class_names"] == ["background", "thing"]
    assert CellRecord.from_json(json.loads(json.dumps(data)), "x.json") == record
    assert record.mismatch(record.identity) is None
    other = type(record.identity)(**{**record.identity.__dict__, "checkpoint_sha256": "abc", "num_images": 4})
    assert record.mismatch(other) == ("checkpoint_sha256", None, "abc")
    with pytest.raises(DataError, match=r"^x.json lacks field 'metrics'; expected a sweep cell record$"):
        CellRecord.from_json({k: v for k, v in data.items() if k != "metrics"}, "x.json")
    with pytest.raises(DataError, match=r"^x.json: field severity is '0'; expected an integer$"):
        CellRecord.from_json({**data, "severity": "0"}, "x.json")


def _unversion(path):
    data = json.loads(path.read_text())
    del data["schema"]
    path.write_text(json.dumps(data))


def test_an_old_results_directory_is_one_line_saying_how_to_regenerate(tmp_path, capsys):
    path = write_results(tmp_path / "old", HAND)
    record = sorted((path / "cells").glob("*.json"))[0]
    _unversion(record)
    expected = (f"{record} is a cell record with no schema version (an older rgbt-bench); this rgbt-bench reads "
                f"schema {SCHEMA_VERSION}. Regenerate the results: move {path} aside and rerun the sweep (or "
                f"`rgbt-bench run`) with the same --out")
    with pytest.raises(StaleResultsError) as exc:
        load_results(path)
    assert str(exc.value) == expected
    for command in (["report", str(path)], ["leaderboard", str(path)]):
        with pytest.raises(SystemExit) as code:
            main(command)
        assert code.value.code == 2 and capsys.readouterr().err == f"Error: {expected}\n"


def test_a_sweep_resuming_into_an_old_directory_refuses_it(tmp_path):
    ckpt = write_checkpoint(tmp_path / "u.pt", USER)
    (tmp_path / "one.yaml").write_text(ONE_SETTING)
    config = SweepConfig(models=[f"u={USER}"], checkpoints={"u": ckpt}, suite=str(tmp_path / "one.yaml"),
                         out=str(tmp_path / "out"), dataset_options=DATA, device="cpu", progress=False)
    out = run_sweep(config)
    _unversion(out / "cells" / "u__synthetic__test__clean__s0__seed0.json")
    with pytest.raises(StaleResultsError, match="no schema version"):
        run_sweep(config)


def test_stale_cells_are_those_the_run_would_not_reuse(tmp_path):
    per_image = np.repeat(matrix(0.8)[None], 2, axis=0)
    records = {name: cell_record(k, per_image) for name, k in
               {"kept": key("a"), "unplanned": key("a", "fog", 4), "other_weights": key("a", "fog", 1),
                "other_model": key("c"), "old": key("a", "fog", 2), "torn": key("a", "fog", 3)}.items()}
    for record in records.values():
        write_cell(tmp_path, record, per_image, ["x", "y"], [None, None])
    planned = {r.cell_id: r.identity for n, r in records.items() if n in ("kept", "other_weights", "old", "torn")}
    planned[records["other_weights"].cell_id] = type(records["kept"].identity)(
        **{**records["other_weights"].identity.__dict__, "checkpoint_sha256": "new"})
    keys = {r.cell_id: r.key for r in records.values() if r.cell_id in planned}
    _unversion(tmp_path / "cells" / f"{records['old'].cell_id}.json")
    (tmp_path / "cells" / f"{records['torn'].cell_id}.json").write_text('{"model": "a", "cor')
    stale = stale_cells(tmp_path, RunCells("synthetic", "test", keys, planned))
    # the torn record is one of the run's cells: recomputed, not stale; the other model's clean cell stays
    assert sorted(p.stem for p, _ in stale) == sorted(records[n].cell_id for n in ("unplanned", "other_weights",
                                                                                    "old"))
    # before the weights are known, only data and settings are compared: other_weights is not yet stale
    early = stale_cells(tmp_path, RunCells("synthetic", "test", keys, planned, models_known=False))
    assert sorted(p.stem for p, _ in early) == sorted(records[n].cell_id for n in ("unplanned", "old"))
    target = move_aside(tmp_path, [p for p, _ in stale])
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == sorted(
        [f"{records[n].cell_id}{ext}" for n in ("kept", "other_model") for ext in (".json", ".npz")]
        + [f"{records['torn'].cell_id}{ext}" for ext in (".json", ".npz")])
    assert len(list(target.iterdir())) == 6 and move_aside(tmp_path, []) is None
    assert read_record(tmp_path / "cells" / f"{records['kept'].cell_id}.json") == records["kept"]
