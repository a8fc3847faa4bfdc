"""Numbers over training-seed replicas: means and spreads of per-replica tables, and the seed draws of the
hierarchical bootstrap.

A model trained with several training seeds has one replica per seed (rgbt_bench.report.load: one Results
view per replica index). Every statistic is computed on each replica from its own confusion matrices; a
report gives the mean over the model's replicas, the sample standard deviation (ddof 1; empty with one
replica) and how many replicas (`train_seeds`) stand behind it.

The bootstrap resamples both levels (Davison & Hinkley, Bootstrap Methods, 1997, section 3.8, two-stage
sampling): each resample draws the model's R replicas with replacement, then the N images with
replacement, and averages the drawn replicas' statistics on those images. The image draw is shared by every
model, replica and setting, and the replica draw by every model with the same number of replicas, so
differences between models stay paired. With one replica the interval covers image sampling only.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .load import Results

TRAIN_SEEDS = "train_seeds"
STD_SUFFIX = "_std"


def seed_weights(replicas: int, resamples: int, seed: int) -> np.ndarray:
    """float64 [B, R]: the share of each of `replicas` replicas in each of B resamples that draw R replicas
    with replacement (rows sum to 1). The stream depends on (seed, replicas) only, so models with as many
    replicas share their draws; one replica is drawn every time."""
    if replicas == 1:
        return np.ones((resamples, 1))
    rng = np.random.default_rng([seed, replicas])
    draws = rng.integers(0, replicas, size=(resamples, replicas))
    offsets = np.arange(resamples)[:, None] * replicas
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * replicas)
    return counts.reshape(resamples, replicas) / replicas


def combine(per_replica: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Σ_r weights[b, r] * per_replica[r][b, ...]: per-replica arrays [B, ...] averaged with each resample's
    replica draw `weights` [B, R]."""
    stacked = np.stack([np.asarray(a, dtype=np.float64) for a in per_replica], axis=-1)  # [B, ..., R]
    w = weights.reshape(weights.shape[:1] + (1,) * (stacked.ndim - 2) + weights.shape[1:])
    return (stacked * w).sum(axis=-1)


def over_replicas(results: Results, table: Callable[[Results], pd.DataFrame], keys: Sequence[str],
                  spread: Sequence[str] = ()) -> pd.DataFrame:
    """`table(view)` of every replica view, one row per `keys` value: float columns averaged over the views
    that have the row (NaN if any is NaN, as a missing cell), other columns taken from the first;
    `train_seeds` counts those views, and with several replicas anywhere each `spread` column gets a
    `<column>_std` (sample standard deviation)."""
    views = results.replica_views()
    frames = [table(view) for view in views]
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return table(results)
    if len(frames) == 1:
        return frames[0].assign(**{TRAIN_SEEDS: 1})
    stacked = pd.concat(frames, ignore_index=True)
    grouped = stacked.groupby(list(keys), sort=False, dropna=False)
    columns = [c for c in frames[0].columns if c not in keys]
    floats = [c for c in columns if pd.api.types.is_float_dtype(stacked[c])]
    out = grouped[[c for c in columns if c not in floats]].first()
    out[floats] = grouped[floats].agg(lambda column: column.mean(skipna=False))  # a missing cell stays missing
    for column in spread:
        out[column + STD_SUFFIX] = grouped[column].std(ddof=1)
    out[TRAIN_SEEDS] = grouped.size()
    order = [c for c in frames[0].columns if c not in keys]
    for column in spread:
        order.insert(order.index(column) + 1, column + STD_SUFFIX)
    return out.reset_index()[[*keys, *order, TRAIN_SEEDS]]


def seeds_note(results: Results) -> str:
    """One line: how many training seeds stand behind each model's numbers, and what the CIs resample."""
    counts = {m: results.replicas(m) for m in results.models}
    if set(counts.values()) == {1}:
        return ("1 training seed per model: spreads over training seeds are not available and confidence "
                "intervals cover image sampling only")
    listed = ", ".join(f"{m} {n}" for m, n in counts.items())
    return (f"training seeds per model: {listed}; each number is the mean over a model's seeds, '_std' their "
            "sample standard deviation, and confidence intervals resample training seeds and images")


__all__ = ["STD_SUFFIX", "TRAIN_SEEDS", "combine", "over_replicas", "seed_weights", "seeds_note"]
