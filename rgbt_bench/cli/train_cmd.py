"""`rgbt-bench train`: train CRM or a baseline; prints the selected checkpoint's path on stdout.

Under torchrun (`torchrun --nproc_per_node N -m rgbt_bench.cli train ...`) the same command trains with
DistributedDataParallel; --batch-size is then the global batch.
"""
from __future__ import annotations

import os

import click

from ..models import MODELS
from ..training.config import DEFAULT_ITERATIONS, TrainConfig, parse_crop, parse_key_values
from .options import dataset_option, device_option, seed_option

_D = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}
_ITERATIONS = ", ".join([f"{e.iterations} for {m}" for m, e in MODELS.items() if e.iterations != DEFAULT_ITERATIONS]
                        + [f"{DEFAULT_ITERATIONS} otherwise"])


@click.command("train")
@click.option("--model", default=_D["model"], show_default=True,
              help="Registered model name (see `models list`) or 'package.module:build_fn'.")
@click.option("--preset", default=_D["preset"], show_default=True, help="Model size preset.")
@dataset_option
@click.option("--iterations", type=int, default=None,
              help=f"Training iterations [default: {_ITERATIONS}].")
@click.option("--batch-size", type=int, default=_D["batch_size"], show_default=True,
              help="Global batch size (split over torchrun processes).")
@click.option("--lr", type=float, default=_D["lr"], show_default=True, help="Base AdamW learning rate (CRM: 1e-4).")
@click.option("--weight-decay", type=float, default=_D["weight_decay"], show_default=True, help="AdamW weight decay.")
@click.option("--backbone-lr-mult", type=float, default=None,
              help="Backbone LR factor [default: 0.1 with pretrained weights, else 1.0].")
@click.option("--grad-clip", type=float, default=_D["grad_clip"], show_default=True,
              help="Gradient-norm clip (CRM: 0.01); 0 disables.")
@click.option("--warmup", "warmup_iterations", type=int, default=_D["warmup_iterations"], show_default=True,
              help="Linear LR warm-up iterations before the poly decay.")
@click.option("--crop", default=None, help="Training crop HxW [default: the recipe crop, or half the native size].")
@seed_option
@device_option
@click.option("--amp/--no-amp", default=None, help="Mixed precision [default: on for CUDA, off for CPU].")
@click.option("--eval-every", type=int, default=_D["eval_every"], show_default=True,
              help="Evaluate on the val split every K iterations (0: only at the end).")
@click.option("--eval-batch-size", type=int, default=_D["eval_batch_size"], show_default=True,
              help="Batch size of the val evaluation (full-resolution images).")
@click.option("--save-every", type=int, default=None, help="Save the resumable state every K iterations "
              "[default: --eval-every].")
@click.option("--out", default=None, help="Checkpoint path [default: models/<model>_<preset>_<dataset>.pt].")
@click.option("--resume", is_flag=True, help="Continue from <out stem>.last.pt.")
@click.option("--workers", type=int, default=_D["workers"], show_default=True, help="DataLoader worker processes.")
@click.option("--model-kwarg", "model_kwargs", multiple=True, metavar="KEY=VALUE",
              help="Extra model builder argument (YAML value); repeatable.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Extra dataset argument, e.g. size=[60,80]; repeatable.")
@click.option("--crm-training", is_flag=True, help="Train a two-stream baseline with CRM masking and self-distillation.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
def train(model, preset, dataset, iterations, batch_size, lr, weight_decay, backbone_lr_mult, grad_clip,
          warmup_iterations, crop, seed, device, amp, eval_every, eval_batch_size, save_every, out, resume, workers,
          model_kwargs, dataset_options, crm_training, progress):
    """Train a model (CRM or a baseline) with the CRM recipe; best-on-val and last checkpoints."""
    from ..training import train as run_training

    config = TrainConfig(
        model=model, preset=preset, dataset=dataset, iterations=iterations, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, backbone_lr_mult=backbone_lr_mult, grad_clip=grad_clip or None,
        warmup_iterations=warmup_iterations, crop=parse_crop(crop) if crop else None, seed=seed, device=device,
        amp=amp, eval_every=eval_every, eval_batch_size=eval_batch_size, save_every=save_every, out=out,
        resume=resume, workers=workers, model_kwargs=parse_key_values(model_kwargs, "--model-kwarg"),
        dataset_options=parse_key_values(dataset_options, "--dataset-option"), crm_training=crm_training, progress=progress)
    path = run_training(config)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(str(path))
