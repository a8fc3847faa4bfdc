"""The models a sweep evaluates: names, specs, checkpoints (given, cached or trained on the fly), loading.

`--models crm,rtfnet,mine=pkg.module:build` names each model; a `NAME=SPEC` item gives a model a short
name of its own (so one architecture can appear twice with different checkpoints). `--checkpoint NAME=PATH`
attaches weights; `--checkpoint NAME@SEED=PATH`, repeated, attaches replicas of one model trained with other
seeds, which reports aggregate (mean, spread, CIs over training seeds). On the built-in synthetic dataset a
model without one is trained on the fly, once per training seed (`--train-seeds`: one replica each,
evaluated side by side), and cached as
`<models_dir>/<model>_<preset>_synthetic_seed<seed>.pt`: reused when it finished with the requested training
config, resumed when it was interrupted, retrained otherwise (rgbt_bench.training.cache). On a real
dataset it is an error, since random weights would give meaningless numbers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from torch import nn

from ..checkpoint import file_sha256
from ..errors import CheckpointError, ConfigError
from ..models import resolve_builder
from ..models.loading import build_kwargs, load_model
from ..training import cache
from ..training.config import TrainConfig
from ..training.convergence import training_curve
from ..training.selection import selected_on, selection_warning

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")
BUILT_IN_DATASET = "synthetic"
CACHE = "cache"


@dataclass
class ModelRef:
    """One trained network of the sweep. `source` says where its weights come from: "given", or for a model
    cached on the fly "cache" until `train_missing` has made it "cached", "resumed" or "trained".
    `train_seed`: the training seed of a model trained on the fly (None for given weights)."""

    name: str
    spec: str
    checkpoint: Optional[Path] = None
    source: str = "given"
    sha256: Optional[str] = None
    input_convention: Optional[str] = None
    selected_on: Optional[str] = None
    model_kwargs: Optional[dict[str, Any]] = None
    train_seed: Optional[int] = None
    training_sha256: Optional[str] = None
    training: Optional[dict[str, Any]] = None

    @property
    def replica(self) -> tuple[str, Optional[int]]:
        """(name, training seed), as in CellKey.replica."""
        return self.name, self.train_seed

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                "checkpoint_sha256": self.sha256, "checkpoint_source": self.source,
                "input_convention": self.input_convention, "selected_on": self.selected_on,
                "train_seed": self.train_seed}


def parse_models(items: str | Sequence[str]) -> list[ModelRef]:
    """'crm,rtfnet,mine=pkg.mod:build' (or a list of such items) -> ModelRefs with unique names."""
    raw = items.split(",") if isinstance(items, str) else [p for item in items for p in item.split(",")]
    refs: list[ModelRef] = []
    for item in (p.strip() for p in raw):
        if not item:
            continue
        name, sep, spec = item.partition("=")
        name, spec = name.strip(), (spec.strip() if sep else name.strip())
        if not name or not spec or not NAME_PATTERN.match(name):
            raise ConfigError(f"invalid model '{item}'; expected a registered name, 'package.module:build_fn' "
                              f"or NAME=SPEC with NAME made of letters, digits, '_', '.', '-'")
        if any(r.name == name for r in refs):
            raise ConfigError(f"model name '{name}' is given twice; use NAME=SPEC to tell them apart")
        refs.append(ModelRef(name, spec))
    if not refs:
        raise ConfigError("no models given; expected e.g. --models crm,rtfnet")
    return refs


def parse_checkpoints(items: Sequence[str] | dict[str, str]) -> dict[str, str]:
    """['crm=models/crm.pt', 'mf@0=a.pt', ...] -> {'crm': 'models/crm.pt', 'mf@0': 'a.pt'} (NAME@SEED: one
    replica of model NAME, trained with that seed; see attach_checkpoints)."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"invalid --checkpoint '{item}'; expected NAME=PATH, e.g. crm=models/crm.pt")
        if name.strip() in out:
            raise ConfigError(f"--checkpoint names model '{name.strip()}' twice")
        out[name.strip()] = path.strip()
    return out


def split_replica(name: str) -> tuple[str, Optional[int]]:
    """'crm@2' -> ('crm', 2): a --checkpoint name with the training seed of that replica; 'crm' -> ('crm', None)."""
    model, sep, seed = name.partition("@")
    if not sep:
        return name, None
    if not seed.isdigit():
        raise ConfigError(f"invalid --checkpoint name '{name}'; expected NAME or NAME@SEED with a training seed "
                          f"integer >= 0, e.g. crm@0")
    return model, int(seed)


