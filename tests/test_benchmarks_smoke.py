"""The benchmark scripts start and produce their tables (tiny sizes via --smoke; no timing is asserted)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_corruptions  # noqa: E402
import bench_gpu  # noqa: E402
import bench_metric  # noqa: E402
import bench_scaling  # noqa: E402
import bench_sweep_overhead  # noqa: E402
import bench_training  # noqa: E402
import bench_vs_naive  # noqa: E402
from sweep_fixture import write_checkpoint, write_mfnet_tree, write_suite  # noqa: E402

from rgbt_bench.corruptions import CORRUPTIONS  # noqa: E402


def table_rows(text: str) -> list[list[str]]:
    """Data rows of the Markdown tables in `text` (header and rule lines dropped)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    header = r"^(corruption|implementation|what|engine stage|variant|curve|non-model part)$"
    return [r for r in rows if not re.match(header, r[0])]


def test_corruptions_smoke(capsys):
    assert bench_corruptions.main(["--smoke", "--only", "thermal_blur,plasma_fog"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["thermal_blur", "plasma_fog"]
    for r in rows:
        assert all(float(v) > 0 for v in r[1:4])
    assert rows[0][4].endswith("(gaussian_blur)") and rows[1][4].endswith("(fog)")


def test_numpy_reference_matches_torch_for_deterministic_corruptions():
    batch = bench_corruptions.make_batch(2, (32, 40))
    for name in ("thermal_crossover", "koschmieder_fog", "thermal_blur"):
        c = bench_corruptions.CORRUPTIONS[name]
        p, o = c.severity_params(3), c.resolve_options()
        out = bench_corruptions.apply_corruption(batch, name, 3, seed=0)
        for i in range(2):
            rgb, thermal = bench_corruptions.NUMPY[name](batch.rgb[i].numpy(), batch.thermal[i].numpy(), p, o, None)
            assert torch.allclose(out.rgb[i], torch.as_tensor(rgb, dtype=torch.float32), atol=1e-5), name
            assert torch.allclose(out.thermal[i], torch.as_tensor(thermal, dtype=torch.float32), atol=1e-5), name


def test_metric_smoke(capsys):
    assert bench_metric.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    names = [r[0] for r in table_rows(out)]
    assert "ConfusionMatrix.update" in names and "torchmetrics MulticlassJaccardIndex.update" in names
    assert "goal (ConfusionMatrix.update not slower" in out


def test_sweep_overhead_smoke(capsys):
    assert bench_sweep_overhead.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "cells written: 2;" in out
    seconds = {r[0]: float(r[1]) for r in table_rows(out)}
    assert seconds["pure model forward"] > 0 and seconds["model"] > 0


def test_training_smoke(capsys):
    assert bench_training.main(["--smoke"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 3 and all(float(r[1]) > 0 for r in rows)


def test_scaling_smoke(capsys):
    assert bench_scaling.main(["--smoke"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [(r[0], r[1], r[2]) for r in rows] == [("images", "2", "2"), ("cells", "2", "3")]
    assert all(float(r[5]) > 50 for r in rows)  # peak RSS in MB of a process that imported torch


def test_gpu_measurements_run_on_any_device(tmp_path):
    """bench_gpu.py needs CUDA, but what it measures is device-agnostic: run each table on the CPU, tiny."""
    checkpoints = {"mfnet": str(write_checkpoint(tmp_path / "mfnet.pt", "mfnet", 9))}
    tree = write_mfnet_tree(tmp_path / "mfnet", 2, (32, 40))
    suite = write_suite(tmp_path / "suite.yaml", ["thermal_noise"], [3])
    [sweep] = bench_gpu.sweep_rows(tmp_path, tree, checkpoints, "tiny", suite, 2, 0, 2, "cpu", precisions=(False,))
    assert sweep[0] == "fp32" and sweep[1] > 0 and sweep[2] == "-"
    shares = dict(zip(bench_gpu.STAGES, sweep[3:]))
    assert sum(shares.values()) == pytest.approx(100) and shares["model"] > 0 and shares["corrupt"] > 0

    forwards = bench_gpu.model_rows(checkpoints, "tiny", (32, 40), 2, 1, "cpu")
    assert [tuple(r[:3]) for r in forwards] == [("mfnet", p, layout) for layout in ("contiguous", "channels_last")
                                                for p in ("fp32", "amp")]
    assert all(r[3] > 0 for r in forwards)

    corruptions = bench_gpu.corruption_rows(("mfnet", checkpoints["mfnet"]), "tiny", (32, 40), 2, 3, 1, "cpu")
    assert [r[0] for r in corruptions] == list(CORRUPTIONS)
    assert all(r[1] > 0 and r[2] > 0 for r in corruptions)


def test_gpu_script_says_why_without_cuda(capsys):
    if torch.cuda.is_available():
        assert bench_gpu.main(["--smoke"]) == 0
        assert "sweep" in capsys.readouterr().out
    else:
        assert bench_gpu.main(["--smoke"]) == 2
        assert "no CUDA device available" in capsys.readouterr().err


def test_vs_naive_smoke(capsys):
    assert bench_vs_naive.main(["--smoke", "--models", "mfnet,mine=user_model_example:build"]) == 0
    out = capsys.readouterr().out
    rows = {r[0]: r[1:] for r in table_rows(out)}
    for what in ("end to end, s", "model forward, s", "non-model, s"):
        assert float(rows[what][0]) > 0 and float(rows[what][1]) > 0, what
    assert float(rows["decode (PIL) / data"][0]) > 0 and float(rows["corrupt"][0]) > 0
    assert float(rows["CPU, s (all processes and threads)"][1]) > 0
    assert rows["processes x intra-op threads"][:2] == ["1 x 1", "1 x 1"]  # so small a job: no worker started
    assert out.rstrip().endswith("cells written per sweep: 6")  # 2 models x (clean + 2 corruptions at 1 severity)
    assert "goal (harness non-model time >= 10x below the naive loop's)" in out


def test_naive_loop_corrupts_like_the_harness_where_it_uses_imagecorruptions():
    """imagecorruptions' contrast is thermal_crossover's formula; it returns uint8, so they agree within 1/255."""
    batch = bench_corruptions.make_batch(2, (48, 64))
    rgb8 = (batch.rgb * 255).round().to(torch.uint8)
    thermal8 = (batch.thermal * 255).round().to(torch.uint8)
    exact = batch.__class__(rgb=rgb8.float() / 255, thermal=thermal8.float() / 255, label=batch.label, meta=batch.meta)
    for severity in (1, 5):
        ours = bench_corruptions.apply_corruption(exact, "thermal_crossover", severity, seed=0)
        naive = bench_vs_naive.naive_corruption(bench_vs_naive.Setting("thermal_crossover", severity))
        for i in range(2):
            rgb, thermal = naive(rgb8[i].permute(1, 2, 0).numpy(), thermal8[i, 0].numpy(), i)
            assert torch.equal(torch.from_numpy(rgb), exact.rgb[i])
            assert (torch.from_numpy(thermal) - ours.thermal[i]).abs().max() <= 1 / 255 + 1e-6
