"""The `rgbt-bench` Click group. Subcommands are imported on use, so `--help` stays fast and one
command's heavy imports never slow another. User errors (RgbtBenchError) print one line, exit 2."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import click

from .. import __version__
from ..allocator import keep_freed_memory
from ..console import safe_streams
from ..errors import RgbtBenchError
from ..registry import Registry, import_target


@dataclass(frozen=True)
class Command:
    """A subcommand: the "module:attribute" of its click.Command (imported on use) and its one-line help."""

    target: str
    help: str


COMMANDS: Registry[Command] = Registry("command", {
    "datasets": Command("rgbt_bench.cli.datasets_cmd:datasets", "List datasets and verify their files."),
    "models": Command("rgbt_bench.cli.models_cmd:models", "List models and their presets."),
    "train": Command("rgbt_bench.cli.train_cmd:train", "Train a model (CRM or a baseline)."),
    "corruptions": Command("rgbt_bench.cli.corruptions_cmd:corruptions", "List corruptions and render example grids."),
    "sweep": Command("rgbt_bench.cli.sweep_cmd:sweep", "Evaluate models across corruptions and severities."),
    "report": Command("rgbt_bench.cli.report_cmd:report", "Write tables, robustness metrics and plots for a sweep."),
    "leaderboard": Command("rgbt_bench.cli.report_cmd:leaderboard", "Rank models across sweep results."),
    "check": Command("rgbt_bench.cli.report_cmd:check", "Compare a sweep's mIoU with a stored baseline."),
    "run": Command("rgbt_bench.cli.run_cmd:run", "Main job: train tiny models, sweep, report, leaderboard."),
})


class LazyGroup(click.Group):
    """A click.Group whose subcommands are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return COMMANDS.names()

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name not in COMMANDS:
            return None
        return import_target(COMMANDS[name].target)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.help) for name, command in COMMANDS.items()])

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in COMMANDS and not name.startswith("-"):
            ctx.fail(f"no such command '{name}'.{COMMANDS.suggestion(name)}")
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rgbt-bench")
def cli() -> None:
    """rgbt-bench: how good is an RGB-T segmentation model, and how does it hold up when a camera
    fails, fog rolls in, night falls or the thermal sensor gets noisy?"""


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: run the group, turning user errors into one line on stderr and exit 2."""
    safe_streams()
    keep_freed_memory()
    try:
        code = cli.main(args=argv, prog_name="rgbt-bench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RgbtBenchError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    if isinstance(code, int) and code:
        sys.exit(code)  # a command's click.exceptions.Exit(code) is returned, not raised, without standalone mode
