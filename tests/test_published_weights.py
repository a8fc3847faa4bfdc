"""Importing published weights: files in each official layout (tests/official_layouts.py, written from the
authors' code) with random weights are imported and the imported models compute what the official networks
compute with those weights (tests/official_forward.py); full-size key lists match the published tensor and
parameter counts; bad files are one clear line; pickled code never runs."""
from __future__ import annotations

import json
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import official_layouts as L
import pytest
import torch
from official_forward import mfnet_forward, rtfnet_forward

from rgbt_bench.checkpoint import file_sha256, load_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.errors import CheckpointError, ConfigError
from rgbt_bench.models.crm import build_crm
from rgbt_bench.models.loading import load_model
from rgbt_bench.models.normalize import INPUT_CONVENTIONS, normalize_input
from rgbt_bench.models.pretrained import read_swin_weights
from rgbt_bench.models.published.importer import identify, import_weights, importer_for
from rgbt_bench.models.registry import MODELS, build_model
from rgbt_bench.models.rtfnet import RTFNet


def save(state, path: Path) -> Path:
    torch.save(state, path)
    return path


def inputs(b=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 1, h, w, generator=g)


def meta_model(name: str, preset: str, n: int = 9):
    with torch.device("meta"):
        return build_model(name, n, preset)


def fits(model, state) -> None:
    """`state` (our names) covers `model`'s state dict exactly, shape for shape."""
    own = model.state_dict()
    assert sorted(state) == sorted(own)
    assert all(tuple(state[k].shape) == tuple(own[k].shape) for k in own)


# ----------------------------------------------------------------------------------------------- full sizes
@pytest.mark.parametrize("size, tensors, params", [("swin_t", 668, 74_924_094), ("swin_s", 980, 117_559_902),
                                                   ("swin_b", 980, 193_495_610)])
def test_crm_official_key_list_has_the_published_size_and_maps_onto_our_crm(size, tensors, params):
    shapes = L.crm_shapes(9, size)
    core = [k for k in shapes if not k.endswith("relative_position_index") and "criterion" not in k]
    assert (len(core), L.parameter_count(shapes)) == (tensors, params)
    state = L.thin_state(shapes)
    state.update({k: L.official_relative_position_index(7) for k in shapes if k.endswith("relative_position_index")})
    found = identify({"state_dict": state})
    assert (found.model, found.preset, found.num_classes, found.layout) == ("crm", size, 9, "crm-lightning")
    model = meta_model("crm", size)
    fits(model, importer_for("crm").to_model(found, model))
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("preset, depth, tensors, params", [("rtfnet50", 50, 846, 185_238_501),
                                                            ("rtfnet152", 152, 2070, 254_510_053)])
def test_rtfnet_release_key_lists_have_the_published_sizes_and_map_onto_our_rtfnet(preset, depth, tensors, params):
    shapes = L.rtfnet_shapes(9, depth)
    assert (len(shapes), L.parameter_count(shapes)) == (tensors, params)
    found = identify(L.thin_state(shapes))
    assert (found.model, found.preset, found.num_classes, found.convention) == ("rtfnet", preset, 9, "unit")
    assert found.description == f"an RTFNet-{depth} state dict ({tensors} tensors)"
    model = meta_model("rtfnet", preset)
    fits(model, importer_for("rtfnet").to_model(found, model))
    assert sum(p.numel() for p in model.parameters()) == params


def test_mfnet_release_key_list_has_the_published_size():
    shapes = L.mfnet_shapes(9)
    assert (len(shapes), L.parameter_count(shapes)) == (228, 736_275)
    found = identify(L.thin_state(shapes))
    assert (found.model, found.preset, found.num_classes, found.convention) == ("mfnet", "mfnet", 9, "unit")


# ----------------------------------------------------------------------------------------------- MFNet
@pytest.mark.parametrize("preset, widths", [("mfnet", (L.MFNET_RGB, L.MFNET_INF)),
                                            ("tiny", ((8, 24, 24, 48, 48), (8, 8, 8, 18, 18)))])
