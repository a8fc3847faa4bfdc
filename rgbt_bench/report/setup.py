"""The setup behind sweep results: what must be equal for two mIoUs to be compared.

Leaderboards rank together only results directories of one setup (DIRECTORY_FIELDS), and regression
baselines carry the setup of every cell (BASELINE_FIELDS) so that `check` refuses a baseline made under
another one instead of comparing unlike numbers:
- dataset_fingerprint: the files of the split (rgbt_bench.sweep.manifest.dataset_fingerprint);
- split, convention (mIoU convention), images (how many images each cell covers);
- suite: a hash of the suite's entries with their corruptions, severities and options, from run.json's suite
  record (from the cells' corruption settings when a directory has no run.json);
- train_seeds: the training seeds behind the numbers ('given' for weights passed as checkpoints);
- evaluation: how the logits were computed, the inference mode (whole, slide, ms-flip with its scales) and
  mixed precision: ms-flip or AMP moves an mIoU by more than the differences being compared;
- preset and weights (per model): 'training:<hash>' of the training config an rgbt-bench checkpoint
  records, which fixes the weights up to the machine's floating point, else 'checkpoint:<hash>' of the
  weights file, else 'none'.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from ..inference import describe
from ..sweep.cell import CellRecord
from .load import Results

DIRECTORY_FIELDS = ("dataset_fingerprint", "split", "convention", "suite", "images", "train_seeds", "evaluation")
BASELINE_FIELDS = ("dataset_fingerprint", "images", "suite", "evaluation", "preset", "weights")
HASH_LENGTH = 12


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:HASH_LENGTH]


def suite_hash(results: Results) -> str:
    """Hash of the suite the results were swept with: its entries (label, corruption, severities, options)."""
    entries = (results.manifest.get("suite") or {}).get("entries")
    if entries:
        return _hash([[e.get("label"), e.get("corruption"), sorted(e.get("severities") or []), e.get("options")]
                      for e in entries])
    settings = {(c.record.key.corruption, c.record.identity.corruption_name, c.record.key.severity,
                 json.dumps(c.record.identity.options, sort_keys=True)) for c in results.raw
                if c.record.identity.corruption_name is not None}
    return _hash(sorted(settings))


def seeds_label(seeds: tuple[Optional[int], ...]) -> str:
    """'0,1,2'; 'given' for weights without a training seed."""
    return ",".join("given" if s is None else str(s) for s in seeds)


def train_seeds_label(results: Results) -> str:
    """The training seeds behind a directory: '0,1,2' when every model has the same, else per model."""
    labels = {m: seeds_label(results.train_seeds.get(m, (None,))) for m in results.models}
    if len(set(labels.values())) == 1:
        return next(iter(labels.values()))
    return "; ".join(f"{m}: {label}" for m, label in labels.items())


def weights_label(record: CellRecord) -> str:
    """'training:<hash>', 'checkpoint:<hash>' or 'none': what fixes the weights behind a cell."""
    if record.training_sha256:
        return f"training:{record.training_sha256[:HASH_LENGTH]}"
    if record.identity.checkpoint_sha256:
        return f"checkpoint:{record.identity.checkpoint_sha256[:HASH_LENGTH]}"
    return "none"


def evaluation_label(record: CellRecord) -> str:
    """'whole', 'slide 240x320 stride 160x213' or 'ms-flip scales 0.5,...,1.75 + flip', then ' + AMP' when the
    logits were computed in mixed precision."""
    return describe(record.identity.inference) + (" + AMP" if record.identity.amp else "")


def directory_setup(results: Results) -> dict[str, Any]:
    """The DIRECTORY_FIELDS of a results directory."""
    fingerprints = sorted({c.record.identity.dataset_fingerprint for c in results.raw})
    return {"dataset_fingerprint": ",".join(fingerprints), "split": results.split, "convention": results.convention,
            "suite": suite_hash(results), "images": len(results.names), "train_seeds": train_seeds_label(results),
            "evaluation": "; ".join(sorted({evaluation_label(c.record) for c in results.raw}))}


__all__ = ["BASELINE_FIELDS", "DIRECTORY_FIELDS", "directory_setup", "evaluation_label", "seeds_label", "suite_hash",
           "train_seeds_label", "weights_label"]
