"""Output for pipes and CI (issue 11 item 4, and the seed flags of item 7): unwrapped tables, --format csv|json,
plain progress lines, prefixed parallel output, ASCII locales, `python -m rgbt_bench`."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from fixtures_real import write_mfnet
from rich.console import Console
from test_report import matrix, write_results

from rgbt_bench.cli import cli, main
from rgbt_bench.console import LoggedProgress, PrefixedStream
from rgbt_bench.corruptions import CORRUPTIONS
from rgbt_bench.datasets import DATASETS, dataset_class
from rgbt_bench.models.registry import MODELS
from rgbt_bench.processes import map_in_processes

REPO = Path(__file__).resolve().parents[1]
LISTS = [["datasets", "list"], ["models", "list"], ["corruptions", "list"]]


def rgbt(*args):
    """The CLI in this process; click's runner gives it pipes for stdout and stderr, not a terminal."""
    return CliRunner().invoke(cli, list(args))


def python(*args, env=None):
    """`python ARGS` in a subprocess at the repository root, stderr merged into stdout."""
    return subprocess.run([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=300)


def table_rows(text):
    """The body rows of a rich table: lines starting with '│', split into stripped cells."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("command", LISTS, ids=[c[0] for c in LISTS])
def test_piped_tables_are_not_wrapped(command):
    done = rgbt(*command)
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert all(line == line.rstrip() for line in lines)  # no line longer than its content
    names = {"datasets": list(DATASETS), "models": list(MODELS), "corruptions": list(CORRUPTIONS)}[command[0]]
    first_cells = [row[0] for row in table_rows(done.stdout) if row[0]]
    assert first_cells == names  # one row per entry, no name folded onto a second line ("synthet / ic")
    if command[0] == "datasets":
        assert ["pst900", "5", "none", "field", "720x1280", "train, test", "no", "pst900:/path/to/pst900"] in \
            table_rows(done.stdout)


def test_piped_leaderboard_lines_are_whole(tmp_path):
    results = write_results(tmp_path / "r", {("a", "clean", 0, 0): matrix(0.8), ("a", "fog", 1, 0): matrix(0.6)})
    out = tmp_path / ("very_long_directory_name_" * 6) / "leaderboard.csv"
    done = rgbt("leaderboard", str(results), "--out", str(out), "--bootstrap", "0")
    assert done.exit_code == 0, done.output
    assert any(line.startswith("wrote ") and str(out) in line for line in done.stdout.splitlines())
    assert all(line == line.rstrip() for line in done.stdout.splitlines())


def test_list_formats_for_scripts():
    runner_rows = {}
    for fmt in ("csv", "json"):
        done = rgbt("datasets", "list", "--format", fmt)
        assert done.exit_code == 0, done.output
        runner_rows[fmt] = done.stdout
    records = pd.read_json(io.StringIO(runner_rows["json"]), orient="records")
    assert records["name"].tolist() == list(DATASETS)
    mfnet = records.set_index("name").loc["mfnet"]
    info = dataset_class("mfnet").info
    assert mfnet["classes"] == info.num_classes and list(mfnet["native_size"]) == [480, 640]
    assert list(mfnet["splits"]) == list(info.splits) and pd.isna(mfnet["ignore_index"])
    rows = list(csv.DictReader(io.StringIO(runner_rows["csv"])))
    assert [r["name"] for r in rows] == list(DATASETS)
    assert rows[1]["native_size"] == "480x640" and rows[1]["ignore_index"] == "" and rows[1]["day_night"] == "true"


def test_corruption_and_model_lists_as_records():
    corruptions = json.loads(rgbt("corruptions", "list", "--format", "json").stdout)
    night = next(r for r in corruptions if r["name"] == "night")
    assert night["params"] == {k: list(v) for k, v in CORRUPTIONS["night"].params.items()}
    assert corruptions[0]["options"] == {"fill": {"default": "zero", "choices": ["zero", "mean"]}}
    rows = list(csv.DictReader(io.StringIO(rgbt("corruptions", "list", "--format", "csv").stdout)))
    night_row = rows[[r["name"] for r in rows].index("night")]
    assert night_row["params"] == CORRUPTIONS["night"].summary().replace("\n", "; ")
    models = json.loads(rgbt("models", "list", "--format", "json", "--preset", "rtfnet152").stdout)
    rtf = next(r for r in models if r["name"] == "rtfnet")
    assert rtf["params"] == 254_510_053 and rtf["params_preset"] == "rtfnet152"  # RTFNet-152 as published
    assert next(r for r in models if r["name"] == "mfnet")["params_preset"] == "tiny"


def test_unknown_preset_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", "list", "--preset", "swin_x"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert err.strip().splitlines() == [
        "Error: unknown preset 'swin_x'; expected one of tiny, swin_t, swin_s, swin_b, rtfnet50, rtfnet152, mfnet, "
        "resnet50. Did you mean 'swin_t'?"]


def test_ascii_locale_never_crashes(tmp_path):
    results = write_results(tmp_path / "résultats", {("a", "clean", 0, 0): matrix(0.8),
                                                      ("a", "fog", 1, 0): matrix(0.6)})
    commands = [["leaderboard", str(results), "--out", str(results / "lb.csv"), "--bootstrap", "0"],
                ["corruptions", "list"], ["datasets", "list"]]
    script = "from rgbt_bench.cli import main\n" + "".join(f"main({c!r})\n" for c in commands)
    done = python("-c", script, env={"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0 and "Traceback" not in done.stdout, done.stdout
    done.stdout.encode("ascii")  # all of it ASCII: box drawing and any other non-ASCII text have look-alikes
    assert "| a " in done.stdout and "| night " in done.stdout and "| mfnet " in done.stdout
    assert f"{tmp_path}/r?sultats/lb.csv" in done.stdout  # a path the locale cannot spell, printed, not a crash


def test_verify_progress_comes_before_its_findings(tmp_path):
    fx = write_mfnet(tmp_path / "MFNet")
    done = python("-m", "rgbt_bench", "datasets", "verify", f"mfnet:{fx.root}")
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout
    progress = [i for i, line in enumerate(lines) if line.startswith("verify ") and "samples" in line]
    assert [lines[i].split(":")[0] for i in progress] == [f"verify {s}" for s in dataset_class("mfnet").info.splits]
    assert max(progress) < lines.index(f"verify mfnet:{fx.root}") < len(lines) - 1


def test_logged_progress_prints_plain_lines_at_the_interval():
    out = io.StringIO()
    console = Console(file=out, width=40)
    with LoggedProgress(console=console, interval=0, unit="images") as progress:
        task = progress.add_task("sweep", total=4, status="")
        progress.update(task, advance=1, status="pass 1/2")
        progress.update(task, advance=3)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sweep: 1/4 images (25%)") and lines[0].endswith("pass 1/2")
    assert lines[-1].startswith("sweep: 4/4 images (100%)") and "ETA 0:00:00" in lines[-1]
    assert all(len(line) > 40 for line in lines)  # never wrapped at the console width
    quiet = io.StringIO()
    with LoggedProgress(console=Console(file=quiet), interval=3600) as progress:
        task = progress.add_task("train", total=10)
        for _ in range(10):
            progress.advance(task)
    assert quiet.getvalue().splitlines() == [quiet.getvalue().splitlines()[-1]]  # only the last line
    assert quiet.getvalue().startswith("train: 10/10 (100%)")


def test_prefixed_stream_marks_every_line():
    out = io.StringIO()
    stream = PrefixedStream(out, "[crm] ")
    stream.write("one\ntw")
    stream.write("o\nthree\n")
    assert out.getvalue() == "[crm] one\n[crm] two\n[crm] three\n" and not stream.isatty()


def shout(word: str) -> str:
    print(f"training {word}", file=sys.stderr, flush=True)
    return word.upper()


def test_parallel_workers_prefix_their_lines(capfd):
    assert map_in_processes(shout, ["crm", "mfnet"], 2, 1, "training", label=lambda w: w) == ["CRM", "MFNET"]
    err = capfd.readouterr().err
    assert "[crm] training crm\n" in err and "[mfnet] training mfnet\n" in err


def mutter(word: str) -> str:
    print(f"stdout {word}", end="")  # left in the buffer: a worker that skips teardown must not lose it
    print(f"stderr {word}", end="", file=sys.stderr)
    return word


def test_workers_flush_what_they_printed_when_they_end(capfd):
    assert map_in_processes(mutter, ["a", "b"], 2, 1, "work") == ["a", "b"]
    out, err = capfd.readouterr()
    assert "stdout a" in out and "stdout b" in out and "stderr a" in err and "stderr b" in err


def test_python_dash_m_runs_the_cli():
    done = python("-m", "rgbt_bench", "--version")
    assert done.returncode == 0 and done.stdout.startswith("rgbt-bench, version ")


def parsed(path, *argv):
    """The parameters click parses for command `path` (e.g. ["corruptions", "show"]) from `argv`."""
    command = cli
    for name in path:
        command = command.get_command(None, name)
    return command.make_context(path[-1], list(argv)).params


def test_one_name_per_seed_with_the_old_spellings_hidden():
    assert parsed(["train"], "--train-seed", "5")["seed"] == 5 == parsed(["train"], "--seed", "5")["seed"]
    sweep = ["--models", "crm", "--out", "x"]
    assert parsed(["sweep"], *sweep, "--corruption-seed", "0,1")["seeds"] == "0,1"
    assert parsed(["sweep"], *sweep, "--seeds", "0,1")["seeds"] == "0,1"
    show = ["corruptions", "show"]
    assert parsed(show, "night", "--corruption-seed", "3")["seed"] == 3 == parsed(show, "night", "--seed", "3")["seed"]
    assert parsed(show, "night")["seed"] == 0  # what `sweep` evaluates by default
    for args, shown, hidden in [(["train"], "--train-seed", "--seed "), (["sweep"], "--corruption-seed", "--seeds"),
                                (show, "--corruption-seed", "--seed ")]:
        text = rgbt(*args, "--help").stdout
        assert shown in text and hidden not in text
