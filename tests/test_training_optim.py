"""AdamW parameter groups (backbone LR, no decay on norms/biases/tables/tokens) and the poly schedule."""
import pytest
import torch
from torch import nn
from user_model_example import build

from rgbt_bench.models.crm import build_crm
from rgbt_bench.training.optim import NORM_TYPES, build_optimizer, param_groups, poly_factor, schedule_step, set_lr


class TableModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.proj = nn.Linear(4, 4)
        self.backbone.norm = nn.LayerNorm(4)
        self.backbone.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
        self.query_embed = nn.Embedding(5, 4)
        self.pixel_decoder = nn.Module()
        self.pixel_decoder.encoder = nn.Linear(4, 4)
        self.class_embed = nn.Linear(4, 3)
        self.encoder_thermal = nn.Conv2d(1, 4, 3)


def _groups(model, mult=0.1):
    return {g["name"]: g for g in param_groups(model, lr=1e-3, weight_decay=0.05, backbone_lr_mult=mult)}


def test_groups_by_name_and_type():
    groups = _groups(TableModel())
    names = {k: set(g["param_names"]) for k, g in groups.items()}
    assert names["backbone"] == {"backbone.proj.weight", "encoder_thermal.weight"}
    assert names["backbone_no_decay"] == {"backbone.proj.bias", "backbone.norm.weight", "backbone.norm.bias",
                                          "backbone.relative_position_bias_table", "encoder_thermal.bias"}
    # a head module called "encoder" is not the backbone
    assert names["head"] == {"pixel_decoder.encoder.weight", "class_embed.weight"}
    assert names["head_no_decay"] == {"query_embed.weight", "pixel_decoder.encoder.bias", "class_embed.bias"}
    assert groups["backbone"]["lr"] == pytest.approx(1e-4) and groups["backbone_no_decay"]["lr"] == pytest.approx(1e-4)
    assert groups["head"]["lr"] == pytest.approx(1e-3)
    assert groups["backbone"]["weight_decay"] == 0.05 and groups["head"]["weight_decay"] == 0.05
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0 and groups["head_no_decay"]["weight_decay"] == 0.0


def test_every_parameter_in_exactly_one_group_with_mask_token_undecayed():
    model = build(3, with_loss=True)
    groups = _groups(model, mult=1.0)
    listed = [n for g in groups.values() for n in g["param_names"]]
    assert sorted(listed) == sorted(n for n, _ in model.named_parameters())
    assert "mask_token" in groups["head_no_decay"]["param_names"]
    assert "backbone.rgb.1.weight" in groups["backbone_no_decay"]["param_names"]  # BatchNorm weight
    assert "backbone.rgb.0.weight" in groups["backbone"]["param_names"]
    assert all(g["lr"] == pytest.approx(1e-3) for g in groups.values())


def test_poly_factor_values():
    assert poly_factor(0, 100) == 1.0
    assert poly_factor(50, 100) == pytest.approx(0.5 ** 0.9)
    assert poly_factor(99, 100) == pytest.approx(0.01 ** 0.9)
    assert poly_factor(100, 100) == 0.0
    assert poly_factor(50, 100, power=1.0) == pytest.approx(0.5)
    assert poly_factor(0, 100, warmup=10) == pytest.approx(0.1)
    assert poly_factor(4, 100, warmup=10) == pytest.approx(0.5 * 0.96 ** 0.9)
    assert poly_factor(10, 100, warmup=10) == pytest.approx(0.9 ** 0.9)


def test_set_lr_scales_each_group_from_its_base():
    opt = build_optimizer(TableModel(), lr=1e-3, weight_decay=0.05, backbone_lr_mult=0.1)
    factor = set_lr(opt, 25, 100)
    assert factor == pytest.approx(0.75 ** 0.9)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["head"] == pytest.approx(1e-3 * factor) and lrs["backbone"] == pytest.approx(1e-4 * factor)
    assert isinstance(opt, torch.optim.AdamW)


def test_official_no_decay_set_on_crm_matches_mask2formers_build_optimizer():
    """no_decay="official" (CRM_RGBTSeg models/Model_RGBT_Mask2Former.py build_optimizer): zero decay only for
    parameters of norm modules and nn.Embedding, and relative_position_bias_table / absolute_pos_embed; the
    backbone (lr x0.1) is every module path containing "backbone": both encoders, mask tokens, fusion BN."""
    model = build_crm(4, "tiny")
    groups = {g["name"]: set(g["param_names"]) for g in param_groups(model, 1e-4, 0.05, 0.1, no_decay="official")}
    modules = dict(model.named_modules())
    expected_exempt = {name for name, _ in model.named_parameters()
                       if isinstance(modules[name.rpartition(".")[0]], NORM_TYPES)
                       or name.endswith(("relative_position_bias_table", "absolute_pos_embed"))}
    assert groups["backbone_no_decay"] | groups["head_no_decay"] == expected_exempt
    decayed = groups["backbone"] | groups["head"]
    for name in ("backbone.rgb_mask_token", "backbone.thermal_mask_token", "head.pixel_decoder.level_embed",
                 "head.decoder.class_embed.bias"):
        assert name in decayed, name
    for name in ("head.decoder.query_feat.weight", "head.decoder.query_embed.weight",
                 "head.decoder.level_embed.weight", "backbone.fusion_norms.0.weight",
                 "backbone.rgb_encoder.layers.0.blocks.0.attn.relative_position_bias_table"):
        assert name in expected_exempt, name
    backbone = groups["backbone"] | groups["backbone_no_decay"]
    assert {"backbone.rgb_mask_token", "backbone.fusion_norms.0.weight"} <= backbone
    assert not any(n.startswith("head.") for n in backbone)
    broad = {g["name"]: set(g["param_names"]) for g in param_groups(model, 1e-4, 0.05, 0.1)}
    assert "backbone.rgb_mask_token" in broad["backbone_no_decay"]
    assert "head.pixel_decoder.level_embed" in broad["head_no_decay"]


def test_epoch_schedule_steps_once_per_epoch():
    """lr_step="epoch": the factor changes only at epoch boundaries and stays near 1 over 35000 iterations of
    56 per epoch (MFNet: 784 images, batch 14): (1 - 624/35000)^0.9 = 0.984 in the last epoch."""
    assert [schedule_step(i, 56, "epoch") for i in (0, 55, 56, 111, 112)] == [0, 0, 1, 1, 2]
    assert schedule_step(57, 56, "iteration") == 57
    assert poly_factor(schedule_step(34999, 56, "epoch"), 35000) == pytest.approx((1 - 624 / 35000) ** 0.9)
    assert poly_factor(schedule_step(34999, 56, "epoch"), 35000) > 0.98
