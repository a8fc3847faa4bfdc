"""GPU sweep throughput with and without AMP and channels_last, how busy the GPU is, and what corruption costs.

Needs a CUDA device; without one it prints why and exits with status 2 (nothing measured).
- sweep: `run_sweep` on an MFNet-format tree (files decoded by `--workers` DataLoader workers) for fp32 and
  `amp=True`, as image-cells per second, with the GPU-busy fraction (`nvidia-smi ... -lms 100` streaming
  utilization.gpu while the sweep runs; torch.cuda.utilization() when nvidia-smi is missing) and the share
  of the sweep's passes spent in each engine stage (data wait, transfer, corrupt, model, metric, write;
  rgbt_bench/sweep/timing.py, CUDA events);
- model only: forward passes of each model on device-resident batches, fp32 / AMP x contiguous /
  channels_last (the sweep itself has no channels_last switch);
- corruption on the device: `apply_corruption` of every corruption at `--severity` on a device-resident batch,
  ms per batch and as % of the first model's fp32 forward on the same batch (a corruption that draws its random
  numbers on the CPU shows up here).
Device times are wall-clock between torch.cuda.synchronize() calls, median of `--repeats`.
Models: untrained presets (`--preset`, default tiny; use the paper presets for realistic figures).

Run: python benchmarks/bench_gpu.py [--models crm,rtfnet] [--preset tiny] [--images 64] [--size 480x640]
     [--batch 8] [--workers 4] [--repeats 10] [--severity 3] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import torch

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import machine_line, markdown_table  # noqa: E402
from sweep_fixture import DEFAULT_ENTRIES, write_checkpoint, write_mfnet_tree, write_suite  # noqa: E402

STAGES = ("data", "transfer", "corrupt", "model", "metric", "write")


class BusySampler:
    """GPU utilisation (%) sampled every `period_ms` while the `with` block runs."""

    def __init__(self, device: torch.device, period_ms: int = 100):
        self.device, self.period_ms = device, period_ms
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    def _smi_id(self) -> str:
        """nvidia-smi numbers GPUs by PCI bus, CUDA by speed: name the device by its UUID instead."""
        uuid = str(getattr(torch.cuda.get_device_properties(self.device), "uuid", "") or "")
        if not uuid:
            return str(self.device.index or 0)
        return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"

    def _read_smi(self) -> None:
        for line in self._proc.stdout:
            if line.strip().isdigit():
                self.samples.append(float(line))

    def _poll_nvml(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(float(torch.cuda.utilization(self.device)))
            except Exception:  # no NVML (pynvml) either: busy fraction not measured
                return
            self._stop.wait(self.period_ms / 1000)

    def __enter__(self) -> BusySampler:
        smi = shutil.which("nvidia-smi")
        if smi:  # one process streaming a sample per period, rather than a process per sample
            self._proc = subprocess.Popen([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                           f"--id={self._smi_id()}", f"--loop-ms={self.period_ms}"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read_smi if smi else self._poll_nvml, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()
        self._thread.join()

    @property
    def busy(self) -> Optional[float]:
        return statistics.mean(self.samples) / 100 if self.samples else None


def seconds_per_call(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of `fn()` between device synchronisations, after one warm-up call."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sweep_rows(work: Path, tree: Path, checkpoints: dict[str, str], preset: str, suite: Path, batch: int,
               workers: int, images: int, device: str, precisions: tuple[bool, ...] = (False, True)) -> list[list]:
    """One row per precision: image-cells/s, GPU busy, and the % of the passes' time in each engine stage."""
    from rgbt_bench.sweep import SweepConfig, run_sweep
    from rgbt_bench.sweep.manifest import MANIFEST
    rows = []
    for amp in precisions:
        out = work / f"sweep-amp{int(amp)}"
        config = SweepConfig(models=list(checkpoints), dataset=f"mfnet:{tree}", split="test", suite=str(suite),
                             out=str(out), checkpoints=checkpoints, preset=preset, batch_size=batch, device=device,
                             workers=workers, amp=amp, progress=False)
        with BusySampler(torch.device(device)) if device == "cuda" else _NoSampler() as sampler:
            start = time.perf_counter()
            run_sweep(config)
            wall = time.perf_counter() - start
        cells = len(list((out / "cells").glob("*.json")))
        timing = json.loads((out / MANIFEST).read_text())["timing"]
        total = sum(timing[f"{s}_s"] for s in STAGES) or 1.0
        busy = sampler.busy
        rows.append(["amp" if amp else "fp32", images * cells / wall, "-" if busy is None else f"{100 * busy:.0f}%",
                     *[100 * timing[f"{s}_s"] / total for s in STAGES]])
        shutil.rmtree(out)
    return rows


