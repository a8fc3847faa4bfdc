"""Robustness metrics (RR; CE / mCE as in ImageNet-C, Hendrycks & Dietterich, ICLR 2019), on mIoU fractions in [0, 1].

Per model and corruption c with severities s:
- mean mIoU_c = mean_s mIoU_s
- relative robustness RR_c = mean_s mIoU_s / mIoU_clean
- corruption error CE_c = sum_s (1 - mIoU_s) / sum_s (1 - mIoU_s of the reference model)  (ImageNet-C style)
- relative corruption error rCE_c = sum_s (E_s - E_clean) / sum_s (E_ref,s - E_ref,clean) with E = 1 - mIoU
  (ImageNet-C's relative CE: the degradation beyond the clean error, against the reference's)
Per model: mean corrupted mIoU = mean_c mean mIoU_c, RR = mean_c RR_c, mCE = mean_c CE_c, relative mCE =
mean_c rCE_c, and the worst case = min over every (corruption, severity) present. Each corruption weighs the
same whatever its severity count.
The functions take arrays with any leading batch shape (a scalar, or bootstrap resamples [B]) so that the
point estimates and their bootstrap distributions come from the same code. Missing cells (an unfinished sweep)
are NaN and make the means, RR and CE they enter NaN rather than silently biased; the worst case is taken
over the cells present.

With training-seed replicas (rgbt_bench.report.replicas) every statistic is computed per replica and averaged;
the reference's mIoUs are the mean over its replicas. `statistics` adds the missing-modality mIoUs and the
modality reliance of rgbt_bench.report.reliance to a model's summary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from .load import CLEAN, Results, check_model
from .reliance import MISSING, missing_severity, reliance
from .replicas import over_replicas

PCT = 100.0


@dataclass(frozen=True)
class Reference:
    """The model CE is measured against, and how it was chosen (flag, run.json or first model)."""

    model: str
    chosen_by: str


def choose_reference(results: Results, reference: Optional[str] = None) -> Reference:
    """--reference if given, else a reference named in run.json ("reference"), else the one the suite names
    (its `reference` key) when the results hold it, else the first model."""
    if reference is not None:
        return Reference(check_model(results, reference), "--reference")
    named = results.manifest.get("reference") or results.manifest.get("settings", {}).get("reference")
    if isinstance(named, str) and named in results.models:
        return Reference(named, "run.json")
    named = suite_reference(results)
    if named in results.models:
        return Reference(named, "suite")
    return Reference(results.models[0], "first model")


def suite_reference(results: Results) -> Optional[str]:
    """The reference model the results' suite names (run.json's suite record), None when it names none."""
    named = (results.manifest.get("suite") or {}).get("reference")
    return named if isinstance(named, str) else None


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def corruption_metrics(clean: np.ndarray, values: np.ndarray, reference: Optional[np.ndarray] = None,
                       reference_clean: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """mean, RR, CE and relative CE of one corruption; `values`/`reference` [..., S] mIoUs over severities,
    `clean`/`reference_clean` [...]."""
    values = np.asarray(values, dtype=np.float64)
    clean = np.asarray(clean, dtype=np.float64)
    mean = values.mean(axis=-1)
    nan = np.full(mean.shape, np.nan)
    out = {"mean": mean, "rr": _divide(mean, clean), "ce": nan, "rce": nan}
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        out["ce"] = _divide((1 - values).sum(axis=-1), (1 - reference).sum(axis=-1))
        if reference_clean is not None:
            ref_clean = np.asarray(reference_clean, dtype=np.float64)[..., None]
            out["rce"] = _divide((clean[..., None] - values).sum(axis=-1), (ref_clean - reference).sum(axis=-1))
    return out


def model_summary(clean: np.ndarray, corrupted: Mapping[str, np.ndarray],
                  reference: Optional[Mapping[str, np.ndarray]] = None,
                  reference_clean: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """clean, mean corrupted mIoU, RR, mCE, relative mCE and worst case of one model from its per-corruption
    [..., S] mIoUs (`reference`: the reference model's, for CE; `reference_clean` its clean mIoU, for rCE)."""
    clean = np.asarray(clean, dtype=np.float64)
    if not corrupted:
        nan = np.full(clean.shape, np.nan)
        return {"clean": clean, "mean_corrupted": nan, "rr": nan, "mce": nan, "rmce": nan, "worst": nan}
    per = {c: corruption_metrics(clean, v, None if reference is None else reference.get(c), reference_clean)
           for c, v in corrupted.items()}
    stack = {k: np.stack([p[k] for p in per.values()], axis=-1) for k in ("mean", "rr", "ce", "rce")}
    worst = np.fmin.reduce(np.concatenate([np.asarray(v, dtype=np.float64) for v in corrupted.values()], axis=-1),
                           axis=-1)
    return {"clean": clean, "mean_corrupted": stack["mean"].mean(-1), "rr": stack["rr"].mean(-1),
            "mce": stack["ce"].mean(-1), "rmce": stack["rce"].mean(-1), "worst": worst}


def statistics(clean: np.ndarray, corrupted: Mapping[str, np.ndarray], severities: Mapping[str, list[int]],
               reference: Mapping[str, np.ndarray], reference_clean: np.ndarray,
               missing: Optional[int]) -> dict[str, np.ndarray]:
    """model_summary plus, when both cameras were dropped at severity `missing`, the mIoU with each camera
    missing (rgb_missing, thermal_missing) and the modality reliance (rgbt_bench.report.reliance)."""
    out = model_summary(clean, corrupted, reference, reference_clean)
    if missing is not None:
        at = {name: np.asarray(corrupted[name], dtype=np.float64)[..., severities[name].index(missing)]
              for name in MISSING}
        out.update(at)
        out.update(reliance(clean, at["rgb_missing"], at["thermal_missing"]))
    return out


def model_values(results: Results, model: str, severities: Optional[Mapping[str, list[int]]] = None
                 ) -> tuple[float, dict[str, np.ndarray]]:
    """A model's clean mIoU and its mIoU vector over each corruption's severities (`severities`, default the
    results' own; NaN where a cell is missing)."""
    severities = severities or {c: results.severities(c) for c in results.corruptions}
    clean = results.miou(model, CLEAN, 0)
    corrupted = {c: np.array([results.miou(model, c, s) for s in severities[c]], dtype=np.float64)
                 for c in results.corruptions}
    return clean, corrupted


def reference_values(results: Results, model: str, severities: Mapping[str, list[int]]
                     ) -> tuple[float, dict[str, np.ndarray]]:
    """model_values of the reference `model`, averaged over its replicas."""
    per_view = [model_values(view, model, severities) for view in results.replica_views() if model in view.models]
    clean = float(np.mean([v[0] for v in per_view]))
    return clean, {c: np.mean([v[1][c] for v in per_view], axis=0) for c in results.corruptions}


def worst_setting(results: Results, model: str) -> str:
    """'corruption@severity' of the model's lowest corrupted mIoU ('' when it has no corrupted cell)."""
    cells = [(results.miou(model, c, s), c, s) for c in results.corruptions for s in results.severities(c)]
    cells = [x for x in cells if not np.isnan(x[0])]
    return "" if not cells else "{1}@{2}".format(*min(cells))


SUMMARY_SPREAD = ("clean_miou", "mean_corrupted_miou", "rr", "mce", "rmce", "worst_miou")


def robustness_tables(results: Results, reference: Reference,
                      reference_mious: Optional[tuple[float, dict[str, np.ndarray]]] = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per model and corruption: mean mIoU, RR, CE, rCE) and (per model: clean, mean corrupted, RR, mCE, relative
    mCE, worst; with both missing-modality settings also rgb_share and fusion_gain), each the mean over the
    model's training-seed replicas with `train_seeds` and, when a model has several, `*_std` columns.

    mIoUs and fusion_gain are in %, RR and CE / mCE in % (the reference model's CE is 100), rgb_share in % (50:
    balanced). `reference_mious`: the reference's (clean, {corruption: [S]}) mIoUs when they come from elsewhere
    (a leaderboard group's one reference), else those of `reference.model` in `results`.
    """
    severities = {c: results.severities(c) for c in results.corruptions}
    ref_clean, ref_values = reference_mious or reference_values(results, reference.model, severities)
    missing = missing_severity(results)

    def per_view(view: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
        per_corruption, per_model = [], []
        for model in view.models:
            clean, corrupted = model_values(view, model, severities)
            for c, values in corrupted.items():
                m = corruption_metrics(clean, values, ref_values.get(c), ref_clean)
                per_corruption.append({"model": model, "corruption": c, "severities": len(values),
                                       "mean_miou": PCT * float(m["mean"]), "rr": PCT * float(m["rr"]),
                                       "ce": PCT * float(m["ce"]), "rce": PCT * float(m["rce"])})
            s = statistics(clean, corrupted, severities, ref_values, ref_clean, missing)
            row = {"model": model, "clean_miou": PCT * float(s["clean"]),
                   "mean_corrupted_miou": PCT * float(s["mean_corrupted"]), "rr": PCT * float(s["rr"]),
                   "mce": PCT * float(s["mce"]), "rmce": PCT * float(s["rmce"]), "worst_miou": PCT * float(s["worst"]),
                   "worst_setting": worst_setting(view, model), "reference": reference.model}
            if missing is not None:
                row.update(rgb_share=PCT * float(s["rgb_share"]), fusion_gain=PCT * float(s["fusion_gain"]))
            per_model.append(row)
        return pd.DataFrame(per_corruption), pd.DataFrame(per_model)

    tables = {id(view): per_view(view) for view in results.replica_views()}
    per_corruption = over_replicas(results, lambda v: tables[id(v)][0], ["model", "corruption"],
                                   ("mean_miou", "rr", "ce", "rce"))
    spread = SUMMARY_SPREAD + (("rgb_share", "fusion_gain") if missing is not None else ())
    return per_corruption, over_replicas(results, lambda v: tables[id(v)][1], ["model"], spread)