def test_imported_mfnet_equals_the_released_network(tmp_path, preset, widths):
    official = L.random_state(L.mfnet_shapes(9, *widths), seed=3)
    src = save(official, tmp_path / "final.pth")
    done = import_weights("mfnet", src, preset, 9, tmp_path / "mfnet.pt")
    model, ckpt = load_model("mfnet", 9, preset, checkpoint=done.out)
    rgb, thermal = inputs()
    with torch.no_grad():
        ours = model.eval()(rgb, thermal)
        reference = mfnet_forward(official, torch.cat([rgb, thermal], 1))
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
    assert torch.equal(ours.argmax(1), reference.argmax(1))
    assert (model.input_convention, ckpt["input_convention"], ckpt["config"]["model_kwargs"]) == \
        ("unit", "unit", {"input_convention": "unit"})
    assert ckpt["source"]["layout"] == "mfnet-pytorch" and len(ckpt["source"]["sha256"]) == 64


def test_mfnet_is_the_released_design():
    from rgbt_bench.models.mfnet import build_mfnet
    model = build_mfnet(9, "mfnet")
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    assert sum(p.numel() for p in model.parameters()) == 736_275


# ----------------------------------------------------------------------------------------------- RTFNet
def test_imported_rtfnet_equals_the_released_network_bottleneck_layout():
    """RTFNet-50/152's Bottleneck layout at a reduced width and one block per stage (same code paths)."""
    official = L.random_state(L.rtfnet_shapes(5, 50, width=8, layers=(1, 1, 1, 1)), seed=4)
    found = identify(official)
    assert (found.model, found.preset, found.num_classes) == ("rtfnet", None, 5)
    model = RTFNet(5, "resnet50", 8, (1, 1, 1, 1), input_convention="unit").eval()
    model.load_state_dict(importer_for("rtfnet").to_model(found, model), strict=True)
    rgb, thermal = inputs(h=64, w=96)
    with torch.no_grad():
        torch.testing.assert_close(model(rgb, thermal), rtfnet_forward(official, torch.cat([rgb, thermal], 1)),
                                   rtol=1e-4, atol=1e-5)


def test_imported_rtfnet_tiny_preset_equals_the_official_forward(tmp_path):
    """The tiny preset (BasicBlock, width 16, one block per stage) end to end through the importer."""
    official = L.random_state(L.rtfnet_shapes(9, 18, width=16, layers=(1, 1, 1, 1)), seed=5)
    done = import_weights("rtfnet", save(official, tmp_path / "final.pth"), "tiny", 9, tmp_path / "r.pt")
    model, _ = load_model("rtfnet", 9, "tiny", checkpoint=done.out)
    rgb, thermal = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(rgb, thermal), rtfnet_forward(official, torch.cat([rgb, thermal], 1)),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_builtin_model_states_its_input_convention(name):
    assert meta_model(name, "tiny").input_convention in INPUT_CONVENTIONS


def test_unit_convention_feeds_the_images_as_they_are():
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(normalize_input(x, "rgb", "unit"), x)
    assert not torch.equal(normalize_input(x, "rgb", "imagenet"), x)
    with pytest.raises(ConfigError, match="unknown input_convention 'raw'; expected one of imagenet, unit"):
        build_model("rtfnet", 9, "tiny", input_convention="raw")
    assert build_model("mfnet", 9, "tiny").input_convention == "imagenet"


# ----------------------------------------------------------------------------------------------- CRM
def tiny_crm_files(tmp_path: Path, n: int = 4, extra: Optional[dict] = None) -> tuple[OrderedDict, dict[str, Path]]:
    """The official tiny-size CRM state dict in its three wrappings."""
    official = L.random_state(L.crm_shapes(n, "tiny"), seed=6)
    bare = OrderedDict((k[len("network."):], v) for k, v in official.items())
    with L.fake_detectron2_config():
        ckpt = save(L.lightning_checkpoint(official, n, extra), tmp_path / "crm.ckpt")
    return bare, {"lightning": ckpt, "bare": save(bare, tmp_path / "bare.pth"),
                  "detectron2": save({"model": bare}, tmp_path / "d2.pth")}


