"""Was a training run still improving when it stopped? Judged from its val evaluations.

Definition: over the run's evaluations (iteration, val mIoU), `gain` is the best val mIoU among the
evaluations in the last `window` (default 25 %) of the run's iterations minus the best among the
evaluations before that window; the run was still rising when `gain` > `min_gain` (default 0.01, one mIoU
point). Read: "had training stopped at 75 % of its iterations, the checkpoint kept (the best on val)
would have been more than one point worse".

Why this form:
- best-before vs best-within, not last minus second-to-last: the trainer keeps the best checkpoint on
  val, so this is the quantity that matters, and one noisy dip (or spike) in a single evaluation cannot
  make a flat curve look rising (a max over several evaluations is robust to one low value);
- a fraction of the run, not a number of evaluations: under the poly schedule the last quarter still has
  a learning rate worth training with (on average 15 % of the base), so a curve flat over it has
  stopped improving for this schedule, while a run that is cut short gains several points there;
- one point: on the synthetic val split (100 images) converged runs move by less than ~0.5 point between
  late evaluations, under-trained ones by 2-6 points over their last quarter.
It needs an evaluation in the window and one in the window-long stretch just before it (after 50 % and at
or before 75 % of the run), so that the comparison spans about one window: at least 4 evenly spaced
evaluations (25/50/75/100 %) or 3 (33/67/100 %); with fewer the answer is None (cannot tell). With only the
halfway and final evaluations the gain would span half the run, which under-trained and converged runs both
show.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..errors import DataError

WINDOW = 0.25
MIN_GAIN = 0.01
# Evenly spaced val evaluations (at k/n of the run) that let `convergence` answer with WINDOW = 0.25.
MIN_EVALUATIONS = 3


@dataclass(frozen=True)
class Convergence:
    """The verdict on one run's val curve. `rising` None: too few evaluations to tell.

    `before` / `within`: best val mIoU (fraction) before and inside the last window, which starts after
    iteration `window_start`; `gain` = within - before (None when `rising` is None).
    """

    rising: Optional[bool]
    gain: Optional[float]
    before: Optional[float]
    within: Optional[float]
    window_start: int
    evaluations: int


def convergence(history: Sequence[Mapping[str, Any]], window: float = WINDOW,
                min_gain: float = MIN_GAIN) -> Convergence:
    """Judge a run from its val evaluations: records with "iteration" and "miou" (a fraction), as in the
    training log (`read_val_history`) or a checkpoint's metrics["history"]. The run's end is its last
    evaluation (the trainer always evaluates at the end of training)."""
    if not 0 < window < 1:
        raise ValueError(f"window must be in (0, 1), got {window}")
    points = sorted((int(r["iteration"]), float(r["miou"])) for r in history)
    end = points[-1][0] if points else 0
    start = int(end * (1 - window))
    before = [m for it, m in points if it <= start]
    within = [m for it, m in points if it > start]
    recent = any(start - window * end < it <= start for it, _ in points)
    if not (recent and within):
        return Convergence(None, None, max(before, default=None), max(within, default=None), start, len(points))
    gain = max(within) - max(before)
    return Convergence(gain > min_gain, gain, max(before), max(within), start, len(points))


def _points(records: Sequence[Mapping[str, Any]], split: str) -> list[dict[str, Any]]:
    """{"iteration", "miou"} of the `split` evaluations among training-log or history records, in order."""
    return [{"iteration": int(r["iteration"]), "miou": float(r["miou"])} for r in records
            if isinstance(r, Mapping) and r.get("split", split) == split and "miou" in r and "iteration" in r]


def training_curve(ckpt: Mapping[str, Any], path: Optional[str | Path]) -> dict[str, Any]:
    """What a report needs to judge a checkpoint's training (`convergence`), recorded with every sweep cell:
    {"iterations": the run's planned iterations, "split": the selection split, "val": [{"iteration", "miou"}],
    "source": "checkpoint" or the training log's file name, "unknown": why the curve cannot be judged, or None}.

    The curve is the checkpoint's metrics["history"] (complete in checkpoints written since the trainer records
    the whole run there); when that stops before the run's last iteration, the training log beside the
    checkpoint (`<stem>.log.jsonl`) is read instead, if its val records start with the checkpoint's own (the
    same run). A checkpoint without an rgbt-bench training config (imported, or another tool's) has no curve.
    """
    config = ckpt.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("iterations"), int):
        return {"iterations": None, "split": None, "val": [], "source": None,
                "unknown": "no rgbt-bench training config in the checkpoint (imported or trained elsewhere)"}
    iterations, split = config["iterations"], str(config.get("select_on") or "val")
    metrics = ckpt.get("metrics") if isinstance(ckpt.get("metrics"), Mapping) else {}
    val, source = _points(metrics.get("history") or [], split), "checkpoint"
    log = Path(path).with_name(f"{Path(path).stem}.log.jsonl") if path is not None else None
    if (not val or val[-1]["iteration"] < iterations) and log is not None and log.is_file():
        try:
            logged = _points(read_val_history(log, split), split)
        except DataError:
            logged = []
        if logged[:len(val)] == val and len(logged) > len(val):
            val, source = logged, log.name
    unknown = None
    if not val:
        unknown = "no val evaluations recorded"
    elif val[-1]["iteration"] < iterations:
        unknown = f"the recorded val curve ends at iteration {val[-1]['iteration']} of {iterations}"
    return {"iterations": iterations, "split": split, "val": val, "source": source, "unknown": unknown}


def read_val_history(log_path: str | Path, split: str = "val") -> list[dict[str, Any]]:
    """The `split` evaluations recorded in a training log (`<checkpoint stem>.log.jsonl`), in file order; a
    line torn by a kill or a full disk is skipped, as the trainer does on resume."""
    from .loop import log_records
    path = Path(log_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the training log ({exc.strerror or exc})") from exc
    return [record for _, record in log_records(text) if record.get("split") == split and "miou" in record]
