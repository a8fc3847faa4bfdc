"""`rgbt-bench run`: the main job on the built-in synthetic dataset — train the tiny CRM and baselines,
sweep a corruption suite, write the report and leaderboard, print a summary and the time of each phase.

The default models are the six of the benchmark plus the two ablation controls of the Ablations table
(crm_nomask: CRM trained without masking; rtfnet_crm: RTFNet trained with CRM's masking, paired with rtfnet).
Cost, measured as CPU time per training step on a loaded 2-core machine (so approximate): CRM ~0.65 s,
crm_nomask ~0.46 s, rtfnet_crm ~0.55 s (six paths per step), the other baselines ~0.08-0.13 s. Measured on 2
idle cores (2026-12-01): 1388 s wall (2573 s CPU) in all: training 1052 s with the slowest runs first, sweep
311 s, report 25 s; a later run 1579 s (training 1228 s, sweep 328 s, report 23 s; the machine drifts).
`--train-seeds 0,1,2` trains every model three times.
Choices:
- parallelism: on CPU one single-threaded process per core, both for training (the slowest runs start
  first) and for the sweep (images sharded over the processes); every CPU computation runs with one
  intra-op thread anyway (rgbt_bench.threads), so the numbers do not depend on --jobs or the core count;
- training: TrainConfig's measured per-model defaults (lr 3e-3; 900 iterations for CRM and crm_nomask,
  1000 for the per-pixel baselines); val evaluated every eighth of the run (~2.5 CPU-s a pass for CRM, ~1.5 s
  for a baseline, ~5 % of the training time), the best kept; resumable state saved every 50
  iterations;
- sweep: the whole default suite, severities 1..5 (--severities 1,3,5 trims it on a slower machine while
  keeping each corruption's slope and severity 5, the camera-always-missing test of the CRM paper that the
  summary reports), batches of 20 images, cells written one suite entry at a time;
- report: 1000 paired-bootstrap resamples (a few seconds).
A rerun resumes: finished training runs are reused (keyed on their training config, retrained when it
changes), unfinished ones resumed, finished sweep cells skipped, and cells computed with replaced weights
moved to <out>/stale/.
"""
from __future__ import annotations

import click

from ..models import main_models
from ..training.config import parse_key_values
from .options import device_option, train_seed_option


@click.command("run")
@click.option("--out", default=None, help="Results directory [default: results/main; results/quick with --quick].")
@click.option("--models", default=None,
              help=f"Comma-separated models [default: {','.join(main_models())}].")
@click.option("--suite", default="default", show_default=True, help="Corruption suite: a bundled name or a YAML file.")
@click.option("--severities", default=None, metavar="1,3,5",
              help="Severities of every suite entry [default: 1,2,3,4,5; 5 with --quick].")
@device_option
@click.option("--iterations", type=int, default=None,
              help="Training iterations for every model [default: a per-model plan sized for the time budget].")
@train_seed_option
@click.option("--train-seeds", default=None, metavar="0,1,2",
              help="Train one replica of every model per training seed; tables give the mean and spread over them "
                   "and CIs resample them [default: --train-seed].")
@click.option("--quick", is_flag=True, help="Tiny dataset, a few iterations, severity 5 only: a smoke test.")
@click.option("--models-dir", default=None,
              help="Where trained checkpoints are cached [default: models; models/quick with --quick].")
@click.option("--jobs", type=int, default=None,
              help="Parallel training/sweep processes [default: one per CPU core, single-threaded; 1 on CUDA].")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Paired bootstrap resamples for the report's confidence intervals (0 skips them).")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Synthetic dataset argument, e.g. size=[60,80]; repeatable.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show progress on stderr (a live display on a terminal, a plain line every 30 s otherwise; "
                   "parallel trainings prefix their lines with the model name).")
def run(out, models, suite, severities, device, iterations, seed, train_seeds, quick, models_dir, jobs, bootstrap,
        dataset_options, progress):
    """Main job: train tiny models on the synthetic dataset, sweep, report, leaderboard."""
    from ..console import print_table, stderr_console, stdout_console
    from ..pipeline import run_pipeline
    from ..report.terminal import frame_table
    from ..run_config import DEFAULT_MODELS, RunConfig
    from ..sweep.manifest import command_line
    from ..sweep.selection import parse_severities
    from ..sweep.summary import columns, for_display

    err = stderr_console()
    config = RunConfig(
        out=out or ("results/quick" if quick else "results/main"), models=models or DEFAULT_MODELS, suite=suite,
        severities=parse_severities(severities) if severities is not None else None, device=device,
        iterations=iterations, seed=seed, train_seeds=train_seeds, quick=quick,
        models_dir=models_dir or ("models/quick" if quick else "models"), jobs=jobs, bootstrap=bootstrap,
        dataset_options=parse_key_values(dataset_options, "--dataset-option"), progress=progress,
        command=command_line())
    result = run_pipeline(config, echo=err.print)
    console = stdout_console()
    title = "mIoU (%) on synthetic/test" + (", mean over training seeds" if len(config.train_seeds) > 1 else "")
    print_table(console, frame_table(for_display(result.summary).reset_index(), columns(max(config.severities)),
                                     title=title))
    if not result.ablations.empty:
        print_table(console, frame_table(result.ablations, [
            ("treatment", "model"), ("control", "control"), ("statistic", "mIoU"), ("difference", "difference")],
            title="Ablations (model minus control trained without masking, mIoU points)",
            ci=("low", "high", "95% CI")))
    for line in result.ablation_lines:
        console.print(line, highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in result.phases.items())
    console.print(f"phases (wall): {phases}; total {sum(result.phases.values()):.1f}s "
                  f"({sum(result.cpu_seconds.values()):.1f}s CPU)", highlight=False)
    console.print(f"report: {result.report}\nleaderboard: {result.leaderboard}", highlight=False)
