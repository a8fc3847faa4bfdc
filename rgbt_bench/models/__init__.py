"""Models: CRM, baselines and user models behind one registry."""
from .registry import MODELS, ModelEntry, build_model, main_models, resolve_builder, step_cost

__all__ = ["MODELS", "ModelEntry", "build_model", "main_models", "resolve_builder", "step_cost"]
