"""Robustness metrics (RR; CE / mCE as in ImageNet-C, Hendrycks & Dietterich, ICLR 2019), on mIoU fractions in [0, 1].

Per model and corruption c with severities s:
- mean mIoU_c = mean_s mIoU_s
- relative robustness RR_c = mean_s mIoU_s / mIoU_clean
- corruption error CE_c = sum_s (1 - mIoU_s) / sum_s (1 - mIoU_s of the reference model)  (ImageNet-C style)
Per model: mean corrupted mIoU = mean_c mean mIoU_c, RR = mean_c RR_c, mCE = mean_c CE_c, and the worst
case = min over every (corruption, severity) present. Each corruption weighs the same whatever its severity count.
The functions take arrays with any leading batch shape (a scalar, or bootstrap resamples [B]) so that the
point estimates and their bootstrap distributions come from the same code. Missing cells (an unfinished sweep)
are NaN and make the means, RR and CE they enter NaN rather than silently biased; the worst case is taken
over the cells present.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from .load import CLEAN, Results, check_model

PCT = 100.0


@dataclass(frozen=True)
class Reference:
    """The model CE is measured against, and how it was chosen (flag, run.json or first model)."""

    model: str
    chosen_by: str


def choose_reference(results: Results, reference: Optional[str] = None) -> Reference:
    """--reference if given, else a reference named in run.json ("reference"), else the first model."""
    if reference is not None:
        return Reference(check_model(results, reference), "--reference")
    named = results.manifest.get("reference") or results.manifest.get("settings", {}).get("reference")
    if isinstance(named, str) and named in results.models:
        return Reference(named, "run.json")
    return Reference(results.models[0], "first model")


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def corruption_metrics(clean: np.ndarray, values: np.ndarray,
                       reference: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """mean, RR and CE of one corruption; `values`/`reference` [..., S] mIoUs over severities, `clean` [...]."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=-1)
    out = {"mean": mean, "rr": _divide(mean, clean)}
    out["ce"] = (_divide((1 - values).sum(axis=-1), (1 - np.asarray(reference)).sum(axis=-1))
                 if reference is not None else np.full(mean.shape, np.nan))
    return out


def model_summary(clean: np.ndarray, corrupted: Mapping[str, np.ndarray],
                  reference: Optional[Mapping[str, np.ndarray]] = None) -> dict[str, np.ndarray]:
    """clean, mean corrupted mIoU, RR, mCE and worst case of one model from its per-corruption [..., S] mIoUs."""
    clean = np.asarray(clean, dtype=np.float64)
    if not corrupted:
        nan = np.full(clean.shape, np.nan)
        return {"clean": clean, "mean_corrupted": nan, "rr": nan, "mce": nan, "worst": nan}
    per = {c: corruption_metrics(clean, v, None if reference is None else reference.get(c))
           for c, v in corrupted.items()}
    stack = {k: np.stack([p[k] for p in per.values()], axis=-1) for k in ("mean", "rr", "ce")}
    worst = np.fmin.reduce(np.concatenate([np.asarray(v, dtype=np.float64) for v in corrupted.values()], axis=-1),
                           axis=-1)
    return {"clean": clean, "mean_corrupted": stack["mean"].mean(-1), "rr": stack["rr"].mean(-1),
            "mce": stack["ce"].mean(-1), "worst": worst}


def model_values(results: Results, model: str) -> tuple[float, dict[str, np.ndarray]]:
    """A model's clean mIoU and its mIoU vector over each corruption's severities (NaN where a cell is missing)."""
    clean = results.miou(model, CLEAN, 0)
    corrupted = {c: np.array([results.miou(model, c, s) for s in results.severities(c)])
                 for c in results.corruptions}
    return clean, corrupted


def worst_setting(results: Results, model: str) -> str:
    """'corruption@severity' of the model's lowest corrupted mIoU ('' when it has no corrupted cell)."""
    cells = [(results.miou(model, c, s), c, s) for c in results.corruptions for s in results.severities(c)]
    cells = [x for x in cells if not np.isnan(x[0])]
    return "" if not cells else "{1}@{2}".format(*min(cells))


def robustness_tables(results: Results, reference: Reference) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per model and corruption: mean mIoU, RR, CE) and (per model: clean, mean corrupted, RR, mCE, worst).

    mIoUs are in %, RR and CE / mCE in % (the reference model's CE is 100).
    """
    _, ref_values = model_values(results, reference.model)
    per_corruption, per_model = [], []
    for model in results.models:
        clean, corrupted = model_values(results, model)
        for c, values in corrupted.items():
            m = corruption_metrics(clean, values, ref_values[c])
            per_corruption.append({"model": model, "corruption": c, "severities": len(values),
                                   "mean_miou": PCT * float(m["mean"]), "rr": PCT * float(m["rr"]),
                                   "ce": PCT * float(m["ce"])})
        s = model_summary(clean, corrupted, ref_values)
        per_model.append({"model": model, "clean_miou": PCT * float(s["clean"]),
                          "mean_corrupted_miou": PCT * float(s["mean_corrupted"]), "rr": PCT * float(s["rr"]),
                          "mce": PCT * float(s["mce"]), "worst_miou": PCT * float(s["worst"]),
                          "worst_setting": worst_setting(results, model), "reference": reference.model})
    return pd.DataFrame(per_corruption), pd.DataFrame(per_model)
