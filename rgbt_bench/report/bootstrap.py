"""Paired bootstrap confidence intervals over images (and training seeds), recomputing mIoU from resampled
confusion matrices.

One resample draws N image indices with replacement (numpy Generator, explicit seed). The SAME draws serve
every cell and every model of a results directory, so differences between models (and statistics over
cells, like the mean corrupted mIoU) are paired. A resample is held as image counts [B, N]: its confusion
matrix is counts @ per_image, one matrix product per cell for all B resamples. Intervals are percentile
intervals. With training-seed replicas, each resample first draws every model's replicas with replacement
and averages the drawn replicas' statistics (rgbt_bench.report.replicas). mIoU follows
rgbt_bench.metrics.compute_metrics (`batched_miou` is its vectorised form; tests hold the two equal).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .load import CLEAN, Results
from .reliance import missing_severity
from .replicas import combine, seed_weights
from .robustness import PCT, Reference, reference_values, statistics

SUMMARY_STATS = ("clean", "mean_corrupted", "rr", "mce", "rmce", "worst")
# With both missing-modality settings: their mIoUs and the modality reliance (rgbt_bench.report.reliance).
RELIANCE_STATS = ("rgb_missing", "thermal_missing", "rgb_share", "fusion_gain")


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
    """Confidence intervals (all in %): per cell, per model summary statistic, and
    model-minus-reference; `stats` / `points` keep each model's resampled [B] and point values (fractions) of
    every statistic, and `cell_samples` each cell's resampled mIoU, for paired comparisons (ablations)."""

    resamples: int
    seed: int
    confidence: float
    convention: str
    reference: str
    cells: pd.DataFrame
    summary: pd.DataFrame
    differences: pd.DataFrame
    replicas: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    points: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    cell_samples: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def method(self) -> str:
        if max(self.replicas.values(), default=1) > 1:
            return "paired percentile bootstrap over training seeds, then images"
        return "paired percentile bootstrap over images"

    def meta(self) -> dict:
        return {"method": self.method, "resamples": self.resamples, "seed": self.seed,
                "confidence": self.confidence, "convention": self.convention, "reference": self.reference,
                "train_seeds": dict(self.replicas)}

    def interval(self, values: np.ndarray) -> tuple[float, float]:
        """The percentile interval of resampled `values` at this result's confidence."""
        return percentile_interval(values, self.confidence)


def _samples(results: Results, counts: np.ndarray) -> dict[tuple[str, str, int], np.ndarray]:
    return {key: bootstrap_miou(cell.per_image, counts, results.convention) for key, cell in results.cells.items()}


def _values(view: Results, model: str, miou, severities: dict[str, list[int]], shape: tuple[int, ...]):
    """(clean, {corruption: [..., S]}) of `model` in `view` from `miou(key)` (NaN where a cell is missing)."""
    nan = np.full(shape, np.nan)
    clean = miou((model, CLEAN, 0), nan)
    corrupted = {c: np.stack([miou((model, c, s), nan) for s in severities[c]], axis=-1)
                 for c in view.corruptions}
    return clean, corrupted


def paired_bootstrap(results: Results, reference: Reference, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """Percentile CIs for every cell's mIoU, each model's summary statistics (robustness.statistics), and each
    model minus the reference. With training-seed replicas each resample draws every model's replicas with
    replacement, then the images (rgbt_bench.report.replicas); statistics are averaged over the drawn replicas."""
    if resamples < 2:
        raise ConfigError(f"--bootstrap must be >= 2 resamples (or 0 to skip), got {resamples}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    views = results.replica_views()
    counts = resample_counts(len(results.names), resamples, seed)
    samples = [_samples(view, counts) for view in views]
    replicas = {m: results.replicas(m) for m in results.models}
    weights = {r: seed_weights(r, resamples, seed) for r in set(replicas.values())}
    severities = {c: results.severities(c) for c in results.corruptions}
    missing = missing_severity(results)
    holding = {m: [i for i, view in enumerate(views) if m in view.models] for m in results.models}

    def per_model(model: str, per_view) -> np.ndarray | dict:
        """per_view(i) for the views holding `model`, combined with its replica draws ([B, ...] arrays)."""
        parts = [per_view(i) for i in holding[model]]
        if isinstance(parts[0], dict):
            return {k: combine([p[k] for p in parts], weights[replicas[model]]) for k in parts[0]}
        return combine(parts, weights[replicas[model]])

    def point(model: str, per_view) -> dict:
        parts = [per_view(i) for i in holding[model]]
        return {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}

    b = (resamples,)
    ref_clean, ref_corrupted = _values(results, reference.model, lambda k, nan: per_model(
        reference.model, lambda i: samples[i].get(k, nan)), severities, b)
    p_ref_clean, p_ref_corrupted = reference_values(results, reference.model, severities)
    stats, points = {}, {}
    for model in results.models:
        stats[model] = per_model(model, lambda i: statistics(
            *_values(views[i], model, lambda k, nan: samples[i].get(k, nan), severities, b), severities,
            ref_corrupted, ref_clean, missing))
        points[model] = point(model, lambda i: statistics(
            *_values(views[i], model, lambda k, nan: np.float64(views[i].miou(*k)), severities, ()), severities,
            p_ref_corrupted, p_ref_clean, missing))
    cell_samples = {}
    cell_rows = []
    for corruption, severity in results.settings():
        for model in results.models:
            key = (model, corruption, severity)
            if not any(key in samples[i] for i in holding[model]):
                continue
            nan = np.full(resamples, np.nan)
            cell_samples[key] = per_model(model, lambda i: samples[i].get(key, nan))
            estimate = float(np.mean([views[i].miou(*key) for i in holding[model]]))
            ref_key = (reference.model, corruption, severity)
            ref_cell = per_model(reference.model, lambda i: samples[i].get(ref_key, nan))
            low, high = percentile_interval(cell_samples[key], confidence)
            diff_low, diff_high = percentile_interval(cell_samples[key] - ref_cell, confidence)
            cell_rows.append({"model": model, "corruption": corruption, "severity": severity,
                              "miou": PCT * estimate, "low": PCT * low, "high": PCT * high,
                              "diff_vs_reference_low": PCT * diff_low, "diff_vs_reference_high": PCT * diff_high})
    summary_rows, diff_rows = [], []
    for model in results.models:
        for stat in (*SUMMARY_STATS, *(RELIANCE_STATS if missing is not None else ())):
            low, high = percentile_interval(stats[model][stat], confidence)
            summary_rows.append({"model": model, "statistic": stat, "estimate": PCT * points[model][stat],
                                 "low": PCT * low, "high": PCT * high, "train_seeds": replicas[model]})
            if model == reference.model:
                continue
            diff = stats[model][stat] - stats[reference.model][stat]
            low, high = percentile_interval(diff, confidence)
            diff_rows.append({"model": model, "reference": reference.model, "statistic": stat,
                              "difference": PCT * (points[model][stat] - points[reference.model][stat]),
                              "low": PCT * low, "high": PCT * high, "excludes_zero": bool(low > 0 or high < 0)})
    return BootstrapResult(resamples, seed, confidence, results.convention, reference.model,
                           pd.DataFrame(cell_rows), pd.DataFrame(summary_rows), pd.DataFrame(diff_rows),
                           replicas, stats, points, cell_samples)
