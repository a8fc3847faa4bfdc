"""The official CRM checkpoints (UkcheolShin/CRM_RGBTSeg) and Swin ImageNet weights onto rgbt_bench.models.crm.

Complete checkpoints come in three wrappings, all with the official module names:
- the PyTorch-Lightning `.ckpt` that train.py writes and test.py reads (`torch.load(ckpt)["state_dict"]`):
  names prefixed `network.`, plus `network.criterion.empty_weight` (the loss's no-object weights, not a
  model weight) and `hyper_parameters` holding the detectron2 config (read as data, never run:
  rgbt_bench.safe_pickle);
- a bare state dict of the network (with or without the `network.` prefix);
- a Detectron2-style {"model": state_dict} (test.py's commented-out alternative).
The families and where they land (ours: rgbt_bench.models.crm, rgbt_bench.models.mask2former):
- backbone.{RGB,THR}_branch.* (D2SwinTransformer, models/mask2former/backbone/swin.py) -> backbone.{rgb,thermal}_
  encoder.* with the same Swin names; their `mask_token` -> backbone.{rgb,thermal}_mask_token; the persistent
  buffer `attn.relative_position_index` is checked against the index our encoder rebuilds and dropped;
- backbone.norm_layers.res2..res5 (BatchNorm after MAX fusion) -> backbone.fusion_norms.0..3;
- sem_seg_head.pixel_decoder (MSDeformAttnPixelDecoder, pixel_decoder/msdeformattn.py): input_proj ->
  input_proj, transformer.level_embed -> level_embed, transformer.encoder.layers.i -> layers.i,
  adapter_1 (lateral 1x1 conv, `.norm` GroupNorm) -> lateral.{0,1}, layer_1 (output 3x3 conv, `.norm`) ->
  output.{0,1}, mask_features -> mask_features;
- sem_seg_head.predictor (MultiScaleMaskedTransformerDecoder, transformer_decoder/
  mask2former_transformer_decoder.py): transformer_{cross_attention,self_attention,ffn}_layers.i ->
  head.decoder.layers.i.{cross_attn + norm_cross, self_attn + norm_self, linear1/linear2 + norm_ffn};
  decoder_norm, query_feat, query_embed, level_embed, class_embed, mask_embed keep their names.
Swin-T for 9 classes: 668 model tensors besides the 24 relative_position_index buffers and empty_weight,
74,924,094 parameters (Swin-S 117,559,902; Swin-B 193,495,610). Input convention: `imagenet` (the configs'
PIXEL_MEAN / PIXEL_STD on the 0-255 scale).

Swin ImageNet weights (rgbt_bench.models.pretrained: microsoft .pth, Detectron2 .pkl, timm) are the
training start of both encoders; they initialise the encoders only.
"""
from __future__ import annotations

import re
from typing import Any, Optional

import torch
from torch import nn

from ...errors import CheckpointError
from ..crm.model import PRESETS
from ..pretrained import SwinWeights, swin_imagenet
from ..resnet import unwrap_state_dict
from ..swin import relative_position_index
from .found import Found, Importer, rename, rules

