"""The released RTFNet weights (yuxiangsun/RTFNet, README "Pretrained weights": RTFNet_50 / RTFNet_152
final.pth) and torchvision ImageNet ResNets onto rgbt_bench.models.rtfnet.

The release is a bare state dict of model/RTFNet.py: two torchvision ResNets flattened into
`encoder_{rgb,thermal}_{conv1,bn1,layer1..layer4}.*` (the thermal conv1 has one input channel) and the
decoder `deconv1..deconv5.{0,1}.*` (TransBottleneck blocks, the second with `upsample.{0,1}`). Ours nests
the same modules: encoder_{rgb,thermal}.{conv1,bn1,layer1..4}.* and decoder.deconv1..5.*. RTFNet-50 has 846
tensors and 185,238,501 parameters, RTFNet-152 2070 tensors and 254,510,053 parameters (9 classes).
Input convention: `unit` (util/MF_dataset.py divides the 4-channel PNG by 255, no mean/std).

A torchvision ResNet ImageNet state dict (conv1, bn1, layer1..4, fc) is the training start of both encoders
(as RTFNet's models.resnetXX(pretrained=True)); it initialises the encoders only.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..resnet import ARCHS, Bottleneck, ResNetShape, resnet_shape, unwrap_state_dict
from ..rtfnet import RTFNET_PRESETS
from .found import Found, Importer, rename, rules

RULES = rules((r"^encoder_(rgb|thermal)_(conv1|bn1|layer[1-4])\.", r"encoder_\1.\2."),
              (r"^deconv([1-5])\.", r"decoder.deconv\1."))
NAMES = {"rtfnet50": "RTFNet-50", "rtfnet152": "RTFNet-152"}


def preset_of(shape: Optional[ResNetShape]) -> Optional[str]:
    """The RTFNet preset whose encoders have `shape`, None when none has."""
    for preset, (arch, width, layers) in RTFNET_PRESETS.items():
        block, default = ARCHS[arch]
        if shape == ResNetShape(block is Bottleneck, width, tuple(layers or default)):
            return preset
    return None


def _rtfnet(state: dict[str, torch.Tensor]) -> Optional[Found]:
    if "encoder_rgb_conv1.weight" not in state or not any(k.startswith("deconv5.") for k in state):
        return None
    shape = resnet_shape(state, "encoder_rgb_")
    preset = preset_of(shape)
    name = (f"an {NAMES[preset]} state dict" if preset in NAMES else
            "an RTFNet state dict at the tiny preset's sizes" if preset == "tiny" else
            f"an RTFNet state dict with {shape.describe() if shape else 'an unrecognised'} encoders")
    last = max((k for k in state if k.startswith("deconv5.") and k.endswith(".bn3.weight")), default=None)
    classes = int(state[last].shape[0]) if last else None
    return Found("rtfnet", preset, classes, "rtfnet-state-dict", f"{name} ({len(state)} tensors)", "unit", state)


def _torchvision(state: dict[str, torch.Tensor]) -> Optional[Found]:
    shape = resnet_shape(state)
    if shape is None:
        return None
    return Found("rtfnet", preset_of(shape), None, "resnet-torchvision",
                 f"torchvision {shape.describe()} ImageNet weights ({len(state)} tensors)", "imagenet", state,
                 backbone_only=True)


def identify(obj: Any) -> Optional[Found]:
    """A loaded file as an RTFNet state dict or torchvision ResNet ImageNet weights; None if neither."""
    state = unwrap_state_dict(obj)
    return None if state is None else _rtfnet(state) or _torchvision(state)


def to_model(found: Found, model: nn.Module) -> dict[str, torch.Tensor]:
    """The file's tensors under rgbt-bench RTFNet names (RULES)."""
    return rename(found.state, RULES)


IMPORTER = Importer("rtfnet", "a released RTFNet-50 / RTFNet-152 final.pth, or torchvision ResNet ImageNet "
                              "weights (e.g. resnet50-0676ba61.pth) as a training start", identify, to_model)
