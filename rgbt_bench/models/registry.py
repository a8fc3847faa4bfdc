"""Model registry: built-in models by name, or any user model given as 'package.module:build_fn'.

Model contract (README "Bring your own model"):
- ``build_fn(num_classes: int, preset: str = "tiny", **kwargs) -> nn.Module``;
- ``model(rgb, thermal) -> logits [B, C, H, W]`` at input resolution, with rgb [B,3,H,W] and
  thermal [B,1,H,W] float32 in [0,1]; the model normalises its own inputs;
- optional ``model.loss(rgb, thermal, label, ignore_index) -> dict[str, Tensor]`` with a "loss" key
  (used by training instead of plain cross-entropy, e.g. CRM's Mask2Former + self-distillation loss);
- optional ``model.forward_single(x, modality)`` with modality "rgb" or "thermal" for models that can
  run on one modality.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: where its builder lives and what it is."""

    name: str
    target: str  # "module:build_fn"
    modalities: tuple[str, ...]  # subset of ("rgb", "thermal")
    presets: tuple[str, ...]
    paper: str
    description: str


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("crm", "rgbt_bench.models.crm.model:build_crm", ("rgb", "thermal"),
                   ("tiny", "swin_t", "swin_s", "swin_b"),
                   "Shin et al., Complementary Random Masking for RGB-Thermal Semantic Segmentation, ICRA 2024",
                   "Two Swin encoders, MAX fusion, Mask2Former head, complementary random masking + self-distillation"),
        ModelEntry("rtfnet", "rgbt_bench.models.rtfnet:build_rtfnet", ("rgb", "thermal"),
                   ("tiny", "rtfnet50", "rtfnet152"),
                   "Sun et al., RTFNet: RGB-Thermal Fusion Network for Semantic Segmentation, RA-L 2019",
                   "Two ResNet encoders, thermal added into RGB at each stage, upsampling decoder"),
        ModelEntry("mfnet", "rgbt_bench.models.mfnet:build_mfnet", ("rgb", "thermal"), ("tiny", "mfnet"),
                   "Ha et al., MFNet: Towards Real-Time Semantic Segmentation for Autonomous Vehicles "
                   "with Multi-Spectral Scenes, IROS 2017",
                   "Lightweight two-branch encoder with mini-inception blocks, concatenation fusion"),
        ModelEntry("early_fusion", "rgbt_bench.models.single_stream:build_early_fusion", ("rgb", "thermal"),
                   ("tiny", "resnet50"), "Early fusion baseline (4-channel input), e.g. Ha et al. 2017",
                   "One encoder-decoder on the concatenated 4-channel RGB-T input"),
        ModelEntry("rgb_only", "rgbt_bench.models.single_stream:build_rgb_only", ("rgb",),
                   ("tiny", "resnet50"), "Single-modality baseline", "Encoder-decoder on RGB alone"),
        ModelEntry("thermal_only", "rgbt_bench.models.single_stream:build_thermal_only", ("thermal",),
                   ("tiny", "resnet50"), "Single-modality baseline", "Encoder-decoder on thermal alone"),
    ]
}


def _import_target(target: str) -> Callable[..., nn.Module]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"model '{target}' is neither a registered name nor 'package.module:build_fn'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}' for model '{target}': {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ConfigError(f"module '{module_name}' has no callable '{attr}' (model '{target}')")
    return fn


def resolve_builder(spec: str) -> Callable[..., nn.Module]:
    """The build function for a registered name or a 'module:fn' spec, with typo suggestions."""
    if ":" in spec:
        return _import_target(spec)
    if spec not in MODELS:
        close = difflib.get_close_matches(spec, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown model '{spec}'; expected one of {', '.join(MODELS)} "
                          f"or 'package.module:build_fn'.{hint}")
    return _import_target(MODELS[spec].target)


def build_model(spec: str, num_classes: int, preset: str = "tiny", **kwargs) -> nn.Module:
    """Build model `spec` for `num_classes` classes; user builders that take no preset get none."""
    if spec in MODELS and preset not in MODELS[spec].presets:
        raise ConfigError(f"model '{spec}' has no preset '{preset}'; expected one of {', '.join(MODELS[spec].presets)}")
    fn = resolve_builder(spec)
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if "preset" in params or takes_any:
        kwargs["preset"] = preset
    model = fn(num_classes=num_classes, **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model builder '{spec}' returned {type(model).__name__}, expected a torch.nn.Module")
    return model
