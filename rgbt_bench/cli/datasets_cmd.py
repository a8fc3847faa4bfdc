"""`rgbt-bench datasets list` and `rgbt-bench datasets verify SPEC [--split S]`."""
from __future__ import annotations

import click


@click.group()
def datasets() -> None:
    """List datasets and verify their files."""


@datasets.command("list")
def list_datasets() -> None:
    """Table of the registered datasets: classes, ignore index, mIoU convention, size, splits."""
    from rich.console import Console
    from rich.table import Table

    from ..datasets import DATASETS, dataset_class, spec_syntax

    table = Table(title="Datasets")
    for col in ("name", "classes", "ignore", "convention", "native size", "splits", "day/night", "spec"):
        table.add_column(col, overflow="fold")
    for name in DATASETS:
        try:
            info = dataset_class(name).info
        except (ImportError, AttributeError) as exc:
            table.add_row(name, f"unavailable: {str(exc).splitlines()[0]}", "", "", "", "", "", "")
            continue
        table.add_row(
            name, str(info.num_classes), "none" if info.ignore_index is None else str(info.ignore_index),
            info.convention, f"{info.native_size[0]}x{info.native_size[1]}", ", ".join(info.splits),
            "yes" if info.has_day_night else "no", spec_syntax(info),
        )
    Console().print(table)


@datasets.command("verify")
@click.argument("spec")
@click.option("--split", "splits", multiple=True,
              help="Split to check (repeatable); default: every split of the dataset.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Extra dataset argument, e.g. thermal=thermal_raw for pst900; repeatable.")
def verify(spec: str, splits: tuple[str, ...], dataset_options: tuple[str, ...]) -> None:
    """Check every file of SPEC (e.g. mfnet:/data/MFNet): exists, decodes, channel counts, sizes agree,
    label ids in range. Lists each problem with its file; exit code 1 if there is any, else 0."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..datasets.verify import problems, verify_dataset
    from ..training.config import parse_key_values

    options = parse_key_values(dataset_options, "--dataset-option")
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:

        def advance(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = progress.add_task(f"verify {split}", total=total)
            progress.update(tasks[split], completed=done)

        reports = verify_dataset(spec, splits, options, progress=advance)

    found = problems(reports)
    for problem in found:
        click.echo(f"PROBLEM {problem}")
    table = Table(title=f"verify {spec}")
    for col in ("split", "samples", "checked", "problems"):
        table.add_column(col)
    for report in reports:
        table.add_row(report.split, str(report.samples), str(report.checked), str(len(report.problems)))
    Console().print(table)
    verdict = f"{len(found)} problem(s) found" if found else "all files OK"
    click.echo(f"{spec}: {sum(r.checked for r in reports)} samples checked in {len(reports)} split(s); {verdict}")
    if found:
        raise click.exceptions.Exit(1)