def test_crm_official_tensors_land_in_the_right_modules(tmp_path):
    sd, files = tiny_crm_files(tmp_path)
    done = import_weights("crm", files["lightning"], "tiny", 4, tmp_path / "crm.pt")
    assert done.found.layout == "crm-lightning" and "no code ran" in done.found.notes[0]
    model, ckpt = load_model("crm", 4, "tiny", checkpoint=done.out)
    bb, pd, dec = model.backbone, model.head.pixel_decoder, model.head.decoder
    rgb, thr = "backbone.RGB_branch", "backbone.THR_branch"
    enc = "sem_seg_head.pixel_decoder.transformer.encoder.layers.0"
    ffn = "sem_seg_head.predictor.transformer_ffn_layers.0"
    cross = "sem_seg_head.predictor.transformer_cross_attention_layers.1"
    self_ = "sem_seg_head.predictor.transformer_self_attention_layers.1"
    pairs = {
        f"{rgb}.patch_embed.proj.weight": bb.rgb_encoder.patch_embed.proj.weight,
        f"{thr}.patch_embed.proj.weight": bb.thermal_encoder.patch_embed.proj.weight,
        f"{thr}.patch_embed.norm.bias": bb.thermal_encoder.patch_embed.norm.bias,
        f"{rgb}.layers.1.blocks.0.attn.qkv.weight": bb.rgb_encoder.layers[1].blocks[0].attn.qkv.weight,
        f"{rgb}.layers.2.blocks.0.attn.relative_position_bias_table":
            bb.rgb_encoder.layers[2].blocks[0].attn.relative_position_bias_table,
        f"{thr}.layers.3.blocks.0.mlp.fc2.bias": bb.thermal_encoder.layers[3].blocks[0].mlp.fc2.bias,
        f"{rgb}.layers.0.blocks.0.norm2.weight": bb.rgb_encoder.layers[0].blocks[0].norm2.weight,
        f"{rgb}.layers.0.downsample.reduction.weight": bb.rgb_encoder.layers[0].downsample.reduction.weight,
        f"{thr}.layers.2.downsample.norm.weight": bb.thermal_encoder.layers[2].downsample.norm.weight,
        f"{rgb}.norm3.weight": bb.rgb_encoder.norm3.weight,
        f"{rgb}.mask_token": bb.rgb_mask_token, f"{thr}.mask_token": bb.thermal_mask_token,
        "backbone.norm_layers.res4.running_var": bb.fusion_norms[2].running_var,
        "backbone.norm_layers.res2.weight": bb.fusion_norms[0].weight,
        "sem_seg_head.pixel_decoder.input_proj.0.0.weight": pd.input_proj[0][0].weight,
        "sem_seg_head.pixel_decoder.input_proj.2.1.bias": pd.input_proj[2][1].bias,
        "sem_seg_head.pixel_decoder.transformer.level_embed": pd.level_embed,
        f"{enc}.self_attn.sampling_offsets.weight": pd.layers[0].self_attn.sampling_offsets.weight,
        f"{enc}.self_attn.attention_weights.bias": pd.layers[0].self_attn.attention_weights.bias,
        f"{enc}.self_attn.value_proj.weight": pd.layers[0].self_attn.value_proj.weight,
        f"{enc}.norm2.bias": pd.layers[0].norm2.bias, f"{enc}.linear1.weight": pd.layers[0].linear1.weight,
        "sem_seg_head.pixel_decoder.adapter_1.weight": pd.lateral[0].weight,
        "sem_seg_head.pixel_decoder.adapter_1.norm.weight": pd.lateral[1].weight,
        "sem_seg_head.pixel_decoder.layer_1.weight": pd.output[0].weight,
        "sem_seg_head.pixel_decoder.layer_1.norm.bias": pd.output[1].bias,
        "sem_seg_head.pixel_decoder.mask_features.bias": pd.mask_features.bias,
        f"{cross}.multihead_attn.in_proj_weight": dec.layers[1].cross_attn.in_proj_weight,
        f"{cross}.norm.weight": dec.layers[1].norm_cross.weight,
        f"{self_}.self_attn.out_proj.weight": dec.layers[1].self_attn.out_proj.weight,
        f"{self_}.norm.bias": dec.layers[1].norm_self.bias,
        f"{ffn}.linear2.weight": dec.layers[0].linear2.weight, f"{ffn}.norm.bias": dec.layers[0].norm_ffn.bias,
        "sem_seg_head.predictor.decoder_norm.weight": dec.decoder_norm.weight,
        "sem_seg_head.predictor.query_feat.weight": dec.query_feat.weight,
        "sem_seg_head.predictor.query_embed.weight": dec.query_embed.weight,
        "sem_seg_head.predictor.level_embed.weight": dec.level_embed.weight,
        "sem_seg_head.predictor.class_embed.bias": dec.class_embed.bias,
        "sem_seg_head.predictor.mask_embed.layers.2.weight": dec.mask_embed.layers[2].weight,
    }
    for key, tensor in pairs.items():
        assert torch.equal(tensor, sd[key]), key
    # every official tensor but the rebuilt index buffers and the loss weights is used exactly once
    skip = ("relative_position_index", "num_batches_tracked", "empty_weight")
    used = {k: v for k, v in sd.items() if not k.endswith(skip)}
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith(skip)}
    fingerprint = lambda t: (tuple(t.shape), t.flatten()[:8].tolist())  # noqa: E731 (random values: unique)
    assert sorted(map(fingerprint, used.values())) == sorted(map(fingerprint, ours.values()))
    assert ckpt["input_convention"] == "imagenet" and ckpt["config"]["model_kwargs"] == {}


