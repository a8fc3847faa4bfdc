"""The whole job against the loop a user writes instead: `rgbt-bench sweep` vs PIL + imagecorruptions + torchmetrics.

Both sides evaluate the same models (untrained tiny presets with seeded weights, plus any 'module:fn' model)
on the same MFNet-format images (a tree written by sweep_fixture.py, 480x640 by default) under the same cells:
clean plus every corruption of the bundled `default` suite at severities 1..5 (or the subset given by
`--corruptions` / `--severities`), seed 0, with the same batch size and DataLoader workers. Each side uses the
cores its own way, as a user gets it: the naive loop one process with torch's intra-op threads (`--threads`,
default torch's), the sweep what `rgbt-bench sweep` does by default on CPU (`--jobs`, default automatic: one
single-threaded process per core, fewer for a small job; rgbt_bench.sweep.local).

(a) naive: the loop a user writes without the harness (benchmarks/README.md says exactly what it does). For
    each setting (clean, or corruption x severity): a torch Dataset that reads the split file and, per image,
    decodes the 4-channel PNG and the label PNG with PIL, corrupts it with `imagecorruptions` where it has
    the same corruption (plasma_fog = fog, thermal_crossover = contrast, the thermal image passed as a grey
    image) and with the per-image numpy formula of benchmarks/bench_corruptions.py otherwise, and converts
    to float tensors; a DataLoader batches it; every model runs on each batch under torch.inference_mode and
    a torchmetrics MulticlassJaccardIndex per model and setting is updated with the argmax. Models are built
    and their checkpoints loaded with torch.load at the start (timed). Decoding and corruption are shared by
    all models of a setting, as in the harness.
(b) harness: `sweep_locally(SweepConfig, jobs)` (what `rgbt-bench sweep` calls) into a fresh output directory,
    end to end, worker processes' start included.

Model time is the forward passes only: timed around `model(rgb, thermal)` in (a), the sweep's own "model"
stage in (b) (rgbt_bench/sweep/timing.py; with several processes the slowest rank's: the ranks forward equal
shares of the images, but one core can run them a few % slower, and the others wait for it at the end of each
pass, so that is the wall time the forwards take). Non-model time = end-to-end wall - model time: everything else
(decoding, corruption, metric, writing, setup, starting processes). CPU seconds (this process and its finished
children) are reported beside the wall times. The two are run interleaved `--repeats` times after one
warm-up round on two settings, and medians reported. Before timing, the clean cells of (a) and (b) are
checked to give the same per-class IoU (same decoding, same model, same batches).
Goals (issue): the harness's non-model time at least 10x below the naive loop's, and its non-model time
under 3% of its model time.

Run: python benchmarks/bench_vs_naive.py [--models crm,mfnet,NAME=module:fn] [--images 8] [--size 480x640]
     [--corruptions all|NAME,...] [--severities 1,2,3,4,5] [--batch 8] [--workers 0] [--repeats 3] [--threads N]
     [--jobs N] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader, Dataset

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from bench_corruptions import NUMPY  # noqa: E402
from common import load_average, machine_line, markdown_table  # noqa: E402
from sweep_fixture import write_checkpoint, write_mfnet_tree  # noqa: E402

from rgbt_bench.corruptions import CORRUPTIONS, load_suite  # noqa: E402
from rgbt_bench.models import build_model  # noqa: E402
from rgbt_bench.sweep import SweepConfig  # noqa: E402
from rgbt_bench.sweep.local import sweep_locally  # noqa: E402
from rgbt_bench.sweep.manifest import MANIFEST  # noqa: E402
from rgbt_bench.sweep.models import parse_models  # noqa: E402
from rgbt_bench.sweep.store import read_cells  # noqa: E402

NUM_CLASSES = 9  # MFNet
GOAL_NON_MODEL_RATIO = 10.0
GOAL_OVERHEAD = 0.03
# Corruptions imagecorruptions has with the same formula and severity table: ours -> (its function, the image).
# Its gaussian_noise, gaussian_blur and shot_noise are not the same corruptions as thermal_noise (other sigmas),
# thermal_blur (sigma not scaled with the image height) and night (only the Poisson part), so for those, as
# for the rest, the naive loop uses the per-image numpy formula.
SAME_IN_IMAGECORRUPTIONS = {"plasma_fog": ("fog", "rgb"), "thermal_crossover": ("contrast", "thermal")}


@dataclass(frozen=True)
class Setting:
    """One evaluated setting: clean (corruption None) or a suite entry at one severity."""

    corruption: Optional[str] = None
    severity: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "clean" if self.corruption is None else f"{self.corruption}@{self.severity}"


def cpu_seconds() -> float:
    """CPU seconds of this process (all its threads) and of its children that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


