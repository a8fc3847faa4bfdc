"""Options shared by several commands, so that every command spells them the same way."""
from __future__ import annotations

import click

from ..datasets import DATASETS, dataset_class, spec_syntax
from ..device import resolve_device

__all__ = ["corruption_seed_option", "corruption_seeds_option", "dataset_option", "device_option",
           "inference_options", "resolve_device", "train_seed_option"]

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


class RenamedOption(click.Option):
    """An option whose earlier spellings (`old`) still work but are not shown in --help or in messages."""

    def __init__(self, *args, old: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old = tuple(old)

    def _shown(self) -> list[str]:
        return [o for o in self.opts if o not in self.old]

    def get_help_record(self, ctx: click.Context):
        opts, self.opts = self.opts, self._shown()
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts

    def get_error_hint(self, ctx: click.Context) -> str:
        return " / ".join(f"'{o}'" for o in self._shown())


# One name per meaning of "seed": training (weights, augmentation, masking), corruption draws; the bootstrap's
# is --bootstrap-seed (cli/report_cmd.py).
train_seed_option = click.option("--train-seed", "--seed", "seed", cls=RenamedOption, old=("--seed",), default=1024,
                                 show_default=True, type=int,
                                 help="Seed of the training run: initialisation, data order, augmentation and "
                                      "masking (1024 is the CRM paper's).")
corruption_seed_option = click.option("--corruption-seed", "--seed", "seed", cls=RenamedOption, old=("--seed",),
                                      default=0, show_default=True, type=int,
                                      help="Seed of the corruption's random draws (0: what `sweep` evaluates by "
                                           "default).")
corruption_seeds_option = click.option("--corruption-seed", "--corruption-seeds", "--seeds", "seeds",
                                       cls=RenamedOption, old=("--corruption-seeds", "--seeds"), default="0",
                                       show_default=True, metavar="SEED[,SEED...]",
                                       help="Seeds of the corruptions' random draws, comma-separated; each seed "
                                            "is a cell of its own (clean is evaluated once).")


def inference_options(f):
    """--inference whole|slide|ms-flip with --window / --stride (slide) and --scales / --flip (ms-flip)."""
    options = [
        click.option("--inference", default="whole", show_default=True, metavar="whole|slide|ms-flip",
                     help="Evaluation mode: one pass on the whole image, a sliding window (mmseg mode='slide'), "
                          "or multi-scale + flip test-time augmentation (mmseg --aug-test)."),
        click.option("--window", default=None, metavar="HxW",
                     help="Sliding window [default: the dataset's CRM training crop, e.g. 240x320 on MFNet, "
                          "224x320 on PST900; else half the image]."),
        click.option("--stride", default=None, metavar="HxW",
                     help="Sliding-window stride [default: 2/3 of the window, as mmseg: 160x213 on MFNet]."),
        click.option("--scales", default=None, metavar="S[,S...]",
                     help="ms-flip image scales [default: mmseg's 0.5,0.75,1.0,1.25,1.5,1.75]."),
        click.option("--flip/--no-flip", default=None,
                     help="ms-flip: also the horizontally flipped image [default: on]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f

