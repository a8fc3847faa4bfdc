"""A model's cost on the machine that evaluates it: parameters, FLOPs per image, images per second.

- parameters: every parameter of the model (buffers such as BatchNorm statistics excluded), as papers count.
- FLOPs: one forward pass of one image at the given size (the dataset's native resolution), in the sweep's
  evaluation mode, counted by torch.utils.flop_counter.FlopCounterMode. It counts the matrix-multiply-like
  operators (convolutions, transposed convolutions, mm / bmm / addmm / linear, scaled-dot-product
  attention) and counts a multiply-add as 2 FLOPs. Element-wise operations, normalisation, softmax,
  interpolation and grid sampling (Mask2Former's deformable attention) are not counted. fvcore, mmcv's
  get_model_complexity_info and most segmentation papers count a multiply-add as ONE "FLOP": their GFLOPs
  are our `gmacs` (= gflops / 2).
- images per second: measured by the sweep itself, not by extra forward passes: the images its model stage
  fed to the model divided by the seconds those forward passes took (rgbt_bench.sweep.timing: wall clock on
  CPU, CUDA events on a GPU), summed over all processes of the sweep. So it is the forward rate of ONE process
  (on CPU with one intra-op thread, rgbt_bench.threads) on real corrupted images, `batch_size` images per
  call, under torch.inference_mode (and autocast with AMP), first (warm-up) batches included; data loading,
  corruption and the metric are not in it. `timed_images` / `timed_s` say what it rests on; a resumed sweep
  adds its own forward passes to the earlier ones of the same weights and settings. It depends on the
  device and its load, which is why the device is recorded with it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "run.json"
COLUMNS = ("params", "gflops", "gmacs", "images_per_s", "batch_size", "device_name")


@dataclass(frozen=True)
class Efficiency:
    """The cost of one model at `image_size` (H, W): see the module docstring for what each number counts."""

    params: int
    flops: int
    image_size: tuple[int, int]
    images_per_s: Optional[float]
    batch_size: int
    timed_images: int
    timed_s: float
    device: str
    device_name: str
    amp: bool

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def gmacs(self) -> float:
        """Multiply-adds, 1e9 of them: what fvcore / mmcv and most papers call GFLOPs."""
        return self.flops / 2e9

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "image_size": list(self.image_size), "gflops": self.gflops, "gmacs": self.gmacs}


def format_count(n: float) -> str:
    """254510053 -> '254.51M', 185811 -> '185.8K', 640 -> '640'."""
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else f"{n:g}"


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of `model` (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _inputs(batch: int, size: tuple[int, int], device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand((batch, 3, *size), generator=gen)
    thermal = torch.rand((batch, 1, *size), generator=gen)
    return rgb.to(device), thermal.to(device)


def count_flops(model: nn.Module, size: tuple[int, int], device: torch.device) -> int:
    """FLOPs of one forward pass of one image of `size` (2 per multiply-add; FlopCounterMode)."""
    rgb, thermal = _inputs(1, size, device, seed=0)
    # FlopCounterMode's module tracker hooks the gradient of every module input that requires grad, which
    # fails without autograd when a parameter is itself a module input (Mask2Former's learned queries go
    # through a LayerNorm): parameters are frozen while counting
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(rgb, thermal)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def static_cost(model: nn.Module, size: tuple[int, int], device: torch.device, batch_size: int, *,
                amp: bool = False, device_name: str = "") -> Efficiency:
    """Parameters and FLOPs per image of `model` (in eval mode) at `size`; no forward pass timed yet
    (images_per_s None until `with_forwards` adds the sweep's own)."""
    model.eval()
    return Efficiency(params=count_parameters(model), flops=count_flops(model, size, device), image_size=tuple(size),
                      images_per_s=None, batch_size=batch_size, timed_images=0, timed_s=0.0, device=str(device),
                      device_name=device_name, amp=amp)


def with_forwards(record: dict[str, Any], images: int, seconds: float) -> dict[str, Any]:
    """`record` (Efficiency.as_dict) with `images` more images forwarded in `seconds` more seconds, and its
    images per second over all of them (None while nothing was timed)."""
    timed_images, timed_s = record.get("timed_images", 0) + images, record.get("timed_s", 0.0) + seconds
    return {**record, "timed_images": timed_images, "timed_s": timed_s,
            "images_per_s": timed_images / timed_s if timed_images and timed_s > 0 else None}


def read_efficiency(results_dir: str | Path) -> pd.DataFrame:
    """One row per model of a sweep's manifest (run.json) that recorded its efficiency: model, params, gflops,
    gmacs, images_per_s, batch_size, device_name (and the rest of `Efficiency.as_dict`). Training-seed replicas
    share their model's architecture, hence its cost: the first one's row is kept. Empty when none did (an
    older sweep, or one run with --no-efficiency)."""
    import pandas as pd  # here: a sweep's worker processes need not import it

    from .report.load import read_manifest

    by_model: dict[str, dict] = {}
    for entry in read_manifest(Path(results_dir)).get("models", []):
        if entry.get("efficiency"):
            by_model.setdefault(entry.get("name"), {"model": entry.get("name"), **entry["efficiency"]})
    rows = list(by_model.values())
    frame = pd.DataFrame(rows, columns=None if rows else ["model", *COLUMNS])
    frame["images_per_s"] = pd.to_numeric(frame["images_per_s"], errors="coerce")  # None: nothing timed
    return frame
