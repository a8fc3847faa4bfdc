"""The released MFNet weights (haqishen/MFNet-pytorch, weights/MFNet/final.pth) onto rgbt_bench.models.mfnet.

The file is a bare state dict of the port's model/MFNet.py: conv units `conv1_{rgb,inf}`, `conv2_1_*`,
`conv2_2_*`, `conv3_1_*`, `conv3_2_*`, mini-inception blocks `conv4_*` / `conv5_*` (each
`conv{1,2,3}_{left,right}`) and the decoder `decode4`..`decode1`, every unit as `.conv` (with bias) + `.bn`
(228 tensors: BatchNorm without num_batches_tracked, saved by PyTorch 0.4). Our modules, in the same order:
encoder_{rgb,thermal}.stem / down2.{0,1} / down3.{0,1} / down4 / center (`branches.{k-1}.{0 left, 1 right}`),
up3 (= decode4), up2, up1, classify (= decode1); `.0` is the conv and `.1` the BatchNorm.
Input convention: `unit` (the port's util/MF_dataset.py divides the 4-channel PNG by 255).
"""
from __future__ import annotations

import re
from typing import Any, Optional

import torch
from torch import nn

from ...errors import CheckpointError
from ..mfnet import MFNET_PRESETS
from ..resnet import unwrap_state_dict
from .found import Found, Importer

BRANCHES = {"rgb": "rgb", "inf": "thermal"}
DECODER = {"4": "up3.conv", "3": "up2.conv", "2": "up1.conv", "1": "classify"}
_KEY = re.compile(r"^(?P<unit>.+)\.(?P<layer>conv|bn)\.(?P<param>\w+)$")


def _unit(official: str) -> Optional[str]:
    """Our module path for one of the port's conv units, None for a name the port does not have."""
    if m := re.fullmatch(r"conv1_(rgb|inf)", official):
        return f"encoder_{BRANCHES[m[1]]}.stem"
    if m := re.fullmatch(r"conv([23])_([12])_(rgb|inf)", official):
        return f"encoder_{BRANCHES[m[3]]}.down{m[1]}.{int(m[2]) - 1}"
    if m := re.fullmatch(r"conv([45])_(rgb|inf)\.conv([123])_(left|right)", official):
        block = "down4" if m[1] == "4" else "center"
        return f"encoder_{BRANCHES[m[2]]}.{block}.branches.{int(m[3]) - 1}.{0 if m[4] == 'left' else 1}"
    if m := re.fullmatch(r"decode([1-4])", official):
        return DECODER[m[1]]
    return None


def our_name(key: str) -> Optional[str]:
    """The rgbt-bench state-dict name of one of the port's tensor names (None: not an MFNet-pytorch name)."""
    m = _KEY.match(key)
    unit = _unit(m["unit"]) if m else None
    return None if unit is None else f"{unit}.{0 if m['layer'] == 'conv' else 1}.{m['param']}"


def _widths(state: dict[str, torch.Tensor], branch: str) -> tuple[int, ...]:
    out = lambda name: int(state[f"{name}.conv.weight"].shape[0])  # noqa: E731
    return (out(f"conv1_{branch}"), out(f"conv2_1_{branch}"), out(f"conv3_1_{branch}"),
            2 * out(f"conv4_{branch}.conv1_left"), 2 * out(f"conv5_{branch}.conv1_left"))


def identify(obj: Any) -> Optional[Found]:
    """A loaded file as an MFNet-pytorch state dict, with the preset its widths match; None if not one."""
    state = unwrap_state_dict(obj)
    if state is None or "conv1_rgb.conv.weight" not in state or "decode1.conv.weight" not in state:
        return None
    try:
        widths = (_widths(state, "rgb"), _widths(state, "inf"))
    except KeyError:
        widths = None
    preset = next((p for p, w in MFNET_PRESETS.items() if w == widths), None)
    size = {"mfnet": "", "tiny": " at half widths (preset tiny)"}.get(preset, " of other widths")
    return Found("mfnet", preset, int(state["decode1.conv.weight"].shape[0]), "mfnet-pytorch",
                 f"an MFNet-pytorch state dict{size} ({len(state)} tensors)", "unit", state)


def to_model(found: Found, model: nn.Module) -> dict[str, torch.Tensor]:
    """The file's tensors under rgbt-bench MFNet names (our_name); CheckpointError on a name the port lacks."""
    out = {}
    for key, value in found.state.items():
        name = our_name(key)
        if name is None:
            raise CheckpointError(f"has tensor '{key}', which MFNet-pytorch's model/MFNet.py does not have")
        out[name] = value
    return out


IMPORTER = Importer("mfnet", "the MFNet-pytorch weights/MFNet/final.pth (a bare state dict)", identify, to_model)
