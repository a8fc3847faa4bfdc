"""Throughput of every corruption: batched torch (rgbt_bench.corruptions) vs a per-image numpy loop.

For each corruption at one severity, these are timed interleaved on the same images (default 8 images of
480x640, MFNet's resolution):
- torch: `apply_corruption` on the whole batch, with torch limited to 1 thread and with all threads, from
  scratch (plasma_fog's cache of uniforms and maps cleared before each call);
- torch in a sweep: severities 1..5 one after another on the same batch, as a sweep applies them (the cache
  cleared once), per image and severity, 1 thread;
- numpy: the same formula written per image in plain numpy / scipy, as a user without the library would
  write it (own RNG per image; only the speed is compared, not the random numbers);
- imagecorruptions (ImageNet-C reference, `imagecorruptions-imaug`), where it has an equivalent:
  fog ~ plasma_fog, gaussian_noise ~ thermal_noise, contrast ~ thermal_crossover, gaussian_blur ~
  thermal_blur, shot_noise ~ the Poisson part of night. It takes uint8 HxWx3 images, so thermal is given
  as 3 grey channels (what imagecorruptions does with a grey image).
- one copy: `clone()` of the modalities the corruption writes, on 1 thread: the memory-traffic floor of any
  implementation that reads its input and writes a new output once. A corruption near this figure is
  limited by memory bandwidth, not by the code, and no batching can make it 10x a numpy loop that is
  near it too. "x copy" columns: how many copies' time one corruption takes (1 = the floor);
- bounded by: what limits each corruption (its arithmetic or memory traffic), from its formula.
Goals (issues): torch on the CPU at least 10x the per-image numpy path; compute-bound corruptions within 3x
of the one-copy floor where the formula allows.

--clock cpu times each call by the process's CPU time instead of the wall clock, for a machine shared with
other work (waiting for a core is not counted, cache and memory contention still are); the multi-thread
column is then left out, since CPU time summed over threads is not throughput.

Run: python benchmarks/bench_corruptions.py [--size 480x640] [--batch 8] [--severity 3] [--repeats 5]
     [--only NAME,...] [--clock wall|cpu] [--smoke]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import scipy.ndimage
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import interleaved, load_average, machine_line, markdown_table  # noqa: E402

from rgbt_bench.batch import Batch, SampleMeta  # noqa: E402
from rgbt_bench.corruptions import CORRUPTIONS, apply_corruption  # noqa: E402
from rgbt_bench.corruptions.fill import RGB_MEAN, THERMAL_MEAN  # noqa: E402
from rgbt_bench.corruptions.plasma import CACHE  # noqa: E402

GOAL = 10.0
NumpyFn = Callable[[np.ndarray, np.ndarray, dict, dict, np.random.Generator], tuple[np.ndarray, np.ndarray]]


# ----- per-image numpy versions (rgb [3,H,W], thermal [1,H,W] float32 in [0,1]) -------------------------------
def _fill(modality: str, fill: str) -> np.ndarray:
    mean = RGB_MEAN if modality == "rgb" else THERMAL_MEAN
    return np.array(mean if fill == "mean" else [0.0] * len(mean), dtype=np.float32).reshape(-1, 1, 1)


def np_dropout(modality: str) -> NumpyFn:
    def fn(rgb, thermal, p, o, rng):
        x = rgb if modality == "rgb" else thermal
        if rng.random() < p["drop_probability"]:
            x = np.broadcast_to(_fill(modality, o["fill"]), x.shape).copy()
        return (x, thermal) if modality == "rgb" else (rgb, x)
    return fn


def _cell_mask(h: int, w: int, patch: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    n = gh * gw
    k = math.ceil(round(n * ratio, 9))
    mask = np.zeros((h, w), dtype=bool)
    for cell in rng.permutation(n)[:k]:
        r, c = divmod(int(cell), gw)
        mask[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = True
    return mask


def np_mask(modality: str, pixel: bool) -> NumpyFn:
    def fn(rgb, thermal, p, o, rng):
        x = rgb if modality == "rgb" else thermal
        mask = _cell_mask(x.shape[1], x.shape[2], 1 if pixel else o["patch"], p["ratio"], rng)
        x = np.where(mask, _fill(modality, o["fill"]), x)
        return (x, thermal) if modality == "rgb" else (rgb, x)
    return fn


def np_complementary(rgb, thermal, p, o, rng):
    mask = _cell_mask(rgb.shape[1], rgb.shape[2], o["patch"], p["rgb_ratio"], rng)
    return np.where(mask, _fill("rgb", o["fill"]), rgb), np.where(~mask, _fill("thermal", o["fill"]), thermal)


def np_plasma(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square plasma on a toroidal map (ImageNet-C's recurrence), min-max normalised."""
    m = np.zeros((mapsize, mapsize), dtype=np.float64)
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq = sq + np.roll(sq, -1, axis=1)
        m[half::step, half::step] = sq / 4 + wibble * rng.uniform(-wibble, wibble, sq.shape)
        centres, corners = m[half::step, half::step], m[0::step, 0::step]
        rows = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        m[0::step, half::step] = rows / 4 + wibble * rng.uniform(-wibble, wibble, rows.shape)
        cols = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        m[half::step, 0::step] = cols / 4 + wibble * rng.uniform(-wibble, wibble, cols.shape)
        step, wibble = half, wibble / wibbledecay
    m -= m.min()
    return m / m.max()


