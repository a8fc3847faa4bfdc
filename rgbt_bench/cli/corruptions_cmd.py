"""`rgbt-bench corruptions list|show`: the corruption table and example PNG grids."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import yaml

from ..errors import ConfigError, writing
from .options import corruption_seed_option, dataset_option
from .output import Column, emit, format_option


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs to a dict; values are read as YAML scalars (32 -> int, 0.7 -> float, mean -> str)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option '{pair}' is invalid; expected KEY=VALUE, e.g. fill=mean")
        options[key.strip()] = yaml.safe_load(value)
    return options


@click.group()
def corruptions() -> None:
    """List corruptions and render example grids."""


def _options_text(options: dict[str, dict[str, Any]]) -> str:
    return "\n".join(f"{k}={o['default']}" + (f" ({'|'.join(map(str, o['choices']))})" if o["choices"] else "")
                     for k, o in options.items()) or "-"


@corruptions.command("list")
@format_option
def list_corruptions(fmt: str) -> None:
    """Table of corruptions: modality hit, what it does, parameters at severities 1..5 and options."""
    from ..corruptions import CORRUPTIONS

    rows = [{"name": c.name, "modality": c.modality, "description": c.description,
             "params": {k: list(v) for k, v in c.params.items()}, "params_text": c.summary(),
             "options": {k: {"default": o.default, "choices": list(o.choices) if o.choices else None}
                         for k, o in c.options.items()}} for c in CORRUPTIONS.values()]
    params = Column("params" if fmt == "json" else "params_text", "severity 1..5", name="params")
    emit(rows, [Column("name", no_wrap=True), Column("modality", no_wrap=True), Column("description"), params,
                Column("options", show=_options_text, csv=lambda v: _options_text(v) if v else "")], fmt,
         title="Corruptions (severity 0 = clean; parameters at severities 1..5; docs/corruptions.md)")


@corruptions.command("show")
@click.argument("name")
@click.option("--severity", "-s", default=3, show_default=True, type=int, help="Severity to highlight (0..5).")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write [default: NAME_sS.png].")
@dataset_option
@click.option("--split", default="test", show_default=True, help="Dataset split to take the example from.")
@click.option("--index", "-i", default=0, show_default=True, type=int, help="Sample index in the split.")
@corruption_seed_option
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Corruption option, e.g. --option fill=mean (repeatable).")
def show(name: str, severity: int, out: Optional[Path], dataset: str, split: str, index: int, seed: int,
         options: tuple[str, ...]) -> None:
    """Write a PNG grid of corruption NAME on one sample: RGB and thermal rows, severities 0..5."""
    from ..batch import collate
    from ..corruptions import get_corruption
    from ..corruptions.corruption import check_severity
    from ..corruptions.render import render_grid
    from ..datasets import open_dataset

    corruption = get_corruption(name)
    check_severity(name, severity)
    opts = parse_options(options)
    corruption.resolve_options(**opts)
    data = open_dataset(dataset, split)
    if not 0 <= index < len(data):
        raise ConfigError(f"--index {index} is out of range for {dataset} split '{split}' "
                          f"({len(data)} samples); expected 0..{len(data) - 1}")
    sample = collate([data[index]])
    out = out or Path(f"{name}_s{severity}.png")
    with writing(f"the grid {out}", "choose a writable --out"):
        path = render_grid(sample, corruption, severity, seed, out, **opts)
    click.echo(f"wrote {path}")
