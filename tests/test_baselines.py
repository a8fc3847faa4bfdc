"""Baseline models: published sizes, torchvision key layout, normalisation, CRM-style training, overfit.
The contract every registered model meets (shapes, loss, checkpoints) is tests/test_model_contract.py."""
import pytest
import torch
import torch.nn.functional as F

from rgbt_bench.errors import CheckpointError, ConfigError
from rgbt_bench.models.crm_style import self_distillation
from rgbt_bench.models.normalize import crop_to, normalize_rgb, normalize_thermal, pad_to_multiple
from rgbt_bench.models.registry import build_model
from rgbt_bench.models.resnet import build_resnet, load_pretrained
from rgbt_bench.models.rtfnet import build_rtfnet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, preset: str, num_classes: int = 9) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(name, num_classes, preset)


def toy_scene(seed: int, n: int = 2, size=(32, 48), num_classes: int = 3):
    """Blocky class maps; RGB and thermal each encode the class (so every baseline can learn it)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    label = torch.randint(0, num_classes, (n, h // 8, w // 8), generator=g)
    label = label.repeat_interleave(8, 1).repeat_interleave(8, 2)
    colours = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.2, 0.3, 0.9]])[:num_classes]
    rgb = colours[label].permute(0, 3, 1, 2) + 0.05 * torch.randn(n, 3, h, w, generator=g)
    thermal = (0.2 + 0.3 * label.float()).unsqueeze(1) + 0.05 * torch.randn(n, 1, h, w, generator=g)
    return rgb.clamp(0, 1), thermal.clamp(0, 1), label


def test_published_resnet_encoder_sizes_match_torchvision():
    # torchvision ImageNet ResNets minus the 1000-way fc layer
    expected = {"resnet18": 11_176_512, "resnet34": 21_284_672, "resnet50": 23_508_032, "resnet152": 58_143_808}
    for arch, count in expected.items():
        with torch.device("meta"):
            enc = build_resnet(arch)
        assert n_params(enc) == count, arch
    with torch.device("meta"):
        thermal = build_resnet("resnet50", in_channels=1)
    assert n_params(thermal) == expected["resnet50"] - 64 * 2 * 7 * 7


def test_published_model_sizes():
    # Sizes reported for the 9-class MFNet benchmark: RTFNet-50 185.24M, RTFNet-152 254.51M, MFNet "0.73M"
    assert round(n_params(meta_model("rtfnet", "rtfnet50")) / 1e6, 2) == 185.24
    assert round(n_params(meta_model("rtfnet", "rtfnet152")) / 1e6, 2) == 254.51
    assert 730_000 <= n_params(meta_model("mfnet", "mfnet")) < 740_000
    # early fusion = RTFNet-50 minus the thermal encoder, with a 4-channel conv1
    rtf50 = n_params(meta_model("rtfnet", "rtfnet50"))
    thermal_encoder = 23_508_032 - 64 * 2 * 7 * 7
    assert n_params(meta_model("early_fusion", "resnet50")) == rtf50 - thermal_encoder + 64 * 49
    assert n_params(meta_model("rgb_only", "resnet50")) == rtf50 - thermal_encoder


def torchvision_resnet_keys(blocks, bottleneck: bool) -> set[str]:
    """The state-dict keys torchvision.models.resnetXX() has, written out from its documented layout."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = {"conv1.weight", "fc.weight", "fc.bias"} | {f"bn1.{k}" for k in bn}
    convs = 3 if bottleneck else 2
    for stage, count in enumerate(blocks, 1):
        for b in range(count):
            p = f"layer{stage}.{b}."
            for c in range(1, convs + 1):
                keys |= {p + f"conv{c}.weight"} | {p + f"bn{c}.{k}" for k in bn}
            if b == 0 and (bottleneck or stage > 1):
                keys |= {p + "downsample.0.weight"} | {p + f"downsample.1.{k}" for k in bn}
    return keys


