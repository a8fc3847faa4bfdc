"""CRM: Swin backbone, Swin ImageNet weight loading, the CRM model (masking, fusion, loss) and a tiny overfit."""
import math

import pytest
import torch

from rgbt_bench.errors import CheckpointError, ConfigError
from rgbt_bench.metrics import ConfusionMatrix, compute_metrics
from rgbt_bench.models import build_model
from rgbt_bench.models.crm import CRM, PRESETS, build_crm, self_distillation
from rgbt_bench.models.crm.loss import BRANCHES
from rgbt_bench.models.normalize import normalize_rgb, normalize_thermal
from rgbt_bench.models.pretrained import load_swin_pretrained
from rgbt_bench.models.swin import SWIN_PRESETS, DropPath, SwinTransformer, WindowAttention, shifted_window_mask

SWIN_T_BACKBONE_PARAMS = 27_520_698  # Swin-T backbone with its 4 output norms ("27.5M"), no classifier


def tiny_swin(in_chans=3, drop_path=0.0):
    return SwinTransformer(in_chans, 16, (2, 2, 2, 2), (1, 2, 4, 8), window_size=7, drop_path=drop_path)


# ---------------------------------------------------------------- Swin backbone
@pytest.mark.parametrize("h,w", [(64, 96), (60, 80), (37, 53)])
def test_swin_returns_four_maps_at_strides_4_to_32(h, w):
    enc = tiny_swin().eval()
    feats = enc(torch.randn(1, 3, h, w))
    expected_hw = [(math.ceil(h / 4), math.ceil(w / 4))]
    for _ in range(3):
        expected_hw.append(((expected_hw[-1][0] + 1) // 2, (expected_hw[-1][1] + 1) // 2))
    assert [tuple(f.shape) for f in feats] == [(1, 16 * 2 ** i, *expected_hw[i]) for i in range(4)]


def test_window_attention_is_attention_with_relative_bias():
    torch.manual_seed(0)
    attn = WindowAttention(8, 2, window=3)
    x = torch.randn(2, 9, 8)
    q, k, v = attn.qkv(x).view(2, 9, 3, 2, 4).permute(2, 0, 3, 1, 4)
    # bias between positions (r1, c1) and (r2, c2) lives at table row (r1-r2+2)*5 + (c1-c2+2)
    pos = [(r, c) for r in range(3) for c in range(3)]
    bias = torch.stack([torch.stack([attn.relative_position_bias_table[(a[0] - b[0] + 2) * 5 + (a[1] - b[1] + 2)]
                                     for b in pos]) for a in pos]).permute(2, 0, 1)
    weights = torch.softmax(q @ k.transpose(-2, -1) / 2.0 + bias, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 9, 8))
    assert torch.allclose(attn(x), expected, atol=1e-6)


def test_shifted_window_mask_keeps_attention_inside_regions():
    mask = shifted_window_mask(14, 14, 7, 3, torch.device("cpu"))
    assert mask.shape == (4, 49, 49)
    assert mask[0].eq(0).all()  # the top-left window holds one region
    # bottom-right window: regions of 4x4, 4x3, 3x4, 3x3 cells -> 16^2 + 12^2 + 12^2 + 9^2 allowed pairs
    assert int(mask[3].eq(0).sum()) == 625 and set(mask[3].unique().tolist()) == {-100.0, 0.0}


def test_swin_key_names_and_swin_t_size():
    names = tiny_swin().state_dict().keys()
    for key in ("patch_embed.proj.weight", "patch_embed.norm.weight", "layers.0.blocks.1.attn.qkv.weight",
                "layers.2.blocks.0.attn.relative_position_bias_table", "layers.0.downsample.reduction.weight",
                "layers.1.blocks.0.mlp.fc1.weight", "norm3.weight"):
        assert key in names
    assert "layers.3.downsample.reduction.weight" not in names
    with torch.device("meta"):
        rgb = SwinTransformer.from_config(SWIN_PRESETS["swin_t"], 3)
        thermal = SwinTransformer.from_config(SWIN_PRESETS["swin_t"], 1)
    assert sum(p.numel() for p in rgb.parameters()) == SWIN_T_BACKBONE_PARAMS
    assert sum(p.numel() for p in thermal.parameters()) == SWIN_T_BACKBONE_PARAMS - 2 * 96 * 4 * 4
    assert [b.drop_path.p for s in rgb.layers for b in s.blocks][-1] == pytest.approx(0.3)


def test_drop_path_is_per_sample_and_identity_in_eval():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(4000, 3)
    y = dp(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert y.mean().item() == pytest.approx(1.0, abs=0.06)
    assert torch.equal(y[:, 0], y[:, 1])
    assert torch.equal(dp.eval()(x), x)


# ---------------------------------------------------------------- pretrained weights
def official_checkpoint(encoder: SwinTransformer, path):
    """Write `encoder` as microsoft/Swin-Transformer does: {'model': ...} with a classifier head, a final
    norm, per-block buffers and no output norms."""
    state = {k: v.clone() for k, v in encoder.state_dict().items()
             if not k.startswith(("norm0", "norm1", "norm2", "norm3"))}
    state["norm.weight"], state["norm.bias"] = torch.ones(128), torch.zeros(128)
    state["head.weight"], state["head.bias"] = torch.randn(10, 128), torch.zeros(10)
    state["layers.0.blocks.1.attn_mask"] = torch.zeros(4, 49, 49)
    state["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    torch.save({"model": state, "epoch": 300}, path)


def test_pretrained_loads_rgb_and_channel_mean_thermal(tmp_path):
    torch.manual_seed(1)
    source = tiny_swin()
    official_checkpoint(source, tmp_path / "swin.pth")
    rgb, thermal = tiny_swin(), tiny_swin(in_chans=1)
    left = load_swin_pretrained(rgb, tmp_path / "swin.pth")
    load_swin_pretrained(thermal, tmp_path / "swin.pth")
    assert sorted(left) == sorted(f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias"))
    src = source.state_dict()
    assert torch.equal(rgb.layers[1].blocks[1].attn.qkv.weight, src["layers.1.blocks.1.attn.qkv.weight"])
    assert torch.equal(rgb.patch_embed.proj.weight, src["patch_embed.proj.weight"])
    expected = src["patch_embed.proj.weight"].mean(dim=1, keepdim=True)
    assert thermal.patch_embed.proj.weight.shape == (16, 1, 4, 4)
    assert torch.allclose(thermal.patch_embed.proj.weight, expected)
    assert torch.equal(thermal.layers[3].blocks[0].mlp.fc2.weight, src["layers.3.blocks.0.mlp.fc2.weight"])
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(rgb.eval()(x)[2], source.eval()(x)[2])


def test_pretrained_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pth does not exist"):
        load_swin_pretrained(tiny_swin(), tmp_path / "missing.pth")
    official_checkpoint(SwinTransformer(3, 24, (2, 2, 2, 2), (1, 2, 4, 8)), tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match=r"wide.pth do not fit.*differ in shape"):
        load_swin_pretrained(tiny_swin(), tmp_path / "wide.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth is not a readable"):
        load_swin_pretrained(tiny_swin(), tmp_path / "junk.pth")


# ---------------------------------------------------------------- CRM model
@pytest.fixture(scope="module")
def crm():
    torch.manual_seed(0)
    return build_crm(4, "tiny", seed=7)


def inputs(b=2, h=60, w=80, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, h, w, generator=g), torch.rand(b, 1, h, w, generator=g),
            torch.randint(0, classes, (b, h, w), generator=g))


def test_registry_builds_crm_and_output_shapes(crm):
    model = build_model("crm", 4, "tiny")
    assert isinstance(model, CRM) and model.backbone.fusion == "max"
    rgb, thermal, _ = inputs(h=60, w=80)
    crm.eval()
    with torch.no_grad():
        scores = crm(rgb, thermal)
        single = [crm.forward_single(rgb, "rgb"), crm.forward_single(thermal, "thermal")]
    assert scores.shape == (2, 4, 60, 80) and all(s.shape == (2, 4, 60, 80) for s in single)
    # semantic map = sum over queries of class prob x mask prob: each value lies in [0, Q]
    assert scores.min() >= 0 and scores.max() <= PRESETS["tiny"].head["num_queries"]
    assert len(crm.backbone.fusion_norms) == 4
    assert all(isinstance(n, torch.nn.BatchNorm2d) for n in crm.backbone.fusion_norms)


def test_options_are_validated():
    with pytest.raises(ConfigError, match="no preset 'swin_l'"):
        build_crm(4, "swin_l")
    with pytest.raises(ConfigError, match="unknown option.*mask_ration"):
        build_crm(4, "tiny", mask_ration=0.5)
    with pytest.raises(ConfigError, match="unknown mask strategy 'half'"):
        build_crm(4, "tiny", mask_strategy="half")
    with pytest.raises(ConfigError, match="fusion 'concat'"):
        build_crm(4, "tiny", fusion="concat")
    with pytest.raises(ConfigError, match="mask_patch"):
        build_crm(4, "tiny", mask_patch=30)
    with pytest.raises(ConfigError, match=r"rgb \[B,3,H,W\]"):
        build_crm(4, "tiny")(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="ignore_mode 'none'"):
        build_crm(4, "tiny", ignore_mode="none")


def test_ignore_mode_defaults_to_official_and_reaches_loss_and_matcher():
    assert build_crm(4, "tiny").ignore_mode == "official"
    criterion = build_crm(4, "tiny", ignore_mode="valid").objective.criterion
    assert (criterion.ignore_mode, criterion.matcher.ignore_mode) == ("valid", "valid")


def test_max_fusion_then_batchnorm_per_scale(crm):
    crm.eval()
    r = [torch.randn(2, c, 4, 5) for c in crm.backbone.channels]
    t = [torch.randn(2, c, 4, 5) for c in crm.backbone.channels]
    fused = crm.backbone.fuse(r, t)
    for i, (a, b) in enumerate(zip(r, t)):
        bn = crm.backbone.fusion_norms[i]
        channel = (slice(None), None, None)
        expected = ((torch.maximum(a, b) - bn.running_mean[channel]) / torch.sqrt(bn.running_var[channel] + bn.eps)
                    * bn.weight[channel] + bn.bias[channel])
        assert torch.allclose(fused[i], expected, atol=1e-5)
    add = build_crm(4, "tiny", fusion="add").eval()
    assert torch.allclose(add.backbone.fuse(r, t)[0], add.backbone.fusion_norms[0](r[0] + t[0]))


def test_masking_replaces_patch_embedded_features_by_the_token(crm):
    crm.train()
    rgb, thermal, _ = inputs(h=64, w=96)
    x_rgb, x_thermal = normalize_rgb(rgb), normalize_thermal(thermal)
    mask_rgb = torch.zeros(2, 1, 2, 3)
    mask_rgb[0, 0, 1, 2] = 1
    mask_rgb[1, 0, 0, :] = 1
    seen = {}
    hook = crm.backbone.rgb_encoder.layers[0].register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    try:
        crm.branch_outputs(x_rgb, x_thermal, (mask_rgb, 1 - mask_rgb))
    finally:
        hook.remove()
    tokens = seen["x"].detach().view(4, 16, 24, -1)  # [2B, H/4, W/4, C]: clean half then masked half
    clean, masked = tokens[:2], tokens[2:]
    cell = mask_rgb.repeat_interleave(8, 2).repeat_interleave(8, 3)[:, 0].bool()  # 32-px patch = 8x8 cells
    token = crm.backbone.rgb_mask_token.detach().view(-1)
    assert torch.allclose(masked[cell], token.expand(int(cell.sum()), -1))
    assert torch.equal(masked[~cell], clean[~cell])
    assert not torch.allclose(clean[cell], token.expand(int(cell.sum()), -1))
    assert int(cell.sum()) == 4 * 64


def test_forward_never_masks_and_eval_loss_is_clean(crm):
    rgb, thermal, label = inputs()
    crm.eval()
    with torch.no_grad():
        before = crm(rgb, thermal)
        crm.backbone.rgb_mask_token.add_(5.0)
        after = crm(rgb, thermal)
        crm.backbone.rgb_mask_token.sub_(5.0)
    assert torch.equal(before, after)
    state = crm.mask_generator.get_state()
    with torch.no_grad():
        terms = crm.loss(rgb, thermal, label, 255)
    assert set(terms) == {"loss", "seg_fused"} and torch.equal(terms["loss"], terms["seg_fused"])
    crm.mask_generator.set_state(state)  # the loss's point sampling replays from the same generator state
    with torch.no_grad():
        assert torch.equal(crm.loss(rgb, thermal, label, 255)["loss"], terms["loss"])
    assert torch.isfinite(terms["loss"]) and terms["loss"] > 0


def test_loss_terms_weights_and_seeded_masks():
    rgb, thermal, label = inputs()
    terms = {}
    for name, kw in (("a", {}), ("b", {}), ("w", dict(w_mws=0.5, w_sdc=2.0, w_sdn=0.0))):
        torch.manual_seed(0)
        model = build_crm(4, "tiny", seed=3, **kw).train()
        terms[name] = {k: v.detach() for k, v in model.loss(rgb, thermal, label, 255).items()}
    a, b, w = terms["a"], terms["b"], terms["w"]
    assert set(a) == {"loss", "seg_fused", "seg_rgb", "seg_thermal", "seg_masked", "sdc", "sdn"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in a.values())
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seeds -> same masks, points and numbers
    assert a["sdc"] > 0 and a["sdn"] > 0
    total = a["seg_fused"] + a["seg_rgb"] + a["seg_thermal"] + a["seg_masked"] + a["sdc"] + a["sdn"]
    assert torch.allclose(a["loss"], total, rtol=1e-6)
    weighted = (w["seg_fused"] + 0.5 * (w["seg_rgb"] + w["seg_thermal"]) + w["seg_masked"] + 2.0 * w["sdc"])
    assert torch.allclose(w["loss"], weighted, rtol=1e-6)
    assert torch.equal(w["sdc"], a["sdc"])


def test_without_masking_the_loss_is_the_clean_terms_of_the_same_network():
    """crm_nomask: the clean paths' terms only, each equal to CRM's own clean term on the same weights and
    point draws; the mask tokens get no gradient."""
    rgb, thermal, label = inputs()
    torch.manual_seed(0)
    crm = build_crm(4, "tiny", seed=3).train()
    torch.manual_seed(0)
    nomask = build_model("crm_nomask", 4, "tiny", seed=3).train()
    assert all(torch.equal(a, b) for a, b in zip(crm.state_dict().values(), nomask.state_dict().values()))
    x_rgb, x_thermal = crm._prepare(rgb, thermal)
    masks = crm.draw_masks(2, tuple(x_rgb.shape[-2:]), rgb.device, torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, clean = crm.branch_outputs(x_rgb, x_thermal, masks), nomask.clean_outputs(x_rgb, x_thermal)
    assert list(clean) == ["fused", "rgb", "thermal"]
    for branch in clean:  # the clean half of CRM's 2B encoder batch is the same computation
        assert torch.allclose(full[branch]["pred_logits"], clean[branch]["pred_logits"], atol=1e-5)
    terms = nomask.loss(rgb, thermal, label, 255)
    assert set(terms) == {"loss", "seg_fused", "seg_rgb", "seg_thermal"}
    assert torch.allclose(terms["loss"], terms["seg_fused"] + terms["seg_rgb"] + terms["seg_thermal"], rtol=1e-6)
    terms["loss"].backward()
    assert nomask.backbone.rgb_mask_token.grad is None and nomask.backbone.thermal_mask_token.grad is None
    assert nomask.head.parameters().__next__().grad is not None


def test_self_distillation_blocks_the_teacher_gradient(crm):
    crm.train()
    rgb, thermal, label = inputs(h=64, w=64)
    masks = crm.draw_masks(2, (64, 64), rgb.device)
    outs = crm.branch_outputs(normalize_rgb(rgb), normalize_thermal(thermal), masks)
    assert set(outs) == set(BRANCHES)
    teacher = outs["fused"]["pred_logits"]
    sdc = self_distillation(teacher, outs["masked_fused"]["pred_logits"])
    sdn = self_distillation(teacher, outs["masked_rgb"]["pred_logits"], outs["masked_thermal"]["pred_logits"])
    assert sdc.item() == pytest.approx((teacher - outs["masked_fused"]["pred_logits"]).abs().mean().item())
    students = [outs[k]["pred_logits"] for k in ("masked_fused", "masked_rgb", "masked_thermal")]
    grads = torch.autograd.grad(sdc + sdn, [teacher, *students], retain_graph=True, allow_unused=True)
    assert grads[0] is None  # no path from the distillation terms back into the clean fused branch
    assert all(g is not None and g.abs().sum() > 0 for g in grads[1:])
    # the clean fused output does get gradient from its own segmentation loss
    seg = crm.objective.criterion(outs["fused"], label, 255)["loss"]
    assert torch.autograd.grad(seg, teacher)[0].abs().sum() > 0


@pytest.mark.parametrize("preset,backbone", [("swin_t", 27_520_698), ("swin_s", 48_838_602), ("swin_b", 86_745_016)])
def test_paper_presets_sizes_on_meta_device(preset, backbone):
    with torch.device("meta"):
        model = build_crm(9, preset)

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(model.backbone.rgb_encoder) == backbone
    p = PRESETS[preset]
    enc = model.backbone.rgb_encoder
    assert model.backbone.thermal_encoder.patch_embed.proj.in_channels == 1
    assert enc.layers[2].blocks[0].attn.window == 7 and len(enc.layers[2].blocks) == p.swin.depths[2]
    assert model.objective.criterion.num_points == 12544
    assert p.head["num_queries"] == 100 and p.head["dec_layers"] == 9 and p.head["enc_layers"] == 6
    assert model.backbone.rgb_mask_token.shape == (1, p.swin.embed_dim, 1, 1)
    # the trainer's backbone LR factor finds the encoders, mask tokens and fusion norms by name
    assert all(name.startswith(("backbone.", "head.")) for name, _ in model.named_parameters())


def test_crm_pretrained_option_initialises_both_encoders(tmp_path):
    torch.manual_seed(2)
    source = SwinTransformer.from_config(PRESETS["tiny"].swin, 3)
    official_checkpoint_for(source, tmp_path / "tiny.pth")
    model = build_crm(4, "tiny", pretrained=str(tmp_path / "tiny.pth"))
    w = source.patch_embed.proj.weight
    assert torch.equal(model.backbone.rgb_encoder.patch_embed.proj.weight, w)
    assert torch.allclose(model.backbone.thermal_encoder.patch_embed.proj.weight, w.mean(1, keepdim=True))
    assert torch.equal(model.backbone.thermal_encoder.layers[0].blocks[0].attn.qkv.weight,
                       source.layers[0].blocks[0].attn.qkv.weight)


def official_checkpoint_for(encoder, path):
    state = {k: v.clone() for k, v in encoder.state_dict().items()
             if not k.startswith(("norm0", "norm1", "norm2", "norm3"))}
    state["head.weight"] = torch.zeros(10, encoder.num_features[-1])
    torch.save({"model": state}, path)


def easy_scenes(n, h=64, w=96, seed=0):
    """Dark scenes with a red square (class 1, RGB only) on the left and a hot disc (class 2, thermal only)
    on the right, at random positions."""
    g = torch.Generator().manual_seed(seed)
    rgb, thermal = torch.full((n, 3, h, w), 0.3), torch.full((n, 1, h, w), 0.2)
    label = torch.zeros(n, h, w, dtype=torch.long)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for i in range(n):
        top, left = int(torch.randint(0, h - 24, (), generator=g)), int(torch.randint(0, w // 2 - 24, (), generator=g))
        rgb[i, :, top:top + 24, left:left + 24] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
        label[i, top:top + 24, left:left + 24] = 1
        cy = int(torch.randint(14, h - 14, (), generator=g))
        cx = int(torch.randint(w // 2 + 14, w - 14, (), generator=g))
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 144
        thermal[i, 0][disc] = 0.95
        label[i][disc] = 2
    return rgb, thermal, label


def miou(model, rgb, thermal, label):
    model.eval()
    with torch.no_grad():
        pred = model(rgb, thermal).argmax(1)
    cm = ConfusionMatrix(3, 255)
    cm.update(pred, label)
    return compute_metrics(cm.matrix, "field").miou


def test_tiny_crm_overfits_easy_scenes():
    rgb, thermal, label = easy_scenes(4)
    torch.manual_seed(0)
    model = build_crm(3, "tiny", seed=0)
    start = miou(model, rgb, thermal, label)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    for _ in range(20):
        model.train()
        loss = model.loss(rgb, thermal, label, 255)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert start < 0.5
    assert miou(model, rgb, thermal, label) > 0.9
