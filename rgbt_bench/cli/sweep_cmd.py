"""`rgbt-bench sweep`: evaluate models across a corruption suite; prints the results directory on stdout and
a per-model summary (clean, mean corrupted, missing-camera mIoU, cost) on stderr.

Re-running the same command resumes: finished cells are skipped. On CPU the images are sharded over
`--jobs` local single-threaded processes (default: one per core, fewer for a small sweep; rgbt_bench.sweep.local);
under torchrun (`torchrun --nproc_per_node N -m rgbt_bench.cli sweep ...`) over torchrun's processes.
A quick look needs no suite file: `--corruptions`, `--severities` and `--limit` cut the work.
"""
from __future__ import annotations

import os

import click

from ..training.config import TrainConfig, parse_key_values
from .options import corruption_seeds_option, dataset_option, device_option, inference_options


@click.command("sweep")
@click.option("--models", "models", required=True, multiple=True,
              help="Comma-separated models: registered names, 'package.module:build_fn', or NAME=SPEC to name one.")
@dataset_option
@click.option("--split", default="test", show_default=True, help="Dataset split to evaluate.")
@click.option("--suite", default="default", show_default=True,
              help="Corruption suite: a YAML file or a bundled name (see `corruptions`).")
@click.option("--corruptions", default=None, metavar="NAME[,NAME...]",
              help="Only these suite entries (by label or corruption); a corruption the suite lacks is added "
                   "with its default options [default: the whole suite].")
@click.option("--severities", default=None, metavar="1,3,5",
              help="Only these severities of every entry [default: the suite's; clean is always evaluated].")
@click.option("--limit", type=int, default=None, metavar="N",
              help="Evaluate only the first N images of the split (recorded: never mixed with a full run).")
@click.option("--out", required=True, help="Results directory, e.g. results/NAME (resumed if it exists).")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=PATH",
              help="Weights for model NAME; repeatable. Without one, synthetic-dataset models are trained on the fly.")
@click.option("--preset", default="tiny", show_default=True, help="Model size preset.")
@corruption_seeds_option
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per batch (per process).")
@inference_options
@device_option
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--jobs", type=int, default=None,
              help="CPU processes sharing the images, one intra-op thread each; cells do not depend on it "
                   "[default: one per core, fewer for a small sweep; 1 on CUDA and under torchrun].")
@click.option("--amp", is_flag=True, help="Mixed precision (CUDA only).")
@click.option("--convention", default=None, help="mIoU convention: field or mmseg [default: the dataset's].")
@click.option("--cells-per-pass", type=int, default=None,
              help="Cells evaluated per data pass; a kill loses at most one pass [default: all cells, one pass].")
@click.option("--train-iterations", type=int, default=TrainConfig.iterations, show_default=True,
              help="Iterations for models trained on the fly (synthetic dataset only).")
@click.option("--train-seeds", default=None, metavar="0,1,2",
              help="Training seeds of models trained on the fly: one replica each; reports give their mean and "
                   f"spread [default: {TrainConfig.seed}].")
@click.option("--models-dir", default="models", show_default=True,
              help="Where models trained on the fly are cached and reused.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Extra dataset argument, e.g. size=[60,80]; repeatable.")
@click.option("--efficiency/--no-efficiency", default=True, show_default=True,
              help="Record each model's parameters, GFLOPs of one image and images/s of this sweep's forward passes "
                   "(run.json).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show progress on stderr (a live display on a terminal, a plain line every 30 s otherwise).")
def sweep(models, dataset, split, suite, corruptions, severities, limit, out, checkpoints, preset, seeds, batch_size,
          inference, window, stride, scales, flip, device, workers, jobs, amp, convention, cells_per_pass,
          train_iterations, train_seeds, models_dir, dataset_options, efficiency, progress):
    """Evaluate models across corruptions and severities; one resumable result file per cell."""
    from ..console import stderr_console
    from ..inference import parse_scales, parse_size
    from ..sweep.engine import SweepConfig
    from ..sweep.local import sweep_locally
    from ..sweep.models import parse_checkpoints, parse_models
    from ..sweep.plan import parse_seeds
    from ..sweep.selection import parse_names, parse_severities

    config = SweepConfig(
        models=list(models), dataset=dataset, split=split, suite=suite, out=out,
        checkpoints=parse_checkpoints(checkpoints), preset=preset, seeds=parse_seeds(seeds), batch_size=batch_size,
        device=device, workers=workers, amp=amp, convention=convention, cells_per_pass=cells_per_pass,
        train_iterations=train_iterations, models_dir=models_dir,
        train_seeds=None if train_seeds is None else parse_seeds(train_seeds, "--train-seeds"),
        dataset_options=parse_key_values(dataset_options, "--dataset-option"), progress=progress,
        corruptions=parse_names(corruptions) if corruptions is not None else None,
        severities=parse_severities(severities) if severities is not None else None, limit=limit,
        inference=inference, window=parse_size(window, "--window") if window else None,
        stride=parse_size(stride, "--stride") if stride else None,
        scales=parse_scales(scales) if scales else None, flip=flip, efficiency=efficiency)
    err = stderr_console()
    path = sweep_locally(config, jobs, lambda text: err.print(text, highlight=False, soft_wrap=True))
    if int(os.environ.get("RANK", "0")) == 0:
        print_summary(path, [ref.name for ref in parse_models(config.models)])
        click.echo(str(path))


def print_summary(path, models: list[str]) -> None:
    """The per-model summary of the results in `path` (rgbt_bench.sweep.summary), on stderr."""
    from ..console import print_table, stderr_console
    from ..report.terminal import frame_table
    from ..sweep.summary import columns, for_display, results_summary

    frame, severity, title = results_summary(path, models)
    print_table(stderr_console(), frame_table(for_display(frame).reset_index(), columns(severity), title=title))