def np_plasma_fog(rgb, thermal, p, o, rng):
    h, w = rgb.shape[1:]
    size = 1 << (max(h, w) - 1).bit_length()
    plasma = np_plasma(size, p["wibbledecay"], rng)[:h, :w]
    peak = rgb.max()
    return np.clip((rgb + p["c0"] * plasma) * peak / (peak + p["c0"]), 0, 1), thermal


def np_koschmieder(rgb, thermal, p, o, rng):
    h = rgb.shape[1]
    rows = np.arange(h) + 0.5
    below = rows - o["horizon"] * h
    d = np.where(below > 0, np.minimum(h * 1.5 / np.maximum(below, 1e-6), 200.0), 200.0)
    t = np.exp(-p["beta"] * d).reshape(1, -1, 1)
    return np.clip(rgb * t + o["airlight"] * (1 - t), 0, 1), thermal


def np_night(rgb, thermal, p, o, rng):
    lo, hi = rgb.min(), rgb.max()
    dark = ((rgb - lo) / max(hi - lo, 1e-12)) ** 2 * p["peak"]
    shot = np.clip(rng.poisson(dark * p["poisson_scale"]) / p["poisson_scale"], 0, 1)
    return np.clip(shot + rng.normal(0, p["gauss_sigma"], rgb.shape), 0, 1), thermal


def np_thermal_noise(rgb, thermal, p, o, rng):
    return rgb, np.clip(thermal + rng.normal(0, p["sigma"], thermal.shape), 0, 1)


def np_thermal_stripes(rgb, thermal, p, o, rng):
    w = thermal.shape[-1]
    offset = rng.normal(0, p["offset_std"], w)
    gain = rng.normal(0, p["gain_std"], w)
    return rgb, np.clip(thermal + offset + gain * thermal, 0, 1)


def np_crossover(rgb, thermal, p, o, rng):
    m = thermal.mean()
    return rgb, np.clip(m + p["contrast"] * (thermal - m), 0, 1)


def np_thermal_blur(rgb, thermal, p, o, rng):
    sigma = p["sigma_at_224"] * thermal.shape[-2] / 224
    return rgb, np.clip(scipy.ndimage.gaussian_filter(thermal, sigma=(0, sigma, sigma), mode="nearest",
                                                      truncate=4.0), 0, 1)