def test_resnet_keys_and_shapes_are_torchvision_compatible():
    with torch.device("meta"):
        r50, r18 = build_resnet("resnet50"), build_resnet("resnet18")
    assert set(r50.state_dict()) == torchvision_resnet_keys((3, 4, 6, 3), True) - {"fc.weight", "fc.bias"}
    assert set(r18.state_dict()) == torchvision_resnet_keys((2, 2, 2, 2), False) - {"fc.weight", "fc.bias"}
    sd = r50.state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert sd["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # stride on the 3x3 conv (v1.5)
    assert sd["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1)


def fake_torchvision_file(path, arch="resnet18", width=64, layers=None):
    """A state dict with torchvision's keys (incl. fc) and random values, saved like torchvision's .pth."""
    g = torch.Generator().manual_seed(3)
    ref = build_resnet(arch, 3, width, layers).state_dict()
    sd = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone() for k, v in ref.items()}
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 8 * width), torch.randn(1000)
    torch.save(sd, path)
    return sd


@pytest.mark.parametrize("in_channels", [1, 3, 4])
def test_load_pretrained_adapts_conv1(tmp_path, in_channels):
    sd = fake_torchvision_file(tmp_path / "resnet18.pth")
    enc = build_resnet("resnet18", in_channels=in_channels)
    load_pretrained(enc, tmp_path / "resnet18.pth")
    w = enc.conv1.weight.detach()
    mean = sd["conv1.weight"].mean(1, keepdim=True)
    expected = {1: mean, 3: sd["conv1.weight"], 4: torch.cat([sd["conv1.weight"], mean], 1)}[in_channels]
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(enc.layer3[1].bn2.running_var, sd["layer3.1.bn2.running_var"])


def test_model_pretrained_kwarg_loads_both_encoders(tmp_path):
    sd = fake_torchvision_file(tmp_path / "tiny.pth", width=16, layers=(1, 1, 1, 1))
    model = build_model("rtfnet", 9, "tiny", pretrained=str(tmp_path / "tiny.pth"))
    torch.testing.assert_close(model.encoder_rgb.conv1.weight.detach(), sd["conv1.weight"])
    torch.testing.assert_close(model.encoder_thermal.conv1.weight.detach(), sd["conv1.weight"].mean(1, keepdim=True))
    torch.testing.assert_close(model.encoder_thermal.layer4[0].conv2.weight.detach(), sd["layer4.0.conv2.weight"])
    ef = build_model("early_fusion", 9, "tiny", pretrained=str(tmp_path / "tiny.pth"))
    assert ef.encoder.conv1.weight.shape == (16, 4, 7, 7)


def test_pretrained_mismatch_and_missing_file_are_clear(tmp_path):
    fake_torchvision_file(tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match="do not fit this ResNet encoder"):
        build_rtfnet(9, "tiny", pretrained=tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        build_rtfnet(9, "tiny", pretrained=tmp_path / "nope.pth")


def test_normalisation_uses_domain_statistics():
    rgb_mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1) / 255
    rgb_std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1) / 255
    rgb = rgb_mean.expand(1, 3, 4, 5)
    torch.testing.assert_close(normalize_rgb(rgb), torch.zeros(1, 3, 4, 5))
    torch.testing.assert_close(normalize_rgb(rgb + rgb_std), torch.ones(1, 3, 4, 5))
    torch.testing.assert_close(normalize_thermal(torch.full((1, 1, 2, 2), 187 / 255)), torch.ones(1, 1, 2, 2))
    torch.testing.assert_close(normalize_thermal(torch.zeros(1, 1, 1, 1)), torch.full((1, 1, 1, 1), -127 / 60))


def test_pad_and_crop_round_trip():
    x = torch.randn(2, 4, 50, 70)
    padded = pad_to_multiple(x, 32)
    assert padded.shape == (2, 4, 64, 96)
    assert padded[..., 50:, :].abs().sum() == 0 and padded[..., 70:].abs().sum() == 0
    torch.testing.assert_close(crop_to(padded, (50, 70)), x)


