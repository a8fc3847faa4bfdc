"""CRM-style training (complementary random masking + self-distillation) for two-stream per-pixel baselines.

`TwoStreamBaseline` is the base of RTFNet and MFNet. Subclasses implement `segment(rgb, thermal, grid_rgb,
grid_thermal)` on normalised, padded inputs and pass each branch's stem output through `mask_stem`.
Every such model also takes `input_convention` ("imagenet" or "unit", see rgbt_bench.models.normalize),
kept as the attribute of that name.

With `crm_training=True` the model mirrors CRM's recipe (Shin et al., ICRA 2024) at the
granularity of a per-pixel network:
- masking happens on the FIRST-STAGE features, i.e. right after each branch's stem and before any
  fusion, as x*(1-m) + token*m with a learnable mask token per branch (zeros + trunc-normal std 0.02);
  the mask grid has `mask_patch`-pixel cells over the (padded) input and comes from
  rgbt_bench.models.masking.complementary_masks (strategy `mask_strategy`, ratio `mask_ratio`);
- single-modality paths ("RGB-only", "thermal-only") are the full model with the OTHER branch's stem
  features replaced by its mask token everywhere, i.e. a mask that covers the whole image. The same
  definition serves `forward_single`; without crm_training there is no learned token and the other
  branch's stem features are zero;
- loss = CE(clean fused) + w_mws*[CE(clean RGB-only) + CE(clean thermal-only)] + CE(masked fused)
  + w_sdc*L1(masked fused) + w_sdn*[L1(masked RGB-only) + L1(masked thermal-only)], each L1 against the
  clean fused logits, detached (the teacher gets no gradient from the distillation terms); plain L1 on
  raw per-pixel logits, no temperature. "Masked RGB-only" = the RGB stem under its mask M_rgb with the
  thermal stem fully masked (and vice versa).
The six variants run as ONE forward pass over a 6x batch, so BatchNorm sees all of them together.
Masks are drawn only inside `loss` in training mode; `forward` never masks. In eval mode, and for every
model without crm_training, `loss` is plain cross-entropy on the clean fused logits (every baseline
defines `loss` the same way, so their validation losses compare).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .masking import STRATEGIES, complementary_masks, grid_size, mask_features
from .normalize import check_input_convention, crop_to, normalize_input, pad_to_multiple

MODALITIES = ("rgb", "thermal")
CRM_OPTIONS = ("crm_training", "w_mws", "w_sdc", "w_sdn", "mask_ratio", "mask_patch", "mask_strategy")
OPTIONS = CRM_OPTIONS + ("input_convention",)


def check_crm_options(options: dict, model: str, own: tuple[str, ...] = ()) -> None:
    """Refuse model kwargs that are neither CRM-style options nor `input_convention`, naming them (e.g. a
    typo in --model-kwargs); `own` = the builder's other options, listed in the message."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"model '{model}' got unknown option(s) {', '.join(unknown)}; "
                          f"expected some of {', '.join(own + OPTIONS)}")


def segmentation_ce(logits: torch.Tensor, label: torch.Tensor, ignore_index: Optional[int]) -> torch.Tensor:
    """Pixel-wise cross-entropy in float32 (also under autocast); `ignore_index` None: every pixel counts."""
    return F.cross_entropy(logits.float(), label, ignore_index=-100 if ignore_index is None else ignore_index)


def self_distillation(teacher: torch.Tensor, *students: torch.Tensor) -> torch.Tensor:
    """Sum over students of mean |stopgrad(teacher) - student| (CRM's L_sdc / L_sdn on per-pixel logits)."""
    target = teacher.detach().float()
    return sum(F.l1_loss(s.float(), target) for s in students)


