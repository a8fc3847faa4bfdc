"""`rgbt-bench datasets list` and `rgbt-bench datasets verify SPEC [--split S]`."""
from __future__ import annotations

from typing import Optional

import click

from .output import Column, emit, format_option


@click.group()
def datasets() -> None:
    """List datasets and verify their files."""


def size_text(size: Optional[list[int]]) -> str:
    """[480, 640] -> '480x640' (H x W)."""
    return "x".join(map(str, size or []))


@datasets.command("list")
@format_option
def list_datasets(fmt: str) -> None:
    """Table of the registered datasets: classes, ignore index, mIoU convention, size, splits."""
    from ..datasets import DATASETS, dataset_class, spec_syntax

    rows = []
    for name in DATASETS:
        try:
            info = dataset_class(name).info
        except (ImportError, AttributeError) as exc:
            rows.append({"name": name, "note": f"unavailable: {str(exc).splitlines()[0]}"})
            continue
        rows.append({"name": name, "classes": info.num_classes, "ignore_index": info.ignore_index,
                     "convention": info.convention, "native_size": list(info.native_size),
                     "splits": list(info.splits), "day_night": info.has_day_night, "spec": spec_syntax(info)})
    columns = [Column("name", no_wrap=True), Column("classes"),
               Column("ignore_index", "ignore", lambda v: "none" if v is None else str(v)),
               Column("convention"), Column("native_size", "native size", size_text, size_text),
               Column("splits"), Column("day_night", "day/night", lambda v: "" if v is None else "yes" if v else "no"),
               Column("spec")]
    if any("note" in row for row in rows):
        columns.append(Column("note"))
    emit(rows, columns, fmt, title="Datasets")


@datasets.command("verify")
@click.argument("spec")
@click.option("--split", "splits", multiple=True,
              help="Split to check (repeatable); default: every split of the dataset.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Extra dataset argument, e.g. thermal=thermal_raw for pst900; repeatable.")
def verify(spec: str, splits: tuple[str, ...], dataset_options: tuple[str, ...]) -> None:
    """Check every file of SPEC (e.g. mfnet:/data/MFNet): exists, decodes, channel counts, sizes agree,
    label ids in range. Lists each problem with its file; exit code 1 if there is any, else 0."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..console import LoggedProgress, print_table, stderr_console, stdout_console
    from ..datasets.verify import problems, verify_dataset
    from ..training.config import parse_key_values

    options = parse_key_values(dataset_options, "--dataset-option")
    tasks: dict[str, int] = {}
    err = stderr_console()
    with LoggedProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, unit="samples") as progress:

        def advance(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = progress.add_task(f"verify {split}", total=total)
            progress.update(tasks[split], completed=done)

        reports = verify_dataset(spec, splits, options, progress=advance)
    err.file.flush()  # the progress lines come before the findings when both streams go to one log

    found = problems(reports)
    for problem in found:
        click.echo(f"PROBLEM {problem}")
    table = Table(title=f"verify {spec}")
    for col in ("split", "samples", "checked", "problems"):
        table.add_column(col)
    for report in reports:
        table.add_row(report.split, str(report.samples), str(report.checked), str(len(report.problems)))
    print_table(stdout_console(), table)
    verdict = f"{len(found)} problem(s) found" if found else "all files OK"
    click.echo(f"{spec}: {sum(r.checked for r in reports)} samples checked in {len(reports)} split(s); {verdict}")
    if found:
        raise click.exceptions.Exit(1)