def attach_checkpoints(refs: list[ModelRef], checkpoints: dict[str, str], dataset_name: str, preset: str,
                       models_dir: str | Path, train_seeds: Sequence[int] = (TrainConfig.seed,)) -> list[ModelRef]:
    """Check every model resolves and every checkpoint exists before anything slow starts; the refs to evaluate.

    A model with a checkpoint (`NAME=PATH`) is one ref; with checkpoints of several replicas (`NAME@SEED=PATH`,
    e.g. trained with `train --seed SEED`) one ref per training seed. A model without one becomes one ref per
    seed of `train_seeds` with its cache path (source "cache"; `train_missing` decides whether it is reused,
    resumed or trained); on a real dataset it is an error naming the model. Two models whose cache paths
    coincide must be the same spec.
    """
    names = {r.name for r in refs}
    given: dict[str, dict[Optional[int], Path]] = {}
    for key, path in checkpoints.items():
        model, seed = split_replica(key)
        if model not in names:
            raise ConfigError(f"--checkpoint names model '{model}', which is not among --models "
                              f"({', '.join(r.name for r in refs)})")
        given.setdefault(model, {})[seed] = Path(path).expanduser()
    out: list[ModelRef] = []
    for ref in refs:
        resolve_builder(ref.spec)
        if ref.name in given:
            replicas = given[ref.name]
            if None in replicas and len(replicas) > 1:
                raise ConfigError(f"--checkpoint gives model '{ref.name}' both as NAME=PATH and as NAME@SEED=PATH; "
                                  f"expected one form per model")
            for seed, path in sorted(replicas.items(), key=lambda item: -1 if item[0] is None else item[0]):
                if not path.is_file():
                    state = "is a directory; expected a checkpoint file" if path.is_dir() else "does not exist"
                    raise CheckpointError(f"checkpoint {path} for model '{ref.name}' {state}")
                out.append(dataclasses.replace(ref, checkpoint=path, source="given", train_seed=seed))
        elif dataset_name == BUILT_IN_DATASET:
            for seed in train_seeds:
                path = cache.cache_path(models_dir, ref.spec, preset, BUILT_IN_DATASET, seed)
                other = next((r for r in out if r.checkpoint == path), None)
                if other is not None and other.spec != ref.spec:
                    raise ConfigError(f"models '{other.name}' ({other.spec}) and '{ref.name}' ({ref.spec}) would be "
                                      f"trained into the same file {path}; pass --checkpoint for one of them")
                out.append(dataclasses.replace(ref, checkpoint=path, source=CACHE, train_seed=seed))
        else:
            raise CheckpointError(f"model '{ref.name}' has no checkpoint for dataset '{dataset_name}'; pass "
                                  f"--checkpoint {ref.name}=PATH (models are trained on the fly only on the "
                                  f"synthetic dataset)")
    return out


def train_missing(refs: list[ModelRef], make_config: Callable[[ModelRef], TrainConfig],
                  train: Callable[[TrainConfig], Path], note: Callable[[str], None]) -> None:
    """Reuse, resume or train (all ranks together under torchrun) every model cached on the fly, once per
    cache file, as rgbt_bench.training.cache.plan decides; `note` says which happened and why."""
    outcomes: dict[Path, str] = {}
    for ref in refs:
        if ref.source != CACHE:
            continue
        if ref.checkpoint not in outcomes:
            plan = cache.plan(make_config(ref))
            note(f"model '{ref.name}': {plan.describe()}")
            if plan.state != cache.READY:
                train(plan.config)
            outcomes[ref.checkpoint] = plan.outcome
        ref.source = outcomes[ref.checkpoint]


def training_sha256(ckpt: dict[str, Any]) -> Optional[str]:
    """SHA-256 of the training config a checkpoint records (the trained-model cache's key), None without one."""
    config = ckpt.get("config")
    if not isinstance(config, dict) or "model" not in config:
        return None
    return hashlib.sha256(json.dumps(cache.training_key(config), sort_keys=True).encode()).hexdigest()


def load_models(refs: list[ModelRef], num_classes: int, preset: str, device,
                warn: Callable[[str], None] = print) -> dict[tuple[str, Optional[int]], nn.Module]:
    """Every model on `device` in eval mode, weights loaded strictly, keyed by its replica (name, training
    seed). Recorded on each ref: the checkpoint's sha256, the kwargs the model was built with, the input
    convention it expects (rgbt_bench.models.normalize; None for a user model that does not say), the split
    its weights were selected on, the hash of its training config and its val curve
    (rgbt_bench.training.convergence.training_curve); a test-selected checkpoint is `warn`ed about."""
    models: dict[tuple[str, Optional[int]], nn.Module] = {}
    for ref in refs:
        model, ckpt = load_model(ref.spec, num_classes, preset, checkpoint=ref.checkpoint, device=device)
        ref.sha256 = file_sha256(ref.checkpoint) if ref.checkpoint is not None else None
        ref.model_kwargs = build_kwargs(ckpt)
        ref.input_convention = getattr(model, "input_convention", None)
        ref.selected_on = selected_on(ckpt)
        ref.training_sha256 = training_sha256(ckpt)
        ref.training = training_curve(ckpt, ref.checkpoint)
        warning = selection_warning(ckpt, f"checkpoint {ref.checkpoint} of model '{ref.name}'")
        if warning:
            warn(warning)
        models[ref.replica] = model.eval()
    return models
