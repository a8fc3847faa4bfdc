"""The public entry points document their arguments and return value, and their examples run (doctest).

Each module's examples run in an empty working directory, so the files they write (results/example,
models/) go to a temporary folder; the synthetic dataset goes to the test session's cache (conftest.py).
"""
import doctest
import importlib
import io

import pytest

ENTRY_POINTS = [
    "rgbt_bench.datasets.open_dataset",
    "rgbt_bench.corruptions.registry.apply_corruption",
    "rgbt_bench.corruptions.suite.load_suite",
    "rgbt_bench.models.registry.build_model",
    "rgbt_bench.models.loading.load_model",
    "rgbt_bench.metrics.iou.compute_metrics",
    "rgbt_bench.metrics.confusion.ConfusionMatrix",
    "rgbt_bench.sweep.engine.run_sweep",
    "rgbt_bench.report.load.load_results",
    "rgbt_bench.report.build.build_report",
    "rgbt_bench.report.leaderboard.build_leaderboard",
    "rgbt_bench.report.check.compare",
]
MODULES = sorted({name.rpartition(".")[0] for name in ENTRY_POINTS})


def entry_point(name: str):
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_documents_arguments_returns_and_an_example(name):
    doc = entry_point(name).__doc__ or ""
    missing = [section for section in ("Args:", "Returns:", ">>> ") if section not in doc]
    if isinstance(entry_point(name), type):  # a class: its constructor's arguments, no return value
        missing = [s for s in missing if s != "Returns:"]
    assert missing == [], f"{name}'s docstring lacks {', '.join(missing)}"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tests = [t for t in doctest.DocTestFinder().find(importlib.import_module(module)) if t.examples]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.tries > 0
    assert runner.failures == 0, report.getvalue()
