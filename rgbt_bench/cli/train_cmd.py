"""`rgbt-bench train`: train CRM or a baseline; prints the selected checkpoint's path on stdout.

Settings come from a recipe (`--recipe NAME|PATH`, default tiny_synthetic: the built-in defaults; see
recipes/ and docs/recipes.md); every flag given explicitly overrides the recipe, and the run prints the
resolved settings with each override marked. `--dry-run` prints them and stops. Under torchrun
(`torchrun --nproc_per_node N -m rgbt_bench.cli train ...`) the same command trains with
DistributedDataParallel; --batch-size is then the global batch.
"""
from __future__ import annotations

import os

import click
from click.core import ParameterSource

from ..models import MODELS
from ..training.config import DEFAULT_ITERATIONS, SELECT_ON, TrainConfig, parse_crop, parse_key_values
from ..training.recipes import DEFAULT_RECIPE, available_recipes
from .options import dataset_option, device_option, train_seed_option

_D = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}
_ITERATIONS = ", ".join([f"{e.iterations} for {m}" for m, e in MODELS.items() if e.iterations != DEFAULT_ITERATIONS]
                        + [f"{DEFAULT_ITERATIONS} otherwise"])
# Flags that are not TrainConfig fields of the same name, or need converting.
_NOT_FIELDS = ("dry_run", "pretrained", "recipe", "dataset_options", "model_kwargs", "crop", "grad_clip")


def _explicit(ctx: click.Context, params: dict) -> dict:
    """TrainConfig fields the user gave on the command line (not defaults), converted."""
    given = {k for k in params if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)}
    out = {k: params[k] for k in given if k not in _NOT_FIELDS}
    if "crop" in given:
        out["crop"] = parse_crop(params["crop"])
    if "grad_clip" in given:
        out["grad_clip"] = params["grad_clip"] or None
    if "dataset_options" in given:
        out["dataset_options"] = parse_key_values(params["dataset_options"], "--dataset-option")
    kwargs = parse_key_values(params["model_kwargs"], "--model-kwarg") if "model_kwargs" in given else {}
    if "pretrained" in given:
        kwargs["pretrained"] = params["pretrained"]
    if kwargs:
        out["model_kwargs"] = kwargs
    return out


@click.command("train")
@click.option("--recipe", default=DEFAULT_RECIPE, show_default=True,
              help=f"Recipe: {', '.join(available_recipes())} (recipes/NAME.yaml) or a .yaml path; explicit flags "
                   f"override it (see docs/recipes.md).")
@click.option("--model", default=_D["model"], show_default=True,
              help="Registered model name (see `models list`) or 'package.module:build_fn'.")
@click.option("--preset", default=None, help=f"Model size preset [default: the recipe's, else {_D['preset']}].")
@dataset_option
@click.option("--pretrained", default=None, metavar="PATH",
              help="ImageNet backbone weights to start from (model kwarg `pretrained`); crm_paper requires them.")
@click.option("--init", default=None, metavar="CKPT",
              help="Start from this rgbt-bench checkpoint's weights (fine-tuning; same model, preset, classes).")
@click.option("--iterations", type=int, default=None,
              help=f"Training iterations [default: {_ITERATIONS}].")
@click.option("--batch-size", type=int, default=_D["batch_size"], show_default=True,
              help="Global batch size (split over torchrun processes).")
@click.option("--lr", type=float, default=_D["lr"], show_default=True, help="Base AdamW learning rate (CRM: 1e-4).")
@click.option("--weight-decay", type=float, default=_D["weight_decay"], show_default=True, help="AdamW weight decay.")
@click.option("--backbone-lr-mult", type=float, default=None,
              help="Backbone LR factor [default: 0.1 with pretrained or --init weights, else 1.0].")
@click.option("--grad-clip", type=float, default=_D["grad_clip"], show_default=True,
              help="Gradient-norm clip (CRM: 0.01); 0 disables.")
@click.option("--warmup", "warmup_iterations", type=int, default=_D["warmup_iterations"], show_default=True,
              help="Linear LR warm-up iterations before the poly decay.")
@click.option("--crop", default=None, help="Training crop HxW [default: the recipe crop, or half the native size].")
@train_seed_option
@device_option
@click.option("--amp/--no-amp", default=None, help="Mixed precision [default: on for CUDA, off for CPU].")
@click.option("--eval-every", type=int, default=_D["eval_every"], show_default=True,
              help="Evaluate on the val split every K iterations (0: only at the end).")
@click.option("--eval-batch-size", type=int, default=_D["eval_batch_size"], show_default=True,
              help="Batch size of the val evaluation (full-resolution images).")
@click.option("--select-on", type=click.Choice(SELECT_ON), default=_D["select_on"], show_default=True,
              help="Split that selects the best checkpoint. 'test' reproduces the published CRM numbers, which "
                   "were selected on test (optimistic); it is recorded and warned about wherever the checkpoint "
                   "is used.")
@click.option("--ignore-mode", type=click.Choice(["official", "valid"]), default=None,
              help="CRM loss: ignored and padded pixels as negatives of every mask (official) or left out "
                   "(valid) [default: the model's, official].")
@click.option("--save-every", type=int, default=None, help="Save the resumable state every K iterations "
              "[default: at every evaluation].")
@click.option("--out", default=None, help="Checkpoint path [default: models/<model>_<preset>_<dataset>.pt].")
@click.option("--resume", is_flag=True, help="Continue from <out stem>.last.pt (weights, optimiser, schedule, RNG).")
@click.option("--workers", type=int, default=_D["workers"], show_default=True, help="DataLoader worker processes.")
@click.option("--model-kwarg", "model_kwargs", multiple=True, metavar="KEY=VALUE",
              help="Extra model builder argument (YAML value); repeatable.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Extra dataset argument, e.g. size=[60,80]; repeatable.")
@click.option("--crm-training", is_flag=True,
              help="Train a two-stream baseline with CRM masking and self-distillation.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
@click.option("--dry-run", is_flag=True, help="Print the resolved settings and exit without training.")
@click.pass_context
def train(ctx: click.Context, recipe: str, dry_run: bool, **params):
    """Train a model (CRM or a baseline) with a recipe; best-on-val and last checkpoints."""
    from ..training import train as run_training
    from ..training.recipes import apply_recipe, recipe_lines

    config = apply_recipe(recipe, _explicit(ctx, params))
    if dry_run:
        click.echo("\n".join(recipe_lines(config)))
        return
    path = run_training(config)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(str(path))
