"""CRM (Shin et al., ICRA 2024): two Swin encoders, MAX fusion, Mask2Former head, complementary random
masking with self-distillation. See model.py (architecture) and loss.py (training objective)."""
from .loss import CRMLoss, self_distillation
from .model import CRM, PRESETS, build_crm

__all__ = ["CRM", "CRMLoss", "PRESETS", "build_crm", "self_distillation"]
