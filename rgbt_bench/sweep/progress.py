"""Progress of a sweep: cells written / total, images per second and time left.

The count is of images decoded over all passes of this invocation (one pass per cell group), so the rate
is this process's decode-and-evaluate throughput and the ETA covers the remaining passes. On a terminal it
is a live rich display; when stderr is not a terminal (a pipe, a CI log) it is a plain line at a steady
interval (rgbt_bench.console.LoggedProgress):

    sweep: cells 12/60, images 340/800 (42%), 23.1 images/s, elapsed 0:00:15, ETA 0:00:20, pass 2/5
"""
from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from ..console import LoggedProgress, clock, stderr_console


class ImagesPerSecond(ProgressColumn):
    """The task's current speed as images per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:.1f} img/s")


def plain_line(task: Task) -> str:
    """The sweep's progress as one line of text."""
    speed = task.finished_speed or task.speed
    rate = f", {speed:.1f} images/s" if speed else ""
    status = f", {task.fields['status']}" if task.fields.get("status") else ""
    return (f"sweep: cells {task.fields['cells']}, images {task.completed:g}/{task.total:g} "
            f"({100 * task.completed / task.total:.0f}%){rate}, elapsed {clock(task.elapsed)}, "
            f"ETA {clock(0.0 if task.finished else task.time_remaining)}{status}")


class SweepProgress:
    """Context manager around a LoggedProgress: `advance(images)` and `cells_done(n)` update it."""

    def __init__(self, total_cells: int, total_images: int, enabled: bool, console: Optional[Console] = None):
        self.console = console or stderr_console()
        self.total_cells = total_cells
        self.done = 0
        self.progress = LoggedProgress(TextColumn("[bold]sweep"), BarColumn(), TextColumn("cells {task.fields[cells]}"),
                                       ImagesPerSecond(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                       TextColumn("{task.fields[status]}"), console=self.console,
                                       disable=not enabled or total_cells == 0, line=plain_line)
        self.task = self.progress.add_task("sweep", total=max(total_images, 1), cells=self._cells(), status="")

    def _cells(self) -> str:
        return f"{self.done}/{self.total_cells}"

    def __enter__(self) -> SweepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def status(self, text: str) -> None:
        self.progress.update(self.task, status=text)

    def advance(self, images: int) -> None:
        self.progress.update(self.task, advance=images)

    def cells_done(self, n: int) -> None:
        self.done += n
        self.progress.update(self.task, cells=self._cells())
