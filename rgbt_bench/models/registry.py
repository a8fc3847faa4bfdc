"""Model registry: built-in models by name, or any user model given as 'package.module:build_fn'.

Model contract (README "Bring your own model"; checked for every registered model by
tests/test_model_contract.py):
- ``build_fn(num_classes: int, preset: str = "tiny", **kwargs) -> nn.Module``;
- ``model(rgb, thermal) -> logits [B, C, H, W]`` at input resolution, with rgb [B,3,H,W] and
  thermal [B,1,H,W] float32 in [0,1]; the model normalises its own inputs;
- optional ``model.loss(rgb, thermal, label, ignore_index) -> dict[str, Tensor]`` with a "loss" key
  (used by training instead of plain cross-entropy, e.g. CRM's Mask2Former + self-distillation loss);
- optional ``model.forward_single(x, modality)`` with modality "rgb" or "thermal" for models that can
  run on one modality.

Everything the harness knows about a built-in model is in its `ModelEntry` below; its presets are the
keys of a dict in the builder's own module, so a new size is added in one place.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from torch import nn

from ..errors import ConfigError
from ..registry import Registry, import_target
from .user_code import describe, is_user_spec, user_code

# Training iterations of a model whose entry does not say otherwise (rgbt_bench.training.config).
DEFAULT_ITERATIONS = 1000


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: where its builder lives, what it is, and how the harness treats it.

    `presets_attr`: name of the dict of presets in the builder's module (its keys, in order, are the
    presets). `iterations`: default training iterations of the tiny preset on the synthetic dataset
    (rgbt_bench.training.config). `step_cost`: cost of one training iteration relative to MFNet's (batch
    8, 60x80, one CPU thread; CRM ~0.35 s), so that `rgbt-bench run` starts the slowest runs first.
    `main`: trained and evaluated by `rgbt-bench run` by default. `importer`: 'module:attribute' of the
    `Importer` that converts the authors' published weights (rgbt_bench.models.published; None: none).
    `options`: builder kwargs that make this entry (a variant of another entry's architecture, see
    `variant`). `control`: the registered model that differs from this one only by leaving out CRM's
    masking and what needs it (the report's Ablations table pairs the two; None: no such model).
    """

    name: str
    target: str  # "module:build_fn"
    presets_attr: str
    modalities: tuple[str, ...]  # subset of ("rgb", "thermal")
    paper: str
    description: str
    iterations: int = DEFAULT_ITERATIONS
    step_cost: float = 1.0
    main: bool = True
    importer: Optional[str] = None
    options: Mapping[str, Any] = field(default_factory=dict)
    control: Optional[str] = None

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def presets(self) -> tuple[str, ...]:
        """The preset names, read from the builder's module (imports it)."""
        return tuple(import_target(f"{self.module}:{self.presets_attr}"))

    def variant(self, name: str, description: str, options: Mapping[str, Any], **facts: Any) -> ModelEntry:
        """This architecture and its presets under `name`, built with `options` (e.g. an ablation of its
        training); `facts` set other fields. Published weights are not imported into a variant."""
        return dataclasses.replace(self, name=name, description=description, options={**self.options, **options},
                                   **{"importer": None, "main": False, "control": None, **facts})


_CRM = ModelEntry(
    "crm", "rgbt_bench.models.crm.model:build_crm", "PRESETS", ("rgb", "thermal"),
    "Shin et al., Complementary Random Masking for RGB-Thermal Semantic Segmentation, ICRA 2024",
    "Two Swin encoders, MAX fusion, Mask2Former head, complementary random masking + self-distillation",
    iterations=900, step_cost=8.0, importer="rgbt_bench.models.published.crm:IMPORTER", control="crm_nomask")
_RTFNET = ModelEntry(
    "rtfnet", "rgbt_bench.models.rtfnet:build_rtfnet", "RTFNET_PRESETS", ("rgb", "thermal"),
    "Sun et al., RTFNet: RGB-Thermal Fusion Network for Semantic Segmentation, RA-L 2019",
    "Two ResNet encoders, thermal added into RGB at each stage, upsampling decoder", step_cost=2.0,
    importer="rgbt_bench.models.published.rtfnet:IMPORTER")
_MFNET = ModelEntry(
    "mfnet", "rgbt_bench.models.mfnet:build_mfnet", "MFNET_PRESETS", ("rgb", "thermal"),
    "Ha et al., MFNet: Towards Real-Time Semantic Segmentation for Autonomous Vehicles with Multi-Spectral "
    "Scenes, IROS 2017", "Lightweight two-branch encoder with mini-inception blocks, concatenation fusion",
    importer="rgbt_bench.models.published.mfnet:IMPORTER")
_MASKING = "CRM's complementary random masking + self-distillation, at the stem"

