"""Options shared by several commands, so that every command spells them the same way."""
from __future__ import annotations

import click

from ..datasets import DATASETS, dataset_class, spec_syntax
from ..device import resolve_device

__all__ = ["dataset_option", "device_option", "resolve_device", "seed_option"]

device_option = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA when present), cpu, cuda or cuda:N.")


def dataset_help() -> str:
    """'Dataset spec: synthetic, mfnet:/path, pst900:/path or kp:/path.', from the dataset registry."""
    specs = [spec_syntax(dataset_class(name).info, "/path") for name in DATASETS]
    return f"Dataset spec: {', '.join(specs[:-1])} or {specs[-1]}." if len(specs) > 1 else f"Dataset spec: {specs[0]}."


class LazyHelpOption(click.Option):
    """An option whose help text is computed when help is shown (here: from a registry whose entries are
    imported on demand), so that defining the command imports nothing."""

    def __init__(self, *args, help_fn, **kwargs):
        super().__init__(*args, **kwargs)
        self.help_fn = help_fn

    def get_help_record(self, ctx: click.Context):
        self.help = self.help_fn()
        return super().get_help_record(ctx)


dataset_option = click.option("--dataset", "dataset", default="synthetic", show_default=True, cls=LazyHelpOption,
                              help_fn=dataset_help)
seed_option = click.option("--seed", default=1024, show_default=True, type=int,
                           help="Random seed (1024 is the CRM paper's).")
