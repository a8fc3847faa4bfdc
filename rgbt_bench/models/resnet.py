"""ResNet encoders (He et al. 2016) with torchvision-compatible state-dict keys, built without weights.

The module layout (conv1, bn1, relu, maxpool, layer1..layer4, blocks with conv1/bn1/.../downsample.0/.1)
matches torchvision.models.resnet, so a published ImageNet state dict (e.g. resnet50-*.pth) loads with
`load_pretrained` once its classifier (fc.*) is dropped. There is no fc: these are encoders.
`base_width` scales every stage (64 = the published networks; smaller values give tiny test models).
`output_stride` 16 or 8 (default 32, the published encoders) drops the max-pool, and for 8 also conv1's stride:
every stage then runs at 2x or 4x the resolution, for images so small that a stride-32 map is a few cells
(120x160 gives 4x5). Weights are unchanged (pretrained ones load alike); compute grows ~4x or ~16x.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..checkpoint import read_torch_file
from ..errors import CheckpointError, ConfigError

OUTPUT_STRIDES = (8, 16, 32)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1-projected) shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision "ResNet v1.5"), 1x1 expand x4: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet encoder: stem (conv1/bn1/relu, stride 2), maxpool, four stages (strides 4, 8, 16, 32), or at
    `output_stride` 16 / 8 (module docstring) without the max-pool / and with a stride-1 conv1.

    Models that fuse after the stem (RTFNet) call `stem`, `maxpool` and `layer1..4` themselves;
    `forward` returns the four stage outputs. `stem_stride` is the stride of `stem`'s output.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int], in_channels: int = 3,
                 base_width: int = 64, output_stride: int = 32):
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, "
                              f"got {output_stride!r}")
        self.stem_stride = 1 if output_stride == 8 else 2
        self.inplanes = base_width
        self.conv1 = nn.Conv2d(in_channels, base_width, 7, self.stem_stride, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if output_stride == 32 else nn.Identity()
        self.layer1 = self._make_layer(block, base_width, layers[0], 1)
        self.layer2 = self._make_layer(block, base_width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, base_width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, base_width * 8, layers[3], 2)
        self.stem_channels = base_width
        self.stage_channels = tuple(base_width * m * block.expansion for m in (1, 2, 4, 8))
        self.out_channels = self.stage_channels[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 -> bn1 -> relu (stride `stem_stride`), before the max-pool."""
        return self.relu(self.bn1(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.stem(x))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats


ARCHS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


def build_resnet(arch: str, in_channels: int = 3, base_width: int = 64,
                 layers: Optional[Sequence[int]] = None, output_stride: int = 32) -> ResNet:
    """ResNet `arch` (a key of ARCHS) for `in_channels` inputs; `layers` overrides the block counts."""
    block, default_layers = ARCHS[arch]
    return ResNet(block, layers or default_layers, in_channels=in_channels, base_width=base_width,
                  output_stride=output_stride)


def _adapt_conv1(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Map the RGB conv1 kernel [C,3,k,k] to `in_channels` inputs.

    1 channel (thermal): the mean over RGB, as RTFNet and CRM initialise their thermal stems;
    4 channels (RGB-T early fusion): the RGB kernel followed by that mean.
    """
    mean = weight.mean(dim=1, keepdim=True)
    if in_channels == 1:
        return mean
    if in_channels == 4:
        return torch.cat([weight, mean], dim=1)
    return weight


@dataclass(frozen=True)
class ResNetShape:
    """The ResNet a set of torchvision-named tensors implies: block type, stem width and blocks per stage."""

    bottleneck: bool
    base_width: int
    layers: tuple[int, ...]

    @property
    def arch(self) -> Optional[str]:
        """The torchvision name (resnet18 ... resnet152) of this block type and depth, None for others."""
        block = Bottleneck if self.bottleneck else BasicBlock
        return next((name for name, (b, layers) in ARCHS.items() if b is block and layers == self.layers), None)

    def describe(self) -> str:
        depth = self.arch.replace("resnet", "ResNet-") if self.arch else (
            f"ResNet with {'bottleneck' if self.bottleneck else 'basic'} blocks {'-'.join(map(str, self.layers))}")
        return depth if self.base_width == 64 else f"{depth} at base width {self.base_width}"


def resnet_shape(state: dict[str, torch.Tensor], prefix: str = "") -> Optional[ResNetShape]:
    """The ResNet whose tensors sit in `state` under `prefix` + torchvision names (conv1, layer1.0.conv1, ...),
    or None when there is none. `prefix` may end in '_' (RTFNet's encoder_rgb_conv1, encoder_rgb_layer1)."""
    conv1 = state.get(f"{prefix}conv1.weight")
    if conv1 is None or conv1.dim() != 4:
        return None
    layers = []
    for stage in range(1, 5):
        pattern = re.compile(rf"^{re.escape(prefix)}layer{stage}\.(\d+)\.")
        layers.append(len({m.group(1) for k in state if (m := pattern.match(k))}))
    if not all(layers):
        return None
    return ResNetShape(f"{prefix}layer1.0.conv3.weight" in state, int(conv1.shape[0]), tuple(layers))


def unwrap_state_dict(obj: Any) -> Optional[dict[str, torch.Tensor]]:
    """A file's {name: tensor} dict: the object itself, or its "state_dict" / "model" entry; a DataParallel
    'module.' prefix removed. None when there is no such dict."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        return None
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state or None


def read_pretrained(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict from `path` (read with weights_only), without its fc classifier."""
    path = Path(path).expanduser()
    state = unwrap_state_dict(read_torch_file(path, "pretrained weights", "a torchvision ResNet .pth file"))
    if state is None or resnet_shape(state) is None:
        raise CheckpointError(f"pretrained weights {path} are not a torchvision ResNet state dict; expected "
                              f"conv1.weight, bn1.*, layer1..layer4 tensors (e.g. resnet50-0676ba61.pth)")
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def load_pretrained(encoder: ResNet, path: str | Path) -> None:
    """Copy torchvision ImageNet weights from `path` into `encoder`, adapting conv1 to its input channels."""
    state = read_pretrained(path)
    if "conv1.weight" in state:
        state["conv1.weight"] = _adapt_conv1(state["conv1.weight"], encoder.conv1.in_channels)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shape:
        detail = (f"e.g. {shape[0]}: file {tuple(state[shape[0]].shape)} vs encoder {tuple(own[shape[0]].shape)}"
                  if shape else f"e.g. missing {missing[:1]}, unexpected {unexpected[:1]}")
        raise CheckpointError(f"pretrained weights {path} do not fit this ResNet encoder ({detail}); expected "
                              f"torchvision weights of the same depth at base width {encoder.stem_channels}")
    encoder.load_state_dict(state, strict=True)
