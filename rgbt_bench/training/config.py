"""TrainConfig: every knob of a training run, validated once, stored in each checkpoint.

The defaults are the `tiny_synthetic` recipe (recipes/tiny_synthetic.yaml; a test keeps the two equal);
`recipes/crm_paper.yaml` sets every published value instead (training.recipes.apply_recipe, docs/recipes.md).
The defaults follow the CRM recipe (CRM_RGBTSeg configs) where it transfers to tiny models trained from
scratch, and say so where they depart from it:
- AdamW, weight decay 0.05, poly LR (power 0.9) stepped per ITERATION (the official code steps per epoch);
- backbone LR x0.1 only when the model starts from trained weights (model kwarg ``pretrained`` or ``init``):
  the factor protects pretrained features and only slows a backbone trained from scratch;
- crop: the paper's crop for MFNet/KP/PST900, half the native size elsewhere (MFNet's 240x320 is half of
  480x640), so the synthetic 120x160 dataset trains on 60x80 crops;
- lr 3e-3 and gradient-norm clip 1.0 for tiny models trained from scratch (CRM: 1e-4 and 0.01 for
  pretrained Swin); measured on synthetic, 3e-3 beat 1e-3 for both CRM and RTFNet tiny;
- iterations: enough for a useful val mIoU on synthetic with the tiny preset in a few minutes of one CPU
  core. A CRM step (Swin + Mask2Former, six paths through the head) costs ~7x a baseline's; CRM defaults to
  900 iterations (~4-5 min; val mIoU 43 at 300, 52 at 750, 56 at 900 and still rising, measured
  2026-11-28) and the per-pixel baselines to 1000. Real datasets need --iterations (the paper: 35000).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import ConfigError
from ..models.registry import DEFAULT_ITERATIONS, MODELS

# Choices of the recipe-selected options (see TrainConfig).
NO_DECAY_SETS = ("broad", "official")
LR_STEPS = ("iteration", "epoch")
PHOTOMETRIC = ("default", "ssd")
SELECT_ON = ("val", "test")


@dataclass
class TrainConfig:
    """One training run. `batch_size` is the global batch, split evenly over DDP processes.

    `out` is the checkpoint the benchmark uses (best val mIoU; the last weights when the dataset has no
    val split); `<out stem>.last.pt` holds the latest full training state for `resume`.
    `iterations` None means the model's default (its registry entry's `iterations`, rgbt_bench.models;
    DEFAULT_ITERATIONS for a user model).
    `amp` None means on for CUDA, off for CPU. `save_every` None means every `eval_every` iterations.

    Recipe-selected options (the defaults keep the built-in behaviour):
    - `recipe`: the recipe the run was resolved from (name or YAML path; None: the values as given), and
      `recipe_overrides`: {field: the recipe's value} for each field set explicitly to something else;
    - `no_decay`: "broad" (norms, embeddings, every bias and 1-d parameter, position / query tables, mask
      tokens) or "official" (Mask2Former's build_optimizer: norm layers, nn.Embedding, relative-position
      and absolute position tables only);
    - `lr_step`: poly LR stepped per "iteration" or once per "epoch" (the official code; the factor
      (1 - epoch / iterations)^power then stays near 1); `warmup_iterations` counts those steps;
    - `scale_choices`: short side x one of these factors (detectron2 ResizeShortestEdge "choice") instead of
      a uniform factor in `scale_range`; `max_size` caps the longest side after scaling; `resize_antialias`
      antialiases downscaling (the official resize does not);
    - `photometric`: "default" (brightness / contrast / saturation, thermal contrast about the mean) or
      "ssd" (the official SSD-style distortion in random order with hue, thermal gain); `flip_prob`;
    - `eval_every_epochs`: evaluate every K epochs instead of every `eval_every` iterations;
    - `select_on`: the split that selects the best checkpoint, "val" or "test" (the published CRM numbers
      selected on test: optimistic, recorded and warned about);
    - `ignore_mode`: the CRM loss's handling of ignored / padded pixels, passed as a model kwarg when set
      (None: the model's default, CRM's "official"; checkpoints record the mode used as `ignore_mode`);
    - `init` / `init_sha256`: the checkpoint whose weights the run starts from (fine-tuning).
    """

    model: str = "crm"
    preset: str = "tiny"
    dataset: str = "synthetic"
    iterations: Optional[int] = None
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.05
    backbone_lr_mult: Optional[float] = None
    grad_clip: Optional[float] = 1.0
    poly_power: float = 0.9
    warmup_iterations: int = 0
    crop: Optional[tuple[int, int]] = None
    scale_range: tuple[float, float] = (0.5, 2.0)
    seed: int = 1024
    device: str = "auto"
    amp: Optional[bool] = None
    eval_every: int = 200
    eval_batch_size: int = 8
    save_every: Optional[int] = None
    out: Optional[str] = None
    resume: bool = False
    workers: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    crm_training: bool = False
    progress: bool = True
    log_every: int = 10
    # Options a recipe selects (recipes/*.yaml, docs/recipes.md); the defaults are the built-in behaviour.
    recipe: Optional[str] = None
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    no_decay: str = "broad"
    lr_step: str = "iteration"
    scale_choices: Optional[tuple[float, ...]] = None
    max_size: Optional[int] = None
    resize_antialias: bool = True
    photometric: str = "default"
    flip_prob: float = 0.5
    eval_every_epochs: Optional[int] = None
    select_on: str = "val"
    ignore_mode: Optional[str] = None
    init: Optional[str] = None
    init_sha256: Optional[str] = None

    def __post_init__(self) -> None:
        if self.iterations is None:
            self.iterations = default_iterations(self.model)
        if self.crop is not None:
            self.crop = tuple(int(v) for v in self.crop)
        self.scale_range = tuple(float(v) for v in self.scale_range)
        if self.scale_choices is not None:
            self.scale_choices = tuple(float(v) for v in self.scale_choices)
        for name in ("out", "init"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value."""
        positive = {"iterations": self.iterations, "batch_size": self.batch_size, "lr": self.lr,
                    "eval_batch_size": self.eval_batch_size, "log_every": self.log_every}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        non_negative = {"weight_decay": self.weight_decay, "warmup_iterations": self.warmup_iterations,
                        "eval_every": self.eval_every, "workers": self.workers}
        if self.save_every is not None:
            non_negative["save_every"] = self.save_every
        for name, value in non_negative.items():
            if not value >= 0:  # NaN too
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0 (or None to disable), got {self.grad_clip}")
        if self.backbone_lr_mult is not None and not self.backbone_lr_mult > 0:
            raise ConfigError(f"backbone_lr_mult must be > 0, got {self.backbone_lr_mult}")
        if not self.poly_power >= 0:
            raise ConfigError(f"poly_power must be >= 0, got {self.poly_power}")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) <= 0):
            raise ConfigError(f"crop must be two positive sizes (H, W), got {self.crop}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"scale_range must satisfy 0 < min <= max, got {self.scale_range}")
        self._validate_recipe_options()

    def _validate_recipe_options(self) -> None:
        choices = {"no_decay": NO_DECAY_SETS, "lr_step": LR_STEPS, "photometric": PHOTOMETRIC, "select_on": SELECT_ON}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.scale_choices is not None and (not self.scale_choices or min(self.scale_choices) <= 0):
            raise ConfigError(f"scale_choices must be positive factors, got {list(self.scale_choices)}")
        if self.max_size is not None and not self.max_size > 0:
            raise ConfigError(f"max_size must be > 0 (or None for no cap), got {self.max_size}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ConfigError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if self.eval_every_epochs is not None and not self.eval_every_epochs > 0:
            raise ConfigError(f"eval_every_epochs must be > 0 (or None), got {self.eval_every_epochs}")

    @property
    def out_path(self) -> Path:
        """The selected-model checkpoint: `out`, or models/<model>_<preset>_<dataset name>.pt."""
        if self.out is not None:
            return Path(self.out)
        name = self.model.replace(":", "_").replace(".", "_")
        return Path("models") / f"{name}_{self.preset}_{self.dataset.partition(':')[0]}.pt"

    @property
    def last_path(self) -> Path:
        """The resumable training state next to `out_path`."""
        out = self.out_path
        return out.with_name(f"{out.stem}.last.pt")

    @property
    def log_path(self) -> Path:
        """One JSON line per logged iteration and per evaluation."""
        out = self.out_path
        return out.with_name(f"{out.stem}.log.jsonl")

    def effective_model_kwargs(self) -> dict[str, Any]:
        """Model kwargs as built: `crm_training` joins them when set (baselines read it there)."""
        kwargs = dict(self.model_kwargs)
        if self.crm_training:
            kwargs["crm_training"] = True
        if self.ignore_mode is not None:
            kwargs["ignore_mode"] = self.ignore_mode
        return kwargs

    def resolved_backbone_lr_mult(self) -> float:
        """0.1 (CRM recipe) for a backbone that starts trained (ImageNet `pretrained` weights or an `init`
        checkpoint), 1.0 for one trained from scratch, unless set."""
        if self.backbone_lr_mult is not None:
            return self.backbone_lr_mult
        return 0.1 if self.model_kwargs.get("pretrained") or self.init else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (lists, not tuples), so the dict survives torch.load(weights_only=True) and JSON."""
        out = dataclasses.asdict(self)
        out["crop"] = list(self.crop) if self.crop is not None else None
        out["scale_range"] = list(self.scale_range)
        out["scale_choices"] = list(self.scale_choices) if self.scale_choices is not None else None
        out["model_kwargs"] = self.effective_model_kwargs()
        return out


def default_iterations(model: str) -> int:
    """Training iterations of `model` when none are given: its registry entry's, else DEFAULT_ITERATIONS."""
    return MODELS[model].iterations if model in MODELS else DEFAULT_ITERATIONS


def default_crop(dataset: str, image_size: tuple[int, int]) -> tuple[int, int]:
    """The recipe crop of a registered dataset (DatasetInfo.recipe_crop), else half the image size (at least
    32 px a side)."""
    from ..datasets import DATASETS
    crop = DATASETS[dataset].info.recipe_crop if dataset in DATASETS else None
    if crop is not None:
        return crop
    return max(32, image_size[0] // 2), max(32, image_size[1] // 2)


def check_crop(crop: tuple[int, int], image_size: tuple[int, int], max_scale: float) -> None:
    """ConfigError when `crop` is larger than the largest augmented training image (`image_size` scaled by
    `max_scale`, the largest of scale_range or scale_choices): beyond it a crop holds only padding, and a
    mistyped size would exhaust memory."""
    limit = (round(image_size[0] * max_scale), round(image_size[1] * max_scale))
    if crop[0] > limit[0] or crop[1] > limit[1]:
        raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the largest augmented training image "
                          f"({limit[0]}x{limit[1]}: {image_size[0]}x{image_size[1]} at scale {max_scale:g}); "
                          f"expected at most {limit[0]}x{limit[1]}, e.g. {image_size[0] // 2}x{image_size[1] // 2}")


def parse_crop(text: str) -> tuple[int, int]:
    """'240x320' -> (240, 320); anything else is a ConfigError naming the value."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        h, w = int(parts[0]), int(parts[1])
    except ValueError:
        raise ConfigError(f"invalid crop '{text}'; expected HxW with positive integers, e.g. 240x320") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"invalid crop '{text}'; both sizes must be positive, e.g. 240x320")
    return h, w


def parse_key_values(items: tuple[str, ...] | list[str], flag: str) -> dict[str, Any]:
    """['depth=2', 'fusion=add', 'size=[32,40]'] -> {'depth': 2, 'fusion': 'add', 'size': [32, 40]} (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid {flag} '{item}'; expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"invalid {flag} '{item}'; the value is not a valid YAML scalar or list") from None
    return out
