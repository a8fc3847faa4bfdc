"""Modality reliance, the CRM paper's thesis as measured numbers (Shin et al., ICRA 2024: masking "prevents
over-reliance on a single modality"), from a model's clean mIoU and its mIoU with each camera missing.

With drop_rgb = max(0, clean - rgb_missing) and drop_thermal = max(0, clean - thermal_missing), both at the
severity where the camera is missing on every image (the highest severity evaluated for both):
- rgb_share = drop_rgb / (drop_rgb + drop_thermal): the share of the missing-modality drop that comes from
  losing RGB. 0.5 = balanced; 1 = only losing RGB hurts (the model leans on RGB), 0 = only losing thermal
  hurts. A drop below 0 (the model does better without that camera) counts as 0. Undefined (NaN) when the
  two drops add up to less than MIN_DROP: the model loses (almost) nothing without either camera, so there
  is no drop to share.
- fusion_gain = clean - max(rgb_missing, thermal_missing): what the model gains from having both cameras
  over its own better single-camera performance (mIoU points; 0 for a model that ignores one camera, below
  0 when adding the second camera hurts).
Inputs are mIoU fractions of any (matching) shape, so point estimates and bootstrap resamples share the code;
reports show both in % (rgb_share 50 = balanced).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .load import Results

MISSING = ("rgb_missing", "thermal_missing")
MIN_DROP = 0.01  # 1 mIoU point
STATISTICS = ("rgb_share", "fusion_gain")


def missing_severity(results: Results) -> Optional[int]:
    """The highest severity at which both rgb_missing and thermal_missing were evaluated (None: not both)."""
    common = set(results.severities(MISSING[0])) & set(results.severities(MISSING[1]))
    return max(common) if common else None


def reliance(clean: np.ndarray, rgb_missing: np.ndarray, thermal_missing: np.ndarray) -> dict[str, np.ndarray]:
    """rgb_share and fusion_gain (see the module docstring) from mIoU fractions."""
    clean, rgb_missing, thermal_missing = (np.asarray(a, dtype=np.float64) for a in (clean, rgb_missing,
                                                                                      thermal_missing))
    drop_rgb = np.maximum(clean - rgb_missing, 0.0)
    drop_thermal = np.maximum(clean - thermal_missing, 0.0)
    total = drop_rgb + drop_thermal
    share = np.full(total.shape, np.nan)
    np.divide(drop_rgb, total, out=share, where=total >= MIN_DROP)
    share[~np.isfinite(total)] = np.nan
    return {"rgb_share": share, "fusion_gain": clean - np.maximum(rgb_missing, thermal_missing)}


__all__ = ["MIN_DROP", "MISSING", "STATISTICS", "missing_severity", "reliance"]
