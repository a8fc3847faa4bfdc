"""training.convergence: the still-rising verdict on a val curve, and reading it from a training log."""
import json

import pytest

from rgbt_bench.errors import DataError
from rgbt_bench.training.convergence import MIN_EVALUATIONS, convergence, read_val_history


def _history(*mious, every=100):
    return [{"iteration": every * (i + 1), "split": "val", "miou": m} for i, m in enumerate(mious)]


@pytest.mark.parametrize("mious, rising, gain", [
    ((0.30, 0.50, 0.60, 0.66), True, 0.06),       # still climbing over the last quarter
    ((0.30, 0.50, 0.600, 0.605), False, 0.005),   # flat within noise
    ((0.30, 0.60, 0.55, 0.605), False, 0.005),    # a dip at 75 % does not make a flat curve rise
    ((0.30, 0.60, 0.62, 0.60), False, -0.02),     # falling at the end
    ((0.30, 0.50, 0.60, 0.609), False, 0.009),   # just under one point
])
def test_verdict_compares_best_in_last_quarter_with_best_before(mious, rising, gain):
    verdict = convergence(_history(*mious))
    assert verdict.rising is rising
    assert verdict.gain == pytest.approx(gain)
    assert verdict.window_start == 300
    assert verdict.evaluations == 4


def test_more_evaluations_use_every_one_before_the_window():
    verdict = convergence(_history(0.2, 0.3, 0.7, 0.4, 0.5, 0.6, 0.65, 0.68))  # 800 iterations, window after 600
    assert (verdict.before, verdict.within, verdict.window_start) == (0.7, 0.68, 600)
    assert verdict.rising is False


def test_unsorted_history_is_sorted_by_iteration():
    history = _history(0.3, 0.5, 0.6, 0.7)
    assert convergence(history[::-1]) == convergence(history)


@pytest.mark.parametrize("history", [[], _history(0.5), _history(0.4, 0.6)])
def test_too_few_evaluations_cannot_tell(history):
    verdict = convergence(history)
    assert verdict.rising is None and verdict.gain is None


def test_min_evaluations_evenly_spaced_are_enough():
    assert convergence(_history(*[0.5] * MIN_EVALUATIONS)).rising is False
    assert convergence(_history(*[0.5] * (MIN_EVALUATIONS - 1))).rising is None


def test_window_and_threshold_are_parameters():
    history = _history(0.3, 0.5, 0.6, 0.66)
    assert convergence(history, min_gain=0.1).rising is False
    assert convergence(history, window=0.5).gain == pytest.approx(0.16)
    with pytest.raises(ValueError, match="window"):
        convergence(history, window=1.0)


def test_read_val_history_keeps_val_records_and_skips_a_torn_line(tmp_path):
    log = tmp_path / "m.log.jsonl"
    lines = [{"iteration": 10, "lr": 0.1, "loss": 1.0}, *_history(0.3, 0.5)]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"iteration": 300, "split": "va')
    assert read_val_history(log) == _history(0.3, 0.5)


def test_read_val_history_of_a_missing_log_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="absent.log.jsonl: cannot read the training log"):
        read_val_history(tmp_path / "absent.log.jsonl")
