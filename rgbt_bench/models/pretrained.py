"""Published Swin ImageNet weights (microsoft/Swin-Transformer .pth files) from a local file into a Swin encoder.

The file is read with torch.load(weights_only=True); its tensors sit under "model" (official releases),
"state_dict", or at the top level. What is kept, as in Mask2Former / CRM
(Mask2Former tools/convert-pretrained-swin-model-to-d2.py):
- every backbone tensor with its official name (patch_embed, layers.N.blocks.M..., layers.N.downsample...);
- dropped: the classifier `head.*`, the classifier's final `norm.*`, and the buffers the encoder rebuilds
  (`relative_position_index`, `attn_mask`); the per-output norms norm0..norm3 keep their initialisation;
- an encoder with a different input channel count (CRM's 1-channel thermal encoder) gets the RGB
  patch-embedding weight averaged over its input channels, repeated to the encoder's channel count
  ("Thermal patch-embed weight = RGB weight averaged over channels").
No network access: the user downloads the file (e.g. swin_tiny_patch4_window7_224.pth) themselves.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import describe_mismatch, read_torch_file
from ..errors import CheckpointError
from .swin import SwinTransformer

DROPPED_PREFIXES = ("head.", "norm.")
REBUILT_SUFFIXES = ("relative_position_index", "attn_mask")
OUTPUT_NORMS = ("norm0.", "norm1.", "norm2.", "norm3.")


def read_swin_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone tensors of an official Swin checkpoint, keyed by official name (see module doc)."""
    path = Path(path)
    raw = read_torch_file(path, "pretrained Swin weights",
                          "a .pth file from microsoft/Swin-Transformer (e.g. swin_tiny_patch4_window7_224.pth)")
    state = raw
    if isinstance(raw, dict):
        for key in ("model", "state_dict"):
            if isinstance(raw.get(key), dict):
                state = raw[key]
                break
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"pretrained Swin weights {path} hold no tensor dictionary; expected "
                              f"{{'model': state_dict}} as in microsoft/Swin-Transformer releases")
    return {k: v for k, v in state.items()
            if isinstance(v, torch.Tensor) and not k.startswith(DROPPED_PREFIXES) and not k.endswith(REBUILT_SUFFIXES)}


def adapt_patch_embed(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """[C, 3, p, p] RGB patch-embedding weight -> [C, in_chans, p, p]: channel mean, repeated."""
    if weight.shape[1] == in_chans:
        return weight
    return weight.mean(dim=1, keepdim=True).repeat(1, in_chans, 1, 1)


@torch.no_grad()
def load_swin_pretrained(encoder: SwinTransformer, path: str | Path) -> list[str]:
    """Copy the weights in `path` into `encoder`; returns the encoder keys left at initialisation (norm0-3).

    Raises CheckpointError naming the file and the first mismatch when the file is another architecture.
    """
    weights = read_swin_weights(path)
    own = encoder.state_dict()
    in_chans = encoder.patch_embed.proj.in_channels
    if "patch_embed.proj.weight" in weights:
        weights["patch_embed.proj.weight"] = adapt_patch_embed(weights["patch_embed.proj.weight"], in_chans)
    missing = [k for k in own if k not in weights and not k.startswith(OUTPUT_NORMS)]
    mismatch = describe_mismatch(own, weights, missing, [k for k in weights if k not in own],
                                 given_name="file", own_name="encoder")
    if mismatch:
        raise CheckpointError(f"pretrained Swin weights {path} do not fit this encoder: {mismatch}; "
                              f"is it the same Swin size (T/S/B) with window 7?")
    for k, v in weights.items():
        own[k].copy_(v.to(own[k].dtype))
    return [k for k in own if k not in weights]


__all__ = ["read_swin_weights", "adapt_patch_embed", "load_swin_pretrained"]
