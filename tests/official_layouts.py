"""Official weight-file layouts, written from the authors' code (not from rgbt-bench's models), for the import tests.

Each `*_shapes` function lists the state-dict names and shapes that the official module would save, in its
registration order (a module's own parameters, then its buffers, then its children, as nn.Module.state_dict
does). Sources, read at these paths:
- MFNet: haqishen/MFNet-pytorch model/MFNet.py (ConvBnLeakyRelu2d = conv(bias) + bn; MiniInception;
  decode4..1), saved by PyTorch 0.4.0: no BatchNorm num_batches_tracked.
- RTFNet: yuxiangsun/RTFNet model/RTFNet.py (torchvision resnets flattened into encoder_*; thermal conv1 then
  bn1 .. layer4 registered before the RGB ones; _make_transpose_layer / TransBottleneck).
- CRM: UkcheolShin/CRM_RGBTSeg models/mask2former/backbone/swin.py (D2SwinTransformer with mask_token and a
  persistent relative_position_index, RGBT_D2SwinTransformer.norm_layers), pixel_decoder/msdeformattn.py
  (input_proj, transformer.level_embed, transformer.encoder.layers, mask_features, adapter_1, layer_1 with
  detectron2 Conv2d `.norm`), transformer_decoder/mask2former_transformer_decoder.py (self/cross/ffn layer
  lists, decoder_norm, query_feat, query_embed, level_embed, empty input_proj, class_embed, mask_embed),
  rgbt_maskformer_model.py (criterion.empty_weight), Model_RGBT_Mask2Former.py (LightningModule.network,
  save_hyperparameters of the detectron2 CfgNode).
- Swin ImageNet: microsoft/Swin-Transformer models/swin_transformer.py (attn_mask buffers, norm, head);
  timm/models/swin_transformer.py (downsample at the start of the next stage, head.fc, buffers not saved);
  Mask2Former tools/convert-pretrained-swin-model-to-d2.py (pickle of {"model", "__author__",
  "matching_heuristics"}).
- torchvision ResNet: torchvision/models/resnet.py.

`random_state` fills the shapes with seeded random values (BatchNorm variances positive, index buffers exact),
`thin_state` with zero-stride views that cost no memory, for full-size files whose values do not matter.
"""
from __future__ import annotations

import math
import pickle
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn(out: OrderedDict, prefix: str, c: int, counter: bool = True) -> None:
    for p in BN if counter else BN[:4]:
        out[f"{prefix}.{p}"] = () if p == "num_batches_tracked" else (c,)


def parameter_count(shapes: OrderedDict) -> int:
    """Learnable parameters: everything but BatchNorm statistics and index / mask / weight buffers."""
    buffers = ("running_mean", "running_var", "num_batches_tracked", "relative_position_index", "attn_mask",
               "empty_weight")
    return sum(math.prod(s) for k, s in shapes.items() if not k.endswith(buffers))


# ----------------------------------------------------------------------------------------------- MFNet
MFNET_RGB = (16, 48, 48, 96, 96)
MFNET_INF = (16, 16, 16, 36, 36)


def mfnet_shapes(n_class: int = 9, rgb_ch=MFNET_RGB, inf_ch=MFNET_INF) -> OrderedDict:
    out: OrderedDict = OrderedDict()

    def unit(name: str, cin: int, cout: int) -> None:
        out[f"{name}.conv.weight"], out[f"{name}.conv.bias"] = (cout, cin, 3, 3), (cout,)
        bn(out, f"{name}.bn", cout, counter=False)

    def inception(name: str, cin: int, cout: int) -> None:
        for i, c in ((1, cin), (2, cout), (3, cout)):
            unit(f"{name}.conv{i}_left", c, cout // 2)
            unit(f"{name}.conv{i}_right", c, cout // 2)

    for branch, ch, cin in (("rgb", rgb_ch, 3), ("inf", inf_ch, 1)):
        unit(f"conv1_{branch}", cin, ch[0])
        unit(f"conv2_1_{branch}", ch[0], ch[1])
        unit(f"conv2_2_{branch}", ch[1], ch[1])
        unit(f"conv3_1_{branch}", ch[1], ch[2])
        unit(f"conv3_2_{branch}", ch[2], ch[2])
        inception(f"conv4_{branch}", ch[2], ch[3])
        inception(f"conv5_{branch}", ch[3], ch[4])
    unit("decode4", rgb_ch[3] + inf_ch[3], rgb_ch[2] + inf_ch[2])
    unit("decode3", rgb_ch[2] + inf_ch[2], rgb_ch[1] + inf_ch[1])
    unit("decode2", rgb_ch[1] + inf_ch[1], rgb_ch[0] + inf_ch[0])
    unit("decode1", rgb_ch[0] + inf_ch[0], n_class)
    return out


# ----------------------------------------------------------------------------------------------- ResNet / RTFNet
RESNETS = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)), 50: (True, (3, 4, 6, 3)),
           101: (True, (3, 4, 23, 3)), 152: (True, (3, 8, 36, 3))}


