"""CUDA readiness without a GPU: every registered model and every corruption computes on its inputs' device.

A tensor made without `device=` lands on the CPU; on a CPU-only machine that hides the bug, on CUDA it stops
the run ("Expected all tensors to be on the same device"). Here the model and the inputs live on the meta
device while torch's default device stays the CPU, so such a tensor meets a meta one and raises. Meta tensors
hold no values, so steps that read values (CRM's target masks and Hungarian matching, modality dropout's
per-image choice, night's Poisson sampler) cannot run here; where a GPU is present, the CUDA tests below and
tests/test_corruptions_randomness.py::test_cuda_matches_cpu run them.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

from rgbt_bench.batch import Batch, SampleMeta
from rgbt_bench.corruptions import CORRUPTIONS
from rgbt_bench.models import MODELS
from rgbt_bench.models.registry import build_model
from rgbt_bench.training.objective import TrainingObjective

META = torch.device("meta")
# value-dependent steps that meta tensors cannot run (see the module docstring)
READS_VALUES_IN_LOSS = {"crm", "crm_nomask", "crm_nosd"}
READS_VALUES = {"rgb_missing", "thermal_missing", "night"}


@pytest.fixture(autouse=True)
def autocast_off_on_meta(monkeypatch):
    """torch.autocast refuses device_type "meta"; the models' fp32 islands then run as plain code."""
    real = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda device_type, *args, **kwargs: contextlib.nullcontext()
                        if device_type == "meta" else real(device_type, *args, **kwargs))


def inputs(h: int = 64, w: int = 96) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.rand(2, 3, h, w, device=META), torch.rand(2, 1, h, w, device=META),
            torch.zeros(2, h, w, dtype=torch.int64, device=META))


@pytest.mark.parametrize("name,kwargs", [(name, {}) for name in MODELS] +
                         [("rtfnet_crm", {"output_stride": 8}), ("early_fusion", {"output_stride": 16})])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_model_forward_stays_on_the_input_device(name, kwargs, mode):
    model = getattr(build_model(name, 7, "tiny", **kwargs).to(META), mode)()
    rgb, thermal, _ = inputs()
    out = model(rgb, thermal)
    if mode == "eval":
        assert out.device == META and tuple(out.shape) == (2, 7, 64, 96)


@pytest.mark.parametrize("name", sorted(set(MODELS) - READS_VALUES_IN_LOSS))
def test_training_objective_and_backward_stay_on_the_input_device(name):
    objective = TrainingObjective(build_model(name, 7, "tiny").to(META).train(), 255)
    terms = objective(*inputs())
    terms["loss"].backward()
    assert {t.device for t in terms.values()} == {META}
    assert {p.grad.device for p in objective.parameters() if p.grad is not None} == {META}


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - READS_VALUES))
@pytest.mark.parametrize("severity", [1, 5])
def test_corruption_stays_on_the_input_device(name, severity):
    rgb, thermal, label = inputs(48, 64)
    metas = [SampleMeta("synthetic", "test", f"image{i}", i, bool(i)) for i in range(2)]
    out = CORRUPTIONS[name](Batch(rgb, thermal, label, metas), severity, 0)
    assert (out.rgb.device, out.thermal.device) == (META, META)
    assert out.rgb.shape == rgb.shape and out.thermal.shape == thermal.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(MODELS))
def test_training_loss_on_cuda_matches_cpu(name, monkeypatch):
    """One training loss (CRM's masks, matching and point sampling included) on CUDA and on the CPU from the same
    weights, inputs and CPU generator, TF32 off: the two differ by float rounding only."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    model = build_model(name, 7, "tiny").train()
    batch = (torch.rand(2, 3, 64, 96), torch.rand(2, 1, 64, 96), torch.randint(0, 7, (2, 64, 96)))
    losses = {}
    for device in ("cpu", "cuda"):
        model.to(device)
        args = [t.to(device) for t in batch]
        if callable(getattr(model, "loss", None)):
            terms = model.loss(*args, 255, generator=torch.Generator().manual_seed(1))
        else:
            terms = TrainingObjective(model, 255)(*args)
        losses[device] = {k: float(v) for k, v in terms.items()}
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3, abs=1e-4)
