"""Inputs whose size is not a multiple of the network stride: every decoder output position must be trained.

The ResNet baselines have no decoder skips, so each output pixel is a learned function of its position
inside a stride-32 cell. Zero-padding the bottom/right and cropping the output left the padded part of the
last cell without any loss when training on 60x80 crops (width padded to 96), so at 120x160 (no padding)
the rightmost 16 columns came from never-trained positions and were almost all wrong.
"""
import pytest
import torch

from rgbt_bench.models import build_model
from rgbt_bench.models.normalize import resize_to, resize_to_multiple


@pytest.mark.parametrize("name,kwargs", [("rtfnet", {}), ("rtfnet", {"crm_training": True}),
                                         ("early_fusion", {}), ("rgb_only", {}), ("thermal_only", {})])
def test_training_loss_reaches_every_decoder_output_position(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, 5, "tiny", **kwargs).train()
    canvas = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        canvas["logits"] = output

    model.decoder.register_forward_hook(keep)
    rgb, thermal = torch.rand(2, 3, 60, 80), torch.rand(2, 1, 60, 80)
    label = torch.randint(0, 5, (2, 60, 80))
    model.loss(rgb, thermal, label, generator=torch.Generator().manual_seed(0))["loss"].backward()
    grad = canvas["logits"].grad
    assert grad.shape[-2:] == (64, 96)
    reached = grad.abs().sum(dim=(0, 1)) > 0
    assert reached.all(), f"{int((~reached).sum())} of {reached.numel()} output positions get no training signal"


def test_resize_to_multiple_round_trip():
    x = torch.rand(2, 3, 60, 80)
    up = resize_to_multiple(x, 32)
    assert up.shape == (2, 3, 64, 96)
    assert resize_to_multiple(up, 32) is up
    torch.testing.assert_close(resize_to(torch.full_like(up, 0.25), (60, 80)), torch.full_like(x, 0.25))
    ramp = torch.arange(80.0).expand(1, 1, 60, 80)
    torch.testing.assert_close(resize_to(resize_to_multiple(ramp, 32), (60, 80))[..., 2:-2], ramp[..., 2:-2])