# ----- (a) the naive loop ------------------------------------------------------------------------------------
def naive_corruption(s: Setting) -> Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    """(rgb uint8 HxWx3, thermal uint8 HxW, image index) -> (rgb float32 3xHxW, thermal float32 1xHxW) in [0, 1]."""
    if s.corruption in SAME_IN_IMAGECORRUPTIONS:
        from imagecorruptions import corrupt
        function, modality = SAME_IN_IMAGECORRUPTIONS[s.corruption]

        def with_imagecorruptions(rgb, thermal, i):
            if modality == "rgb":
                rgb = corrupt(rgb, severity=s.severity, corruption_name=function)
            else:
                thermal = corrupt(thermal, severity=s.severity, corruption_name=function)[..., 0]
            return rgb.transpose(2, 0, 1).astype(np.float32) / 255, thermal[None].astype(np.float32) / 255
        return with_imagecorruptions
    formula = NUMPY[s.corruption]
    corruption = CORRUPTIONS[s.corruption]
    params, options = corruption.severity_params(s.severity), corruption.resolve_options(**s.options)

    def with_numpy(rgb, thermal, i):
        rgb, thermal = rgb.transpose(2, 0, 1).astype(np.float32) / 255, thermal[None].astype(np.float32) / 255
        out_rgb, out_thermal = formula(rgb, thermal, params, options, np.random.default_rng([0, i]))
        return out_rgb.astype(np.float32, copy=False), out_thermal.astype(np.float32, copy=False)
    return with_numpy


class NaiveMFNet(Dataset):
    """One MFNet split under one setting, as a user writes it: PIL per image, numpy corruption, tensors."""

    def __init__(self, root: Path, split: str, setting: Setting, clock: dict[str, float]):
        self.root = root
        self.names = (root / f"{split}.txt").read_text().split()
        self.corrupt = None if setting.corruption is None else naive_corruption(setting)
        self.clock = clock

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        start = time.perf_counter()
        image = np.array(Image.open(self.root / "images" / f"{self.names[i]}.png"))
        label = torch.from_numpy(np.array(Image.open(self.root / "labels" / f"{self.names[i]}.png")).astype(np.int64))
        decoded = time.perf_counter()
        rgb, thermal = image[..., :3], image[..., 3]
        if self.corrupt is None:
            rgb_t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
            thermal_t = torch.from_numpy(thermal)[None].float() / 255
        else:
            rgb_np, thermal_np = self.corrupt(rgb, thermal, i)
            rgb_t, thermal_t = torch.from_numpy(rgb_np), torch.from_numpy(thermal_np)
        self.clock["decode"] += decoded - start
        self.clock["corrupt"] += time.perf_counter() - decoded
        return rgb_t, thermal_t, label


