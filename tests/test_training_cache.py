"""The trained-model cache shared by `run` and `sweep` (rgbt_bench.training.cache), inside a sweep: a model
whose on-the-fly training was killed is resumed (not evaluated half-trained), a finished one with the same
training config is reused, one with another config is retrained, and the sweep says which happened."""
import numpy as np
import pytest
import torch
from test_sweep_engine import DATA, USER

from rgbt_bench.checkpoint import load_checkpoint
from rgbt_bench.sweep import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells
from rgbt_bench.training.loop import Trainer

ITERATIONS = 60  # the resumable state is saved at 50 (cache.SAVE_EVERY) and 60; val evaluated at 30 and 60
KILLED_AT = 55


def sweep(tmp_path, out, models_dir, iterations=ITERATIONS):
    (tmp_path / "one.yaml").write_text("entries:\n  - corruption: thermal_noise\n    severities: [5]\n")
    return SweepConfig(models=[f"u={USER}"], suite=str(tmp_path / "one.yaml"), out=str(tmp_path / out),
                       dataset_options=DATA, device="cpu", progress=False, models_dir=str(tmp_path / models_dir),
                       train_iterations=iterations)


def cells(out):
    return {c.record.cell_id: c for c in read_cells(out)}


def test_a_sweep_killed_during_on_the_fly_training_resumes_to_the_uninterrupted_cells(tmp_path, monkeypatch, capsys):
    reference = cells(run_sweep(sweep(tmp_path, "whole", "whole_models")))
    assert {c.record.checkpoint_source for c in reference.values()} == {"trained"}

    step = Trainer._step

    def killed(self, net, batch):  # what a kill -9 at iteration 55 leaves on disk: states saved at 30 and 50
        if self.state.iteration == KILLED_AT:
            raise KeyboardInterrupt
        return step(self, net, batch)

    monkeypatch.setattr(Trainer, "_step", killed)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep(tmp_path, "out", "models"))
    monkeypatch.setattr(Trainer, "_step", step)
    cached = tmp_path / "models" / "user_model_example_build_tiny_synthetic_seed1024.pt"
    assert load_checkpoint(cached.with_name(cached.stem + ".last.pt"))["iteration"] == 50 and cached.is_file()
    assert not (tmp_path / "out" / "cells").is_dir() or not list((tmp_path / "out" / "cells").glob("*.json"))
    capsys.readouterr()

    resumed = cells(run_sweep(sweep(tmp_path, "out", "models")))
    assert f"model 'u': resuming {USER} (tiny) for {ITERATIONS} iterations into {cached} (interrupted at " \
           f"iteration 50 of {ITERATIONS})" in " ".join(capsys.readouterr().err.split())
    assert {c.record.checkpoint_source for c in resumed.values()} == {"resumed"}
    assert resumed.keys() == reference.keys()
    for cell_id, cell in reference.items():
        np.testing.assert_array_equal(resumed[cell_id].per_image, cell.per_image, err_msg=cell_id)
    whole = load_checkpoint(tmp_path / "whole_models" / cached.name)["state_dict"]
    for name, tensor in load_checkpoint(cached)["state_dict"].items():
        torch.testing.assert_close(tensor, whole[name], rtol=0, atol=0, msg=name)

    run_sweep(sweep(tmp_path, "again", "models"))
    assert "model 'u': reusing" in capsys.readouterr().err
    assert {c.record.checkpoint_source for c in read_cells(tmp_path / "again")} == {"cached"}


def test_other_train_iterations_retrain_instead_of_reusing(tmp_path, capsys):
    run_sweep(sweep(tmp_path, "first", "models", iterations=4))
    capsys.readouterr()
    out = run_sweep(sweep(tmp_path, "second", "models", iterations=6))
    err = " ".join(capsys.readouterr().err.split())
    assert "model 'u': training" in err and "its training config differs: iterations 4, requested 6" in err
    cached = tmp_path / "models" / "user_model_example_build_tiny_synthetic_seed1024.pt"
    assert load_checkpoint(cached.with_name(cached.stem + ".last.pt"))["iteration"] == 6
    assert {c.record.checkpoint_source for c in read_cells(out)} == {"trained"}
