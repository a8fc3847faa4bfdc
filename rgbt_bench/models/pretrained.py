"""Published Swin ImageNet weights from a local file into a Swin encoder, whichever of the three layouts it has.

The layouts are recognised from their keys (`swin_imagenet`), not from the file name:
- microsoft/Swin-Transformer releases (e.g. swin_tiny_patch4_window7_224.pth): {"model": state_dict} with
  the official names (patch_embed, layers.N.blocks.M..., layers.N.downsample... at the end of stage N);
- the Detectron2-converted files that Mask2Former and CRM start from (Mask2Former
  tools/convert-pretrained-swin-model-to-d2.py, e.g. swin_tiny_patch4_window7_224.pkl): a plain pickle of
  {"model": the same state dict, "__author__": ..., "matching_heuristics": True}, tensors or numpy arrays;
- timm (huggingface/pytorch-image-models, timm/models/swin_transformer.py since 0.9): the official names
  except that patch merging belongs to the start of the next stage (timm's layers.{N+1}.downsample is the
  official layers.N.downsample; timm's checkpoint_filter_fn makes the same shift) and the classifier is
  head.fc. The 2x2 neighbour order of patch merging is the official one, so the tensors are used as they are.
What is kept, as in Mask2Former / CRM (CRM_RGBTSeg util/RGBTCheckpointer.py):
- every backbone tensor with its official name;
- dropped: the classifier `head.*`, the classifier's final `norm.*`, and the buffers the encoder rebuilds
  (`relative_position_index`, `attn_mask`); the per-output norms norm0..norm3 keep their initialisation;
- an encoder with a different input channel count (CRM's 1-channel thermal encoder) gets the RGB
  patch-embedding weight averaged over its input channels, repeated to the encoder's channel count.
No network access: the user downloads the file themselves (docs/published-weights.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..checkpoint import describe_mismatch, read_torch_file
from ..errors import CheckpointError
from .swin import SwinTransformer

DROPPED_PREFIXES = ("head.", "norm.")
REBUILT_SUFFIXES = ("relative_position_index", "attn_mask")
OUTPUT_NORMS = ("norm0.", "norm1.", "norm2.", "norm3.")
EXPECTED = ("a Swin ImageNet file: microsoft/Swin-Transformer .pth, the Detectron2-converted .pkl of "
            "Mask2Former / CRM, or timm weights (e.g. swin_tiny_patch4_window7_224.pth or .pkl)")
_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.")


@dataclass(frozen=True)
class SwinWeights:
    """Backbone tensors under official names, with the layout they came in and the architecture they imply."""

    state: dict[str, torch.Tensor]
    layout: str  # "microsoft" | "detectron2" | "timm"
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window: int

    def describe(self) -> str:
        source = {"microsoft": "microsoft/Swin-Transformer ImageNet weights",
                  "detectron2": "Detectron2-converted Swin ImageNet weights (.pkl)",
                  "timm": "timm Swin ImageNet weights"}[self.layout]
        return (f"{source} (embed {self.embed_dim}, depths {'-'.join(map(str, self.depths))}, "
                f"window {self.window})")


def _tensor_dict(obj: Any) -> Optional[dict[str, torch.Tensor]]:
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj) \
            and any(isinstance(v, torch.Tensor) for v in obj.values()):
        return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return None


def swin_imagenet(obj: Any) -> Optional[SwinWeights]:
    """The Swin ImageNet weights in a loaded file (any of the layouts above), or None when it holds none."""
    layout = "microsoft"
    inner = obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                inner = obj[key]
                layout = "detectron2" if "matching_heuristics" in obj or "__author__" in obj else layout
                break
    state = _tensor_dict(inner)
    if state is None or "patch_embed.proj.weight" not in state or not any(_BLOCK.match(k) for k in state):
        return None
    if not any(k.startswith("layers.0.downsample.") for k in state) \
            and any(k.startswith("layers.1.downsample.") for k in state):
        layout = "timm"
        state = {re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", k): v
                 for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES) and not k.endswith(REBUILT_SUFFIXES)}
    blocks: dict[int, set[int]] = {}
    for k in state:
        m = _BLOCK.match(k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    stages = range(max(blocks) + 1)
    tables = [state.get(f"layers.{i}.blocks.0.attn.relative_position_bias_table") for i in stages]
    if any(t is None or t.dim() != 2 for t in tables):
        return None
    window = (int(round(tables[0].shape[0] ** 0.5)) + 1) // 2
    return SwinWeights(state, layout, int(state["patch_embed.proj.weight"].shape[0]),
                       tuple(len(blocks.get(i, ())) for i in stages), tuple(int(t.shape[1]) for t in tables), window)


def read_swin_weights(path: str | Path) -> SwinWeights:
    """The Swin ImageNet weights in `path` (see module docstring); CheckpointError naming the file otherwise."""
    path = Path(path).expanduser()
    weights = swin_imagenet(read_torch_file(path, "pretrained Swin weights", EXPECTED, plain_pickles=True))
    if weights is None:
        raise CheckpointError(f"pretrained Swin weights {path} hold no Swin backbone tensors; expected {EXPECTED}")
    return weights


def adapt_patch_embed(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """[C, 3, p, p] RGB patch-embedding weight -> [C, in_chans, p, p]: channel mean, repeated."""
    if weight.shape[1] == in_chans:
        return weight
    return weight.mean(dim=1, keepdim=True).repeat(1, in_chans, 1, 1)


@torch.no_grad()
def load_swin_weights(encoder: SwinTransformer, weights: SwinWeights, source: str) -> list[str]:
    """Copy `weights` into `encoder`; returns the encoder keys left at initialisation (norm0-3).

    Raises CheckpointError naming `source` and the first mismatch when the weights are another architecture.
    """
    state = dict(weights.state)
    own = encoder.state_dict()
    in_chans = encoder.patch_embed.proj.in_channels
    state["patch_embed.proj.weight"] = adapt_patch_embed(state["patch_embed.proj.weight"], in_chans)
    missing = [k for k in own if k not in state and not k.startswith(OUTPUT_NORMS)]
    mismatch = describe_mismatch(own, state, missing, [k for k in state if k not in own],
                                 given_name="file", own_name="encoder")
    if mismatch:
        raise CheckpointError(f"pretrained Swin weights {source} do not fit this encoder: {mismatch}; found "
                              f"{weights.describe()}: is it the same Swin size (T/S/B) with window 7?")
    for k, v in state.items():
        own[k].copy_(v.to(own[k].dtype))
    return [k for k in own if k not in state]


def load_swin_pretrained(encoder: SwinTransformer, path: str | Path) -> list[str]:
    """Read `path` (any layout above) and copy it into `encoder`; see load_swin_weights."""
    return load_swin_weights(encoder, read_swin_weights(path), str(path))


__all__ = ["SwinWeights", "swin_imagenet", "read_swin_weights", "adapt_patch_embed", "load_swin_weights",
           "load_swin_pretrained"]