MODELS: Registry[ModelEntry] = Registry("model", {e.name: e for e in [
    _CRM,
    _CRM.variant("crm_nomask", "CRM trained without masking: clean fused + RGB-only + thermal-only losses "
                 "(ablation control)", {"masking": False}, step_cost=5.5, main=True),
    _CRM.variant("crm_nosd", "CRM with masking but no self-distillation (w_sdc = w_sdn = 0; ablation)",
                 {"w_sdc": 0.0, "w_sdn": 0.0}, control="crm_nomask"),
    _RTFNET,
    _RTFNET.variant("rtfnet_crm", f"RTFNet trained with {_MASKING}", {"crm_training": True}, step_cost=8.0,
                    main=True, control="rtfnet"),
    _MFNET,
    _MFNET.variant("mfnet_crm", f"MFNet trained with {_MASKING}", {"crm_training": True}, step_cost=4.5,
                   control="mfnet"),
    ModelEntry("early_fusion", "rgbt_bench.models.single_stream:build_early_fusion", "SINGLE_STREAM_PRESETS",
               ("rgb", "thermal"), "Early fusion baseline (4-channel input), e.g. Ha et al. 2017",
               "One encoder-decoder on the concatenated 4-channel RGB-T input"),
    ModelEntry("rgb_only", "rgbt_bench.models.single_stream:build_rgb_only", "SINGLE_STREAM_PRESETS", ("rgb",),
               "Single-modality baseline", "Encoder-decoder on RGB alone"),
    ModelEntry("thermal_only", "rgbt_bench.models.single_stream:build_thermal_only", "SINGLE_STREAM_PRESETS",
               ("thermal",), "Single-modality baseline", "Encoder-decoder on thermal alone"),
]}, alternative="or 'package.module:build_fn'")


def main_models() -> tuple[str, ...]:
    """The models `rgbt-bench run` trains and evaluates by default, in registry order."""
    return tuple(name for name, entry in MODELS.items() if entry.main)


def step_cost(spec: str) -> float:
    """Relative cost of one training iteration of `spec` (1.0 for user models)."""
    return MODELS[spec].step_cost if spec in MODELS else 1.0


def _import_hint(module_name: str, exc: ImportError) -> str:
    """For a module that is not found at all: where Python looks, and how to make it look in the right place."""
    missing = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or missing is None or \
            not (module_name == missing or module_name.startswith(f"{missing}.")):
        return f": {describe(exc)}"
    file = Path(*module_name.split(".")).with_suffix(".py")
    here = " (it is in the current directory, which is not on the import path)" if file.is_file() else ""
    return (f": no module named '{missing}' on the import path{here}; add the directory that holds "
            f"{file} to PYTHONPATH, e.g. PYTHONPATH=/path/to/dir rgbt-bench ...")


def _import_target(target: str) -> Callable[..., nn.Module]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"model '{target}' is neither a registered name nor 'package.module:build_fn'")
    try:
        fn = import_target(target)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}' for model '{target}'"
                          f"{_import_hint(module_name, exc)}") from exc
    except AttributeError:
        fn = None
    except Exception as exc:  # a SyntaxError or any exception raised while the module body runs
        raise ConfigError(f"cannot import module '{module_name}' for model '{target}': {describe(exc)}") from exc
    if fn is None or not callable(fn):
        raise ConfigError(f"module '{module_name}' has no callable '{attr}' (model '{target}')")
    return fn


def resolve_builder(spec: str) -> Callable[..., nn.Module]:
    """The build function for a registered name or a 'module:fn' spec, with typo suggestions."""
    if ":" in spec:
        return _import_target(spec)
    return _import_target(MODELS.lookup(spec).target)


def _call(fn: Callable[..., nn.Module], num_classes: int, kwargs: dict) -> str:
    """"build(num_classes=7, preset='tiny')": the call the harness makes, for messages."""
    args = ", ".join(f"{k}={v!r}" for k, v in {"num_classes": num_classes, **kwargs}.items())
    return f"{getattr(fn, '__name__', 'build_fn')}({args})"


def _check_signature(spec: str, fn: Callable[..., nn.Module], num_classes: int, kwargs: dict) -> None:
    """ConfigError when a user builder cannot be called with these arguments (before it runs)."""
    try:
        inspect.signature(fn).bind(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model builder '{spec}' cannot be called as {_call(fn, num_classes, kwargs)}: {exc}; "
                          "expected build_fn(num_classes, preset='tiny', **kwargs)") from None


def build_model(spec: str, num_classes: int, preset: str = "tiny", **kwargs) -> nn.Module:
    """Build model `spec` for `num_classes` classes with its entry's `options` (overridden by `kwargs`); user
    builders that take no preset get none.

    Args:
        spec: a registered model (`rgbt-bench models list`) or a user model 'package.module:build_fn'.
        num_classes: classes of the dataset the model will segment.
        preset: the size preset, 'tiny' (CPU-sized) or a published configuration such as CRM's 'swin_t'.
        **kwargs: builder options, e.g. `pretrained=PATH` for ImageNet encoder weights.

    Returns:
        The model with freshly initialised weights, in train mode. Called as model(rgb [B,3,H,W],
        thermal [B,1,H,W]), both float32 in [0, 1], it returns logits [B, num_classes, H, W] in eval mode.

    Raises:
        ConfigError: an unknown model (naming the closest one) or preset, or a user builder that cannot be
            imported, cannot take these arguments, fails or does not return an nn.Module.

    Example:
        >>> import torch
        >>> model = build_model("mfnet", num_classes=9).eval()
        >>> with torch.no_grad():
        ...     logits = model(torch.rand(2, 3, 32, 48), torch.rand(2, 1, 32, 48))
        >>> tuple(logits.shape)
        (2, 9, 32, 48)
    """
    if spec in MODELS and preset not in MODELS[spec].presets:
        raise ConfigError(f"model '{spec}' has no preset '{preset}'; expected one of {', '.join(MODELS[spec].presets)}")
    fn = resolve_builder(spec)
    if spec in MODELS:
        kwargs = {**MODELS[spec].options, **kwargs}
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if "preset" in params or takes_any:
        kwargs["preset"] = preset
    if is_user_spec(spec):
        _check_signature(spec, fn, num_classes, kwargs)
    with user_code(spec, _call(fn, num_classes, kwargs)):
        model = fn(num_classes=num_classes, **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model builder '{spec}' returned {type(model).__name__}, expected a torch.nn.Module")
    return model
