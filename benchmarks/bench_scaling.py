"""Sweep time and peak memory as the number of images and of cells grows.

Each point is a fresh subprocess (`--child`) that runs one sweep and reports its wall time and its peak
resident set size from resource.getrusage(RUSAGE_SELF).ru_maxrss, so points do not share memory
history. Data: MFNet-format trees (files decoded one at a time) written once per image count; models:
untrained tiny presets. Two curves: images grow at a fixed cell count, and cells (suite entries x
severities) grow at a fixed image count. Expected: time linear in images x cells; peak RSS flat in
the number of images (the sweep keeps only per-image confusion matrices, C*C int64 per image and cell).

Run: python benchmarks/bench_scaling.py [--images 8,32,128] [--cells-images 16] [--severities 1,2,3,4,5]
     [--model rtfnet] [--size 120x160] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import load_average, machine_line, markdown_table  # noqa: E402
from sweep_fixture import DEFAULT_ENTRIES, write_checkpoint, write_mfnet_tree, write_suite  # noqa: E402


def child(tree: str, checkpoint: str, model: str, suite: str, out: str, batch: int) -> None:
    """Run one sweep and print {"wall_s", "maxrss_mb", "cells"} as JSON on stdout."""
    from rgbt_bench.sweep import SweepConfig, run_sweep
    start = time.perf_counter()
    run_sweep(SweepConfig(models=[model], dataset=f"mfnet:{tree}", split="test", suite=suite, out=out,
                          checkpoints={model: checkpoint}, batch_size=batch, device="cpu", progress=False))
    wall = time.perf_counter() - start
    cells = len(list((Path(out) / "cells").glob("*.json")))
    print(json.dumps({"wall_s": wall, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "cells": cells}))


def point(work: Path, tree: Path, checkpoint: Path, model: str, suite: Path, batch: int, tag: str) -> dict:
    cmd = [sys.executable, __file__, "--child", str(tree), str(checkpoint), model, str(suite),
           str(work / f"out-{tag}"), str(batch)]
    load = load_average()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def main(argv: Optional[list[str]] = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7], int(sys.argv[7]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="8,32,128", help="image counts of the first curve")
    ap.add_argument("--cells-images", type=int, default=16, help="image count of the second curve")
    ap.add_argument("--severities", default="1,2,3,4,5", help="severities per corruption (second curve)")
    ap.add_argument("--model", default="rtfnet")
    ap.add_argument("--size", default="120x160")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--smoke", action="store_true", help="one tiny point per curve")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    counts = [int(v) for v in args.images.split(",")]
    severities = [int(v) for v in args.severities.split(",")]
    entry_counts = [1, 3, len(DEFAULT_ENTRIES)]
    if args.smoke:
        size, counts, args.cells_images, severities, entry_counts, args.batch = (32, 40), [2], 2, [1], [2], 2
    print(f"# scaling: model {args.model} (tiny), {size[0]}x{size[1]}, batch {args.batch}; {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="rgbt-bench-scaling-") as tmp:
        work = Path(tmp)
        checkpoint = write_checkpoint(work / "model.pt", args.model, 9)
        rows = []
        one = write_suite(work / "one.yaml", [DEFAULT_ENTRIES[0]], [3])
        for n in counts:
            tree = write_mfnet_tree(work / f"mfnet{n}", n, size)
            r = point(work, tree, checkpoint, args.model, one, args.batch, f"n{n}")
            rows.append(["images", n, r["cells"], r["wall_s"], r["wall_s"] / (n * r["cells"]) * 1000, r["maxrss_mb"],
                         f"{r['load']:.2f}"])
        tree = write_mfnet_tree(work / "mfnet-cells", args.cells_images, size)
        for k in entry_counts:
            suite = write_suite(work / f"suite{k}.yaml", list(DEFAULT_ENTRIES[:k]), severities)
            r = point(work, tree, checkpoint, args.model, suite, args.batch, f"k{k}")
            rows.append(["cells", args.cells_images, r["cells"], r["wall_s"],
                         r["wall_s"] / (args.cells_images * r["cells"]) * 1000, r["maxrss_mb"], f"{r['load']:.2f}"])
    print(markdown_table(["curve", "images", "cells (incl. clean)", "sweep wall s", "ms per image-cell",
                          "peak RSS MB", "load1"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