DROPPED = (re.compile(r"^criterion\."), re.compile(r"\.relative_position_index$"))
RULES = rules(
    (r"^backbone\.RGB_branch\.mask_token$", "backbone.rgb_mask_token"),
    (r"^backbone\.THR_branch\.mask_token$", "backbone.thermal_mask_token"),
    (r"^backbone\.RGB_branch\.", "backbone.rgb_encoder."),
    (r"^backbone\.THR_branch\.", "backbone.thermal_encoder."),
    (r"^backbone\.norm_layers\.res([2-5])\.", lambda m: f"backbone.fusion_norms.{int(m[1]) - 2}."),
    (r"^sem_seg_head\.pixel_decoder\.transformer\.level_embed$", "head.pixel_decoder.level_embed"),
    (r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.", "head.pixel_decoder.layers."),
    (r"^sem_seg_head\.pixel_decoder\.adapter_1\.norm\.", "head.pixel_decoder.lateral.1."),
    (r"^sem_seg_head\.pixel_decoder\.adapter_1\.", "head.pixel_decoder.lateral.0."),
    (r"^sem_seg_head\.pixel_decoder\.layer_1\.norm\.", "head.pixel_decoder.output.1."),
    (r"^sem_seg_head\.pixel_decoder\.layer_1\.", "head.pixel_decoder.output.0."),
    (r"^sem_seg_head\.pixel_decoder\.(input_proj|mask_features)\.", r"head.pixel_decoder.\1."),
    (r"^sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.multihead_attn\.",
     r"head.decoder.layers.\1.cross_attn."),
    (r"^sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.norm\.",
     r"head.decoder.layers.\1.norm_cross."),
    (r"^sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.self_attn\.",
     r"head.decoder.layers.\1.self_attn."),
    (r"^sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.norm\.",
     r"head.decoder.layers.\1.norm_self."),
    (r"^sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.(linear1|linear2)\.", r"head.decoder.layers.\1.\2."),
    (r"^sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.norm\.", r"head.decoder.layers.\1.norm_ffn."),
    (r"^sem_seg_head\.predictor\.(decoder_norm|query_feat|query_embed|level_embed|class_embed|mask_embed)\.",
     r"head.decoder.\1."),
)
SIZE_NAMES = {"swin_t": "Swin-T", "swin_s": "Swin-S", "swin_b": "Swin-B", "tiny": "the tiny preset's Swin"}
WRAPPINGS = {"crm-lightning": "an official CRM PyTorch-Lightning checkpoint",
             "crm-state-dict": "an official CRM state dict",
             "crm-detectron2": "an official CRM state dict in a Detectron2-style {'model': ...} wrapper"}


def preset_of(swin: SwinWeights) -> Optional[str]:
    """The CRM preset whose encoders have the sizes of `swin`, None when none has."""
    for name, preset in PRESETS.items():
        cfg = preset.swin
        if (cfg.embed_dim, tuple(cfg.depths), tuple(cfg.num_heads), cfg.window_size) == \
                (swin.embed_dim, swin.depths, swin.num_heads, swin.window):
            return name
    return None


def _size(swin: Optional[SwinWeights], preset: Optional[str]) -> str:
    if preset is not None:
        return SIZE_NAMES[preset]
    if swin is None:
        return "unrecognised Swin sizes"
    return f"Swin embed {swin.embed_dim}, depths {'-'.join(map(str, swin.depths))}, window {swin.window}"


def _crm(obj: Any) -> Optional[Found]:
    layout = ("crm-lightning" if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) else
              "crm-detectron2" if isinstance(obj, dict) and isinstance(obj.get("model"), dict) else "crm-state-dict")
    state = unwrap_state_dict(obj)
    if state is not None and all(k.startswith("network.") for k in state):
        state = {k[len("network."):]: v for k, v in state.items()}
    if state is None or "backbone.RGB_branch.patch_embed.proj.weight" not in state:
        return None
    branch = "backbone.RGB_branch."
    swin = swin_imagenet({k[len(branch):]: v for k, v in state.items() if k.startswith(branch)})
    preset = preset_of(swin) if swin else None
    classes = state.get("sem_seg_head.predictor.class_embed.weight")
    notes = ()
    if isinstance(obj, dict) and "hyper_parameters" in obj:
        notes = ("its hyper_parameters (the detectron2 training config) were read as plain data; no code ran",)
    return Found("crm", preset, None if classes is None else int(classes.shape[0]) - 1, layout,
                 f"{WRAPPINGS[layout]}, {_size(swin, preset)} ({len(state)} tensors)", "imagenet", state, notes=notes)


def _imagenet(obj: Any) -> Optional[Found]:
    swin = swin_imagenet(obj)
    if swin is None:
        return None
    preset = preset_of(swin)
    return Found("crm", preset, None, f"swin-{swin.layout}", f"{swin.describe()} ({len(swin.state)} backbone tensors)",
                 "imagenet", swin.state, backbone_only=True)


def identify(obj: Any) -> Optional[Found]:
    """A loaded file as a CRM checkpoint (any of its three layouts) or Swin ImageNet weights; None if neither."""
    return _crm(obj) or _imagenet(obj)


def _check_index(key: str, value: torch.Tensor) -> None:
    """A file's relative_position_index buffer must be the one our encoders rebuild (it is not learned)."""
    window = int(round(value.shape[0] ** 0.5)) if value.dim() == 2 else 0
    if window < 1 or not torch.equal(value.long(), relative_position_index(window)):
        raise CheckpointError(f"has a '{key}' that is not Swin's relative position index for its window; "
                              f"the file is damaged or from another Swin variant")


def to_model(found: Found, model: nn.Module) -> dict[str, torch.Tensor]:
    """The file's tensors under rgbt-bench CRM names: official names renamed (RULES), unused ones dropped
    (DROPPED), relative position indices checked against the ones the encoders rebuild."""
    kept = {}
    for key, value in found.state.items():
        if key.endswith(".relative_position_index"):
            _check_index(key, value)
        if not any(p.search(key) for p in DROPPED):
            kept[key] = value
    return rename(kept, RULES)


IMPORTER = Importer("crm", "an official CRM_RGBTSeg checkpoint (PyTorch-Lightning .ckpt, a bare state dict or "
                           "{'model': state_dict}), or Swin ImageNet weights (microsoft .pth, Detectron2 .pkl, "
                           "timm) as a training start", identify, to_model)