def test_single_modality_models_ignore_the_other_modality():
    torch.manual_seed(0)
    rgb, thermal = torch.rand(1, 3, 32, 40), torch.rand(1, 1, 32, 40)
    for name, own, other in (("rgb_only", rgb, "thermal"), ("thermal_only", thermal, "rgb")):
        model = build_model(name, 4, "tiny").eval()
        with torch.no_grad():
            a = model(rgb, thermal)
            b = model(rgb * 0.5, thermal) if name == "thermal_only" else model(rgb, thermal * 0.5)
            single = model.forward_single(own, name.split("_")[0])
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, single)
        with pytest.raises(ConfigError, match="cannot run on"):
            model.forward_single(own, other)
    assert not hasattr(build_model("early_fusion", 4, "tiny"), "forward_single")


def test_builder_option_errors():
    with pytest.raises(ConfigError, match="needs two streams"):
        build_model("early_fusion", 9, "tiny", crm_training=True)
    with pytest.raises(ConfigError, match="unknown option.*crm_trainig"):
        build_model("rtfnet", 9, "tiny", crm_trainig=True)
    with pytest.raises(ConfigError, match="mask_ratio"):
        build_model("mfnet", 9, "tiny", crm_training=True, mask_ratio=1.5)
    with pytest.raises(ConfigError, match="mask_patch must be a positive multiple of 2"):
        build_model("mfnet", 9, "tiny", crm_training=True, mask_patch=15)
    with pytest.raises(ConfigError, match="unknown mask_strategy 'random'"):
        build_model("rtfnet", 9, "tiny", crm_training=True, mask_strategy="random")
    with pytest.raises(ConfigError, match="no preset 'swin_t'"):
        build_model("rtfnet", 9, "swin_t")