def resnet_shapes(out: OrderedDict, prefix: str, in_ch: int, bottleneck: bool, layers, width: int = 64,
                  sep: str = ".") -> int:
    """torchvision ResNet encoder tensors under `prefix` (RTFNet flattens with sep '_'); returns out channels."""
    exp = 4 if bottleneck else 1
    out[f"{prefix}{sep if prefix else ''}conv1.weight"] = (width, in_ch, 7, 7)
    bn(out, f"{prefix}{sep if prefix else ''}bn1", width)
    inplanes = width
    for stage, blocks in enumerate(layers, start=1):
        planes = width * 2 ** (stage - 1)
        for j in range(blocks):
            p = f"{prefix}{sep if prefix else ''}layer{stage}.{j}"
            if bottleneck:
                convs = [(planes, inplanes, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            else:
                convs = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            for i, shape in enumerate(convs, start=1):
                out[f"{p}.conv{i}.weight"] = shape
                bn(out, f"{p}.bn{i}", shape[0])
            if j == 0 and (stage > 1 or inplanes != planes * exp):
                out[f"{p}.downsample.0.weight"] = (planes * exp, inplanes, 1, 1)
                bn(out, f"{p}.downsample.1", planes * exp)
            inplanes = planes * exp
    return inplanes


def torchvision_resnet_shapes(depth: int = 50, width: int = 64, layers=None, classes: int = 1000) -> OrderedDict:
    bottleneck, default = RESNETS[depth]
    out: OrderedDict = OrderedDict()
    c = resnet_shapes(out, "", 3, bottleneck, layers or default, width)
    out["fc.weight"], out["fc.bias"] = (classes, c), (classes,)
    return out


def rtfnet_shapes(n_class: int = 9, depth: int = 50, width: int = 64, layers=None) -> OrderedDict:
    bottleneck, default = RESNETS[depth]
    layers = layers or default
    out: OrderedDict = OrderedDict()
    resnet_shapes(out, "encoder_thermal", 1, bottleneck, layers, width, sep="_")
    inplanes = resnet_shapes(out, "encoder_rgb", 3, bottleneck, layers, width, sep="_")
    for i in range(1, 6):
        planes = n_class if i == 5 else inplanes // 2
        p = f"deconv{i}"
        for name, shape in (("conv1", (inplanes, inplanes, 1, 1)), ("conv2", (inplanes, inplanes, 3, 3)),
                            ("conv3", (inplanes, inplanes, 3, 3))):  # block(inplanes, inplanes), stride 1
            out[f"{p}.0.{name}.weight"] = shape
            bn(out, f"{p}.0.{name.replace('conv', 'bn')}", inplanes)
        for name, shape in (("conv1", (planes, inplanes, 1, 1)), ("conv2", (planes, planes, 3, 3)),
                            ("conv3", (planes, planes, 2, 2))):  # ConvTranspose2d weight: [in, out, k, k]
            out[f"{p}.1.{name}.weight"] = shape
            bn(out, f"{p}.1.{name.replace('conv', 'bn')}", planes)
        out[f"{p}.1.upsample.0.weight"] = (inplanes, planes, 2, 2)
        bn(out, f"{p}.1.upsample.1", planes)
        inplanes = planes
    return out


# ----------------------------------------------------------------------------------------------- Swin / CRM
def swin_block(out: OrderedDict, p: str, c: int, heads: int, window: int, index: bool = True,
               attn_mask: Optional[int] = None) -> None:
    if attn_mask is not None:  # microsoft: the block's own buffer, saved before its children
        out[f"{p}.attn_mask"] = (attn_mask, window * window, window * window)
    out[f"{p}.norm1.weight"], out[f"{p}.norm1.bias"] = (c,), (c,)
    out[f"{p}.attn.relative_position_bias_table"] = ((2 * window - 1) ** 2, heads)
    if index:
        out[f"{p}.attn.relative_position_index"] = (window * window, window * window)
    out[f"{p}.attn.qkv.weight"], out[f"{p}.attn.qkv.bias"] = (3 * c, c), (3 * c,)
    out[f"{p}.attn.proj.weight"], out[f"{p}.attn.proj.bias"] = (c, c), (c,)
    out[f"{p}.norm2.weight"], out[f"{p}.norm2.bias"] = (c,), (c,)
    out[f"{p}.mlp.fc1.weight"], out[f"{p}.mlp.fc1.bias"] = (4 * c, c), (4 * c,)
    out[f"{p}.mlp.fc2.weight"], out[f"{p}.mlp.fc2.bias"] = (c, 4 * c), (c,)


def merging(out: OrderedDict, p: str, c: int, norm_first: bool = False) -> None:
    items = [(f"{p}.reduction.weight", (2 * c, 4 * c)), (f"{p}.norm.weight", (4 * c,)), (f"{p}.norm.bias", (4 * c,))]
    for k, s in (items[1:] + items[:1] if norm_first else items):
        out[k] = s


def d2_swin_shapes(out: OrderedDict, p: str, in_ch: int, embed: int, depths, heads, window: int) -> None:
    """D2SwinTransformer (CRM): mask_token (own parameter) first, patch_embed, layers, norm0..3."""
    out[f"{p}.mask_token"] = (1, embed, 1, 1)
    out[f"{p}.patch_embed.proj.weight"], out[f"{p}.patch_embed.proj.bias"] = (embed, in_ch, 4, 4), (embed,)
    out[f"{p}.patch_embed.norm.weight"], out[f"{p}.patch_embed.norm.bias"] = (embed,), (embed,)
    for i, (d, h) in enumerate(zip(depths, heads)):
        c = embed * 2 ** i
        for j in range(d):
            swin_block(out, f"{p}.layers.{i}.blocks.{j}", c, h, window)
        if i < len(depths) - 1:
            merging(out, f"{p}.layers.{i}.downsample", c)
    for i in range(len(depths)):
        out[f"{p}.norm{i}.weight"], out[f"{p}.norm{i}.bias"] = (embed * 2 ** i,), (embed * 2 ** i,)


CRM_SIZES = {"swin_t": (96, (2, 2, 6, 2), (3, 6, 12, 24)), "swin_s": (96, (2, 2, 18, 2), (3, 6, 12, 24)),
             "swin_b": (128, (2, 2, 18, 2), (4, 8, 16, 32)), "tiny": (32, (1, 1, 1, 1), (1, 2, 4, 8))}
PAPER_HEAD = dict(hidden=256, queries=100, nheads=8, ffn=2048, dec_layers=9, enc_layers=6, enc_ffn=1024,
                  n_points=4, mask_dim=256)
TINY_HEAD = dict(hidden=32, queries=12, nheads=2, ffn=64, dec_layers=2, enc_layers=1, enc_ffn=64, n_points=2,
                 mask_dim=32)


def crm_shapes(n_class: int = 9, size: str = "swin_t", head: Optional[dict] = None, window: int = 7,
               prefix: str = "network.") -> OrderedDict:
    """RGBTMaskFormer's state dict (as under the LightningModule's `network`)."""
    embed, depths, heads = CRM_SIZES[size]
    h = head or (TINY_HEAD if size == "tiny" else PAPER_HEAD)
    d, out = h["hidden"], OrderedDict()
    d2_swin_shapes(out, "backbone.RGB_branch", 3, embed, depths, heads, window)
    d2_swin_shapes(out, "backbone.THR_branch", 1, embed, depths, heads, window)
    for i in range(4):
        bn(out, f"backbone.norm_layers.res{i + 2}", embed * 2 ** i)
    pd = "sem_seg_head.pixel_decoder"
    for k, c in enumerate((8 * embed, 4 * embed, 2 * embed)):
        out[f"{pd}.input_proj.{k}.0.weight"], out[f"{pd}.input_proj.{k}.0.bias"] = (d, c, 1, 1), (d,)
        out[f"{pd}.input_proj.{k}.1.weight"], out[f"{pd}.input_proj.{k}.1.bias"] = (d,), (d,)
    out[f"{pd}.transformer.level_embed"] = (3, d)
    samples = h["nheads"] * 3 * h["n_points"]
    for k in range(h["enc_layers"]):
        p = f"{pd}.transformer.encoder.layers.{k}"
        for name, rows in (("sampling_offsets", 2 * samples), ("attention_weights", samples), ("value_proj", d),
                           ("output_proj", d)):
            out[f"{p}.self_attn.{name}.weight"], out[f"{p}.self_attn.{name}.bias"] = (rows, d), (rows,)
        out[f"{p}.norm1.weight"], out[f"{p}.norm1.bias"] = (d,), (d,)
        out[f"{p}.linear1.weight"], out[f"{p}.linear1.bias"] = (h["enc_ffn"], d), (h["enc_ffn"],)
        out[f"{p}.linear2.weight"], out[f"{p}.linear2.bias"] = (d, h["enc_ffn"]), (d,)
        out[f"{p}.norm2.weight"], out[f"{p}.norm2.bias"] = (d,), (d,)
    out[f"{pd}.mask_features.weight"], out[f"{pd}.mask_features.bias"] = (h["mask_dim"], d, 1, 1), (h["mask_dim"],)
    out[f"{pd}.adapter_1.weight"] = (d, embed, 1, 1)  # norm "GN": no conv bias
    out[f"{pd}.adapter_1.norm.weight"], out[f"{pd}.adapter_1.norm.bias"] = (d,), (d,)
    out[f"{pd}.layer_1.weight"] = (d, d, 3, 3)
    out[f"{pd}.layer_1.norm.weight"], out[f"{pd}.layer_1.norm.bias"] = (d,), (d,)
    pr = "sem_seg_head.predictor"
    for kind, attn in (("self_attention", "self_attn"), ("cross_attention", "multihead_attn")):
        for k in range(h["dec_layers"]):
            p = f"{pr}.transformer_{kind}_layers.{k}"
            out[f"{p}.{attn}.in_proj_weight"], out[f"{p}.{attn}.in_proj_bias"] = (3 * d, d), (3 * d,)
            out[f"{p}.{attn}.out_proj.weight"], out[f"{p}.{attn}.out_proj.bias"] = (d, d), (d,)
            out[f"{p}.norm.weight"], out[f"{p}.norm.bias"] = (d,), (d,)
    for k in range(h["dec_layers"]):
        p = f"{pr}.transformer_ffn_layers.{k}"
        out[f"{p}.linear1.weight"], out[f"{p}.linear1.bias"] = (h["ffn"], d), (h["ffn"],)
        out[f"{p}.linear2.weight"], out[f"{p}.linear2.bias"] = (d, h["ffn"]), (d,)
        out[f"{p}.norm.weight"], out[f"{p}.norm.bias"] = (d,), (d,)
    out[f"{pr}.decoder_norm.weight"], out[f"{pr}.decoder_norm.bias"] = (d,), (d,)
    out[f"{pr}.query_feat.weight"], out[f"{pr}.query_embed.weight"] = (h["queries"], d), (h["queries"], d)
    out[f"{pr}.level_embed.weight"] = (3, d)
    out[f"{pr}.class_embed.weight"], out[f"{pr}.class_embed.bias"] = (n_class + 1, d), (n_class + 1,)
    for k, rows in enumerate((d, d, h["mask_dim"])):
        out[f"{pr}.mask_embed.layers.{k}.weight"], out[f"{pr}.mask_embed.layers.{k}.bias"] = (rows, d), (rows,)
    out["criterion.empty_weight"] = (n_class + 1,)
    return OrderedDict((prefix + k, v) for k, v in out.items())


def swin_imagenet_shapes(size: str = "swin_t", layout: str = "microsoft", window: int = 7,
                         classes: int = 1000) -> OrderedDict:
    """A Swin classification checkpoint's "model" dict: microsoft (224 input: attn_mask buffers in the
    shifted blocks of stages whose resolution exceeds the window) or timm (merging at the next stage's start)."""
    embed, depths, heads = CRM_SIZES[size]
    out: OrderedDict = OrderedDict()
    out["patch_embed.proj.weight"], out["patch_embed.proj.bias"] = (embed, 3, 4, 4), (embed,)
    out["patch_embed.norm.weight"], out["patch_embed.norm.bias"] = (embed,), (embed,)
    resolution = 224 // 4
    for i, (d, h) in enumerate(zip(depths, heads)):
        c = embed * 2 ** i
        if layout == "timm" and i > 0:
            merging(out, f"layers.{i}.downsample", c // 2, norm_first=True)
        for j in range(d):
            shifted = j % 2 == 1 and resolution > window
            mask = (resolution // window) ** 2 if layout == "microsoft" and shifted else None
            swin_block(out, f"layers.{i}.blocks.{j}", c, h, window, index=layout == "microsoft", attn_mask=mask)
        if layout == "microsoft" and i < len(depths) - 1:
            merging(out, f"layers.{i}.downsample", c)
        resolution //= 2
    c = embed * 2 ** (len(depths) - 1)
    out["norm.weight"], out["norm.bias"] = (c,), (c,)
    head = "head.fc" if layout == "timm" else "head"
    out[f"{head}.weight"], out[f"{head}.bias"] = (classes, c), (classes,)
    return out


# ----------------------------------------------------------------------------------------------- values
def official_relative_position_index(window: int) -> torch.Tensor:
    """Swin's WindowAttention buffer, as the official code computes it."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def _value(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if key.endswith("num_batches_tracked"):
        return torch.tensor(1000)
    if key.endswith("relative_position_index"):
        return official_relative_position_index(int(round(math.sqrt(shape[0]))))
    if key.endswith("running_var"):
        return torch.rand(shape, generator=gen) + 0.5
    if key.endswith("attn_mask"):
        return torch.zeros(shape)
    return torch.randn(shape, generator=gen) * 0.2


def random_state(shapes: OrderedDict, seed: int = 0) -> OrderedDict:
    """Seeded random values for `shapes` (BatchNorm variances in [0.5, 1.5), exact index buffers)."""
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict((k, _value(k, s, gen)) for k, s in shapes.items())


def thin_state(shapes: OrderedDict) -> OrderedDict:
    """Zero-stride views of one zero: full-size shapes that cost a few bytes in memory and on disk."""
    return OrderedDict((k, torch.zeros(()).expand(s) if s else torch.tensor(0)) for k, s in shapes.items())


# ----------------------------------------------------------------------------------------------- wrappers
@contextmanager
def fake_detectron2_config() -> Iterator[type]:
    """A stand-in for detectron2.config.config.CfgNode (yacs: a dict subclass with bookkeeping attributes)
    that pickles under the real class name; the modules exist only while the context is open."""

    class CfgNode(dict):
        def __init__(self, init=None):
            super().__init__(init or {})
            self.__dict__["__immutable__"] = True
            self.__dict__["__deprecated_keys__"] = set()
            self.__dict__["__renamed_keys__"] = {}
            self.__dict__["__new_allowed__"] = False

    names = ("detectron2", "detectron2.config", "detectron2.config.config")
    CfgNode.__module__, CfgNode.__qualname__ = names[-1], "CfgNode"
    saved = {n: sys.modules.get(n) for n in names}
    for n in names:
        sys.modules[n] = types.ModuleType(n)
    sys.modules[names[-1]].CfgNode = CfgNode
    try:
        yield CfgNode
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def lightning_checkpoint(state: OrderedDict, n_class: int, extra: Optional[dict] = None) -> dict:
    """What PyTorch-Lightning 1.9 saves for CRM's ModelCheckpoint(save_weights_only=True): the LightningModule
    state dict and the hyper-parameters (a detectron2 CfgNode). Call inside fake_detectron2_config()."""
    cfg_class = sys.modules["detectron2.config.config"].CfgNode
    cfg = cfg_class({"MODEL": cfg_class({"SEM_SEG_HEAD": cfg_class({"NUM_CLASSES": n_class}),
                                         "SWIN": cfg_class({"DEPTHS": [2, 2, 6, 2], "QK_SCALE": None}),
                                         "PIXEL_MEAN": [123.675, 116.28, 103.53, 127]}),
                     "INPUT": cfg_class({"CROP": cfg_class({"SIZE": (240, 320)})})})
    return {"epoch": 49, "global_step": 2800, "pytorch-lightning_version": "1.9.2", "state_dict": state,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": 2800}}},
            "hparams_name": "kwargs", "hyper_parameters": {"cfg": cfg, **(extra or {})}}


def detectron2_pkl(state: OrderedDict, numpy: bool = False) -> bytes:
    """Mask2Former's converted ImageNet file: pickle.dump of {"model", "__author__", "matching_heuristics"}."""
    model = {k: (v.numpy() if numpy else v) for k, v in state.items()}
    return pickle.dumps({"model": model, "__author__": "third_party", "matching_heuristics": True})