NUMPY: dict[str, NumpyFn] = {
    "rgb_missing": np_dropout("rgb"), "thermal_missing": np_dropout("thermal"),
    "rgb_patch_mask": np_mask("rgb", False), "thermal_patch_mask": np_mask("thermal", False),
    "complementary_patch_mask": np_complementary,
    "rgb_pixel_missing": np_mask("rgb", True), "thermal_pixel_missing": np_mask("thermal", True),
    "plasma_fog": np_plasma_fog, "koschmieder_fog": np_koschmieder, "night": np_night,
    "thermal_noise": np_thermal_noise, "thermal_stripes": np_thermal_stripes,
    "thermal_crossover": np_crossover, "thermal_blur": np_thermal_blur,
}
BOUNDED_BY = {
    "rgb_missing": "memory: writes the fill, copies kept images",
    "thermal_missing": "memory: writes the fill, copies kept images",
    "rgb_patch_mask": "memory: one where() pass",
    "thermal_patch_mask": "memory: one where() pass",
    "complementary_patch_mask": "memory: one where() pass per modality",
    "rgb_pixel_missing": "ranking H*W hashed keys per image (kthvalue), then one where() pass",
    "thermal_pixel_missing": "ranking H*W hashed keys per image (kthvalue), then one where() pass",
    "plasma_fog": "fractal: 1M hashed uniforms per image (once per seed and image) + a 1024^2 diamond-square "
                  "map per decay; with both cached (sweep): memory, 4 passes",
    "koschmieder_fog": "memory: one pass",
    "night": "per-value arithmetic: 2 hashes, 2 erfinv, Poisson inverse CDF (exact path for ~15%)",
    "thermal_noise": "per-pixel hash + erfinv, then 3 passes",
    "thermal_stripes": "memory: two passes",
    "thermal_crossover": "memory: a mean, then one pass",
    "thermal_blur": "arithmetic: r + 1 multiply-adds per pixel and axis, r = 4 sigma (26 at severity 3, 480 rows)",
}
# our corruption -> (imagecorruptions function, which image it is applied to)
IMAGECORRUPTIONS = {"plasma_fog": ("fog", "rgb"), "night": ("shot_noise", "rgb"),
                    "thermal_noise": ("gaussian_noise", "thermal"), "thermal_crossover": ("contrast", "thermal"),
                    "thermal_blur": ("gaussian_blur", "thermal")}


