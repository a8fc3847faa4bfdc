"""The sweep engine in one process: cell contents against a direct computation, resume, manifest, errors."""
import json
import math
import os

import numpy as np
import pytest
import torch
from fixtures_real import SIZE as MF_SIZE
from fixtures_real import write_mfnet
from torch import nn

from rgbt_bench.batch import collate
from rgbt_bench.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.corruptions import apply_corruption
from rgbt_bench.datasets import open_dataset
from rgbt_bench.datasets.fingerprint import dataset_fingerprint
from rgbt_bench.errors import CheckpointError, ConfigError, RgbtBenchError
from rgbt_bench.metrics import compute_metrics
from rgbt_bench.models.registry import build_model
from rgbt_bench.sweep import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

SIZE = [32, 40]
DATA = {"size": SIZE, "counts": [8, 4, 6]}
SUITE_TEXT = """\
name: tiny
description: two corruptions for tests
entries:
  - corruption: thermal_noise
    severities: [2, 5]
  - corruption: rgb_missing
    label: rgb_missing_mean
    severities: [5]
    options: {fill: mean}
"""
USER = "user_model_example:build"


class NaNModel(nn.Module):
    """Returns NaN logits for inputs whose RGB was replaced by the normalisation mean (rgb_missing, fill mean)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.head = nn.Conv2d(4, num_classes, 1)

    def forward(self, rgb, thermal):
        logits = self.head(torch.cat([rgb, thermal], 1))
        flat = ((rgb.amax(dim=(2, 3)) - rgb.amin(dim=(2, 3))) < 1e-6).all(1)
        return torch.where(flat.view(-1, 1, 1, 1), torch.full_like(logits, float("nan")), logits)


def build_nan(num_classes: int, preset: str = "tiny") -> nn.Module:
    return NaNModel(num_classes)


def build_wrong_classes(num_classes: int, preset: str = "tiny") -> nn.Module:
    return NaNModel(num_classes + 2)


def write_checkpoint(path, spec, num_classes=7, seed=0):
    torch.manual_seed(seed)
    model = build_model(spec, num_classes, "tiny")
    save_checkpoint(path, {"model": spec, "preset": "tiny", "num_classes": num_classes, "config": {},
                           "state_dict": model.state_dict()})
    return str(path)


@pytest.fixture()
def setup(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE_TEXT)
    ckpts = {"user": write_checkpoint(tmp_path / "user.pt", USER, seed=1),
             "user2": write_checkpoint(tmp_path / "user2.pt", USER, seed=2)}
    return {"suite": str(suite), "ckpts": ckpts, "tmp": tmp_path}


def config(setup, **kw):
    base = dict(models=[f"user={USER},user2={USER}"], checkpoints=setup["ckpts"], suite=setup["suite"],
                out=str(setup["tmp"] / "out"), dataset_options=DATA, batch_size=4, device="cpu", progress=False,
                models_dir=str(setup["tmp"] / "models"))
    return SweepConfig(**{**base, **kw})


def reference_per_image(model, dataset, corruption, severity, seed, options):
    """Per-image confusion matrices computed directly (whole split in one batch) with numpy bincount."""
    model.eval()
    c = dataset.info.num_classes
    batch = collate([dataset[i] for i in range(len(dataset))])
    if corruption is not None:
        batch = apply_corruption(batch, corruption, severity, seed, **options)
    with torch.no_grad():
        preds = model(batch.rgb, batch.thermal).argmax(1).numpy()
    out = []
    for pred, label in zip(preds, batch.label.numpy()):
        keep = label != dataset.info.ignore_index
        out.append(np.bincount(label[keep] * c + pred[keep], minlength=c * c).reshape(c, c))
    return np.stack(out)


def test_cells_match_direct_computation_and_record_everything(setup):
    out = run_sweep(config(setup, seeds=[0, 3]))
    cells = {c.record.cell_id: c for c in read_cells(out)}
    # 2 models x (clean once + thermal_noise 2 severities x 2 seeds + rgb_missing 1 x 2 seeds)
    assert len(cells) == 2 * (1 + 4 + 2)
    assert sum(c.record.key.corruption == "clean" for c in cells.values()) == 2
    dataset = open_dataset("synthetic", "test", **DATA)
    for name in ("user", "user2"):
        model = build_model(USER, 7, "tiny")
        model.load_state_dict(torch.load(setup["ckpts"][name], weights_only=True)["state_dict"])
        for corruption, label, severity, seed, options in [
                (None, "clean", 0, 0, {}), ("thermal_noise", "thermal_noise", 5, 3, {}),
                ("rgb_missing", "rgb_missing_mean", 5, 0, {"fill": "mean"})]:
            cell = cells[f"{name}__synthetic__test__{label}__s{severity}__seed{seed}"]
            expected = reference_per_image(model, dataset, corruption, severity, seed, options)
            np.testing.assert_array_equal(cell.per_image, expected)
            rec = cell.record
            assert rec.metrics == compute_metrics(expected.sum(0), "field").as_dict()
            assert rec.key.model == name and rec.identity.model_spec == USER and rec.identity.preset == "tiny"
            assert rec.identity.checkpoint_sha256 == file_sha256(setup["ckpts"][name])
            assert rec.identity.corruption_name == corruption and rec.identity.options == options
            assert rec.identity.num_images == 6 and rec.ignore_index == 255 and rec.identity.convention == "field"
            assert rec.class_names == dataset.info.class_names and rec.device == "cpu"
            assert list(cell.names) == dataset.names
            assert list(cell.is_night) == [int(n.endswith("N")) for n in dataset.names]
    noisy = cells["user__synthetic__test__thermal_noise__s5__seed0"]
    assert noisy.record.params == {"sigma": 0.08} and noisy.record.modality == "thermal"
    assert not np.array_equal(noisy.per_image, cells["user__synthetic__test__thermal_noise__s5__seed3"].per_image)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["seeds"] == [0, 3]
    assert manifest["suite"]["text"] == SUITE_TEXT and manifest["suite"]["entries"][1]["options"] == {"fill": "mean"}
    assert [m["checkpoint_sha256"] for m in manifest["models"]] == [file_sha256(p) for p in setup["ckpts"].values()]
    assert manifest["torch_version"] == torch.__version__ and manifest["dataset"]["num_images"] == 6
    assert manifest["timing"]["model_s"] > 0 and manifest["cells_computed"] == 14


def test_rerun_skips_finished_cells_and_extends_with_new_ones(setup):
    out = run_sweep(config(setup, models=[f"user={USER}"], checkpoints={"user": setup["ckpts"]["user"]},
                           cells_per_pass=2))
    first = {c.record.cell_id: (c.record.finished_at, os.stat(out / "cells" / f"{c.record.cell_id}.npz")
                                   .st_mtime_ns) for c in read_cells(out)}
    assert len(first) == 4
    run_sweep(config(setup, cells_per_pass=2))
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["cells_computed"] == 4 and manifest["cells_total"] == 8 and len(manifest["history"]) == 1
    after = {c.record.cell_id: (c.record.finished_at, os.stat(out / "cells" / f"{c.record.cell_id}.npz")
                                   .st_mtime_ns) for c in read_cells(out)}
    assert len(after) == 8 and all(after[k] == v for k, v in first.items())
    other = write_checkpoint(setup["tmp"] / "other.pt", USER, seed=9)
    with pytest.raises(ConfigError, match=r"already holds cell user__synthetic__test__clean__s0__seed0 computed "
                                          r"with checkpoint_sha256="):
        run_sweep(config(setup, checkpoints={**setup["ckpts"], "user": other}))
    with pytest.raises(ConfigError, match="computed with convention='field', but this run has convention='mmseg'"):
        run_sweep(config(setup, convention="mmseg"))


def test_cells_of_another_corruption_version_are_not_reused(setup, monkeypatch):
    """A change to the corruption code (CORRUPTION_VERSION) must not resume into cells computed the old way."""
    out = run_sweep(config(setup, models=[f"user={USER}"], checkpoints={"user": setup["ckpts"]["user"]}))
    assert {c.record.identity.corruption_version for c in read_cells(out)} == {None, 2}
    monkeypatch.setattr("rgbt_bench.sweep.engine.CORRUPTION_VERSION", 3)
    with pytest.raises(ConfigError, match="computed with corruption_version=2, but this run has corruption_version=3"):
        run_sweep(config(setup, models=[f"user={USER}"], checkpoints={"user": setup["ckpts"]["user"]}))


def test_model_trained_on_the_fly_is_cached_and_reused(setup, capsys):
    cfg = config(setup, models=[USER], checkpoints={}, train_iterations=2, train_seeds=[0, 5],
                 suite=str(setup["tmp"] / "one.yaml"))
    (setup["tmp"] / "one.yaml").write_text("entries:\n  - corruption: thermal_missing\n    severities: [5]\n")
    out = run_sweep(cfg)
    cached = {seed: setup["tmp"] / "models" / f"user_model_example_build_tiny_synthetic_seed{seed}.pt"
              for seed in (0, 5)}
    assert all(path.is_file() for path in cached.values())
    records = [c.record for c in read_cells(out)]
    assert len(records) == 2 * 2 and {r.checkpoint_source for r in records} == {"trained"}
    for seed, path in cached.items():  # one replica per training seed, each with its own weights
        assert load_checkpoint(path)["config"]["seed"] == seed
        assert {r.identity.checkpoint_sha256 for r in records if r.key.train_seed == seed} == {file_sha256(path)}
    assert file_sha256(cached[0]) != file_sha256(cached[5])
    assert any(r.cell_id.startswith("user_model_example-build__synthetic__test__clean__s0__seed0__train5-")
               for r in records)
    with pytest.raises(ConfigError, match=r"holds cell .*__train0-\w+ of model 'user_model_example:build' with "
                                          r"training seed 0, but this run evaluates it with 5"):
        run_sweep(config(setup, models=[USER], checkpoints={}, train_iterations=2, train_seeds=[5], suite=cfg.suite))
    stamp = {seed: path.stat().st_mtime_ns for seed, path in cached.items()}
    run_sweep(config(setup, models=[USER], checkpoints={}, train_iterations=2, train_seeds=[5], suite=cfg.suite,
                     out=str(setup["tmp"] / "out2")))
    assert {seed: path.stat().st_mtime_ns for seed, path in cached.items()} == stamp
    assert {(c.record.checkpoint_source, c.record.key.train_seed) for c in read_cells(setup["tmp"] / "out2")} \
        == {("cached", 5)}


def test_nan_logits_and_wrong_class_count_are_clear_errors_and_keep_finished_cells(setup):
    nan_ckpt = write_checkpoint(setup["tmp"] / "nan.pt", "test_sweep_engine:build_nan")
    cfg = config(setup, models=["bad=test_sweep_engine:build_nan"], checkpoints={"bad": nan_ckpt}, cells_per_pass=1)
    with pytest.raises(RgbtBenchError, match=r"model 'bad' returned NaN or infinite logits in cell "
                                             r"bad__synthetic__test__rgb_missing_mean__s5__seed0 \(images 00"):
        run_sweep(cfg)
    assert len(list(read_cells(cfg.out))) == 3
    wrong = write_checkpoint(setup["tmp"] / "wrong.pt", "test_sweep_engine:build_wrong_classes", num_classes=7)
    with pytest.raises(ConfigError, match="model 'w' outputs 9 classes, but dataset 'synthetic' has 7 classes"):
        run_sweep(config(setup, models=["w=test_sweep_engine:build_wrong_classes"], checkpoints={"w": wrong},
                         out=str(setup["tmp"] / "o3")))


def test_user_errors_are_one_line_from_the_cli(setup, capsys, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    base = ["sweep", "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,6]", "--no-progress",
            "--device", "cpu", "--suite", setup["suite"], "--models-dir", str(tmp_path / "models")]
    cases = [
        (["--models", "rtfnte", "--out", str(tmp_path / "a")], "unknown model 'rtfnte'"),
        (["--models", "rtfnet", "--checkpoint", f"rtfnet={tmp_path / 'missing.pt'}", "--out", str(tmp_path / "a")],
         "missing.pt for model 'rtfnet' does not exist"),
        (["--models", f"u={USER}", "--checkpoint", f"u={setup['ckpts']['user']}", "--suite", str(tmp_path / "no.yaml"),
          "--out", str(tmp_path / "a")], "suite file"),
        (["--models", f"u={USER}", "--checkpoint", f"u={setup['ckpts']['user']}", "--out", str(blocked / "sub")],
         f"cannot write results to {blocked / 'sub'}"),
        (["--models", "rtfnet", "--seeds", "1,1", "--out", str(tmp_path / "a")], "invalid seeds '1,1'"),
        (["--models", "rtfnet", "--amp", "--out", str(tmp_path / "a")], "--amp needs a CUDA device"),
        (["--models", "rtfnet", "--convention", "voc", "--out", str(tmp_path / "a")], "unknown mIoU convention 'voc'"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(base + args)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_prints_results_directory(setup, capsys, tmp_path):
    (tmp_path / "one.yaml").write_text("entries:\n  - corruption: rgb_missing\n    severities: [5]\n")
    main(["sweep", "--models", f"u={USER}", "--checkpoint", f"u={setup['ckpts']['user']}", "--suite",
          str(tmp_path / "one.yaml"), "--out", str(tmp_path / "r"), "--dataset-option", "size=[32,40]",
          "--dataset-option", "counts=[8,4,6]", "--no-progress", "--device", "cpu", "--seeds", "0,1"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "r")
    cells = sorted(c.record.cell_id for c in read_cells(tmp_path / "r"))
    assert cells == ["u__synthetic__test__clean__s0__seed0", "u__synthetic__test__rgb_missing__s5__seed0",
                     "u__synthetic__test__rgb_missing__s5__seed1"]
    drop = next(c for c in read_cells(tmp_path / "r") if c.record.key.corruption == "rgb_missing")
    assert math.isfinite(drop.record.metrics["miou"]) and drop.record.identity.options == {"fill": "zero"}


def test_dataset_fingerprint_follows_the_data_not_the_object():
    a = dataset_fingerprint(open_dataset("synthetic", "test", **DATA))
    assert a == dataset_fingerprint(open_dataset("synthetic", "test", **DATA))
    assert a != dataset_fingerprint(open_dataset("synthetic", "test", seed=1, **DATA))
    assert a != dataset_fingerprint(open_dataset("synthetic", "test_day", **DATA))


def test_real_dataset_needs_fitting_checkpoints(setup, tmp_path):
    fixture = write_mfnet(tmp_path / "mfnet")
    spec = f"mfnet:{fixture.root}"
    base = dict(suite=setup["suite"], out=str(tmp_path / "r"), dataset=spec, dataset_options={}, batch_size=3,
                device="cpu", progress=False, models_dir=str(tmp_path / "models"))
    with pytest.raises(CheckpointError, match="model 'u' has no checkpoint for dataset 'mfnet'; pass --checkpoint u="):
        run_sweep(SweepConfig(models=[f"u={USER}"], **base))
    with pytest.raises(CheckpointError, match="trained for 7 classes, but 9 are expected"):
        run_sweep(SweepConfig(models=[f"u={USER}"], checkpoints={"u": setup["ckpts"]["user"]}, **base))
    ckpt = write_checkpoint(tmp_path / "u9.pt", USER, num_classes=9)
    out = run_sweep(SweepConfig(models=[f"u={USER}"], checkpoints={"u": ckpt}, **base))
    cells = list(read_cells(out))
    assert len(cells) == 1 + 2 + 1 and not (tmp_path / "models").exists()
    test_names = fixture.splits["test"]
    for cell in cells:
        assert list(cell.names) == test_names and cell.per_image.shape == (len(test_names), 9, 9)
        assert list(cell.is_night) == [int(n.endswith("N")) for n in test_names]
        assert cell.record.key.dataset == "mfnet" and cell.record.dataset_spec == spec
        assert int(cell.per_image.sum()) == len(test_names) * MF_SIZE[0] * MF_SIZE[1]  # MFNet ignores nothing
