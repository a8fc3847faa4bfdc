"""`rgbt-bench models list`: the registered models, their presets, parameter counts and papers;
`rgbt-bench models import`: a published weight file into an rgbt-bench checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click
import torch

from ..efficiency import format_count
from ..errors import ConfigError, RgbtBenchError
from ..models.registry import MODELS, build_model
from .output import Column, emit, format_option

COUNT_CLASSES = 9  # MFNet's class count; only the classifier layers depend on it


def count_parameters(name: str, preset: str, num_classes: int = COUNT_CLASSES) -> int:
    """Parameters of `name` at `preset`, built on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        model = build_model(name, num_classes, preset)
    return sum(p.numel() for p in model.parameters())


@click.group()
def models() -> None:
    """List models and their presets; import published weights."""


def check_preset(preset: str) -> str:
    """`preset` when some registered model has it; ConfigError with the closest preset otherwise."""
    from ..registry import Registry

    presets = Registry("preset", {p: True for entry in MODELS.values() for p in entry.presets})
    if preset not in presets:
        raise presets.unknown(preset)
    return preset


@models.command("list")
@click.option("--preset", default="tiny", show_default=True,
              help="Preset whose parameter count is shown; models without it show their 'tiny' count.")
@format_option
def list_models(preset: str, fmt: str) -> None:
    """Table of registered models: parameter count, modalities, presets and paper.

    User models are given as --model package.module:build_fn and are not listed here.
    """
    check_preset(preset)
    rows = []
    for name, entry in MODELS.items():
        shown = preset if preset in entry.presets else "tiny"
        row = {"name": name, "params": None, "params_preset": shown, "modalities": "+".join(entry.modalities),
               "presets": list(entry.presets), "paper": entry.paper}
        try:
            row["params"] = count_parameters(name, shown)
        except (RgbtBenchError, ImportError, RuntimeError) as exc:
            row["note"] = f"unavailable: {str(exc).splitlines()[0]}"
        count = row.get("note") or format_count(row["params"])
        row["params_text"] = count if shown == preset else f"{count} ({shown})"
        rows.append(row)
    if fmt == "table":
        columns = [Column("name", no_wrap=True), Column("params_text", "params", name="params")]
    else:
        columns = [Column("name"), Column("params"), Column("params_preset")]
    columns += [Column("modalities"), Column("presets"), Column("paper")]
    if fmt != "table" and any("note" in row for row in rows):
        columns.append(Column("note"))
    emit(rows, columns, fmt, title=f"Models (parameters for preset '{preset}', {COUNT_CLASSES} classes)")


def _classes(num_classes: Optional[int], dataset: Optional[str]) -> tuple[int, Optional[tuple[str, ...]]]:
    """(class count, class names or None) from exactly one of --num-classes / --dataset."""
    if (num_classes is None) == (dataset is None):
        raise ConfigError("give exactly one of --num-classes N or --dataset SPEC (e.g. --dataset mfnet)")
    if dataset is None:
        return num_classes, None
    from ..datasets import dataset_class
    info = dataset_class(dataset.partition(":")[0].strip().lower()).info
    return info.num_classes, info.class_names


@models.command("import")
@click.argument("model")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", required=True, help="The preset the weights are for (e.g. swin_t, rtfnet152, mfnet).")
@click.option("--num-classes", type=int, help="Classes the weights predict (or give --dataset).")
@click.option("--dataset", help="Dataset the weights were trained on: its class count and names are recorded "
                                "(mfnet, pst900, kp or a spec such as mfnet:/path).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The rgbt-bench checkpoint to write.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the layers an ImageNet backbone file leaves at initialisation.")
def import_cmd(model: str, src: Path, preset: str, num_classes: Optional[int], dataset: Optional[str], out: Path,
               force: bool, seed: int) -> None:
    """Turn a published weight file SRC into an rgbt-bench checkpoint for MODEL (crm, rtfnet, mfnet).

    The layout is recognised from the file's keys: official CRM .ckpt / state dicts, released RTFNet-50/152
    and MFNet final.pth files, or ImageNet backbones (Swin .pth/.pkl/timm, torchvision ResNet), which give an
    initialisation checkpoint for training only. Pickled code in the file is never run.
    See docs/published-weights.md.
    """
    from ..models.published.importer import import_weights

    count, names = _classes(num_classes, dataset)
    done = import_weights(model, src, preset, count, out, class_names=names, dataset=dataset, force=force, seed=seed)
    found = done.found
    click.echo(f"{src}: found {found.description}")
    for note in found.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {done.out}: {model} {preset}, {count} classes, input convention {found.convention}, "
               f"source sha256 {done.sha256}")
    if found.backbone_only:
        click.echo(f"note: this is an initialisation checkpoint (the encoders from {src.name}, every other layer "
                   f"random with seed {seed}): a training start (train --init {done.out}), not for evaluation")
