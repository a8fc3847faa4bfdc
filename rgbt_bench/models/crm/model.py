"""CRM: Complementary Random Masking for RGB-Thermal semantic segmentation (Shin et al., ICRA 2024).

As published (official code UkcheolShin/CRM_RGBTSeg):
- two unshared Swin encoders, RGB (3 channels) and thermal (1 channel), inputs normalised on the 0-255
  scale (mean 123.675, 116.28, 103.53 / 127, std 58.395, 57.12, 57.375 / 60) and zero-padded to a
  multiple of 32 after normalisation (the official size_divisibility); outputs are cropped back;
- fusion: element-wise MAX of the RGB and thermal features at each of the 4 scales, then a BatchNorm2d
  per scale ("add" selectable);
- one Mask2Former head shared by the fused, RGB-only and thermal-only paths. As in the official
  RGBT_D2SwinTransformer, the single-modality paths feed the branch's own features (after Swin's output
  LayerNorm) to the head directly: the per-scale BatchNorm belongs to the fusion and is NOT applied to
  them;
- training (`loss`): a clean and a masked pass every iteration; the masks come from
  rgbt_bench.models.masking (32-px patches, ratio 0.5, strategy rand_comp) and replace patch-embedded
  features (stride 4) by a learnable mask token per branch; the objective is crm.loss.CRMLoss
  (`masking=False`: the clean pass and its terms only, the ablation control `crm_nomask`);
- inference (`forward`): fused branch only, never masked; semantic map
  einsum(softmax(class)[..., :-1], sigmoid(mask)) at input resolution.

Ignored and padded pixels in the loss (`ignore_mode`, recorded with the model kwargs): labels are padded
with the ignore index to the padded input size. With "official" (the default, as CRM_RGBTSeg's
prepare_targets zero-pads the ground-truth masks) ignored and padded pixels are negatives of every mask
in the BCE / dice and in the matching costs, so the official 240x320 MFNet crops padded to 256x320 train
their 16 padded rows towards "no mask"; with "valid" both are left out of the mask terms. The padded strip
is cropped from every prediction either way.

Mask randomness is explicit: with `seed` the model owns a torch.Generator seeded with it (the trainer
saves and restores its state for exact resume); without it masks draw from torch's global generator,
which the trainer seeds. `loss(..., generator=g)` overrides both. The same generator drives the
Mask2Former loss's point sampling. Under DDP, ranks seeded alike draw the same mask sequence, each for
its own (different) images.

Compute layout (same numbers as the official sequence of calls): the clean and the masked images go
through each encoder as one 2B batch (Swin uses only per-sample LayerNorm, and the stochastic-depth draws
are per sample), the fusion BatchNorm is applied to the clean and the masked halves separately, as the
official two backbone calls do, and the head runs once on all six inputs stacked (6B); its GroupNorm /
LayerNorm / attention act per sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ...errors import ConfigError
from ..mask2former import Mask2FormerHead, Mask2FormerLoss, semantic_inference
from ..mask2former.matcher import check_ignore_mode
from ..masking import STRATEGIES, complementary_masks, grid_size
from ..normalize import crop_to, normalize_rgb, normalize_thermal, pad_to_multiple
from ..pretrained import load_swin_pretrained
from ..swin import SWIN_PRESETS, SwinConfig
from .backbone import RGBTSwinBackbone
from .loss import BRANCHES, CLEAN_BRANCHES, CRMLoss

PAD_MULTIPLE = 32  # official MASK_FORMER.SIZE_DIVISIBILITY
PATCH_STRIDE = 4  # Swin patch embedding: masks act on the stride-4 map
DEFAULT_IGNORE = 255  # official SEM_SEG_HEAD.IGNORE_VALUE, used to pad labels when the caller gives none


@dataclass(frozen=True)
class CRMPreset:
    """Encoder and head sizes of one preset."""

    swin: SwinConfig
    head: dict = field(default_factory=dict)
    num_points: int = 12544


# CRM_RGBTSeg configs (Swin-T/S/B) and Mask2Former defaults: Swin-T/S/B encoders; head hidden 256, 100 queries, 8 heads,
# FFN 2048, 9 decoder layers, 6 pixel-decoder layers, 12544 sampled points. "tiny" is for CPU tests and
# quick experiments: a training step at 120x160, batch 2 takes ~0.2 CPU-seconds; no stochastic depth.
_PAPER_HEAD = dict(hidden_dim=256, num_queries=100, nheads=8, dim_feedforward=2048, dec_layers=9,
                   enc_layers=6, mask_dim=256, enc_dim_feedforward=1024, n_points=4)
PRESETS: dict[str, CRMPreset] = {
    "tiny": CRMPreset(SwinConfig(32, (1, 1, 1, 1), (1, 2, 4, 8), window_size=7, drop_path=0.0),
                      dict(hidden_dim=32, num_queries=12, nheads=2, dim_feedforward=64, dec_layers=2,
                           enc_layers=1, mask_dim=32, enc_dim_feedforward=64, n_points=2),
                      num_points=1024),
    "swin_t": CRMPreset(SWIN_PRESETS["swin_t"], _PAPER_HEAD),
    "swin_s": CRMPreset(SWIN_PRESETS["swin_s"], _PAPER_HEAD),
    "swin_b": CRMPreset(SWIN_PRESETS["swin_b"], _PAPER_HEAD),
}
OPTIONS = ("fusion", "w_mws", "w_sdc", "w_sdn", "mask_ratio", "mask_patch", "mask_strategy", "seed",
           "pretrained", "drop_path", "ignore_mode", "masking")


def _split(outputs: dict, n: int) -> list[dict]:
    """Split a head output computed on n stacked batches into n outputs (aux_outputs included)."""
    parts: list[dict] = [{} for _ in range(n)]
    for key, value in outputs.items():
        if key == "aux_outputs":
            per_layer = [_split(aux, n) for aux in value]
            for j in range(n):
                parts[j][key] = [layer[j] for layer in per_layer]
        else:
            for j, piece in enumerate(value.tensor_split(n)):
                parts[j][key] = piece
    return parts


class CRM(nn.Module):
    """Two Swin encoders, MAX (or ADD) fusion + BatchNorm per scale, a shared Mask2Former head."""

    input_convention = "imagenet"  # the configs' PIXEL_MEAN / PIXEL_STD (rgbt_bench.models.normalize)

    def __init__(self, num_classes: int, preset: CRMPreset, fusion: str = "max", w_mws: float = 1.0,
                 w_sdc: float = 1.0, w_sdn: float = 1.0, mask_ratio: float = 0.5, mask_patch: int = 32,
                 mask_strategy: str = "rand_comp", seed: Optional[int] = None, drop_path: Optional[float] = None,
                 ignore_mode: str = "official", masking: bool = True):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"CRM needs num_classes >= 1, got {num_classes}")
        for name, w in (("w_mws", w_mws), ("w_sdc", w_sdc), ("w_sdn", w_sdn)):
            if not w >= 0:
                raise ConfigError(f"CRM loss weight {name} must be >= 0, got {w}")
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"CRM mask_ratio must be in (0, 1), got {mask_ratio}")
        if mask_patch < PATCH_STRIDE or mask_patch % PATCH_STRIDE:
            raise ConfigError(f"CRM mask_patch must be a positive multiple of the patch stride {PATCH_STRIDE} "
                              f"pixels, got {mask_patch}")
        if mask_strategy not in STRATEGIES:
            raise ConfigError(f"unknown mask strategy '{mask_strategy}'; expected one of {', '.join(STRATEGIES)}")
        self.ignore_mode = check_ignore_mode(ignore_mode)
        self.num_classes = num_classes
        self.masking = bool(masking)
        self.mask_ratio, self.mask_patch, self.mask_strategy = mask_ratio, mask_patch, mask_strategy
        self.mask_generator = torch.Generator().manual_seed(seed) if seed is not None else None

        self.backbone = RGBTSwinBackbone(preset.swin, fusion, drop_path)
        self.head = Mask2FormerHead(self.backbone.channels, num_classes, **preset.head)
        criterion = Mask2FormerLoss(num_classes, num_points=preset.num_points, ignore_mode=ignore_mode)
        self.objective = CRMLoss(criterion, w_mws, w_sdc, w_sdn)

    def load_pretrained(self, path: str | Path) -> None:
        """Initialise both encoders from a Swin ImageNet .pth (thermal: channel-mean patch embedding)."""
        load_swin_pretrained(self.backbone.rgb_encoder, path)
        load_swin_pretrained(self.backbone.thermal_encoder, path)

    def _prepare(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if rgb.dim() != 4 or rgb.shape[1] != 3 or thermal.dim() != 4 or thermal.shape[1] != 1 \
                or rgb.shape[0] != thermal.shape[0] or rgb.shape[-2:] != thermal.shape[-2:]:
            raise ConfigError(f"CRM expects rgb [B,3,H,W] and thermal [B,1,H,W] of one size, got "
                              f"{tuple(rgb.shape)} and {tuple(thermal.shape)}")
        return (pad_to_multiple(normalize_rgb(rgb), PAD_MULTIPLE),
                pad_to_multiple(normalize_thermal(thermal), PAD_MULTIPLE))

    def _semantic(self, outputs: dict, size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
        return crop_to(semantic_inference(outputs["pred_logits"], outputs["pred_masks"], padded), size)

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """Semantic score map [B, C, H, W] of the fused branch (no masking), argmax-able."""
        x_rgb, x_thermal = self._prepare(rgb, thermal)
        fused, _, _ = self.backbone(x_rgb, x_thermal)
        return self._semantic(self.head(fused), tuple(rgb.shape[-2:]), tuple(x_rgb.shape[-2:]))

    def forward_single(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Semantic score map from one modality: the head on that branch's features (the RGB-only /
        thermal-only path of training); x is rgb [B,3,H,W] or thermal [B,1,H,W] in [0, 1]."""
        if modality == "rgb" and x.dim() == 4 and x.shape[1] == 3:
            xp, encoder = pad_to_multiple(normalize_rgb(x), PAD_MULTIPLE), self.backbone.rgb_encoder
        elif modality == "thermal" and x.dim() == 4 and x.shape[1] == 1:
            xp, encoder = pad_to_multiple(normalize_thermal(x), PAD_MULTIPLE), self.backbone.thermal_encoder
        else:
            raise ConfigError(f"CRM.forward_single expects modality 'rgb' with [B,3,H,W] or 'thermal' with "
                              f"[B,1,H,W], got '{modality}' with {tuple(x.shape)}")
        return self._semantic(self.head(encoder(xp)), tuple(x.shape[-2:]), tuple(xp.shape[-2:]))

    def draw_masks(self, batch_size: int, padded_hw: tuple[int, int], device: torch.device,
                   generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask_rgb, mask_thermal) [B,1,gh,gw] over the padded input, from `generator`, the model's
        own generator, or torch's global one, in that order."""
        return complementary_masks(batch_size, grid_size(*padded_hw, patch=self.mask_patch), self.mask_ratio,
                                   self.mask_strategy, generator=generator or self.mask_generator, device=device)

    def branch_outputs(self, rgb: torch.Tensor, thermal: torch.Tensor,
                       masks: tuple[torch.Tensor, torch.Tensor]) -> dict[str, dict]:
        """Head outputs of the six training paths (see BRANCHES) for normalised, padded inputs."""
        clean, masked = self.backbone.forward_clean_and_masked(rgb, thermal, masks, self.mask_patch // PATCH_STRIDE)
        paths = [*clean, *masked]  # in BRANCHES order
        stacked = [torch.cat([path[scale] for path in paths]) for scale in range(len(self.backbone.channels))]
        return dict(zip(BRANCHES, _split(self.head(stacked), len(BRANCHES))))

    def clean_outputs(self, rgb: torch.Tensor, thermal: torch.Tensor) -> dict[str, dict]:
        """Head outputs of the three clean paths (CLEAN_BRANCHES) for normalised, padded inputs: the
        training step without masking (the `crm_nomask` ablation)."""
        paths = self.backbone(rgb, thermal)
        stacked = [torch.cat([path[scale] for path in paths]) for scale in range(len(self.backbone.channels))]
        return dict(zip(CLEAN_BRANCHES, _split(self.head(stacked), len(CLEAN_BRANCHES))))

    def loss(self, rgb: torch.Tensor, thermal: torch.Tensor, label: torch.Tensor, ignore_index: Optional[int] = None,
             generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
        """CRM objective (crm.loss.CRMLoss) with freshly drawn masks: "loss" plus every term; with
        `masking` False, the objective of the three clean paths only (no masks drawn).

        In eval mode nothing is masked (masking is a training-only device): the loss is the
        segmentation loss of the clean fused branch, reported as both "loss" and "seg_fused".
        """
        x_rgb, x_thermal = self._prepare(rgb, thermal)
        if label.shape != (rgb.shape[0], *rgb.shape[-2:]):
            raise ConfigError(f"CRM label must be [B,H,W] = {(rgb.shape[0], *rgb.shape[-2:])}, "
                              f"got {tuple(label.shape)}")
        ignore = DEFAULT_IGNORE if ignore_index is None else ignore_index
        padded = tuple(x_rgb.shape[-2:])
        # padded pixels take the ignore index: negatives of every mask ("official"), left out ("valid")
        label = nn.functional.pad(label, (0, padded[1] - label.shape[-1], 0, padded[0] - label.shape[-2]),
                                  value=ignore)
        generator = generator or self.mask_generator
        if not self.training:
            fused, _, _ = self.backbone(x_rgb, x_thermal)
            seg = self.objective.criterion(self.head(fused), label, ignore, generator)["loss"]
            return {"loss": seg, "seg_fused": seg}
        if not self.masking:
            return self.objective(self.clean_outputs(x_rgb, x_thermal), label, ignore, generator)
        masks = self.draw_masks(rgb.shape[0], padded, rgb.device, generator)
        return self.objective(self.branch_outputs(x_rgb, x_thermal, masks), label, ignore, generator)


def build_crm(num_classes: int, preset: str = "tiny", **kwargs) -> CRM:
    """CRM for `num_classes` classes. Presets: tiny (CPU tests), swin_t, swin_s, swin_b (paper sizes).

    Options: fusion ("max" | "add"), w_mws / w_sdc / w_sdn (loss weights, 1.0), mask_ratio (0.5),
    mask_patch (32 px), mask_strategy ("rand_comp" | "comp" | "indiv"), seed (own mask generator),
    pretrained (path to a Swin ImageNet .pth for both encoders), drop_path (override the preset's),
    ignore_mode ("official" | "valid": ignored and padded pixels as mask negatives, or left out),
    masking (True; False trains the clean paths only, CRM's own control: registry entry `crm_nomask`).
    """
    if preset not in PRESETS:
        raise ConfigError(f"CRM has no preset '{preset}'; expected one of {', '.join(PRESETS)}")
    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"CRM got unknown option(s) {', '.join(unknown)}; expected some of {', '.join(OPTIONS)}")
    pretrained = kwargs.pop("pretrained", None)
    model = CRM(num_classes, PRESETS[preset], **kwargs)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model


__all__ = ["CRM", "CRMPreset", "PRESETS", "OPTIONS", "build_crm"]