@pytest.mark.parametrize("name", ["rtfnet", "mfnet"])
def test_crm_training_loss_terms(name):
    torch.manual_seed(0)
    model = build_model(name, 3, "tiny", crm_training=True, w_mws=0.5, w_sdc=2.0, w_sdn=0.25)
    rgb, thermal, label = toy_scene(1, size=(96, 128))  # a 3x4 mask grid: seeds 7 and 8 give other masks
    label[:, :4] = 255
    out = model.loss(rgb, thermal, label, 255, generator=torch.Generator().manual_seed(7))
    assert set(out) == {"loss", "ce_fused", "ce_rgb", "ce_thermal", "ce_masked", "sdc", "sdn"}
    expected = (out["ce_fused"] + 0.5 * (out["ce_rgb"] + out["ce_thermal"]) + out["ce_masked"]
                + 2.0 * out["sdc"] + 0.25 * out["sdn"])
    torch.testing.assert_close(out["loss"].detach(), expected)
    assert all(v.item() > 0 for v in out.values())
    out["loss"].backward()
    assert model.mask_token_rgb.grad.abs().sum() > 0 and model.mask_token_thermal.grad.abs().sum() > 0
    again = model.loss(rgb, thermal, label, 255, generator=torch.Generator().manual_seed(7))
    other = model.loss(rgb, thermal, label, 255, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(again["ce_masked"], out["ce_masked"])
    assert not torch.isclose(other["ce_masked"], out["ce_masked"])


def test_self_distillation_teacher_gets_no_gradient():
    teacher = torch.randn(2, 3, 4, 5, requires_grad=True)
    students = [torch.randn(2, 3, 4, 5, requires_grad=True) for _ in range(2)]
    loss = self_distillation(teacher, *students)
    expected = sum((s - teacher).abs().mean() for s in students)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert teacher.grad is None
    for s in students:
        torch.testing.assert_close(s.grad, torch.sign(s - teacher).detach() / s.numel())


def test_masks_only_in_training_loss():
    torch.manual_seed(0)
    model = build_model("rtfnet", 3, "tiny", crm_training=True)
    rgb, thermal, label = toy_scene(2)
    model.train()
    torch.manual_seed(1)
    a = model(rgb, thermal)
    torch.manual_seed(2)
    b = model(rgb, thermal)
    torch.testing.assert_close(a, b)  # forward never draws masks, even in training mode
    model.eval()
    with torch.no_grad():
        out = model.loss(rgb, thermal, label, None)
        ce = F.cross_entropy(model(rgb, thermal), label)
    assert set(out) == {"loss", "ce_fused"}
    torch.testing.assert_close(out["loss"], ce)


@pytest.mark.parametrize("name", ["rtfnet", "mfnet"])
def test_single_modality_path_masks_the_other_branch_entirely(name):
    torch.manual_seed(0)
    model = build_model(name, 3, "tiny", crm_training=True).eval()
    rgb, thermal, _ = toy_scene(3, n=1)
    with torch.no_grad():
        rgb_only = model.forward_single(rgb, "rgb")
        thermal_only = model.forward_single(thermal, "thermal")
        full = torch.ones(1, 1, *model.mask_grid_size(*rgb.shape[-2:]))
        torch.testing.assert_close(rgb_only, model._run(rgb, torch.rand_like(thermal), None, full))
        torch.testing.assert_close(thermal_only, model._run(torch.rand_like(rgb), thermal, full, None))
        fused = model(rgb, thermal)
    assert not torch.allclose(rgb_only, fused) and not torch.allclose(thermal_only, fused)


@pytest.mark.parametrize("name,kwargs,steps", [("rtfnet", {}, 60), ("mfnet", {}, 60), ("early_fusion", {}, 60),
                                               ("rgb_only", {}, 60), ("thermal_only", {}, 60),
                                               ("rtfnet", {"crm_training": True}, 100)])
def test_tiny_baseline_overfits_a_few_images(name, kwargs, steps):
    """Cross-entropy falls to a fifth and the pixels are learnt. Read in training mode: at 32x48 the
    stride-32 maps are 1x2, too few values for BatchNorm running statistics to match batch statistics."""
    torch.manual_seed(0)
    rgb, thermal, label = toy_scene(4)
    model = build_model(name, 3, "tiny", **kwargs).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        start = F.cross_entropy(model(rgb, thermal), label).item()
    for _ in range(steps):
        loss = model.loss(rgb, thermal, label, None, generator=gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(rgb, thermal)
    end = F.cross_entropy(logits, label).item()
    acc = (logits.argmax(1) == label).float().mean().item()
    assert end < 0.2 * start and acc > 0.85, f"{name} {kwargs}: CE {start:.3f} -> {end:.3f}, accuracy {acc:.3f}"


def test_mask_cells_cover_one_patch_of_stem_features_at_any_size():
    torch.manual_seed(0)
    model = build_model("mfnet", 3, "tiny", crm_training=True)
    gh, gw = model.mask_grid_size(100, 150)  # padded to 112x160 -> 4x5 cells of 32 px
    assert (gh, gw) == (4, 5)
    grid = torch.zeros(1, 1, gh, gw)
    grid[0, 0, 3, 0] = 1  # the short last row: 112 - 96 = 16 px = 8 stem cells
    x = torch.randn(1, 8, 56, 80)
    out = model.mask_stem(x, grid, "rgb")
    changed = (out != x).any(1)[0]
    assert changed[48:, :16].all() and changed.sum() == 8 * 16
    torch.testing.assert_close(out[0, :, 50, 3], model.mask_token_rgb.detach().view(-1))


@pytest.mark.parametrize("name", ["rtfnet", "mfnet"])
def test_crm_loss_at_an_odd_resolution(name):
    torch.manual_seed(0)
    model = build_model(name, 3, "tiny", crm_training=True, mask_strategy="indiv", mask_patch=16)
    rgb, thermal, label = toy_scene(5, size=(48, 72))
    out = model.loss(rgb[..., :47, :70], thermal[..., :47, :70], label[:, :47, :70], None,
                     generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and out["ce_masked"] > 0 and out["sdn"] > 0


RESNET_FAMILY = ["rtfnet", "rtfnet_crm", "early_fusion", "rgb_only", "thermal_only"]


@pytest.mark.parametrize("name", RESNET_FAMILY)
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_output_stride_sets_the_bottleneck_grid_and_keeps_the_decoder(name, output_stride):
    """At output_stride s the deepest map is the (stretched) input / s, the decoder keeps five stages of which
    log2(s) upsample, and the logits come back at the input size."""
    torch.manual_seed(0)
    model = build_model(name, 7, "tiny", output_stride=output_stride).eval()
    encoder = model.encoder_rgb if hasattr(model, "encoder_rgb") else model.encoder
    seen = {}
    encoder.layer4.register_forward_hook(lambda m, i, out: seen.update(bottleneck=tuple(out.shape[-2:])))
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 120, 160), torch.rand(2, 1, 120, 160))
    assert tuple(logits.shape) == (2, 7, 120, 160)
    assert seen["bottleneck"] == (128 // output_stride, 160 // output_stride)  # 120 stretched to 128
    upsampling = [isinstance(getattr(model.decoder, f"deconv{i}")[-1].conv3, torch.nn.ConvTranspose2d)
                  for i in range(1, 6)]
    assert sum(upsampling) == {8: 3, 16: 4, 32: 5}[output_stride] and upsampling[-1]


def test_default_output_stride_is_the_published_network():
    """output_stride=32 builds the same modules and weights as before the option existed (the published
    layout that the official-forward tests check)."""
    torch.manual_seed(0)
    default = build_rtfnet(9, "tiny")
    torch.manual_seed(0)
    explicit = build_rtfnet(9, "tiny", output_stride=32)
    assert isinstance(default.encoder_rgb.maxpool, torch.nn.MaxPool2d) and default.encoder_rgb.conv1.stride == (2, 2)
    assert all(getattr(default.decoder, f"deconv{i}")[0].upsample is None for i in range(1, 6))
    assert default.state_dict().keys() == explicit.state_dict().keys()
    for key, value in default.state_dict().items():
        torch.testing.assert_close(explicit.state_dict()[key], value)


def test_crm_masks_cover_32_pixels_at_output_stride_8():
    """At output_stride 8 the stem keeps full resolution, so a 32-px mask patch is 32 stem cells (16 at 32)."""
    model = build_rtfnet(3, "tiny", output_stride=8, crm_training=True)
    assert model.stem_stride == 1
    grid = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    x = torch.randn(1, 16, 64, 64)
    changed = (model.mask_stem(x, grid, "rgb") != x).any(1)[0]
    assert changed[:32, :32].all() and changed.sum() == 32 * 32


def test_output_stride_8_trains_and_round_trips_through_a_checkpoint(tmp_path):
    """The option is a model kwarg: it trains (CRM-style included) and a checkpoint rebuilds the same network."""
    from rgbt_bench.checkpoint import save_checkpoint
    from rgbt_bench.models.loading import model_from_checkpoint

    torch.manual_seed(0)
    model = build_model("rtfnet_crm", 3, "tiny", output_stride=8).train()
    rgb, thermal, label = toy_scene(6)
    loss = model.loss(rgb, thermal, label, None, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.encoder_rgb.conv1.weight.grad.abs().sum() > 0
    save_checkpoint(tmp_path / "m.pt", {"model": "rtfnet_crm", "preset": "tiny", "num_classes": 3,
                                        "class_names": ["a", "b", "c"], "dataset": "synthetic", "metrics": {},
                                        "config": {"model_kwargs": {"output_stride": 8}},
                                        "state_dict": model.state_dict()})
    loaded, _ = model_from_checkpoint(tmp_path / "m.pt")
    assert loaded.encoder_thermal.stem_stride == 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(rgb, thermal), model.eval()(rgb, thermal))
