"""Training end to end on the tiny synthetic dataset with the example user model: checkpoints, metrics on
val, per-iteration poly LR, model loss terms, exact resume after an interruption, user-facing errors."""
import dataclasses
import json
import math

import pytest
import torch

from rgbt_bench.checkpoint import load_checkpoint, save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.datasets import DATASETS, open_dataset
from rgbt_bench.datasets.synthetic import SyntheticRGBT
from rgbt_bench.models import build_model
from rgbt_bench.models.loading import model_from_checkpoint
from rgbt_bench.training import TrainConfig, evaluate, loop, train

USER_MODEL = "tests.user_model_example:build"
TINY_DATA = {"size": [32, 40], "counts": [16, 5, 4]}
TINY_DATA_FLAG = ["--dataset-option", "size=[32,40]", "--dataset-option", "counts=[16,5,4]"]


def _config(out, **kw) -> TrainConfig:
    base = dict(model=USER_MODEL, dataset_options=TINY_DATA, iterations=24, batch_size=4, eval_every=8,
                lr=3e-3, eval_batch_size=4, progress=False, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 40-iteration run of the plain (cross-entropy) user model, shared by the tests below."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RGBT_BENCH_CACHE", str(base / "cache"))
        config = _config(tmp_path_factory.mktemp("run") / "model.pt", iterations=40, batch_size=8, eval_every=10,
                         lr=1e-2, preset="small")
        path = train(config)
    return config, path


def _log(config):
    return [json.loads(line) for line in config.log_path.read_text().splitlines()]


def test_best_and_last_checkpoints_record_what_was_trained(run):
    config, path = run
    assert path == config.out_path and path.is_file() and config.last_path.is_file()
    best, last = load_checkpoint(path), load_checkpoint(config.last_path)
    info = open_dataset("synthetic", "val", **TINY_DATA).info
    assert best["class_names"] == list(info.class_names) and best["num_classes"] == info.num_classes == 7
    assert best["model"] == USER_MODEL and best["preset"] == "small" and best["dataset"] == "synthetic"
    assert best["config"]["iterations"] == 40 and best["config"]["crop"] == [32, 32]
    assert "optimizer" not in best and "rng" not in best
    assert last["iteration"] == 40 and "optimizer" in last and len(last["rng"]) == 1
    history = last["metrics"]["history"]
    assert [h["iteration"] for h in history] == [10, 20, 30, 40]
    assert all(h["split"] == "val" and h["convention"] == "field" for h in history)
    top = max(history, key=lambda h: h["miou"])
    assert best["metrics"]["selected_on"] == "val" and best["metrics"]["val"] == top
    assert best["iteration"] == top["iteration"] == last["best"]["iteration"]
    assert last["best"]["miou"] == pytest.approx(top["miou"])
    assert best["metrics"]["history"] == history  # the whole curve, also the evaluations after the best


def test_selected_checkpoint_saved_early_records_the_whole_curve(tmp_path, monkeypatch):
    """Best at the first evaluation: `out` is written then, and completed with the later ones at the end."""
    scores = iter([0.5, 0.2, 0.3])

    def fake_evaluate(*args, **kwargs):
        real = evaluate_module(*args, **kwargs)
        return dataclasses.replace(real, miou=next(scores))
    evaluate_module = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    config = _config(tmp_path / "early.pt", iterations=6, eval_every=2)
    best = load_checkpoint(train(config))
    assert best["iteration"] == 2 and best["metrics"]["val"]["miou"] == 0.5
    assert [(h["iteration"], h["miou"]) for h in best["metrics"]["history"]] == [(2, 0.5), (4, 0.2), (6, 0.3)]


def test_recorded_val_metrics_reproduce_from_the_saved_weights(run):
    config, path = run
    model, ckpt = model_from_checkpoint(path)
    val = open_dataset("synthetic", "val", **TINY_DATA)
    metrics = evaluate(model, val, batch_size=2, device="cpu")
    assert metrics.miou == pytest.approx(ckpt["metrics"]["val"]["miou"], abs=1e-12)
    assert list(metrics.iou) == pytest.approx(ckpt["metrics"]["val"]["iou"], abs=1e-12)


