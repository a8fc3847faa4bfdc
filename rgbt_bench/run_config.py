"""`RunConfig`: what one `rgbt-bench run` (the main job, rgbt_bench.pipeline) trains, sweeps and reports."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .corruptions.corruption import SEVERITIES
from .device import resolve_device
from .errors import ConfigError
from .models import main_models, resolve_builder
from .processes import plan_processes
from .sweep.plan import parse_seeds
from .training.cache import on_the_fly_config
from .training.config import TrainConfig

DATASET = "synthetic"
PRESET = "tiny"
DEFAULT_MODELS = main_models()
# The suite at every severity (a few minutes of CPU time). Severity 5 of rgb_missing /
# thermal_missing drops the camera on every image (the CRM paper's missing-modality test), which the
# summary reports; --severities 1,3,5 (or 5) trims the sweep on slower machines.
DEFAULT_SEVERITIES = SEVERITIES
QUICK_ITERATIONS = 3
QUICK_DATASET = {"size": [32, 40], "counts": [8, 4, 4]}


@dataclass
class RunConfig:
    """One main-job run. `iterations` None: each model's training default (its registry entry: 900 for CRM,
    whose step costs ~7x a baseline's, 1000 for the baselines); QUICK_ITERATIONS with `quick`.

    `severities` None: DEFAULT_SEVERITIES. `quick` (tests, smoke checks) also shrinks the dataset
    (QUICK_DATASET unless `dataset_options` are given), keeps only severity 5 and trains with batch 2.
    `jobs` None: one process per CPU core (one on CUDA). `command`: recorded in the sweep manifest.
    `train_seeds`: one trained replica of every model per training seed (None: just `seed`); reports give the
    mean and spread over them, and their CIs resample them.
    """

    out: str = "results/main"
    models: Sequence[str] = DEFAULT_MODELS
    suite: str = "default"
    severities: Optional[Sequence[int]] = None
    device: str = "auto"
    iterations: Optional[int] = None
    seed: int = 1024
    train_seeds: Optional[Sequence[int]] = None
    quick: bool = False
    models_dir: str = "models"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    sweep_batch_size: int = 20
    workers: int = 0
    jobs: Optional[int] = None
    bootstrap: int = 1000
    progress: bool = True
    command: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            self.models = [m.strip() for m in self.models.split(",") if m.strip()]
        self.models = list(self.models)
        if self.quick and not self.dataset_options:
            self.dataset_options = dict(QUICK_DATASET)
        if self.severities is None:
            self.severities = [5] if self.quick else list(DEFAULT_SEVERITIES)
        self.severities = sorted(set(int(s) for s in self.severities))
        self.train_seeds = parse_seeds(self.train_seeds if self.train_seeds is not None else [self.seed],
                                       "--train-seeds")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid value."""
        if not self.models:
            raise ConfigError("no models given; expected e.g. --models crm,rtfnet")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"--models lists a model twice: {','.join(self.models)}")
        resolve_device(self.device)
        for model in self.models:
            resolve_builder(model)
        bad = [s for s in self.severities if s not in SEVERITIES]
        if not self.severities or bad:
            raise ConfigError(f"invalid severities {list(self.severities)}; expected integers among 1..5, e.g. 1,3,5")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(f"--iterations must be >= 1, got {self.iterations}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")
        for name in ("batch_size", "sweep_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def processes(self, tasks: int) -> tuple[int, int]:
        """(parallel processes, torch threads each) for `tasks` independent pieces of work (rgbt_bench.processes)."""
        return plan_processes(self.jobs, self.device, tasks)

    def iterations_for(self, model: str) -> Optional[int]:
        """Training iterations for `model`; None leaves the choice to the model's default."""
        if self.iterations is not None:
            return self.iterations
        return QUICK_ITERATIONS if self.quick else None

    def train_config(self, model: str, image_size: tuple[int, int], seed: Optional[int] = None) -> TrainConfig:
        """The training run whose checkpoint the sweep evaluates for `model` trained with `seed` (None: the first
        training seed), on images of `image_size`: the on-the-fly recipe shared with `sweep`
        (rgbt_bench.training.cache)."""
        return on_the_fly_config(model, PRESET, DATASET, self.models_dir, image_size,
                                 iterations=self.iterations_for(model), batch_size=2 if self.quick else self.batch_size,
                                 seed=self.train_seeds[0] if seed is None else seed, device=self.device,
                                 workers=self.workers, dataset_options=dict(self.dataset_options),
                                 progress=self.progress)
