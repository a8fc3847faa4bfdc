"""Swin Transformer backbone (Liu et al., ICCV 2021) returning 4 feature maps at strides 4, 8, 16, 32.

The segmentation variant used by Mask2Former and CRM (Mask2Former mask2former/modeling/backbone/swin.py): window
attention with a relative position bias, shifted windows in every second block, inputs padded to window
multiples, patch merging between stages, stochastic depth rising linearly to `drop_path`, and a LayerNorm on
each of the 4 outputs (norm0..norm3). Parameter names follow microsoft/Swin-Transformer
(patch_embed.proj, layers.N.blocks.M.attn.qkv, ...attn.relative_position_bias_table,
layers.N.downsample.reduction, ...) so published ImageNet checkpoints load (see pretrained.py).

`SwinTransformer.forward(x, embed_hook=None)`: `embed_hook`, when given, transforms the patch-embedded map
[B, C, H/4, W/4] before the stages (CRM masks features there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class SwinConfig:
    """Architecture hyper-parameters of one Swin encoder."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int = 7
    mlp_ratio: float = 4.0
    drop_path: float = 0.3


# CRM_RGBTSeg / Mask2Former configs: Swin-T/S/B, window 7, drop_path 0.3.
SWIN_PRESETS: dict[str, SwinConfig] = {
    "swin_t": SwinConfig(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "swin_s": SwinConfig(96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "swin_b": SwinConfig(128, (2, 2, 18, 2), (4, 8, 16, 32)),
}


def trunc_normal_init(module: nn.Module) -> None:
    """Swin's initialisation: Linear weights truncated normal std 0.02, zero biases; LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole residual branch per sample with probability p.

    Draws from torch's global generator (seeded by the trainer); identity in eval mode or for p = 0.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x * torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """Two-layer GELU MLP of a transformer block (names fc1 / fc2 as in the official code)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def relative_position_index(window: int) -> torch.Tensor:
    """[w*w, w*w] index into the (2w-1)^2 bias table for every pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] (H, W multiples of window) -> [B * nW, window * window, C]."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of window_partition: [B * nW, window * window, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, plus a learned relative position bias per head."""

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"Swin stage width {dim} is not divisible by its {num_heads} attention heads")
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02, a=-0.04, b=0.04)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B*nW, N, C]; mask [nW, N, N] of 0 / -100 for shifted windows, or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1)  # [nH, N, N]
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.to(q.dtype)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.num_heads, n, n) + mask.to(q.dtype)[None, :, None]).view(bw, -1, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """(Shifted-)window attention and MLP, each pre-norm with a residual and stochastic depth."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, attn_mask: torch.Tensor) -> torch.Tensor:
        """x [B, H*W, C] -> same; `attn_mask` is the shifted-window mask for the padded map."""
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        pad_b, pad_r = (-h) % self.window, (-w) % self.window
        y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, self.window), attn_mask if self.shift else None),
                           self.window, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        y = y[:, :h, :w, :].reshape(b, h * w, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """[nW, w*w, w*w] additive mask (0 / -100) keeping attention inside regions that were adjacent
    before the cyclic shift (official Swin: 3x3 regions, -100 for pairs from different regions)."""
    regions = torch.zeros(1, hp, wp, 1, device=device)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in cuts:
        for ws in cuts:
            regions[:, hs, ws, :] = label
            label += 1
    ids = window_partition(regions, window).squeeze(-1)  # [nW, w*w]
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (padding odd sizes), LayerNorm, linear 4C -> 2C: halves the resolution."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """`depth` Swin blocks alternating plain and shifted windows, then an optional patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float,
                 drop_path: Sequence[float], downsample: bool):
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else self.shift, mlp_ratio, drop_path[i])
            for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """-> (stage output [B, h*w, C], input of the next stage, its height, its width)."""
        hp, wp = -(-h // self.window) * self.window, -(-w // self.window) * self.window
        mask = shifted_window_mask(hp, wp, self.window, self.shift, x.device) if len(self.blocks) > 1 else None
        for blk in self.blocks:
            x = blk(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """Non-overlapping 4x4 patches (input zero-padded to multiples of 4) -> linear projection -> LayerNorm."""

    def __init__(self, in_chans: int, embed_dim: int, patch: int = 4):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.patch, 0, (-h) % self.patch))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Hierarchical Swin encoder: in_chans image -> 4 maps with widths C, 2C, 4C, 8C at strides 4..32."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7, mlp_ratio: float = 4.0,
                 drop_path: float = 0.3):
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ConfigError(f"Swin needs 4 stages; got depths {list(depths)} and heads {list(num_heads)}")
        if window_size < 2:
            raise ConfigError(f"Swin window size must be >= 2, got {window_size}")
        self.embed_dim = embed_dim
        self.num_features = [embed_dim * 2 ** i for i in range(4)]
        self.patch_embed = PatchEmbed(in_chans, embed_dim)
        total = sum(depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]  # linear decay rule, as torch.linspace
        starts = [sum(depths[:i]) for i in range(4)]
        self.layers = nn.ModuleList(
            SwinStage(self.num_features[i], depths[i], num_heads[i], window_size, mlp_ratio,
                      rates[starts[i]:starts[i] + depths[i]], downsample=i < 3)
            for i in range(4))
        for i, c in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(c))
        self.apply(trunc_normal_init)

    @classmethod
    def from_config(cls, cfg: SwinConfig, in_chans: int, drop_path: Optional[float] = None) -> SwinTransformer:
        return cls(in_chans, cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.window_size, cfg.mlp_ratio,
                   cfg.drop_path if drop_path is None else drop_path)

    def forward(self, x: torch.Tensor,
                embed_hook: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> list[torch.Tensor]:
        """x [B, in_chans, H, W] -> [B, C*2^i, ceil(H/2^(i+2)), ...] for i = 0..3."""
        x = self.patch_embed(x)
        if embed_hook is not None:
            x = embed_hook(x)
        b, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x, nh, nw = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
            h, w = nh, nw
        return outs


__all__ = ["SwinConfig", "SWIN_PRESETS", "SwinTransformer", "DropPath", "PatchEmbed", "WindowAttention"]
