"""Terminal output that also reads well in pipes and CI logs.

On a terminal, rich draws live progress bars and wraps tables to the window. In a pipe or a CI log there is
no window: wrapped tables break cells ("synthet / ic") and wrapped lines break paths, and a live display
prints nothing until it ends. So, when a stream is not a terminal:
- `stdout_console()` / `stderr_console()` never wrap: a line is as long as its content;
- `print_table` prints a table at its natural width with no trailing blanks;
- `LoggedProgress` (a rich Progress) prints a plain line per task at a steady interval instead of the live
  display: done / total, rate, elapsed and time left. The interval is `RGBT_BENCH_PROGRESS_INTERVAL`
  seconds (default 30);
- `PrefixedStream` prefixes every line a worker process writes with its name ("[crm] ..."), so the lines of
  parallel trainings can be told apart;
- `safe_streams()` makes stdout and stderr replace what their encoding cannot write (an ASCII locale:
  LC_ALL=C, PYTHONIOENCODING=ascii) by an ASCII look-alike ("–" -> "-") instead of crashing.
"""
from __future__ import annotations

import codecs
import os
import sys
import time
from typing import Any, Callable, Optional, TextIO

from rich.console import Console
from rich.progress import Progress, Task, TaskID

PROGRESS_INTERVAL_ENV = "RGBT_BENCH_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0
UNWRAPPED = 1_000_000  # the console width when there is no terminal: nothing wraps
ASCII_ERRORS = "rgbt_bench_ascii"
ASCII_LOOKALIKES = {"–": "-", "—": "-", "−": "-", "×": "x", "…": "...", "±": "+-", "≥": ">=", "≤": "<=",
                    "→": "->", "‘": "'", "’": "'", "“": '"', "”": '"', "•": "*", "·": "*", "°": " deg",
                    "µ": "u", "━": "-", "─": "-", "│": "|", "✓": "ok", "✗": "x"}


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is an interactive terminal (False for pipes, files and closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if is_terminal(stream):
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=UNWRAPPED)


def stdout_console() -> Console:
    """A console on stdout; unwrapped when stdout is not a terminal."""
    return _console(stderr=False)


def stderr_console() -> Console:
    """A console on stderr; unwrapped when stderr is not a terminal, so no line breaks inside a path."""
    return _console(stderr=True)


def print_table(console: Console, table: Any) -> None:
    """Print a rich renderable; when `console` is not a terminal, at its natural width, lines stripped of
    trailing blanks (a centred title is padded to the table's width otherwise)."""
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table, width=UNWRAPPED)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    console.file.write(text + "\n")
    console.file.flush()


def progress_interval() -> float:
    """Seconds between plain progress lines: $RGBT_BENCH_PROGRESS_INTERVAL, else DEFAULT_INTERVAL_S."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV)
    if raw is None:
        return DEFAULT_INTERVAL_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_INTERVAL_S


def clock(seconds: Optional[float]) -> str:
    """'0:01:05' for 65 seconds, '-:--:--' when unknown."""
    if seconds is None:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def plain_line(task: Task, unit: str = "") -> str:
    """'<description>: <done>/<total> <unit> (<pct>%), <rate> <unit>/s, elapsed <t>, ETA <t>[, <status>]'
    (status: the task's `status` field, if any)."""
    total = f"/{task.total:g}" if task.total else ""
    pct = f" ({100 * task.completed / task.total:.0f}%)" if task.total else ""
    speed = task.finished_speed or task.speed
    unit = f" {unit}" if unit else ""
    rate = f", {speed:.{0 if speed >= 100 else 1 if speed >= 10 else 2}f}{unit}/s" if speed else ""
    status = f", {task.fields['status']}" if task.fields.get("status") else ""
    return (f"{task.description}: {task.completed:g}{total}{unit}{pct}{rate}, elapsed {clock(task.elapsed)}, "
            f"ETA {clock(0.0 if task.finished else task.time_remaining)}{status}")


class LoggedProgress(Progress):
    """A rich Progress: the live display on a terminal; elsewhere one plain line per task at most every
    `interval` seconds (progress_interval()) and a last one when it stops, written by `line(task)`
    (default: `plain_line` counting `unit`)."""

    def __init__(self, *columns: Any, console: Optional[Console] = None, disable: bool = False,
                 line: Optional[Callable[[Task], str]] = None, unit: str = "", interval: Optional[float] = None,
                 **kwargs: Any):
        console = console or stderr_console()
        self.plain = not disable and not console.is_terminal
        super().__init__(*columns, console=console, disable=disable or self.plain, **kwargs)
        self.line = line or (lambda task: plain_line(task, unit))
        self.interval = progress_interval() if interval is None else interval
        self._last: dict[TaskID, float] = {}
        self._logged: dict[TaskID, str] = {}

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self._last[task_id] = time.monotonic()
        return task_id

    def _emit(self, task_id: TaskID, force: bool = False) -> None:
        now = time.monotonic()
        if not self.plain or (not force and now - self._last.get(task_id, now) < self.interval):
            return
        task = next(t for t in self.tasks if t.id == task_id)
        text = self.line(task)
        if force and self._logged.get(task_id) == text:
            return
        self._last[task_id] = now
        self._logged[task_id] = text
        self.console.print(text, highlight=False, soft_wrap=True)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._emit(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._emit(task_id)

    def stop(self) -> None:
        for task in self.tasks:
            self._emit(task.id, force=True)
        super().stop()


class PrefixedStream:
    """A text stream that writes `prefix` at the start of every line to `stream` (not a terminal, so rich
    draws no live display into lines shared with other processes)."""

    def __init__(self, stream: TextIO, prefix: str):
        self.stream = stream
        self.prefix = prefix
        self._at_line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self.prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        self.stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _ascii_lookalike(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(ASCII_LOOKALIKES.get(ch, "?") for ch in bad), exc.end


codecs.register_error(ASCII_ERRORS, _ascii_lookalike)


def safe_streams() -> None:
    """Let stdout and stderr write any text: characters their encoding lacks become ASCII look-alikes."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding in ("utf8", "utf16", "utf32") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors=ASCII_ERRORS)
        except (ValueError, OSError):
            continue