class TwoStreamBaseline(nn.Module):
    """An RGB encoder and a thermal encoder fused into per-pixel logits, with optional CRM-style training.

    `stem_channels` = (RGB, thermal) channel counts of the stem outputs that `mask_stem` receives;
    `pad_multiple` is the size multiple the architecture needs: `fit_input` brings inputs to it (zero-padding
    by default) and `fit_output` brings the logits back to the input size (cropping by default);
    `stem_stride` is the stride of those stem outputs (a `mask_patch` cell covers mask_patch/stem_stride
    feature cells, also in a short last row or column).
    """

    pad_multiple = 32
    stem_stride = 2
    fit_input = staticmethod(pad_to_multiple)
    fit_output = staticmethod(crop_to)

    def __init__(self, num_classes: int, stem_channels: tuple[int, int], crm_training: bool = False,
                 w_mws: float = 1.0, w_sdc: float = 1.0, w_sdn: float = 1.0, mask_ratio: float = 0.5,
                 mask_patch: int = 32, mask_strategy: str = "rand_comp", input_convention: str = "imagenet"):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        for name, w in (("w_mws", w_mws), ("w_sdc", w_sdc), ("w_sdn", w_sdn)):
            if not w >= 0:
                raise ConfigError(f"{name} must be >= 0, got {w}")
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if mask_patch < 1 or mask_patch % self.stem_stride:
            raise ConfigError(f"mask_patch must be a positive multiple of {self.stem_stride} pixels (the stem "
                              f"stride), got {mask_patch}")
        if mask_strategy not in STRATEGIES:
            raise ConfigError(f"unknown mask_strategy '{mask_strategy}'; expected one of {', '.join(STRATEGIES)}")
        self.num_classes = num_classes
        self.input_convention = check_input_convention(input_convention)
        self.crm_training = bool(crm_training)
        self.w_mws, self.w_sdc, self.w_sdn = float(w_mws), float(w_sdc), float(w_sdn)
        self.mask_ratio, self.mask_patch, self.mask_strategy = float(mask_ratio), int(mask_patch), mask_strategy
        self.stem_channels = dict(zip(MODALITIES, stem_channels))
        if self.crm_training:
            self.mask_token_rgb = nn.Parameter(torch.zeros(1, stem_channels[0], 1, 1))
            self.mask_token_thermal = nn.Parameter(torch.zeros(1, stem_channels[1], 1, 1))
            nn.init.trunc_normal_(self.mask_token_rgb, std=0.02)
            nn.init.trunc_normal_(self.mask_token_thermal, std=0.02)

    def segment(self, rgb: torch.Tensor, thermal: torch.Tensor, grid_rgb: Optional[torch.Tensor],
                grid_thermal: Optional[torch.Tensor]) -> torch.Tensor:
        """Logits for normalised, padded inputs; each stem output goes through `mask_stem`."""
        raise NotImplementedError

    def mask_stem(self, x: torch.Tensor, grid: Optional[torch.Tensor], modality: str) -> torch.Tensor:
        """Replace the masked cells of a branch's stem features by its mask token (grid None: unchanged)."""
        if grid is None:
            return x
        token = getattr(self, f"mask_token_{modality}") if self.crm_training else x.new_zeros(1, x.shape[1], 1, 1)
        return mask_features(x, grid, token.to(x.dtype), cell=self.mask_patch // self.stem_stride)

    def mask_grid_size(self, h: int, w: int) -> tuple[int, int]:
        """Mask grid cells over an h x w input once brought to a multiple of `pad_multiple`."""
        m = self.pad_multiple
        return grid_size(math.ceil(h / m) * m, math.ceil(w / m) * m, patch=self.mask_patch)

    def _run(self, rgb: torch.Tensor, thermal: torch.Tensor, grid_rgb: Optional[torch.Tensor] = None,
             grid_thermal: Optional[torch.Tensor] = None) -> torch.Tensor:
        size = tuple(rgb.shape[-2:])
        r = self.fit_input(normalize_input(rgb, "rgb", self.input_convention), self.pad_multiple)
        t = self.fit_input(normalize_input(thermal, "thermal", self.input_convention), self.pad_multiple)
        return self.fit_output(self.segment(r, t, grid_rgb, grid_thermal), size)

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """rgb [B,3,H,W], thermal [B,1,H,W] in [0,1] -> logits [B,C,H,W]; never masks."""
        return self._run(rgb, thermal)

    def forward_single(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Logits from one modality: the other branch's stem features are its mask token everywhere."""
        if modality not in MODALITIES:
            raise ConfigError(f"modality must be 'rgb' or 'thermal', got '{modality}'")
        b, _, h, w = x.shape
        full = x.new_ones(b, 1, *self.mask_grid_size(h, w))
        if modality == "rgb":
            return self._run(x, x.new_zeros(b, 1, h, w), None, full)
        return self._run(x.new_zeros(b, 3, h, w), x, full, None)

    def loss(self, rgb: torch.Tensor, thermal: torch.Tensor, label: torch.Tensor,
             ignore_index: Optional[int] = None, generator: Optional[torch.Generator] = None
             ) -> dict[str, torch.Tensor]:
        """Training loss terms with "loss" = their weighted total (see the module docstring).

        `generator` draws the masks (None: torch's global RNG, which the trainer seeds).
        """
        if not (self.crm_training and self.training):
            ce = segmentation_ce(self._run(rgb, thermal), label, ignore_index)
            return {"loss": ce, "ce_fused": ce.detach()}
        b, _, h, w = rgb.shape
        grid_hw = self.mask_grid_size(h, w)
        mask_rgb, mask_thermal = complementary_masks(b, grid_hw, ratio=self.mask_ratio, strategy=self.mask_strategy,
                                                     generator=generator, device=rgb.device)
        mask_rgb, mask_thermal = mask_rgb.to(rgb.dtype), mask_thermal.to(rgb.dtype)
        keep = torch.zeros_like(mask_rgb)
        drop = torch.ones_like(mask_rgb)
        # variants: clean fused, clean RGB-only, clean thermal-only, masked fused, masked RGB-only, masked thermal-only
        grid_rgb = torch.cat([keep, keep, drop, mask_rgb, mask_rgb, drop])
        grid_thermal = torch.cat([keep, drop, keep, mask_thermal, drop, mask_thermal])
        logits = self._run(rgb.repeat(6, 1, 1, 1), thermal.repeat(6, 1, 1, 1), grid_rgb, grid_thermal)
        fused, rgb_only, thermal_only, m_fused, m_rgb, m_thermal = logits.chunk(6)
        terms = {
            "ce_fused": segmentation_ce(fused, label, ignore_index),
            "ce_rgb": segmentation_ce(rgb_only, label, ignore_index),
            "ce_thermal": segmentation_ce(thermal_only, label, ignore_index),
            "ce_masked": segmentation_ce(m_fused, label, ignore_index),
            "sdc": self_distillation(fused, m_fused),
            "sdn": self_distillation(fused, m_rgb, m_thermal),
        }
        total = (terms["ce_fused"] + self.w_mws * (terms["ce_rgb"] + terms["ce_thermal"]) + terms["ce_masked"]
                 + self.w_sdc * terms["sdc"] + self.w_sdn * terms["sdn"])
        return {"loss": total, **{k: v.detach() for k, v in terms.items()}}
