"""A checkpoint selected on the test split (the published CRM behaviour) is flagged wherever it is evaluated:
sweep, report notes, leaderboard column and printout."""
from click.testing import CliRunner

from rgbt_bench.cli import cli
from rgbt_bench.report import build_leaderboard, build_report
from rgbt_bench.sweep import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells
from rgbt_bench.training import TrainConfig, train
from rgbt_bench.training.selection import warning_for_test_selection

OPTIONS = {"size": [32, 40], "counts": [8, 2, 2]}


def test_sweep_warns_about_and_records_a_test_selected_checkpoint(tmp_path, capsys):
    chosen = train(TrainConfig(model="mfnet", iterations=2, batch_size=2, eval_every=1, select_on="test",
                               out=str(tmp_path / "t.pt"), progress=False, dataset_options=OPTIONS))
    plain = train(TrainConfig(model="mfnet", iterations=2, batch_size=2, eval_every=1,
                              out=str(tmp_path / "v.pt"), progress=False, dataset_options=OPTIONS))
    capsys.readouterr()
    suite = tmp_path / "one.yaml"
    suite.write_text("name: one\ndescription: one corruption\n"
                     "entries:\n  - corruption: rgb_missing\n    severities: [5]\n")
    out = run_sweep(SweepConfig(models=["t=mfnet", "v=mfnet"], checkpoints={"t": str(chosen), "v": str(plain)},
                                out=str(tmp_path / "r"), dataset_options=OPTIONS, progress=False,
                                suite=str(suite), models_dir=str(tmp_path / "models")))
    err = capsys.readouterr().err
    assert f"WARNING: checkpoint {chosen} of model 't' was selected on the TEST split" in err
    assert "model 'v'" not in err
    assert {c.record.key.model: c.record.selected_on for c in read_cells(out)} == {"t": "test", "v": "val"}
    report = build_report(out, bootstrap=0, plot=False, qualitative=None)
    assert [n for n in report.notes if "TEST split" in n] == [warning_for_test_selection("model 't'")]
    frame, _ = build_leaderboard([out], bootstrap=0)
    assert dict(zip(frame["model"], frame["selected_on"])) == {"t": "test", "v": "val"}
    result = CliRunner().invoke(cli, ["leaderboard", str(out), "--bootstrap", "0", "--out", str(tmp_path / "lb.csv")])
    assert result.exit_code == 0 and warning_for_test_selection(f"model 't' of {out}") in result.output