class _NoSampler:
    busy = None

    def __enter__(self) -> _NoSampler:
        return self

    def __exit__(self, *exc) -> None:
        return None


def inputs(size: tuple[int, int], batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, 3, *size, generator=g).to(device), torch.rand(batch, 1, *size, generator=g).to(device))


def model_rows(checkpoints: dict[str, str], preset: str, size: tuple[int, int], batch: int, repeats: int,
               device: str) -> list[list]:
    """Images/s of each model's forward, fp32 / AMP x contiguous / channels_last."""
    from rgbt_bench.models.loading import load_model
    rows = []
    rgb, thermal = inputs(size, batch, device)
    dev = torch.device(device)
    amp_dtype = torch.bfloat16 if dev.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    for name, path in checkpoints.items():
        model = load_model(name, 9, preset, checkpoint=path, device=device)[0].eval()
        for layout in ("contiguous", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model = model.to(memory_format=fmt)
            x_rgb, x_t = rgb.contiguous(memory_format=fmt), thermal.contiguous(memory_format=fmt)
            for amp in (False, True):
                def forward() -> None:
                    with torch.inference_mode(), torch.autocast(dev.type, dtype=amp_dtype, enabled=amp):
                        model(x_rgb, x_t)
                rows.append([name, "amp" if amp else "fp32", layout,
                             batch / seconds_per_call(forward, dev, repeats)])
    return rows


def corruption_rows(checkpoint: tuple[str, str], preset: str, size: tuple[int, int], batch: int, severity: int,
                    repeats: int, device: str) -> list[list]:
    """ms per batch of every corruption on the device, and as % of one fp32 forward of the model on that batch."""
    from rgbt_bench.batch import Batch, SampleMeta
    from rgbt_bench.corruptions import CORRUPTIONS, apply_corruption
    from rgbt_bench.models.loading import load_model
    dev = torch.device(device)
    rgb, thermal = inputs(size, batch, device)
    data = Batch(rgb=rgb, thermal=thermal, label=torch.zeros(batch, *size, dtype=torch.int64, device=device),
                 meta=[SampleMeta("bench", "test", f"{i:05d}", i) for i in range(batch)])
    name, path = checkpoint
    model = load_model(name, 9, preset, checkpoint=path, device=device)[0].eval()

    def forward() -> None:
        with torch.inference_mode():
            model(rgb, thermal)
    model_s = seconds_per_call(forward, dev, repeats)
    rows = []
    for corruption in CORRUPTIONS:
        s = seconds_per_call(lambda: apply_corruption(data, corruption, severity, seed=0), dev, repeats)
        rows.append([corruption, 1000 * s, 100 * s / model_s])
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="crm,rtfnet")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--severity", type=int, default=3, help="severity of the corruption-on-device table")
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
    print(f"# gpu: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); {len(models)} models ({args.preset}), "
          f"{args.images} images {size[0]}x{size[1]}, batch {args.batch}, workers {args.workers}, median of "
          f"{args.repeats}; {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="rgbt-bench-gpu-") as tmp:
        work = Path(tmp)
        tree = write_mfnet_tree(work / "mfnet", args.images, size)
        checkpoints = {m: str(write_checkpoint(work / f"{m}.pt", m, 9, args.preset)) for m in models}
        suite = write_suite(work / "suite.yaml", list(DEFAULT_ENTRIES), [3])
        sweeps = sweep_rows(work, tree, checkpoints, args.preset, suite, args.batch, args.workers, args.images, "cuda")
        forwards = model_rows(checkpoints, args.preset, size, args.batch, args.repeats, "cuda")
        corruptions = corruption_rows(next(iter(checkpoints.items())), args.preset, size, args.batch, args.severity,
                                      args.repeats, "cuda")
    print(markdown_table(["sweep", "image-cells/s", "GPU busy", *[f"{s} %" for s in STAGES]], sweeps))
    print()
    print(markdown_table(["model", "precision", "layout", "images/s"], forwards))
    print()
    print(markdown_table(["corruption", f"ms per batch of {args.batch}", f"% of a {models[0]} fp32 forward"],
                         corruptions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