def test_crm_wrappings_import_to_the_same_model(tmp_path):
    _, files = tiny_crm_files(tmp_path)
    done = {name: import_weights("crm", path, "tiny", 4, tmp_path / f"{name}.pt") for name, path in files.items()}
    assert [d.found.layout for d in done.values()] == ["crm-lightning", "crm-state-dict", "crm-detectron2"]
    states = [load_checkpoint(d.out)["state_dict"] for d in done.values()]
    assert all(sorted(s) == sorted(states[0]) and all(torch.equal(s[k], states[0][k]) for k in s) for s in states)
    model, _ = load_model("crm", 4, "tiny", checkpoint=done["lightning"].out)
    with torch.no_grad():
        scores = model.eval()(*inputs(b=1, h=64, w=80))
    assert scores.shape == (1, 4, 64, 80) and torch.isfinite(scores).all()


def test_crm_file_with_a_damaged_index_buffer_is_refused(tmp_path):
    sd, _ = tiny_crm_files(tmp_path)
    sd["backbone.RGB_branch.layers.0.blocks.0.attn.relative_position_index"][0, 0] = 5
    with pytest.raises(CheckpointError, match=r"bad.pth \(an official CRM state dict.*\) has a "
                                              r"'backbone.RGB_branch.layers.0.blocks.0.attn.relative_position_index' "
                                              r"that is not Swin's relative position index"):
        import_weights("crm", save(sd, tmp_path / "bad.pth"), "tiny", 4, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


# ----------------------------------------------------------------------------------------------- ImageNet starts
def swin_files(tmp_path: Path) -> tuple[OrderedDict, dict[str, Path]]:
    ms = L.random_state(L.swin_imagenet_shapes("tiny", "microsoft"), seed=7)
    timm = L.random_state(L.swin_imagenet_shapes("tiny", "timm"), seed=8)
    for k in timm:  # the same weights under timm's names
        official = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", k)
        timm[k] = ms.get(official, ms.get(k.replace("head.fc.", "head."), timm[k]))
    files = {"microsoft": save({"model": ms}, tmp_path / "swin.pth"), "timm": save(timm, tmp_path / "timm.pth")}
    for name, numpy in (("detectron2", False), ("detectron2-numpy", True)):
        files[name] = tmp_path / f"{name}.pkl"
        files[name].write_bytes(L.detectron2_pkl(ms, numpy=numpy))
    return ms, files


def test_every_swin_imagenet_layout_gives_the_same_backbone(tmp_path):
    ms, files = swin_files(tmp_path)
    read = {name: read_swin_weights(path) for name, path in files.items()}
    assert [w.layout for w in read.values()] == ["microsoft", "timm", "detectron2", "detectron2"]
    first = read["microsoft"].state
    assert "layers.0.downsample.reduction.weight" in first and not any(k.startswith(("head", "norm.")) for k in first)
    for weights in read.values():
        assert sorted(weights.state) == sorted(first)
        assert all(torch.equal(weights.state[k], first[k]) for k in first)
    for path in files.values():  # --model-kwarg pretrained=PATH accepts each
        model = build_crm(3, "tiny", pretrained=str(path))
        assert torch.equal(model.backbone.rgb_encoder.layers[0].downsample.reduction.weight,
                           ms["layers.0.downsample.reduction.weight"])
        assert torch.allclose(model.backbone.thermal_encoder.patch_embed.proj.weight,
                              ms["patch_embed.proj.weight"].mean(1, keepdim=True))


def test_imagenet_import_writes_a_marked_initialisation_checkpoint(tmp_path, capsys):
    _, files = swin_files(tmp_path)
    out = tmp_path / "init.pt"
    main_ok(["models", "import", "crm", str(files["detectron2"]), "--preset", "tiny", "--dataset", "synthetic",
             "--out", str(out)])
    printed = capsys.readouterr().out
    assert "found Detectron2-converted Swin ImageNet weights (.pkl)" in printed
    assert "initialisation checkpoint" in printed
    ckpt = load_checkpoint(out)
    assert ckpt["initialisation"]["from"] == "detectron2.pkl" and ckpt["initialisation"]["seed"] == 0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        seeded = build_crm(ckpt["num_classes"], "tiny", pretrained=str(files["detectron2"]))
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in seeded.state_dict().items())
    with pytest.raises(CheckpointError, match=r"is an initialisation checkpoint .*random head"):
        load_model("crm", ckpt["num_classes"], "tiny", checkpoint=out)
    model, _ = load_model("crm", ckpt["num_classes"], "tiny", checkpoint=out, allow_initialisation=True)
    code, err = main_err(["sweep", "--models", "crm", "--checkpoint", f"crm={out}", "--out", str(tmp_path / "s"),
                          "--device", "cpu", "--no-progress", "--dataset-option", "size=[32,40]",
                          "--dataset-option", "counts=[4,2,2]"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "is an initialisation checkpoint" in err
    assert not list((tmp_path / "s").glob("cells/*.json"))


def test_torchvision_resnet_initialises_rtfnet_encoders(tmp_path):
    tv = L.random_state(L.torchvision_resnet_shapes(18, width=16, layers=(1, 1, 1, 1)), seed=9)
    done = import_weights("rtfnet", save(tv, tmp_path / "resnet.pth"), "tiny", 9, tmp_path / "init.pt")
    assert done.found.layout == "resnet-torchvision" and done.found.backbone_only
    ckpt = load_checkpoint(done.out)
    sd = ckpt["state_dict"]
    assert torch.equal(sd["encoder_rgb.layer3.0.conv2.weight"], tv["layer3.0.conv2.weight"])
    assert torch.allclose(sd["encoder_thermal.conv1.weight"], tv["conv1.weight"].mean(1, keepdim=True))
    assert ckpt["input_convention"] == "imagenet" and "initialisation" in ckpt


# ----------------------------------------------------------------------------------------------- bad input
def main_ok(args):
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None)


def main_err(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return exc.value.code, err.strip()


class Payload:
    """Unpickling this would create `marker`."""

    def __init__(self, marker: Path, how: str = "system"):
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {self.marker}",)
        return Path.touch, (self.marker,)


def _crm_payload(tmp: Path) -> Path:
    with L.fake_detectron2_config():
        return save(L.lightning_checkpoint(L.random_state(L.crm_shapes(4, "tiny")), 4,
                                           {"evil": Payload(tmp / "payload-ran")}), tmp / "evil.ckpt")


def _pkl_payload(tmp: Path) -> Path:
    path = tmp / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": torch.zeros(1)}, "x": Payload(tmp / "payload-ran", "touch")}))
    return path


def _cut(tmp: Path) -> Path:
    state = L.random_state(L.mfnet_shapes(9), seed=1)
    del state["decode2.bn.running_var"]
    return save(state, tmp / "cut.pth")


def _truncated(tmp: Path) -> Path:
    path = tmp / "truncated.pth"
    path.write_bytes(save(L.random_state(L.mfnet_shapes(9)), tmp / "final.pth").read_bytes()[:5000])
    return path


BAD_FILES = {  # name -> builder of the file under a tmp directory
    "mfnet": lambda tmp: save(L.random_state(L.mfnet_shapes(9), seed=1), tmp / "final.pth"),
    "rtfnet152": lambda tmp: save(L.thin_state(L.rtfnet_shapes(9, 152)), tmp / "rtfnet152.pth"),
    "unknown": lambda tmp: save({"encoder.weight": torch.zeros(2)}, tmp / "other.pth"),
    "swin-tiny": lambda tmp: save({"model": L.random_state(L.swin_imagenet_shapes("tiny"))}, tmp / "swin.pth"),
    "mfnet-missing": _cut, "truncated": _truncated,
    "crm": lambda tmp: tiny_crm_files(tmp)[1]["lightning"],
    "crm-payload": _crm_payload, "pkl-payload": _pkl_payload,
}


IMPORT_CASES = [
    ("rtfnet", "rtfnet152", ["--preset", "rtfnet50", "--num-classes", "9"],
     r"rtfnet152.pth looks like an RTFNet-152 state dict \(2070 tensors\), not rtfnet rtfnet50; "
     r"pass --preset rtfnet152$"),
    ("crm", "mfnet", ["--preset", "swin_t", "--num-classes", "9"],
     r"final.pth looks like an MFNet-pytorch state dict \(228 tensors\), not weights of 'crm'; import it with "
     r"`rgbt-bench models import mfnet \.\.\.`$"),
    ("crm", "crm", ["--preset", "tiny", "--num-classes", "9"],
     r"crm.ckpt looks like an official CRM PyTorch-Lightning checkpoint, the tiny preset's Swin \(\d+ tensors\) "
     r"for 4 classes, not 9; pass the dataset it was trained on$"),
    ("crm", "swin-tiny", ["--preset", "swin_t", "--num-classes", "9"],
     r"swin.pth looks like microsoft/Swin-Transformer ImageNet weights \(embed 32, depths 1-1-1-1, window 7\) "
     r"\(\d+ backbone tensors\), not crm swin_t; pass --preset tiny$"),
    ("mfnet", "unknown", ["--preset", "mfnet", "--num-classes", "9"],
     r"other.pth holds no known layout \(a dict of 1 entry, first encoder.weight\); expected the MFNet-pytorch"),
    ("mfnet", "mfnet-missing", ["--preset", "mfnet", "--num-classes", "9"],
     r"cut.pth looks like an MFNet-pytorch state dict \(227 tensors\) but does not fit rgbt-bench's mfnet mfnet: "
     r"1 mfnet mfnet tensors missing \(e.g. up1.conv.1.running_var\)$"),
    ("mfnet", "truncated", ["--preset", "mfnet", "--num-classes", "9"],
     r"published weights .*truncated.pth is not a readable torch file"),
    ("crm", "crm-payload", ["--preset", "tiny", "--num-classes", "4"],
     r"published weights .*evil.ckpt was refused: .*\(unsupported global posix.system\); it was not executed$"),
    ("crm", "pkl-payload", ["--preset", "tiny", "--num-classes", "4"],
     r"published weights .*evil.pkl was refused: .*\(unsupported global pathlib.\w*Path.touch\); it was not executed$"),
    ("early_fusion", "mfnet", ["--preset", "tiny", "--num-classes", "9"],
     r"model 'early_fusion' has no importer for published weights; expected one of crm, rtfnet, mfnet$"),
    ("mfnet", "mfnet", ["--preset", "mfnet"], r"give exactly one of --num-classes N or --dataset SPEC"),
    ("mfnet", "mfnet", ["--preset", "mfnet", "--num-classes", "9", "--dataset", "mfnet"],
     r"give exactly one of --num-classes N or --dataset SPEC"),
]


@pytest.mark.parametrize("model, file, args, message", IMPORT_CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in
                                                                          enumerate(IMPORT_CASES)])
def test_bad_import_is_one_line_exit_2_nothing_written(tmp_path, capsys, model, file, args, message):
    out = tmp_path / "out.pt"
    code, err = main_err(["models", "import", model, str(BAD_FILES[file](tmp_path)), "--out", str(out), *args], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists() and not (tmp_path / "payload-ran").exists()


def test_out_is_replaced_only_with_force(tmp_path, capsys):
    src = save(L.random_state(L.mfnet_shapes(7, (8, 24, 24, 48, 48), (8, 8, 8, 18, 18))), tmp_path / "final.pth")
    out = tmp_path / "out.pt"
    out.write_bytes(b"keep me")
    args = ["models", "import", "mfnet", str(src), "--preset", "tiny", "--dataset", "synthetic", "--out", str(out)]
    code, err = main_err(args, capsys)
    assert code == 2 and err == f"Error: {out} already exists; pass --force to replace it"
    assert out.read_bytes() == b"keep me"
    main_ok(args + ["--force"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{src}: found an MFNet-pytorch state dict at half widths (preset tiny) (228 tensors)"
    assert printed[1].startswith(f"wrote {out}: mfnet tiny, 7 classes, input convention unit, source sha256 ")
    assert load_checkpoint(out)["class_names"] and load_checkpoint(out)["dataset"] == "synthetic"


def test_an_unimported_published_file_names_the_import_command(tmp_path):
    src = save(L.random_state(L.mfnet_shapes(9)), tmp_path / "final.pth")
    with pytest.raises(CheckpointError, match=r"final.pth is a published file \(an MFNet-pytorch state dict "
                                              r"\(228 tensors\)\), not an rgbt-bench checkpoint; convert it first: "
                                              r"rgbt-bench models import mfnet .*final.pth --preset mfnet "
                                              r"--num-classes 9 --out OUT.pt$"):
        load_model("mfnet", 9, "mfnet", checkpoint=src)


def test_imported_checkpoint_sweeps_and_records_like_any_other(tmp_path, capsys):
    src = save(L.random_state(L.mfnet_shapes(7, (8, 24, 24, 48, 48), (8, 8, 8, 18, 18)), seed=2), tmp_path / "f.pth")
    out = tmp_path / "mfnet.pt"
    main_ok(["models", "import", "mfnet", str(src), "--preset", "tiny", "--dataset", "synthetic", "--out", str(out)])
    suite = tmp_path / "suite.yaml"
    suite.write_text("entries:\n  - corruption: thermal_missing\n    severities: [1]\n")
    main_ok(["sweep", "--models", "mfnet", "--checkpoint", f"mfnet={out}", "--preset", "tiny", "--suite", str(suite),
             "--out", str(tmp_path / "s"), "--device", "cpu", "--no-progress",
             "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[4,2,2]"])
    cells = [json.loads(p.read_text()) for p in (tmp_path / "s").glob("cells/*.json")]
    assert len(cells) == 2 and {c["checkpoint_sha256"] for c in cells} == {file_sha256(out)}


def test_sweep_cells_and_trained_checkpoints_record_the_input_convention(tmp_path):
    """Issue 9 item 2: the convention a model's weights expect is in every trained checkpoint and every cell."""
    from rgbt_bench.checkpoint import load_checkpoint
    from rgbt_bench.sweep import SweepConfig, run_sweep
    from rgbt_bench.sweep.store import read_cells
    from rgbt_bench.training import TrainConfig, train

    options = {"size": [32, 40], "counts": [8, 2, 2]}
    ckpt = tmp_path / "mf.pt"
    train(TrainConfig(model="mfnet", iterations=2, batch_size=2, eval_every=0, out=str(ckpt), progress=False,
                      dataset_options=options, model_kwargs={"input_convention": "unit"}))
    assert load_checkpoint(ckpt)["input_convention"] == "unit"
    out = tmp_path / "r"
    run_sweep(SweepConfig(models=["mfnet", "rtf=rtfnet"], checkpoints={"mfnet": str(ckpt)}, suite="default",
                          out=str(out), dataset_options=options, progress=False, train_iterations=2,
                          models_dir=str(tmp_path / "models")))
    conventions = {c.record.key.model: c.record.input_convention for c in read_cells(out)}
    assert conventions == {"mfnet": "unit", "rtf": "imagenet"}
