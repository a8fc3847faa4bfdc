"""Independent references of the released networks' forward passes, as functions of the OFFICIAL state dict.

Written from the authors' code, step by step, with torch.nn.functional only (nothing from rgbt_bench):
- `mfnet_forward`: haqishen/MFNet-pytorch model/MFNet.py, MFNet.forward (eval mode);
- `rtfnet_forward`: yuxiangsun/RTFNet model/RTFNet.py, RTFNet.forward with torchvision's ResNet blocks and
  TransBottleneck (eval mode).
Both take the 4-channel input the official code takes (RGB + thermal, the PNG divided by 255).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

State = dict[str, torch.Tensor]


def batch_norm(sd: State, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        training=False, eps=1e-5)


# ----------------------------------------------------------------------------------------------- MFNet
def mf_unit(sd: State, p: str, x: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """ConvBnLeakyRelu2d: 3x3 conv with bias (padding = dilation), BatchNorm, leaky_relu(0.2)."""
    x = F.conv2d(x, sd[f"{p}.conv.weight"], sd[f"{p}.conv.bias"], padding=dilation, dilation=dilation)
    return F.leaky_relu(batch_norm(sd, f"{p}.bn", x), negative_slope=0.2)


def mf_inception(sd: State, p: str, x: torch.Tensor) -> torch.Tensor:
    for i in (1, 2, 3):
        x = torch.cat((mf_unit(sd, f"{p}.conv{i}_left", x), mf_unit(sd, f"{p}.conv{i}_right", x, dilation=2)), 1)
    return x


def mf_encoder(sd: State, b: str, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = F.max_pool2d(mf_unit(sd, f"conv1_{b}", x), 2, 2)
    p2 = mf_unit(sd, f"conv2_2_{b}", mf_unit(sd, f"conv2_1_{b}", x))
    p3 = mf_unit(sd, f"conv3_2_{b}", mf_unit(sd, f"conv3_1_{b}", F.max_pool2d(p2, 2, 2)))
    p4 = mf_inception(sd, f"conv4_{b}", F.max_pool2d(p3, 2, 2))
    return p2, p3, p4, mf_inception(sd, f"conv5_{b}", F.max_pool2d(p4, 2, 2))


def mfnet_forward(sd: State, x: torch.Tensor) -> torch.Tensor:
    """x [B, 4, H, W] (H, W multiples of 16) -> logits [B, n_class, H, W]."""
    r2, r3, r4, r = mf_encoder(sd, "rgb", x[:, :3])
    t2, t3, t4, t = mf_encoder(sd, "inf", x[:, 3:])
    x = torch.cat((r, t), 1)
    up = lambda z: F.interpolate(z, scale_factor=2, mode="nearest")  # noqa: E731  (F.upsample in the original)
    x = mf_unit(sd, "decode4", up(x) + torch.cat((r4, t4), 1))
    x = mf_unit(sd, "decode3", up(x) + torch.cat((r3, t3), 1))
    x = mf_unit(sd, "decode2", up(x) + torch.cat((r2, t2), 1))
    return mf_unit(sd, "decode1", up(x))


# ----------------------------------------------------------------------------------------------- RTFNet
def resnet_block(sd: State, p: str, x: torch.Tensor, stride: int) -> torch.Tensor:
    """torchvision BasicBlock (stride on conv1) or Bottleneck (stride on the 3x3 conv2), eval mode."""
    bottleneck = f"{p}.conv3.weight" in sd
    identity = x
    if f"{p}.downsample.0.weight" in sd:
        identity = batch_norm(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride))
    if bottleneck:
        out = F.relu(batch_norm(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
        out = F.relu(batch_norm(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1)))
        out = batch_norm(sd, f"{p}.bn3", F.conv2d(out, sd[f"{p}.conv3.weight"]))
    else:
        out = F.relu(batch_norm(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1)))
        out = batch_norm(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1))
    return F.relu(out + identity)


def resnet_layer(sd: State, p: str, x: torch.Tensor, stage: int) -> torch.Tensor:
    j = 0
    while f"{p}.{j}.conv1.weight" in sd:
        x = resnet_block(sd, f"{p}.{j}", x, stride=2 if (stage > 1 and j == 0) else 1)
        j += 1
    return x


def trans_bottleneck(sd: State, p: str, x: torch.Tensor) -> torch.Tensor:
    upsample = f"{p}.upsample.0.weight" in sd
    out = F.relu(batch_norm(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
    out = F.relu(batch_norm(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1)))
    if upsample:
        out = F.conv_transpose2d(out, sd[f"{p}.conv3.weight"], stride=2)
        residual = batch_norm(sd, f"{p}.upsample.1", F.conv_transpose2d(x, sd[f"{p}.upsample.0.weight"], stride=2))
    else:
        out = F.conv2d(out, sd[f"{p}.conv3.weight"], padding=1)
        residual = x
    return F.relu(batch_norm(sd, f"{p}.bn3", out) + residual)


def rtfnet_forward(sd: State, x: torch.Tensor) -> torch.Tensor:
    """x [B, 4, H, W] (H, W multiples of 32) -> logits [B, n_class, H, W] (after the final ReLU)."""
    stem = lambda b, z: F.relu(batch_norm(sd, f"encoder_{b}_bn1",  # noqa: E731
                                          F.conv2d(z, sd[f"encoder_{b}_conv1.weight"], stride=2, padding=3)))
    rgb, thermal = stem("rgb", x[:, :3]), stem("thermal", x[:, 3:])
    rgb = F.max_pool2d(rgb + thermal, 3, 2, 1)
    thermal = F.max_pool2d(thermal, 3, 2, 1)
    for stage in (1, 2, 3, 4):
        rgb = resnet_layer(sd, f"encoder_rgb_layer{stage}", rgb, stage)
        thermal = resnet_layer(sd, f"encoder_thermal_layer{stage}", thermal, stage)
        rgb = rgb + thermal
    for i in range(1, 6):
        rgb = trans_bottleneck(sd, f"deconv{i}.1", trans_bottleneck(sd, f"deconv{i}.0", rgb))
    return rgb
