"""GPU sweep throughput with and without AMP and channels_last, and how busy the GPU is during a sweep.

Needs a CUDA device; without one it prints why and exits with status 2 (nothing measured).
- sweep: `run_sweep` on an MFNet-format tree (files decoded by `--workers` DataLoader workers) for
  fp32 and `amp=True`, reported as image-cells per second, with the GPU-busy fraction sampled by
  `nvidia-smi --query-gpu=utilization.gpu` every 100 ms while the sweep runs (falls back to
  torch.cuda.utilization() when nvidia-smi is missing);
- model only: forward passes of each model on device-resident batches, fp32 / AMP x contiguous /
  channels_last, timed with torch.cuda events (the sweep itself has no channels_last switch).
Models: untrained presets (`--preset`, default tiny; use the paper presets for realistic figures).

Run: python benchmarks/bench_gpu.py [--models crm,rtfnet] [--preset tiny] [--images 64] [--size 480x640]
     [--batch 8] [--workers 4] [--smoke]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import machine_line, markdown_table  # noqa: E402
from sweep_fixture import DEFAULT_ENTRIES, write_checkpoint, write_mfnet_tree, write_suite  # noqa: E402


class BusySampler:
    """Samples GPU utilisation (%) in a background thread while the `with` block runs."""

    def __init__(self, period_s: float = 0.1):
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._smi = shutil.which("nvidia-smi")

    def _read(self) -> float | None:
        if self._smi:
            out = subprocess.run([self._smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                  f"--id={torch.cuda.current_device()}"], capture_output=True, text=True)
            return float(out.stdout.strip().splitlines()[0]) if out.returncode == 0 and out.stdout.strip() else None
        try:
            return float(torch.cuda.utilization())
        except Exception:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.period_s)

    def __enter__(self) -> "BusySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def busy(self) -> float | None:
        return statistics.mean(self.samples) / 100 if self.samples else None


def sweep_rows(work: Path, tree: Path, checkpoints: dict[str, str], preset: str, suite: Path, batch: int,
               workers: int, images: int) -> list[list[object]]:
    from rgbt_bench.sweep import SweepConfig, run_sweep
    rows = []
    for amp in (False, True):
        out = work / f"sweep-amp{int(amp)}"
        config = SweepConfig(models=list(checkpoints), dataset=f"mfnet:{tree}", split="test", suite=str(suite),
                             out=str(out), checkpoints=checkpoints, preset=preset, batch_size=batch, device="cuda",
                             workers=workers, amp=amp, progress=False)
        with BusySampler() as sampler:
            start = time.perf_counter()
            run_sweep(config)
            wall = time.perf_counter() - start
        cells = len(list((out / "cells").glob("*.json")))
        busy = sampler.busy
        rows.append(["sweep", "amp" if amp else "fp32", "contiguous", images * cells / wall,
                     "-" if busy is None else f"{100 * busy:.0f}%"])
    return rows


def model_rows(checkpoints: dict[str, str], preset: str, size: tuple[int, int], batch: int,
               repeats: int) -> list[list[object]]:
    from rgbt_bench.models.loading import load_model
    rows = []
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(batch, 3, *size, generator=g).cuda()
    thermal = torch.rand(batch, 1, *size, generator=g).cuda()
    amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    for name, path in checkpoints.items():
        model = load_model(name, 9, preset, checkpoint=path, device="cuda")[0].eval()
        for layout in ("contiguous", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model = model.to(memory_format=fmt)
            x_rgb, x_t = rgb.contiguous(memory_format=fmt), thermal.contiguous(memory_format=fmt)
            for amp in (False, True):
                with torch.inference_mode(), torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
                    model(x_rgb, x_t)
                    torch.cuda.synchronize()
                    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    begin.record()
                    for _ in range(repeats):
                        model(x_rgb, x_t)
                    end.record()
                    end.synchronize()
                seconds = begin.elapsed_time(end) / 1000 / repeats
                rows.append([f"model {name}", "amp" if amp else "fp32", layout, batch / seconds, "-"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="crm,rtfnet")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="4 images of 64x80, one model")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device available (torch.cuda.is_available() is False); nothing measured. "
              "Run this script on a machine with an NVIDIA GPU and a CUDA build of torch.", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.size.split("x"))
    models = [m for m in args.models.split(",") if m]
    if args.smoke:
        size, args.images, args.batch, args.workers, args.repeats, models = (64, 80), 4, 2, 0, 2, models[:1]
    print(f"# gpu: {torch.cuda.get_device_name()}; {len(models)} models ({args.preset}), {args.images} images "
          f"{size[0]}x{size[1]}, batch {args.batch}, workers {args.workers}; {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="rgbt-bench-gpu-") as tmp:
        work = Path(tmp)
        tree = write_mfnet_tree(work / "mfnet", args.images, size)
        checkpoints = {m: str(write_checkpoint(work / f"{m}.pt", m, 9, args.preset)) for m in models}
        suite = write_suite(work / "suite.yaml", list(DEFAULT_ENTRIES), [3])
        rows = sweep_rows(work, tree, checkpoints, args.preset, suite, args.batch, args.workers, args.images)
        rows += model_rows(checkpoints, args.preset, size, args.batch, args.repeats)
    print(markdown_table(["what", "precision", "layout", "image-cells/s (sweep) or images/s (model)",
                          "GPU busy"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
