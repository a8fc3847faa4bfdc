"""Mask2Former head, loss and semantic inference in pure PyTorch (no compiled deformable-attention op)."""
from .criterion import Mask2FormerLoss, semantic_targets
from .head import Mask2FormerHead
from .inference import semantic_inference
from .matcher import HungarianMatcher, hungarian_assignment
from .ms_deform_attn import MSDeformAttn, ms_deform_attn_sample

__all__ = ["Mask2FormerHead", "Mask2FormerLoss", "semantic_inference", "semantic_targets", "HungarianMatcher",
           "hungarian_assignment", "MSDeformAttn", "ms_deform_attn_sample"]