def run_naive(tree: Path, models: dict[str, str], checkpoints: dict[str, str], settings: list[Setting], batch: int,
              workers: int) -> dict[str, Any]:
    """Wall, model and stage seconds of the naive loop, and its per-class IoU per (model, setting)."""
    # imported here, not at the top: the sweep's worker processes re-import this script (multiprocessing's
    # spawn) and would otherwise pay torchmetrics' import (~2 s) that `rgbt-bench sweep` does not
    from torchmetrics.classification import MulticlassJaccardIndex
    clock = {"decode": 0.0, "corrupt": 0.0, "model": 0.0, "metric": 0.0}
    start, cpu = time.perf_counter(), cpu_seconds()
    nets = {}
    for name, spec in models.items():
        nets[name] = build_model(spec, NUM_CLASSES, "tiny")
        nets[name].load_state_dict(torch.load(checkpoints[name], map_location="cpu")["state_dict"])
        nets[name].eval()
    iou: dict[tuple[str, str], np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # imagecorruptions' deprecation warnings
        for setting in settings:
            np.random.seed(0)  # imagecorruptions draws from numpy's global generator
            metrics = {name: MulticlassJaccardIndex(num_classes=NUM_CLASSES, average="none") for name in nets}
            loader = DataLoader(NaiveMFNet(tree, "test", setting, clock), batch_size=batch, num_workers=workers)
            with torch.inference_mode():
                for rgb, thermal, label in loader:
                    for name, net in nets.items():
                        t0 = time.perf_counter()
                        logits = net(rgb, thermal)
                        t1 = time.perf_counter()
                        metrics[name].update(logits.argmax(1), label)
                        clock["model"] += t1 - t0
                        clock["metric"] += time.perf_counter() - t1
            t0 = time.perf_counter()
            for name, metric in metrics.items():
                iou[(name, setting.name)] = metric.compute().numpy()
            clock["metric"] += time.perf_counter() - t0
    return {"wall": time.perf_counter() - start, "cpu": cpu_seconds() - cpu, **clock, "iou": iou}


# ----- (b) the harness ---------------------------------------------------------------------------------------
def write_suite(path: Path, settings: list[Setting]) -> Path:
    """The corrupted settings as a suite YAML (one entry per corruption, with its severities and options)."""
    entries: dict[str, dict[str, Any]] = {}
    for s in settings:
        if s.corruption is not None:
            entry = entries.setdefault(s.corruption, {"corruption": s.corruption, "severities": [],
                                                      "options": dict(s.options)})
            entry["severities"].append(s.severity)
    path.write_text(yaml.safe_dump({"name": "bench_vs_naive", "description": "bench_vs_naive.py",
                                    "entries": list(entries.values())}))
    return path


def run_harness(work: Path, run: str, tree: Path, models: dict[str, str], checkpoints: dict[str, str], suite: Path,
                batch: int, workers: int, jobs: Optional[int]) -> dict[str, Any]:
    """Wall, CPU and stage seconds of `rgbt-bench sweep`'s work (`sweep_locally` over `jobs` processes, None:
    its default), the processes it used, and its per-class IoU of the clean cells."""
    out = work / f"sweep-{run}"
    config = SweepConfig(models=[f"{name}={spec}" for name, spec in models.items()], dataset=f"mfnet:{tree}",
                         split="test", suite=str(suite), out=str(out), checkpoints=checkpoints, batch_size=batch,
                         device="cpu", workers=workers, progress=False)
    start, cpu = time.perf_counter(), cpu_seconds()
    sweep_locally(config, jobs)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    manifest = json.loads((out / MANIFEST).read_text())
    timing = manifest["timing"]
    cells = list(read_cells(out))
    iou = {(c.record.key.model, "clean"): np.asarray(c.record.metrics["iou"], dtype=np.float64)
           for c in cells if c.record.key.corruption == "clean"}
    union = {(c.record.key.model, "clean"): c.confusion.sum(0) + c.confusion.sum(1) - np.diag(c.confusion)
             for c in cells if c.record.key.corruption == "clean"}
    shutil.rmtree(out)
    model = max(r["model_s"] for r in manifest.get("timing_per_rank") or [timing])
    return {"wall": wall, "cpu": cpu, "model": model, "stages": timing, "cells": len(cells), "iou": iou,
            "union": union, "processes": manifest["world_size"]}


# ----- the comparison ----------------------------------------------------------------------------------------
def settings_of(corruptions: list[str], severities: list[int]) -> list[Setting]:
    """Clean, then the default suite's entries (with their options) for `corruptions` at `severities`."""
    entries = {e.corruption: e for e in load_suite("default").entries}
    return [Setting()] + [Setting(c, s, dict(entries[c].options) if c in entries else {})
                          for c in corruptions for s in severities]


def check_clean_cells(naive: dict[str, Any], harness: dict[str, Any]) -> None:
    """Both sides must score the clean images alike (else the comparison would not be of the same job)."""
    for key, want in harness["iou"].items():
        present = harness["union"][key] > 0
        got = naive["iou"][key]
        if not np.allclose(got[present], want[present], rtol=0, atol=1e-6):
            raise SystemExit(f"bench_vs_naive: clean IoU of {key[0]} differs between the naive loop {got} and the "
                             f"sweep {want}; the two sides do not evaluate the same thing")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="crm,mfnet", help="registered names, NAME=module:fn or module:fn")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", default="480x640", help="HxW of the images")
    ap.add_argument("--corruptions", default="all", help="'all' (the default suite's 12) or NAME,...")
    ap.add_argument("--severities", default="1,2,3,4,5")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers, both sides")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the naive loop (0: torch's default)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="the sweep's processes (default: rgbt-bench sweep's own, one per core for enough work)")
    ap.add_argument("--smoke", action="store_true", help="2 images of 32x40, two corruptions at severity 1")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    default_suite = [e.corruption for e in load_suite("default").entries]
    corruptions = default_suite if args.corruptions == "all" else [c for c in args.corruptions.split(",") if c]
    severities = [int(v) for v in args.severities.split(",") if v]
    if args.smoke:
        size, args.images, args.batch, args.repeats = (32, 40), 2, 2, 1
        corruptions, severities = ["thermal_blur", "night"], [1]
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        ap.error(f"unknown corruption {unknown[0]!r}; expected some of {', '.join(CORRUPTIONS)}")
    models = {ref.name: ref.spec for ref in parse_models(args.models)}
    settings = settings_of(corruptions, severities)
    with tempfile.TemporaryDirectory(prefix="rgbt-bench-vs-naive-") as tmp:
        work = Path(tmp)
        tree = write_mfnet_tree(work / "mfnet", args.images, size)
        checkpoints = {name: str(write_checkpoint(work / f"{name.replace(':', '_')}.pt", spec, NUM_CLASSES))
                       for name, spec in models.items()}
        suite = write_suite(work / "suite.yaml", settings)
        warmup = settings[:2]  # clean and the first corrupted setting
        warmup_suite = write_suite(work / "warmup.yaml", warmup)
        shown = ", ".join(name if name == spec else f"{name}={spec}" for name, spec in models.items())
        print(f"# naive loop vs rgbt-bench sweep: models {shown} (tiny, untrained); {args.images} MFNet-format "
              f"images {size[0]}x{size[1]}; {len(settings)} settings (clean + {len(corruptions)} corruptions x "
              f"severities {severities}); batch {args.batch}, workers {args.workers}; median of {args.repeats}; "
              f"{machine_line()}")
        # warm-up and check: both sides on two settings; their clean cells must agree
        naive = run_naive(tree, models, checkpoints, warmup, args.batch, args.workers)
        check_clean_cells(naive, run_harness(work, "warmup", tree, models, checkpoints, warmup_suite, args.batch,
                                             args.workers, args.jobs))
        load_before = load_average()
        naive_runs, harness_runs = [], []
        for r in range(args.repeats):
            naive_runs.append(run_naive(tree, models, checkpoints, settings, args.batch, args.workers))
            harness_runs.append(run_harness(work, str(r), tree, models, checkpoints, suite, args.batch, args.workers,
                                            args.jobs))
            print(f"  round {r + 1}: naive {naive_runs[-1]['wall']:.1f}s (model {naive_runs[-1]['model']:.1f}s), "
                  f"sweep {harness_runs[-1]['wall']:.1f}s (model {harness_runs[-1]['model']:.1f}s)",
                  file=sys.stderr, flush=True)
        load_after = load_average()
    print(report(naive_runs, harness_runs, args.images * len(settings) * len(models), args.workers,
                 torch.get_num_threads()))
    print(f"load before/after {load_before:.2f}/{load_after:.2f}; cells written per sweep: {harness_runs[0]['cells']}")
    return 0


