"""Cost of CRM's masked training: a CRM training step against the same model trained without masking.

CRM has no switch that turns the masked pass off, so the comparison is built from its public parts, on
one model instance (tiny preset unless --preset), the same batch of synthetic training images and the
same AdamW optimiser, all in train mode, timed interleaved (forward + backward + optimiser step):
- crm: `model.loss(rgb, thermal, label, ignore)` in train mode: the clean and the masked pass, six head
  paths (fused, RGB-only, thermal-only, each clean and masked), Mask2Former losses + self-distillation;
- clean_mws: clean pass only, three head paths (fused, RGB-only, thermal-only) with their Mask2Former
  losses: CRM's objective with the masked pass (and so the self-distillation terms) removed;
- clean_fused: clean pass, fused path only with its Mask2Former loss (a plain two-stream model).
The inputs go through the model's own normalisation and padding (CRM._prepare) in every variant.

Run: python benchmarks/bench_training.py [--batch 8] [--size 128x160] [--repeats 5] [--preset tiny] [--smoke]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch

# the benchmarks' helpers, and this checkout's rgbt_bench rather than an installed copy
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from common import interleaved, load_average, machine_line, markdown_table  # noqa: E402

from rgbt_bench.batch import collate  # noqa: E402
from rgbt_bench.datasets import open_dataset  # noqa: E402
from rgbt_bench.models import build_model  # noqa: E402

IGNORE = 255


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", default="128x160", help="HxW of the training crop (multiple of 32: no padding)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--smoke", action="store_true", help="batch 2 of 32x32, one repetition")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    if args.smoke:
        args.batch, h, w, args.repeats = 2, 32, 32, 1
    ds = open_dataset("synthetic", "train")
    batch = collate([ds[i] for i in range(args.batch)])
    rgb = torch.nn.functional.interpolate(batch.rgb, size=(h, w), mode="bilinear", align_corners=False)
    thermal = torch.nn.functional.interpolate(batch.thermal, size=(h, w), mode="bilinear", align_corners=False)
    label = torch.nn.functional.interpolate(batch.label[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    torch.manual_seed(0)
    model = build_model("crm", ds.info.num_classes, args.preset, seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = model.objective.criterion
    generator = torch.Generator().manual_seed(0)

    def step(loss_fn):
        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn().backward()
            optimizer.step()
        return run

    def crm() -> torch.Tensor:
        return model.loss(rgb, thermal, label, IGNORE)["loss"]

    def clean(paths: int) -> torch.Tensor:
        x_rgb, x_thermal = model._prepare(rgb, thermal)
        fused, rgb_feats, thermal_feats = model.backbone(x_rgb, x_thermal)
        total = criterion(model.head(fused), label, IGNORE, generator)["loss"]
        if paths == 3:
            for feats in (rgb_feats, thermal_feats):
                total = total + criterion(model.head(feats), label, IGNORE, generator)["loss"]
        return total

    fns = {"crm (clean + masked, 6 paths)": step(crm), "clean_mws (clean, 3 paths)": step(lambda: clean(3)),
           "clean_fused (clean, fused only)": step(lambda: clean(1))}
    print(f"# training step: CRM {args.preset}, batch {args.batch} of {h}x{w}, median of {args.repeats}; "
          f"{machine_line()}")
    load_before = load_average()
    times = interleaved(fns, args.repeats)
    load_after = load_average()
    base = times["clean_fused (clean, fused only)"]
    print(markdown_table(["variant", "s per step", "x clean_fused"], [[k, t, t / base] for k, t in times.items()]))
    print(f"crm / clean_mws = {times['crm (clean + masked, 6 paths)'] / times['clean_mws (clean, 3 paths)']:.2f}; "
          f"load before/after {load_before:.2f}/{load_after:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
