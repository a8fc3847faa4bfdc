"""Confusion-matrix accumulation speed: rgbt_bench.metrics vs torchmetrics vs numpy bincount.

All on the same predictions and labels (default 8 images of 480x640, 9 classes as MFNet, ignore index
255 on ~2% of the pixels), timed interleaved:
- ConfusionMatrix.update (one matrix for the batch) and ConfusionMatrix.per_image ([B, C, C]);
- LabelBins.score, the sweep's inner loop (argmax of [B, C, H, W] logits + per-image matrices, one cell after
  another against the same prepared labels, so its work buffers are reused as in a sweep), against
  logits.argmax(1) followed by ConfusionMatrix.per_image;
- torchmetrics MulticlassJaccardIndex.update (the accumulation a user of torchmetrics would call);
- numpy: np.bincount(label * C + pred) per image, as a naive user would.
Goal (issue): ConfusionMatrix not slower than either torchmetrics or numpy.

Run: python benchmarks/bench_metric.py [--size 480x640] [--batch 8] [--classes 9] [--repeats 7] [--smoke]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import interleaved, load_average, machine_line, markdown_table  # noqa: E402

from rgbt_bench.metrics import ConfusionMatrix  # noqa: E402
from rgbt_bench.sweep.batch_confusion import LabelBins  # noqa: E402

IGNORE = 255


def make_data(n: int, size: tuple[int, int], classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, classes, (n, *size), generator=g)
    label[torch.rand(n, *size, generator=g) < 0.02] = IGNORE
    logits = torch.randn(n, classes, *size, generator=g)
    pred = logits.argmax(1)
    return label, pred, logits


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--classes", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    if args.smoke:
        size, args.batch, args.repeats = (32, 40), 2, 1
    n, c = args.batch, args.classes
    label, pred, logits = make_data(n, size, c)
    label_np, pred_np = label.numpy(), pred.numpy()

    from torchmetrics.classification import MulticlassJaccardIndex
    jaccard = MulticlassJaccardIndex(num_classes=c, ignore_index=IGNORE, average="macro")
    ours = ConfusionMatrix(c, IGNORE)

    def numpy_bincount() -> np.ndarray:
        total = np.zeros((c, c), dtype=np.int64)
        for lab, prd in zip(label_np, pred_np):
            keep = lab != IGNORE
            total += np.bincount(lab[keep].astype(np.int64) * c + prd[keep], minlength=c * c).reshape(c, c)
        return total

    bins = LabelBins(label, c, IGNORE)  # a sweep prepares a batch's labels once and scores every cell against them
    fns = {
        "ConfusionMatrix.update": lambda: ours.update(pred, label),
        "ConfusionMatrix.per_image": lambda: ConfusionMatrix.per_image(pred, label, c, IGNORE),
        "torchmetrics MulticlassJaccardIndex.update": lambda: jaccard.update(pred, label),
        "numpy bincount per image": numpy_bincount,
        "argmax + ConfusionMatrix.per_image (from logits)":
            lambda: ConfusionMatrix.per_image(logits.argmax(1), label, c, IGNORE),
        "LabelBins.score (sweep, from logits)": lambda: bins.score(logits),
    }
    # The implementations agree before anything is timed.
    expected = ConfusionMatrix.compute(pred, label, c, IGNORE)
    assert np.array_equal(numpy_bincount(), expected.numpy())
    assert torch.equal(ConfusionMatrix.per_image(pred, label, c, IGNORE).sum(0), expected)
    assert torch.equal(LabelBins(label, c, IGNORE).score(logits)[0].sum(0), expected)
    print(f"# metric: {n} images {size[0]}x{size[1]}, {c} classes, median of {args.repeats}; {machine_line()}")
    load_before = load_average()
    times = interleaved(fns, args.repeats)
    load_after = load_average()
    reference = times["torchmetrics MulticlassJaccardIndex.update"]
    rows = [[name, n / t, reference / t] for name, t in times.items()]
    print(markdown_table(["implementation", "img/s", "x torchmetrics"], rows))
    print(f"load before/after: {load_before:.2f}/{load_after:.2f}")
    ours_t = times["ConfusionMatrix.update"]
    slower = [k for k in ("torchmetrics MulticlassJaccardIndex.update", "numpy bincount per image")
              if times[k] < ours_t]
    print("goal (ConfusionMatrix.update not slower than torchmetrics and numpy): "
          + ("met" if not slower else "MISSED against " + ", ".join(slower)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