def test_learning_rate_follows_poly_per_iteration(run):
    config, _ = run
    steps = [r for r in _log(config) if "lr" in r]
    assert [r["iteration"] for r in steps] == [10, 20, 30, 40]
    for r in steps:  # the logged lr is the one used for the last step of the window (iteration - 1)
        assert r["lr"] == pytest.approx(1e-2 * (1 - (r["iteration"] - 1) / 40) ** 0.9)
        assert set(r) == {"iteration", "lr", "images_per_s", "loss", "grad_norm"} and math.isfinite(r["loss"])
        assert r["grad_norm"] > 0


def test_training_reduces_the_loss_and_beats_an_untrained_model(run):
    config, path = run
    losses = [r["loss"] for r in _log(config) if "lr" in r]
    assert losses[-1] < 0.85 * losses[0]
    trained = load_checkpoint(path)["metrics"]["val"]
    torch.manual_seed(0)
    untrained = evaluate(build_model(USER_MODEL, 7, "small"), open_dataset("synthetic", "val", **TINY_DATA))
    assert trained["miou"] > untrained.miou + 0.05
    assert trained["pixel_acc"] > untrained.pixel_acc + 0.2


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    kw = dict(iterations=20, eval_every=5, model_kwargs={"with_loss": True})
    straight = train(_config(tmp_path / "straight.pt", **kw))

    real_step = loop.Trainer._step

    def interrupt_at_13(self, net, batch):
        if self.state.iteration == 13:
            raise KeyboardInterrupt
        return real_step(self, net, batch)

    monkeypatch.setattr(loop.Trainer, "_step", interrupt_at_13)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path / "resumed.pt", **kw))
    assert load_checkpoint(tmp_path / "resumed.last.pt")["iteration"] == 10
    monkeypatch.setattr(loop.Trainer, "_step", real_step)
    resumed_config = _config(tmp_path / "resumed.pt", resume=True, **kw)
    train(resumed_config)

    a = load_checkpoint(tmp_path / "straight.last.pt")
    b = load_checkpoint(tmp_path / "resumed.last.pt")
    assert a["iteration"] == b["iteration"] == 20
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["metrics"]["history"] == b["metrics"]["history"]
    assert torch.equal(load_checkpoint(straight)["state_dict"]["head.2.weight"],
                       load_checkpoint(tmp_path / "resumed.pt")["state_dict"]["head.2.weight"])
    # the model's own loss terms are logged; the resumed log has no entries from after the interruption twice
    steps = [r for r in _log(resumed_config) if "lr" in r]
    assert [r["iteration"] for r in steps] == [10, 20]
    assert {"loss", "ce_clean", "ce_masked"} <= set(steps[0])
    assert steps[0]["loss"] == pytest.approx(steps[0]["ce_clean"] + steps[0]["ce_masked"])


def test_crm_interrupted_and_resumed_matches_and_logs_every_crm_term(tmp_path, monkeypatch):
    """CRM draws masks and Mask2Former sampling points from the global RNG: resume must restore it."""
    kw = dict(model="crm", iterations=6, batch_size=2, eval_every=3, lr=1e-3, eval_batch_size=5)
    train(_config(tmp_path / "straight.pt", **kw))
    real_step = loop.Trainer._step

    def interrupt_at_4(self, net, batch):
        if self.state.iteration == 4:
            raise KeyboardInterrupt
        return real_step(self, net, batch)

    monkeypatch.setattr(loop.Trainer, "_step", interrupt_at_4)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path / "resumed.pt", **kw))
    monkeypatch.setattr(loop.Trainer, "_step", real_step)
    resumed = _config(tmp_path / "resumed.pt", resume=True, **kw)
    train(resumed)
    a, b = load_checkpoint(tmp_path / "straight.last.pt"), load_checkpoint(tmp_path / "resumed.last.pt")
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    last = [r for r in _log(resumed) if "lr" in r][-1]
    assert {"loss", "seg_fused", "seg_rgb", "seg_thermal", "seg_masked", "sdc", "sdn"} <= set(last)


class NoValSynthetic(SyntheticRGBT):
    """The synthetic dataset without a val split, like PST900."""

    info = dataclasses.replace(SyntheticRGBT.info, splits=("train", "test"))


