"""Paired bootstrap confidence intervals over images, recomputing mIoU from resampled confusion matrices.

One resample draws N image indices with replacement (numpy Generator, explicit seed). The SAME draws serve
every cell and every model of a results directory, so differences between models (and statistics over
cells, like the mean corrupted mIoU) are paired. A resample is held as image counts [B, N]: its confusion
matrix is counts @ per_image, one matrix product per cell for all B resamples. Intervals are percentile
intervals. mIoU follows rgbt_bench.metrics.compute_metrics (`batched_miou` is its vectorised form; tests
hold the two equal).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .load import CLEAN, Results
from .robustness import PCT, Reference, model_summary, model_values

SUMMARY_STATS = ("clean", "mean_corrupted", "rr", "mce", "worst")


def resample_counts(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """float64 [B, N]: how often each image is drawn in each of B resamples of N draws with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(n_resamples, n_images))
    offsets = np.arange(n_resamples)[:, None] * n_images
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n_images)
    return counts.reshape(n_resamples, n_images).astype(np.float64)


def batched_miou(matrices: np.ndarray, convention: str) -> np.ndarray:
    """mIoU of confusion matrices [..., C, C] (rows label, cols prediction) -> [...], as compute_metrics does."""
    m = np.asarray(matrices, dtype=np.float64)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    union = m.sum(axis=-1) + m.sum(axis=-2) - tp
    iou = np.full(tp.shape, 0.0 if convention == "field" else np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    if convention == "field":
        return iou.mean(axis=-1)
    present = np.isfinite(iou)
    total = np.where(present, iou, 0.0).sum(axis=-1)
    count = present.sum(axis=-1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def bootstrap_miou(per_image: np.ndarray, counts: np.ndarray, convention: str) -> np.ndarray:
    """mIoU [B] of each resample of one cell's per-image matrices [N, C, C]."""
    n, c, _ = per_image.shape
    return batched_miou((counts @ per_image.reshape(n, c * c).astype(np.float64)).reshape(-1, c, c), convention)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """(low, high) percentile interval of the finite samples (NaN, NaN when there are none)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass
class BootstrapResult:
    """Confidence intervals (all in %): per cell, per model summary statistic, and model-minus-reference."""

    resamples: int
    seed: int
    confidence: float
    convention: str
    reference: str
    cells: pd.DataFrame
    summary: pd.DataFrame
    differences: pd.DataFrame

    def meta(self) -> dict:
        return {"method": "paired percentile bootstrap over images", "resamples": self.resamples,
                "seed": self.seed, "confidence": self.confidence, "convention": self.convention,
                "reference": self.reference}


def _samples(results: Results, counts: np.ndarray) -> dict[tuple[str, str, int], np.ndarray]:
    return {key: bootstrap_miou(cell.per_image, counts, results.convention) for key, cell in results.cells.items()}


def _model_stats(results: Results, samples: dict, model: str, ref_corrupted, b: int) -> dict[str, np.ndarray]:
    nan = np.full(b, np.nan)
    clean = samples.get((model, CLEAN, 0), nan)
    corrupted = {c: np.stack([samples.get((model, c, s), nan) for s in results.severities(c)], axis=-1)
                 for c in results.corruptions}
    return model_summary(clean, corrupted, ref_corrupted)


def paired_bootstrap(results: Results, reference: Reference, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """Percentile CIs for every cell's mIoU, each model's summary statistics, and each model minus the reference."""
    if resamples < 2:
        raise ConfigError(f"--bootstrap must be >= 2 resamples (or 0 to skip), got {resamples}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    counts = resample_counts(len(results.names), resamples, seed)
    samples = _samples(results, counts)
    cell_rows = []
    for corruption, severity in results.settings():
        for model in results.models:
            key = (model, corruption, severity)
            if key not in samples:
                continue
            low, high = percentile_interval(samples[key], confidence)
            diff_low, diff_high = percentile_interval(
                samples[key] - samples.get((reference.model, corruption, severity), np.nan), confidence)
            cell_rows.append({"model": model, "corruption": corruption, "severity": severity,
                              "miou": PCT * results.miou(*key), "low": PCT * low, "high": PCT * high,
                              "diff_vs_reference_low": PCT * diff_low, "diff_vs_reference_high": PCT * diff_high})
    nan = np.full(resamples, np.nan)
    ref_corrupted = {c: np.stack([samples.get((reference.model, c, s), nan) for s in results.severities(c)], -1)
                     for c in results.corruptions}
    stats = {m: _model_stats(results, samples, m, ref_corrupted, resamples) for m in results.models}
    _, ref_values = model_values(results, reference.model)
    point = {m: model_summary(*model_values(results, m), ref_values) for m in results.models}
    summary_rows, diff_rows = [], []
    for model in results.models:
        for stat in SUMMARY_STATS:
            low, high = percentile_interval(stats[model][stat], confidence)
            summary_rows.append({"model": model, "statistic": stat, "estimate": PCT * float(point[model][stat]),
                                 "low": PCT * low, "high": PCT * high})
            if model == reference.model:
                continue
            diff = stats[model][stat] - stats[reference.model][stat]
            low, high = percentile_interval(diff, confidence)
            diff_rows.append({"model": model, "reference": reference.model, "statistic": stat,
                              "difference": PCT * float(point[model][stat] - point[reference.model][stat]),
                              "low": PCT * low, "high": PCT * high, "excludes_zero": bool(low > 0 or high < 0)})
    return BootstrapResult(resamples, seed, confidence, results.convention, reference.model,
                           pd.DataFrame(cell_rows), pd.DataFrame(summary_rows), pd.DataFrame(diff_rows))