def report(naive_runs: list[dict[str, Any]], harness_runs: list[dict[str, Any]], image_cells: int, workers: int,
           threads: int) -> str:
    """The side-by-side table, the breakdown of non-model time of each side and the goals. `threads`: the
    naive loop's torch threads. The sweep's stages are rank 0's when it ran in several processes.

    With DataLoader workers the naive loop decodes and corrupts in other processes, whose clocks are not seen
    here: its decode and corruption rows are then '-' and the time it waits for batches is in 'other'."""
    def med(runs, fn) -> float:
        return statistics.median(fn(r) for r in runs)
    n_wall, h_wall = med(naive_runs, lambda r: r["wall"]), med(harness_runs, lambda r: r["wall"])
    n_model, h_model = med(naive_runs, lambda r: r["model"]), med(harness_runs, lambda r: r["model"])
    n_rest = med(naive_runs, lambda r: r["wall"] - r["model"])
    h_rest = med(harness_runs, lambda r: r["wall"] - r["model"])
    processes = sorted({r["processes"] for r in harness_runs})
    rows = [["processes x intra-op threads", f"1 x {threads}", f"{'/'.join(map(str, processes))} x 1", "-"],
            ["end to end, s", n_wall, h_wall, n_wall / h_wall],
            ["model forward, s", n_model, h_model, n_model / h_model],
            ["non-model, s", n_rest, h_rest, n_rest / h_rest],
            ["non-model % of model time", 100 * n_rest / n_model, 100 * h_rest / h_model, "-"],
            ["CPU, s (all processes and threads)", med(naive_runs, lambda r: r["cpu"]),
             med(harness_runs, lambda r: r["cpu"]), "-"],
            ["image-cells per s", image_cells / n_wall, image_cells / h_wall, "-"]]
    side = markdown_table(["what", "naive loop", "rgbt-bench sweep", "naive / sweep"], rows)
    stages = ["data_s", "corrupt_s", "metric_s", "write_s"]
    h_setup = med(harness_runs, lambda r: r["wall"] - r["stages"]["total_s"])
    breakdown = markdown_table(
        ["non-model part", "naive loop s", "rgbt-bench sweep s"],
        [["decode (PIL) / data", med(naive_runs, lambda r: r["decode"]) if not workers else "-",
          med(harness_runs, lambda r: r["stages"]["data_s"])],
         ["corrupt", med(naive_runs, lambda r: r["corrupt"]) if not workers else "-",
          med(harness_runs, lambda r: r["stages"]["corrupt_s"])],
         ["metric (argmax + update)", med(naive_runs, lambda r: r["metric"]),
          med(harness_runs, lambda r: r["stages"]["metric_s"])],
         ["write cells", 0.0, med(harness_runs, lambda r: r["stages"]["write_s"])],
         ["other (setup, loading, starting processes, loop)",
          med(naive_runs, lambda r: r["wall"] - r["model"] - r["decode"] - r["corrupt"] - r["metric"]),
          med(harness_runs, lambda r: r["wall"] - r["model"] - sum(r["stages"][k] for k in stages))]])
    ratio, overhead = n_rest / h_rest, h_rest / h_model
    goals = (f"goal (harness non-model time >= {GOAL_NON_MODEL_RATIO:g}x below the naive loop's): "
             f"{'met' if ratio >= GOAL_NON_MODEL_RATIO else 'MISSED'} ({ratio:.1f}x)\n"
             f"goal (sweep non-model time < {100 * GOAL_OVERHEAD:g}% of its model time): "
             f"{'met' if overhead < GOAL_OVERHEAD else 'MISSED'} ({100 * overhead:.1f}%; setup outside the "
             f"engine's passes {h_setup:.2f}s)\n"
             f"all rounds: naive {[round(r['wall'], 2) for r in naive_runs]}, "
             f"sweep {[round(r['wall'], 2) for r in harness_runs]}")
    return f"{side}\n\n{breakdown}\n\n{goals}"


if __name__ == "__main__":
    sys.exit(main())
