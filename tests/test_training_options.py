"""Recipe-selected training options in real runs: per-epoch LR and evaluation, selection on test (recorded and
warned about), fine-tuning with --init (strict, recorded), a recipe file end to end through the CLI."""
import json

import official_layouts as L
import pytest
import torch

from rgbt_bench.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.errors import CheckpointError
from rgbt_bench.training import TrainConfig, distributed, loop, train
from rgbt_bench.training.selection import selected_on, selection_warning

USER_MODEL = "tests.user_model_example:build"
TINY_DATA = {"size": [32, 40], "counts": [16, 5, 4]}  # 16 train images: 4 iterations per epoch at batch 4


def _config(out, **kw) -> TrainConfig:
    base = dict(model=USER_MODEL, dataset_options=TINY_DATA, iterations=12, batch_size=4, eval_every=8, lr=1e-2,
                eval_batch_size=4, progress=False, out=str(out), preset="small", log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _log(config):
    return [json.loads(line) for line in config.log_path.read_text().splitlines()]


def test_lr_stepped_per_epoch_and_evaluation_every_epoch(tmp_path):
    config = _config(tmp_path / "m.pt", lr_step="epoch", eval_every_epochs=1, no_decay="official",
                     photometric="ssd", scale_choices=(0.5, 1.0, 1.5), max_size=48, resize_antialias=False)
    train(config)
    records = _log(config)
    lrs = [r["lr"] for r in records if "lr" in r]  # record i + 1 holds the lr of iteration i
    assert lrs == pytest.approx([1e-2 * (1 - (i // 4) / 12) ** 0.9 for i in range(12)])
    assert [r["iteration"] for r in records if r.get("split") == "val"] == [4, 8, 12]
    saved = load_checkpoint(config.out_path)["config"]
    assert (saved["lr_step"], saved["no_decay"], saved["photometric"], saved["scale_choices"]) == \
        ("epoch", "official", "ssd", [0.5, 1.0, 1.5])


def test_selection_on_test_is_recorded_and_warned_about(tmp_path, capsys):
    config = _config(tmp_path / "m.pt", iterations=4, eval_every=2, select_on="test")
    path = train(config)
    ckpt = load_checkpoint(path)
    assert selected_on(ckpt) == "test" and ckpt["config"]["select_on"] == "test"
    assert set(ckpt["metrics"]) == {"test", "history", "selected_on"}
    assert {r["split"] for r in ckpt["metrics"]["history"]} == {"test"}
    warning = selection_warning(ckpt, str(path))
    assert warning.startswith(f"WARNING: {path} was selected on the TEST split")
    err = capsys.readouterr().err
    assert err.count("was selected on the TEST split") == 2  # at the start and at the end of training
    assert selection_warning(load_checkpoint(train(_config(tmp_path / "v.pt", iterations=2))), "v.pt") is None


def test_init_starts_from_a_checkpoints_weights_and_records_it(tmp_path, capsys):
    """The weights and the model kwargs they were built with (here with_loss, which adds a mask token)."""
    source = train(_config(tmp_path / "a.pt", iterations=4, model_kwargs={"with_loss": True, "dropout": 0.0}))
    config = _config(tmp_path / "b.pt", iterations=4, init=str(source), model_kwargs={"dropout": 0.2})
    ctx = distributed.setup("cpu")
    try:
        trainer = loop.Trainer(config, ctx)
    finally:
        distributed.teardown(ctx)
    weights = load_checkpoint(source)["state_dict"]
    assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs["backbone"] == pytest.approx(1e-3) and lrs["head"] == pytest.approx(1e-2)  # x0.1: a trained start
    assert trainer.config.model_kwargs == {"with_loss": True, "dropout": 0.2} and hasattr(trainer.model, "mask_token")
    out = load_checkpoint(train(config))
    assert out["config"]["init"] == str(source) and out["config"]["init_sha256"] == file_sha256(source)
    assert out["config"]["model_kwargs"] == {"with_loss": True, "dropout": 0.2}
    assert out["iteration"] == 4  # a fresh run: the source's iteration and optimiser are not taken over
    capsys.readouterr()
    resumed = train(_config(tmp_path / "b.pt", iterations=6, init=str(source), resume=True,
                            model_kwargs={"dropout": 0.2}))
    assert load_checkpoint(resumed)["config"]["init_sha256"] == file_sha256(source)
    assert "init_sha256" not in capsys.readouterr().err  # only the iterations changed


@pytest.mark.parametrize("change, message", [
    (dict(preset="tiny"), "holds model 'tests.user_model_example:build' preset 'tiny', not "
                          "'tests.user_model_example:build' preset 'small'"),
    (dict(num_classes=9), "was trained for 9 classes, but this dataset has 7"),
    (dict(shape=True), "does not fit the model: 1 tensors differ in shape (e.g. head.2.bias"),
    (dict(missing=True), "does not exist"),
])
def test_init_refuses_another_model_with_one_line(tmp_path, change, message):
    source = tmp_path / "src.pt"
    if not change.get("missing"):
        ckpt = load_checkpoint(train(_config(tmp_path / "a.pt", iterations=1, eval_every=0)))
        ckpt["preset"] = change.get("preset", ckpt["preset"])
        ckpt["num_classes"] = change.get("num_classes", ckpt["num_classes"])
        if change.get("shape"):
            ckpt["state_dict"]["head.2.bias"] = torch.zeros(3)
        save_checkpoint(source, ckpt)
    with pytest.raises(CheckpointError) as exc:
        train(_config(tmp_path / "b.pt", iterations=1, init=str(source)))
    assert message in str(exc.value) and "\n" not in str(exc.value) and str(source) in str(exc.value)
    assert not (tmp_path / "b.pt").exists()


def test_a_recipe_file_trains_crm_end_to_end(tmp_path, capsys):
    """A user recipe with the published options, for tiny CRM on synthetic: the run prints the settings,
    records the recipe and the ignore mode, and trains."""
    recipe = tmp_path / "tiny_paper.yaml"
    recipe.write_text("""
model: crm
settings: {lr: 1.0e-3, no_decay: official, lr_step: epoch, photometric: ssd, scale_choices: [0.5, 1.0, 2.0],
           max_size: 80, resize_antialias: false, grad_clip: 0.01, amp: false, eval_every_epochs: 1,
           ignore_mode: official, model_kwargs: {mask_ratio: 0.5}}
datasets:
  synthetic: {batch_size: 2, crop: [32, 40]}
""")
    out = tmp_path / "crm.pt"
    main(["train", "--recipe", str(recipe), "--iterations", "2", "--no-progress", "--out", str(out),
          "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[4,2,2]"])
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert f"recipe {recipe}; explicit settings override it" not in captured.err
    assert f"recipe {recipe}" in captured.err and "  lr_step: epoch" in captured.err
    ckpt = load_checkpoint(out)
    assert ckpt["config"]["recipe"] == str(recipe) and ckpt["config"]["model_kwargs"]["ignore_mode"] == "official"
    assert ckpt["ignore_mode"] == "official" and ckpt["iteration"] == 2


def test_init_from_imported_published_weights_keeps_their_input_convention(tmp_path):
    """`models import` of released MFNet weights (random, in the release layout) then `train --init`: the run
    starts from those weights with the convention they expect (unit); an unimported file names the import."""
    src = tmp_path / "final.pth"
    torch.save(L.random_state(L.mfnet_shapes(7, (8, 24, 24, 48, 48), (8, 8, 8, 18, 18)), seed=2), src)
    imported = tmp_path / "mfnet.pt"
    main(["models", "import", "mfnet", str(src), "--preset", "tiny", "--dataset", "synthetic", "--out", str(imported)])
    config = _config(tmp_path / "ft.pt", model="mfnet", preset="tiny", iterations=2, init=str(imported), lr=1e-4)
    ctx = distributed.setup("cpu")
    try:
        trainer = loop.Trainer(config, ctx)
    finally:
        distributed.teardown(ctx)
    assert trainer.config.model_kwargs == {"input_convention": "unit"}
    weights = load_checkpoint(imported)["state_dict"]
    assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())
    with pytest.raises(CheckpointError, match=r"is a published file .* rgbt-bench models import mfnet"):
        train(_config(tmp_path / "raw.pt", model="mfnet", preset="tiny", iterations=1, init=str(src)))
