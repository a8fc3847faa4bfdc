"""Models: CRM, baselines and user models behind one registry."""
from .registry import MODELS, ModelEntry, build_model, resolve_builder

__all__ = ["MODELS", "ModelEntry", "build_model", "resolve_builder"]
