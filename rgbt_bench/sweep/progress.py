"""Live display of a sweep: cells written / total, images per second and time left (rich).

The bar counts images decoded over all passes of this invocation (one pass per cell group), so the rate is
this process's decode-and-evaluate throughput and the ETA covers the remaining passes. The display is
off when disabled or when stderr is not a terminal (pipes, CI, tests); nothing is printed then.
"""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text


class ImagesPerSecond(ProgressColumn):
    """The task's current speed as images per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:.1f} img/s")


class SweepProgress:
    """Context manager around a rich Progress: `advance(images)` and `cells_done(n)` update it."""

    def __init__(self, total_cells: int, total_images: int, enabled: bool, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.total_cells = total_cells
        self.done = 0
        self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), TextColumn("cells {task.fields[cells]}"),
                                 ImagesPerSecond(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[status]}"), console=self.console,
                                 disable=not (enabled and self.console.is_terminal))
        self.task = self.progress.add_task("sweep", total=max(total_images, 1), cells=self._cells(), status="")

    def _cells(self) -> str:
        return f"{self.done}/{self.total_cells}"

    def __enter__(self) -> "SweepProgress":
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