def test_without_val_split_the_last_weights_are_kept_and_test_is_never_used(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "noval", f"{__name__}:NoValSynthetic")
    evaluated = []
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: evaluated.append(a[1].split))
    config = _config(tmp_path / "m.pt", dataset=f"noval:{tmp_path / 'data'}", iterations=4, eval_every=2)
    path = train(config)
    out, last = load_checkpoint(path), load_checkpoint(config.last_path)
    assert evaluated == []
    assert out["metrics"] == {"val": None, "history": [], "selected_on": "last"} and out["iteration"] == 4
    assert all(torch.equal(v, last["state_dict"][k]) for k, v in out["state_dict"].items())
    assert [r["iteration"] for r in _log(config)] == [4]


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(["train", *args])
    err = capsys.readouterr().err.strip()
    return exc.value.code, err


@pytest.mark.parametrize("args, message", [
    (["--crop", "240by320"], "invalid crop '240by320'"),
    (["--crop", "0x320"], "both sizes must be positive"),
    (["--iterations", "-5"], "iterations must be > 0, got -5"),
    (["--model", "crmm"], "unknown model 'crmm'"),
    (["--model-kwarg", "width"], "invalid --model-kwarg 'width'; expected key=value"),
    (["--dataset", "nosuch"], "unknown dataset 'nosuch'"),
])
def test_bad_flags_give_one_line(capsys, tmp_path, args, message):
    code, err = _cli(capsys, "--out", str(tmp_path / "m.pt"), *TINY_DATA_FLAG, *args)
    assert code == 2
    assert err.count("\n") == 0 and message in err


def test_amp_without_cuda_and_resume_without_state_are_one_line_errors(capsys, tmp_path):
    code, err = _cli(capsys, "--model", USER_MODEL, "--device", "cpu", "--amp", "--out", str(tmp_path / "m.pt"),
                     *TINY_DATA_FLAG)
    assert code == 2 and "--amp needs a CUDA device" in err and "\n" not in err
    code, err = _cli(capsys, "--model", USER_MODEL, "--resume", "--out", str(tmp_path / "m.pt"), *TINY_DATA_FLAG)
    assert code == 2 and f"cannot resume: {tmp_path / 'm.last.pt'} does not exist" in err and "\n" not in err


def test_resume_from_another_datasets_checkpoint_is_refused(capsys, run, tmp_path):
    config, _ = run
    foreign = load_checkpoint(config.last_path)
    foreign.update(num_classes=9, dataset="mfnet:/data/mfnet")
    save_checkpoint(tmp_path / "m.last.pt", foreign)
    code, err = _cli(capsys, "--model", USER_MODEL, "--resume", "--out", str(tmp_path / "m.pt"), *TINY_DATA_FLAG)
    assert code == 2 and "\n" not in err
    assert "trained for 9 classes (mfnet:/data/mfnet), but synthetic has 7" in err


def test_resume_selecting_on_another_split_is_refused(capsys, run, tmp_path):
    """The best so far was measured on val: comparing test mIoUs with it, and recording the result as selected
    on test, would mislabel the checkpoint (before: a note, and the run went on)."""
    config, _ = run
    save_checkpoint(tmp_path / "m.last.pt", load_checkpoint(config.last_path))
    code, err = _cli(capsys, "--model", USER_MODEL, "--preset", config.preset, "--resume", "--select-on", "test",
                     "--out", str(tmp_path / "m.pt"), *TINY_DATA_FLAG)
    assert code == 2 and "\n" not in err
    assert "its best checkpoint so far was selected on the 'val' split, this run selects on 'test'" in err


def test_cli_trains_and_prints_the_checkpoint_path(capsys, tmp_path):
    out = tmp_path / "cli.pt"
    main(["train", "--model", USER_MODEL, "--iterations", "4", "--batch-size", "2", "--eval-every", "2",
          "--crop", "24x32", "--model-kwarg", "with_loss=true", "--model-kwarg", "dropout=0.0",
          "--no-progress", "--out", str(out), *TINY_DATA_FLAG])
    assert capsys.readouterr().out.strip() == str(out)
    ckpt = load_checkpoint(out)
    assert ckpt["config"]["model_kwargs"] == {"with_loss": True, "dropout": 0.0}
    assert ckpt["config"]["crop"] == [24, 32] and ckpt["config"]["dataset_options"] == TINY_DATA
    model, _ = model_from_checkpoint(out)
    assert hasattr(model, "mask_token")
    assert model(torch.rand(1, 3, 32, 40), torch.rand(1, 1, 32, 40)).shape == (1, 7, 32, 40)
