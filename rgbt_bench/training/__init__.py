"""Training of CRM and the baselines: `TrainConfig`, `train(config) -> Path`, `evaluate(...) -> SegMetrics`."""
from .config import TrainConfig
from .evaluate import evaluate
from .loop import train

__all__ = ["TrainConfig", "evaluate", "train"]
