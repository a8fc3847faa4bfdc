"""Segmentation metrics from a confusion matrix under a named mIoU convention.

Conventions (RTFNet / CRM test code; mmsegmentation IoUMetric):
- ``field`` (RTFNet / CRM): every class counts, including class 0 (unlabeled / background);
  IoU_c = TP / (TP + FP + FN) and IoU 0 where the denominator is 0; mIoU is the plain mean.
- ``mmseg`` (mmsegmentation, torchmetrics ``MulticlassJaccardIndex(average='macro')``): IoU is NaN for
  a class absent from both label and prediction; mIoU = nanmean.
In both, pixels with the ignore label never enter the matrix (see ConfusionMatrix).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CONVENTIONS = ("field", "mmseg")


@dataclass(frozen=True)
class SegMetrics:
    """Per-class IoU and accuracy plus their means; `convention` records how they were computed."""

    convention: str
    iou: tuple[float, ...]
    acc: tuple[float, ...]
    miou: float
    pixel_acc: float
    mean_acc: float

    def as_dict(self) -> dict:
        return {"convention": self.convention, "miou": self.miou, "pixel_acc": self.pixel_acc,
                "mean_acc": self.mean_acc, "iou": list(self.iou), "acc": list(self.acc)}


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(num.shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def compute_metrics(matrix: torch.Tensor | np.ndarray, convention: str = "field") -> SegMetrics:
    """IoU, per-class accuracy (recall), their means and pixel accuracy from a [C, C] matrix.

    Args:
        matrix: confusion counts [C, C], rows = label, columns = prediction (ConfusionMatrix.matrix).
        convention: "field" (RTFNet / CRM: every class counts, a class absent from label and prediction has
            IoU 0) or "mmseg" (such a class is NaN and left out of the means); see the module docstring.

    Returns:
        SegMetrics with per-class `iou` and `acc` and `miou`, `mean_acc`, `pixel_acc`, all fractions.

    Raises:
        ConfigError: `convention` is not one of CONVENTIONS.

    Example:
        Class 2 occurs in neither label nor prediction, so the two conventions differ:

        >>> matrix = [[3, 1, 0], [0, 4, 0], [0, 0, 0]]
        >>> m = compute_metrics(matrix)
        >>> m.iou, round(m.miou, 4), m.pixel_acc
        ((0.75, 0.8, 0.0), 0.5167, 0.875)
        >>> compute_metrics(matrix, "mmseg").miou
        0.775
    """
    if convention not in CONVENTIONS:
        from ..errors import ConfigError
        raise ConfigError(f"unknown mIoU convention '{convention}'; expected one of {', '.join(CONVENTIONS)}")
    m = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    m = m.astype(np.float64)
    tp = np.diag(m)
    gt = m.sum(axis=1)
    pred = m.sum(axis=0)
    union = gt + pred - tp
    empty = 0.0 if convention == "field" else np.nan
    iou = _ratio(tp, union, empty)
    acc = _ratio(tp, gt, empty)
    if convention == "field":
        miou, mean_acc = float(iou.mean()), float(acc.mean())
    else:
        miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
        mean_acc = float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")
    total = m.sum()
    pixel_acc = float(tp.sum() / total) if total > 0 else (0.0 if convention == "field" else float("nan"))
    return SegMetrics(convention, tuple(float(x) for x in iou), tuple(float(x) for x in acc),
                      miou, pixel_acc, mean_acc)
