"""Model cost (rgbt_bench.efficiency): FLOPs against the multiply-add count of the layers, the record, the reader."""
import json

import pandas as pd
import torch
from torch import nn

from rgbt_bench.efficiency import count_flops, format_count, read_efficiency, static_cost, with_forwards
from rgbt_bench.inference import Inference, resolve_inference
from rgbt_bench.models.registry import MODELS, build_model
from rgbt_bench.sweep.store import write_json

CPU = torch.device("cpu")


class ConvLinear(nn.Module):
    """A 3x3 convolution (4 -> 8 channels) and a per-pixel linear layer (8 -> 5 classes)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.linear = nn.Linear(8, 5)

    def forward(self, rgb, thermal):
        x = self.conv(torch.cat([rgb, thermal], 1))
        return self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def macs(h, w):
    """Multiply-adds of ConvLinear on one h x w image: conv 8 outputs x 4 inputs x 9 taps, linear 8 x 5."""
    return h * w * (8 * 4 * 9 + 8 * 5)


def test_flops_count_two_per_multiply_add():
    assert count_flops(ConvLinear(), (6, 10), CPU) == 2 * macs(6, 10)


def test_flops_follow_the_evaluation_mode():
    model = ConvLinear()
    ms = resolve_inference("ms-flip", scales=[0.5, 1.0], flip=True, image_size=(8, 12))
    # per flip: one pass at 4x6 and one at 8x12 (the softmax and resizes are not multiply-adds)
    assert count_flops(Inference(model, ms), (8, 12), CPU) == 2 * 2 * (macs(4, 6) + macs(8, 12))
    slide = resolve_inference("slide", window=(8, 8), stride=(8, 4), image_size=(8, 12))
    assert count_flops(Inference(model, slide), (8, 12), CPU) == 2 * 2 * macs(8, 8)  # windows [0,8) and [4,12)


def test_every_registered_model_is_counted():
    # Mask2Former (CRM) feeds a parameter to a module: FlopCounterMode's module hooks must cope
    for name in MODELS:
        model = build_model(name, 9, "tiny").eval()
        assert count_flops(model, (32, 40), CPU) > 0, name


def test_static_cost_counts_and_the_sweep_times():
    model = ConvLinear()
    cost = static_cost(model, (6, 10), CPU, batch_size=3, device_name="test cpu")
    assert cost.params == sum(p.numel() for p in model.parameters()) == 4 * 8 * 9 + 8 + 8 * 5 + 5
    assert cost.flops == 2 * macs(6, 10) and cost.gmacs == macs(6, 10) / 1e9 and cost.gflops == 2 * cost.gmacs
    assert cost.images_per_s is None and (cost.batch_size, cost.timed_images, cost.timed_s) == (3, 0, 0.0)
    record = cost.as_dict()
    assert record["image_size"] == [6, 10] and record["device_name"] == "test cpu" and record["amp"] is False
    timed = with_forwards(record, 12, 0.5)
    assert (timed["timed_images"], timed["timed_s"], timed["images_per_s"]) == (12, 0.5, 24.0)
    resumed = with_forwards(timed, 4, 0.5)  # a resumed sweep adds its forwards to the earlier ones
    assert (resumed["timed_images"], resumed["timed_s"], resumed["images_per_s"]) == (16, 1.0, 16.0)
    assert with_forwards(record, 0, 0.0)["images_per_s"] is None
    assert format_count(254_510_053) == "254.51M" and format_count(185_811) == "185.8K" and format_count(341) == "341"


def test_read_efficiency_from_the_manifest(tmp_path):
    entry = {"params": 10, "flops": 4, "gflops": 4e-9, "gmacs": 2e-9, "images_per_s": 5.0, "batch_size": 2,
             "device_name": "cpu"}
    write_json(tmp_path / "run.json", {"models": [{"name": "a", "efficiency": entry}, {"name": "b"}]})
    frame = read_efficiency(tmp_path)
    assert frame["model"].tolist() == ["a"] and frame.loc[0, "params"] == 10 and frame.loc[0, "images_per_s"] == 5.0
    replicas = [{"name": "a", "train_seed": seed, "efficiency": {**entry, "params": 10 + seed}} for seed in (0, 1)]
    write_json(tmp_path / "run.json", {"models": replicas})  # the replicas of one model: one row (it was two)
    assert read_efficiency(tmp_path)[["model", "params"]].values.tolist() == [["a", 10]]
    write_json(tmp_path / "run.json", {"models": [{"name": "a", "efficiency": {**entry, "images_per_s": None}}]})
    assert read_efficiency(tmp_path)["images_per_s"].isna().all()  # counted, but no forward timed yet
    empty = read_efficiency(tmp_path / "nowhere")
    assert isinstance(empty, pd.DataFrame) and empty.empty and "images_per_s" in empty.columns


def test_a_resumed_sweep_adds_its_forwards_to_the_recorded_rate(tmp_path):
    from test_sweep_engine import USER, write_checkpoint

    from rgbt_bench.sweep import SweepConfig, run_sweep

    ckpt = write_checkpoint(tmp_path / "u.pt", USER)

    def sweep(corruptions):
        out = run_sweep(SweepConfig(models=[f"u={USER}"], checkpoints={"u": str(ckpt)}, out=str(tmp_path / "r"),
                                    dataset_options={"size": [32, 40], "counts": [8, 4, 5]}, corruptions=corruptions,
                                    severities=[2], batch_size=2, device="cpu", progress=False))
        return json.loads((out / "run.json").read_text())["models"][0]["efficiency"]

    first = sweep(["night"])  # clean + night@2: 2 cells of 5 images
    assert first["timed_images"] == 10 and first["images_per_s"] == 10 / first["timed_s"]
    second = sweep(["night", "thermal_noise"])  # one more cell: its 5 images are added, the rest is reused
    assert second["timed_images"] == 15 and second["timed_s"] > first["timed_s"]
    assert second["images_per_s"] == 15 / second["timed_s"] and second["flops"] == first["flops"]