def make_batch(n: int, size: tuple[int, int], seed: int = 0) -> Batch:
    """n images with smooth structure plus texture (not constant, so min/max and blur do real work)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    low = torch.rand(n, 4, h // 16 + 1, w // 16 + 1, generator=g)
    smooth = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    x = (0.8 * smooth + 0.2 * torch.rand(n, 4, h, w, generator=g)).clamp(0, 1)
    meta = [SampleMeta("bench", "test", f"{i:05d}", i) for i in range(n)]
    return Batch(rgb=x[:, :3].contiguous(), thermal=x[:, 3:].contiguous(),
                 label=torch.zeros(n, h, w, dtype=torch.int64), meta=meta)


def imagecorruptions_fn(name: str, batch: Batch) -> Optional[Callable[[], object]]:
    if name not in IMAGECORRUPTIONS:
        return None
    try:
        import imagecorruptions.corruptions as ic
    except ImportError:
        return None
    fn_name, modality = IMAGECORRUPTIONS[name]
    fn = getattr(ic, fn_name)
    src = batch.rgb if modality == "rgb" else batch.thermal.expand(-1, 3, -1, -1)
    images = [(img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for img in src]
    severity = 3

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for img in images:
                fn(img, severity)
    return run


def timed(fns: dict[str, Callable[[], object]], repeats: int, clock: str) -> dict[str, float]:
    """Median seconds per call, interleaved; by wall clock, or by the process's CPU time (clock "cpu")."""
    if clock == "wall":
        return interleaved(fns, repeats)
    spent: dict[str, list[float]] = {name: [] for name in fns}

    def measured(name: str, fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            start = time.process_time()
            fn()
            spent[name].append(time.process_time() - start)
        return run
    interleaved({name: measured(name, fn) for name, fn in fns.items()}, repeats)
    return {name: statistics.median(ts[-repeats:]) for name, ts in spent.items()}


def bench(names: list[str], size: tuple[int, int], n: int, severity: int, repeats: int,
          clock: str = "wall") -> list[list[object]]:
    batch = make_batch(n, size)
    rgb_np = [x.numpy() for x in batch.rgb]
    thermal_np = [x.numpy() for x in batch.thermal]
    all_threads = torch.get_num_threads()
    rows = []
    for name in names:
        corruption = CORRUPTIONS[name]
        params, options = corruption.severity_params(severity), corruption.resolve_options()
        numpy_fn = NUMPY[name]

        def torch_run(threads: int) -> Callable[[], object]:
            def run() -> None:
                torch.set_num_threads(threads)
                CACHE.clear()
                apply_corruption(batch, name, severity, seed=0)
            return run

        def sweep_run() -> None:
            torch.set_num_threads(1)
            CACHE.clear()
            for s in range(1, 6):
                apply_corruption(batch, name, s, seed=0)

        def numpy_run() -> None:
            rng = np.random.default_rng(0)
            for r, t in zip(rgb_np, thermal_np):
                numpy_fn(r, t, params, options, rng)

        written = {"rgb": [batch.rgb], "thermal": [batch.thermal],
                   "both": [batch.rgb, batch.thermal]}[corruption.modality]

        def copy_run() -> None:
            torch.set_num_threads(1)
            for x in written:
                x.clone()

        fns = {"torch_1t": torch_run(1), "torch_all": torch_run(all_threads), "sweep_1t": sweep_run,
               "numpy": numpy_run, "copy": copy_run}
        if clock == "cpu":
            del fns["torch_all"]
        ic = imagecorruptions_fn(name, batch)
        if ic is not None:
            fns["imagecorruptions"] = ic
        load_before = load_average()
        t = timed(fns, repeats, clock)
        torch.set_num_threads(all_threads)
        ips = {k: n / v for k, v in t.items()}
        ips["sweep_1t"] *= 5  # five severities per call
        ic_ips = ips.get("imagecorruptions")
        rows.append([name, ips["torch_1t"], ips.get("torch_all", "-"), ips["numpy"],
                     "-" if ic_ips is None else f"{ic_ips:.3g} ({IMAGECORRUPTIONS[name][0]})",
                     ips["sweep_1t"], ips["copy"], ips["copy"] / ips["torch_1t"], ips["copy"] / ips["sweep_1t"],
                     ips["torch_1t"] / ips["numpy"],
                     "yes" if ips["torch_1t"] / ips["numpy"] >= GOAL else "NO", BOUNDED_BY[name],
                     f"{load_before:.2f}/{load_average():.2f}"])
        print(f"  {name}: torch1t {ips['torch_1t']:.1f} img/s, sweep {ips['sweep_1t']:.1f}, "
              f"numpy {ips['numpy']:.1f}, copy {ips['copy']:.1f}", file=sys.stderr, flush=True)
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="480x640", help="HxW of the images")
    ap.add_argument("--batch", type=int, default=8, help="images per batch")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    ap.add_argument("--only", default="", help="comma-separated corruption names (default: all)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall clock, or process CPU time on a shared machine (drops the multi-thread column)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition, two corruptions")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    names = [s for s in args.only.split(",") if s] or list(CORRUPTIONS)
    if args.smoke:
        size, args.batch, args.repeats = (32, 40), 2, 1
        names = args.only.split(",") if args.only else ["thermal_blur", "rgb_patch_mask"]
    unknown = [s for s in names if s not in CORRUPTIONS]
    if unknown:
        ap.error(f"unknown corruption {unknown[0]!r}; expected some of {', '.join(CORRUPTIONS)}")
    print(f"# corruptions: {args.batch} images {size[0]}x{size[1]}, severity {args.severity}, "
          f"median of {args.repeats}, {args.clock} clock; {machine_line()}")
    rows = bench(names, size, args.batch, args.severity, args.repeats, args.clock)
    print(markdown_table(["corruption", "torch 1 thread img/s", f"torch {torch.get_num_threads()} threads img/s",
                          "numpy per-image img/s", "imagecorruptions img/s", "torch 1t in a sweep img/s",
                          "one copy img/s (1t)", "x copy (1t)", "x copy (sweep)", "torch 1t / numpy",
                          f">= {GOAL:g}x numpy (1t)", "bounded by", "load before/after"], rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
