"""Training recipes: named YAML files of TrainConfig settings (the repository's recipes/ folder, or any path).

Format (a bare name such as `crm_paper` resolves to recipes/<name>.yaml; docs/recipes.md explains each):

    name: crm_paper               # optional, defaults to the file stem
    description: what it is for
    source: where the values come from
    model: crm                    # optional: the only model the recipe trains
    preset: swin_t                # optional: the preset used when --preset is not given
    pretrained:                   # optional: ImageNet weights each preset must start from (file to download)
      swin_t: swin_tiny_patch4_window7_224.pkl
    settings: {lr: 1.0e-4, ...}   # TrainConfig fields for every dataset
    datasets:                     # optional: per dataset name, more fields (and `pretrained` entries);
      mfnet: {batch_size: 14}     # when present, only these datasets are covered

`apply_recipe` resolves a recipe for one dataset and preset, lays the explicitly given values over it and
records both the recipe and every value that differs from it (`recipe_overrides`). `recipe_lines` is the
printout of the resolved settings. `select_on` cannot come from a file: selecting on test must be asked
for explicitly (--select-on test).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import ConfigError
from .config import TrainConfig

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
DEFAULT_RECIPE = "tiny_synthetic"
FILE_KEYS = ("name", "description", "source", "model", "preset", "pretrained", "settings", "datasets")
# TrainConfig fields a recipe may set, in the order they are printed.
RECIPE_FIELDS = ("iterations", "batch_size", "lr", "weight_decay", "no_decay", "backbone_lr_mult", "grad_clip",
                 "poly_power", "warmup_iterations", "lr_step", "crop", "scale_range", "scale_choices", "max_size",
                 "resize_antialias", "photometric", "flip_prob", "amp", "seed", "eval_every", "eval_every_epochs",
                 "save_every", "eval_batch_size", "ignore_mode", "crm_training", "model_kwargs")
PRINTED_FIELDS = ("model", "preset", "dataset", *RECIPE_FIELDS, "select_on", "init")
SWIN_RELEASES = "https://github.com/SwinTransformer/storage/releases"


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file; `label` is its name for bundled recipes, else its path."""

    name: str
    label: str
    path: Path
    description: str = ""
    source: str = ""
    model: Optional[str] = None
    preset: Optional[str] = None
    pretrained: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_dataset(self, dataset_name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(TrainConfig fields, {preset: ImageNet weights file}) of this recipe for one dataset."""
        if self.datasets and dataset_name not in self.datasets:
            raise ConfigError(f"recipe {self.label} has settings for {', '.join(self.datasets)}, not "
                              f"'{dataset_name}'; copy {self.path} and add a section for it")
        section = dict(self.datasets.get(dataset_name, {}))
        pretrained = {**self.pretrained, **section.pop("pretrained", {})}
        values = {**self.settings, **section}
        kwargs = {**self.settings.get("model_kwargs", {}), **section.get("model_kwargs", {})}
        if kwargs:
            values["model_kwargs"] = kwargs
        return values, pretrained


def available_recipes() -> list[str]:
    """Names of the recipes shipped in the repository's recipes/ folder."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(path_or_name: str | Path) -> Path:
    """A YAML path as given, or a bare recipe name resolved in RECIPES_DIR."""
    path = Path(path_or_name).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"recipe file '{path}' does not exist")
        return path
    candidate = RECIPES_DIR / f"{path_or_name}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown recipe '{path_or_name}'; expected a .yaml path or one of: "
                          f"{', '.join(available_recipes()) or 'none'}")
    return candidate


