"""Harness overhead of a sweep: its wall time against the pure model forward time on the same work.

Both sides run in this process on the same device, images, models and cells (models x settings):
- sweep: `run_sweep(SweepConfig)` into a fresh output directory, timed end to end (models and suite
  loaded, dataset fingerprinted, images decoded, corrupted, scored, cells and manifest written); the
  engine's own per-stage seconds (run.json "timing") are reported next to it;
- pure model: the images decoded, batched and corrupted beforehand (untimed), then only
  `model(rgb, thermal)` under torch.inference_mode for every cell and batch, timed.
The two are run interleaved `--repeats` times and the medians compared:
overhead = (sweep wall - pure model) / pure model. Goal (issue): under 10%.

Data: an MFNet-format tree of `--images` images at `--size` written to a temporary directory (files
decoded one at a time, as with the real dataset), or `--dataset synthetic` (the built-in dataset, held in
memory). Models: untrained tiny presets with seeded weights (speed does not depend on the weights).

Run: python benchmarks/bench_sweep_overhead.py [--models crm,rtfnet] [--images 16] [--size 240x320]
     [--batch 8] [--repeats 2] [--dataset mfnet|synthetic] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import load_average, machine_line, markdown_table  # noqa: E402
from sweep_fixture import DEFAULT_ENTRIES, write_checkpoint, write_mfnet_tree, write_suite  # noqa: E402

from rgbt_bench.batch import collate  # noqa: E402
from rgbt_bench.corruptions import apply_corruption, load_suite  # noqa: E402
from rgbt_bench.datasets import open_dataset  # noqa: E402
from rgbt_bench.models.loading import load_model  # noqa: E402
from rgbt_bench.sweep import SweepConfig, run_sweep  # noqa: E402
from rgbt_bench.sweep.manifest import MANIFEST  # noqa: E402


def prepare(work: Path, dataset: str, images: int, size: tuple[int, int], models: list[str],
            corruptions: list[str]) -> tuple[str, dict, dict[str, str], Path]:
    """(dataset spec, dataset options, checkpoints by model, suite path) for the run."""
    if dataset == "mfnet":
        spec, options = f"mfnet:{write_mfnet_tree(work / 'mfnet', images, size)}", {}
    else:
        spec, options = "synthetic", {"size": list(size), "counts": {"train": 2, "val": 2, "test": images}}
    num_classes = open_dataset(spec, "test", **options).info.num_classes
    checkpoints = {m: str(write_checkpoint(work / f"{m}.pt", m, num_classes)) for m in models}
    return spec, options, checkpoints, write_suite(work / "bench_suite.yaml", corruptions, [3])


def time_sweep(work: Path, run: int, spec: str, options: dict, checkpoints: dict[str, str], suite: Path,
               batch: int) -> tuple[float, dict]:
    out = work / f"sweep{run}"
    config = SweepConfig(models=list(checkpoints), dataset=spec, split="test", suite=str(suite), out=str(out),
                         checkpoints=checkpoints, batch_size=batch, device="cpu", dataset_options=options,
                         progress=False)
    start = time.perf_counter()
    run_sweep(config)
    wall = time.perf_counter() - start
    manifest = json.loads((out / MANIFEST).read_text())
    cells = len(list((out / "cells").glob("*.json")))
    shutil.rmtree(out)
    return wall, {**manifest["timing"], "cells": cells}


def pure_inputs(spec: str, options: dict, suite: Path, batch: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per setting (clean first, then the suite's entries at their severities, seed 0): the corrupted batches."""
    ds = open_dataset(spec, "test", **options)
    batches = [collate([ds[i] for i in range(s, min(s + batch, len(ds)))]) for s in range(0, len(ds), batch)]
    settings = [[(b.rgb, b.thermal) for b in batches]]
    for entry in load_suite(suite).entries:
        for severity in entry.severities:
            corrupted = [apply_corruption(b, entry.corruption, severity, 0, **entry.options) for b in batches]
            settings.append([(b.rgb, b.thermal) for b in corrupted])
    return settings


def time_models(models: dict[str, torch.nn.Module], settings) -> float:
    total = 0.0
    with torch.inference_mode():
        for batches in settings:
            for model in models.values():
                for rgb, thermal in batches:
                    start = time.perf_counter()
                    model(rgb, thermal)
                    total += time.perf_counter() - start
    return total


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="crm,rtfnet")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", default="240x320")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dataset", choices=("mfnet", "synthetic"), default="mfnet")
    ap.add_argument("--corruptions", default=",".join(DEFAULT_ENTRIES), help="suite entries, severity 3 each")
    ap.add_argument("--smoke", action="store_true", help="2 images of 32x40, one model, one corruption")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    models = [m for m in args.models.split(",") if m]
    corruptions = [c for c in args.corruptions.split(",") if c]
    if args.smoke:
        size, args.images, args.batch, args.repeats, models, corruptions = (32, 40), 2, 2, 1, ["crm"], ["night"]
    with tempfile.TemporaryDirectory(prefix="rgbt-bench-overhead-") as tmp:
        work = Path(tmp)
        spec, options, checkpoints, suite = prepare(work, args.dataset, args.images, size, models, corruptions)
        loaded = {m: load_model(m, open_dataset(spec, "test", **options).info.num_classes, "tiny",
                                checkpoint=checkpoints[m])[0].eval() for m in models}
        settings = pure_inputs(spec, options, suite, args.batch)
        print(f"# sweep overhead: {len(models)} models x {len(settings)} settings on {args.images} images "
              f"{size[0]}x{size[1]} ({args.dataset}), batch {args.batch}, median of {args.repeats}; {machine_line()}")
        load_before = load_average()
        walls, pures, timings = [], [], []
        for run in range(args.repeats):
            wall, timing = time_sweep(work, run, spec, options, checkpoints, suite, args.batch)
            walls.append(wall)
            timings.append(timing)
            pures.append(time_models(loaded, settings))
        load_after = load_average()
    wall, pure = statistics.median(walls), statistics.median(pures)
    t = timings[walls.index(sorted(walls)[(len(walls) - 1) // 2])]
    rows = [["sweep wall (run_sweep, end to end)", wall, 100 * (wall - pure) / pure],
            ["sweep passes (engine total_s)", t["total_s"], 100 * (t["total_s"] - pure) / pure],
            ["pure model forward", pure, 0.0]]
    print(markdown_table(["what", "seconds", "overhead % of pure model"], rows))
    print(markdown_table(["engine stage", "seconds"],
                         [[k[:-2], t[k]] for k in ("data_s", "transfer_s", "corrupt_s", "model_s", "metric_s",
                                                   "write_s")]))
    print(f"cells written: {t['cells']}; all sweep walls {[round(w, 2) for w in walls]}, "
          f"pure {[round(p, 2) for p in pures]}; load before/after {load_before:.2f}/{load_after:.2f}")
    overhead = (wall - pure) / pure
    print(f"goal (harness overhead < 10% of model time): {'met' if overhead < 0.10 else 'MISSED'} "
          f"({100 * overhead:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
