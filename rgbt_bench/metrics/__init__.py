"""Confusion-matrix accumulation and mIoU under explicit conventions."""
from .confusion import ConfusionMatrix
from .iou import CONVENTIONS, SegMetrics, compute_metrics

__all__ = ["CONVENTIONS", "ConfusionMatrix", "SegMetrics", "compute_metrics"]