def _check_fields(where: str, values: Any, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of training settings, got {values!r}")
    for key in values:
        if key == "select_on":
            raise ConfigError(f"{where}: select_on cannot be set by a recipe; selecting the checkpoint on the "
                              f"test split must be asked for explicitly with --select-on test")
        if key not in RECIPE_FIELDS and key not in extra:
            raise ConfigError(f"{where}: unknown setting '{key}'; expected some of {', '.join(RECIPE_FIELDS)}")
    if not isinstance(values.get("model_kwargs", {}), dict):
        raise ConfigError(f"{where}: model_kwargs must be a mapping, got {values['model_kwargs']!r}")
    _check_pretrained(where, values.get("pretrained", {}))
    return values


def _check_pretrained(where: str, files: Any) -> dict[str, str]:
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ConfigError(f"{where}: pretrained must map presets to file names, got {files!r}")
    return files


def load_recipe(path_or_name: str | Path) -> Recipe:
    """Read and check a recipe file (or a bundled recipe by name); errors name the file and the key."""
    path = recipe_path(path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe file '{path}' cannot be read as UTF-8 text ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe file '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe file '{path}': expected a mapping with keys {', '.join(FILE_KEYS)}")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"recipe file '{path}': unknown key '{unknown[0]}'; expected {', '.join(FILE_KEYS)}")
    settings = _check_fields(f"recipe file '{path}', settings", data.get("settings") or {})
    datasets = data.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise ConfigError(f"recipe file '{path}': datasets must map dataset names to settings, got {datasets!r}")
    for name, section in datasets.items():
        _check_fields(f"recipe file '{path}', datasets.{name}", section, extra=("pretrained",))
    pretrained = _check_pretrained(f"recipe file '{path}'", data.get("pretrained") or {})
    bundled = path.resolve().parent == RECIPES_DIR
    name = str(data.get("name") or path.stem)
    return Recipe(name=name, label=name if bundled else str(path), path=path,
                  description=str(data.get("description") or ""), source=str(data.get("source") or ""),
                  model=data.get("model"), preset=data.get("preset"), pretrained=dict(pretrained),
                  settings=dict(settings),
                  datasets={str(k): dict(v or {}) for k, v in datasets.items()})


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML would write them (tuples and lists alike)."""
    plain = lambda v: [plain(x) for x in v] if isinstance(v, (list, tuple)) else v  # noqa: E731
    return plain(a) == plain(b)


def _require_pretrained(recipe: Recipe, preset: str, files: dict[str, str], kwargs: dict[str, Any]) -> None:
    """The ImageNet weights the recipe starts `preset` from must be given and exist."""
    given = kwargs.get("pretrained")
    if given is None:
        pth = Path(files[preset]).with_suffix(".pth").name
        raise ConfigError(f"recipe {recipe.label} starts {preset} from ImageNet weights: download {files[preset]} "
                          f"(Mask2Former's conversion of {pth} from {SWIN_RELEASES}) and pass --pretrained PATH")
    if not Path(str(given)).expanduser().is_file():
        raise ConfigError(f"pretrained weights {given} do not exist; recipe {recipe.label} expects {files[preset]} "
                          f"for {preset}")


def apply_recipe(recipe: str | Path | Recipe, explicit: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of `recipe` for explicit["dataset"] / explicit["preset"], with `explicit` (TrainConfig
    fields the user set, e.g. from flags) laid over it; `recipe_overrides` records {field: recipe value} for
    each explicit value that differs from the recipe's."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    model = explicit.get("model", recipe.model or defaults["model"])
    if recipe.model is not None and model != recipe.model:
        raise ConfigError(f"recipe {recipe.label} trains model '{recipe.model}', not '{model}'; copy "
                          f"{recipe.path} and adapt it for another model")
    preset = explicit.get("preset", recipe.preset or defaults["preset"])
    dataset = explicit.get("dataset", defaults["dataset"])
    values, pretrained = recipe.for_dataset(str(dataset).partition(":")[0])
    if pretrained and preset not in pretrained:
        raise ConfigError(f"recipe {recipe.label} covers presets {', '.join(pretrained)}, not '{preset}'")
    overrides = {k: values[k] for k, v in explicit.items()
                 if k in values and k != "model_kwargs" and not _same(v, values[k])}
    kwargs = dict(values.get("model_kwargs", {}))
    for key, value in (explicit.get("model_kwargs") or {}).items():
        if key in kwargs and not _same(kwargs[key], value):
            overrides[f"model_kwargs.{key}"] = kwargs[key]
        kwargs[key] = value
    if pretrained and not explicit.get("init"):
        _require_pretrained(recipe, preset, pretrained, kwargs)
    fields = {**values, **explicit, "model": model, "preset": preset, "dataset": dataset, "model_kwargs": kwargs}
    return TrainConfig(**fields, recipe=recipe.label, recipe_overrides=overrides)


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def _resolved(config: TrainConfig) -> dict[str, str]:
    """Printed values of the fields whose None means something else."""
    values = {name: _show(getattr(config, name)) for name in PRINTED_FIELDS}
    values["backbone_lr_mult"] = _show(config.resolved_backbone_lr_mult())
    if config.amp is None:
        values["amp"] = "auto (on for CUDA, off for CPU)"
    if config.ignore_mode is None:
        values["ignore_mode"] = "the model's default"
    if config.save_every is None:
        values["save_every"] = "at every evaluation"
    if config.crop is None:
        values["crop"] = "the dataset's default"
    if config.eval_every_epochs is not None:
        values["eval_every"] = f"{config.eval_every} (unused: eval_every_epochs is set)"
    return values


def recipe_lines(config: TrainConfig) -> list[str]:
    """The resolved settings of a run, one per line, each override of the recipe marked."""
    head = f"recipe {config.recipe}" if config.recipe else "no recipe (settings as given)"
    if config.recipe_overrides:
        head += f"; explicit settings override it: {', '.join(config.recipe_overrides)}"
    kwarg_overrides = {k.partition(".")[2]: v for k, v in config.recipe_overrides.items()
                       if k.startswith("model_kwargs.")}
    lines = [head]
    for name, value in _resolved(config).items():
        line = f"  {name}: {value}"
        if name in config.recipe_overrides:
            line += f"  (overridden; the recipe says {_show(config.recipe_overrides[name])})"
        elif name == "model_kwargs" and kwarg_overrides:
            line += f"  (overridden; the recipe says {_show(kwarg_overrides)})"
        lines.append(line)
    return lines


__all__ = ["Recipe", "RECIPES_DIR", "RECIPE_FIELDS", "DEFAULT_RECIPE", "available_recipes", "load_recipe",
           "apply_recipe", "recipe_lines"]
