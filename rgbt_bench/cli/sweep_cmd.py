"""`rgbt-bench sweep`: evaluate models across a corruption suite; prints the results directory on stdout.

Re-running the same command resumes: finished cells are skipped. Under torchrun
(`torchrun --nproc_per_node N -m rgbt_bench.cli sweep ...`) the images are sharded over the processes.
"""
from __future__ import annotations

import os

import click

from ..training.config import TrainConfig, parse_key_values
from .options import corruption_seeds_option, dataset_option, device_option


@click.command("sweep")
@click.option("--models", "models", required=True, multiple=True,
              help="Comma-separated models: registered names, 'package.module:build_fn', or NAME=SPEC to name one.")
@dataset_option
@click.option("--split", default="test", show_default=True, help="Dataset split to evaluate.")
@click.option("--suite", default="default", show_default=True,
              help="Corruption suite: a YAML file or a bundled name (see `corruptions`).")
@click.option("--out", required=True, help="Results directory, e.g. results/NAME (resumed if it exists).")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=PATH",
              help="Weights for model NAME; repeatable. Without one, synthetic-dataset models are trained on the fly.")
@click.option("--preset", default="tiny", show_default=True, help="Model size preset.")
@corruption_seeds_option
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per batch (per process).")
@device_option
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA only).")
@click.option("--convention", default=None, help="mIoU convention: field or mmseg [default: the dataset's].")
@click.option("--cells-per-pass", type=int, default=None,
              help="Cells evaluated per data pass; a kill loses at most one pass [default: all cells, one pass].")
@click.option("--train-iterations", type=int, default=TrainConfig.iterations, show_default=True,
              help="Iterations for models trained on the fly (synthetic dataset only).")
@click.option("--models-dir", default="models", show_default=True,
              help="Where models trained on the fly are cached and reused.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Extra dataset argument, e.g. size=[60,80]; repeatable.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the live display.")
def sweep(models, dataset, split, suite, out, checkpoints, preset, seeds, batch_size, device, workers, amp,
          convention, cells_per_pass, train_iterations, models_dir, dataset_options, progress):
    """Evaluate models across corruptions and severities; one resumable result file per cell."""
    from ..sweep.engine import SweepConfig, run_sweep
    from ..sweep.models import parse_checkpoints
    from ..sweep.plan import parse_seeds

    config = SweepConfig(
        models=list(models), dataset=dataset, split=split, suite=suite, out=out,
        checkpoints=parse_checkpoints(checkpoints), preset=preset, seeds=parse_seeds(seeds), batch_size=batch_size,
        device=device, workers=workers, amp=amp, convention=convention, cells_per_pass=cells_per_pass,
        train_iterations=train_iterations, models_dir=models_dir,
        dataset_options=parse_key_values(dataset_options, "--dataset-option"), progress=progress)
    path = run_sweep(config)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(str(path))
