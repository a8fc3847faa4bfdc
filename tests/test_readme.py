"""The README is true: every command it shows runs, every path it names exists, every doc is linked; and the
CI recipe of docs/ci.md runs as written (issue 11 items 8 and 9).

What runs. Every command of a ```bash block of README.md and docs/ci.md, and every `run:` / `script:` line of
the GitHub Actions and GitLab CI jobs of docs/ci.md, in order, in a scratch directory, through
`rgbt_bench.cli.main` in this process (the code of this checkout, not an installed `rgbt-bench`). The data and
files a reader is assumed to have are written first, small and in their real formats: MFNet / PST900 / KP
trees (tests/fixtures_real.py) for `/data/MFNet` etc., weight files in the authors' layouts
(tests/official_layouts.py) for `downloads/...` and `pretrained/...`, `my_project/my_model.py` from the
README's own Python block, and a copy of results/baselines/. Full-size jobs are shrunk, and only these ways:
- `run` gets `--quick` (the README's main-job paths under results/main/ and models/ are then looked for under
  results/quick/ and models/quick/);
- `sweep` without `--limit` gets `--limit 2`, and without `--corruptions` / `--severities` also `--severities 5`;
- `--device cuda` becomes `--device cpu`; `sweep` and `models import` run the `tiny` preset where the README
  says a Swin or RTFNet size (the weight files written are of that size);
- `train --recipe crm_paper` (35000 GPU iterations) gets `--dry-run`; another `train` without `--iterations`
  gets `--iterations 2 --eval-every 0 --batch-size 2`.
Install commands (`python3 -m pip install ...`) are not rerun. A command that cannot run here is marked in
the document by the line `# not run by tests/test_readme.py: <reason>` above it, and the test asserts that the
marked commands are exactly those it cannot run: the test suite itself (recursion) and multi-machine jobs.

`rgbt-bench run --quick` then `check results/quick --baseline results/baselines/quick.csv --max-drop 0` is the
recipe of docs/ci.md on the committed quick baseline, so CI (.ci/run runs the README's test command, which
runs this file) keeps the recipe from rotting.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import fixtures_real as F
import official_layouts as L
import pytest
import torch
import yaml

from rgbt_bench.cli import main
from rgbt_bench.models import main_models

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_DOC = REPO / "docs" / "ci.md"
CI_RUN = REPO / ".ci" / "run"
UNTESTED = "# not run by tests/test_readme.py:"
INSTALL = re.compile(r"^python3? -m pip install ")
SIZE = (48, 64)  # smallest fixture size at which every model's deepest feature map is wider than 1 pixel
SMALL_PRESETS = {"swin_t": "tiny", "swin_s": "tiny", "swin_b": "tiny", "rtfnet50": "tiny", "rtfnet152": "tiny"}
# the main job's outputs, as `run --quick` writes them
QUICK_PATHS = (("results/main", "results/quick"), ("models/", "models/quick/"))
PLACEHOLDERS = {"NAME", "DIR", "FILE", "PATH", "OUT", "X", "A", "B", "CKPT", "SPEC"}
PATH_ROOTS = ("results/", "models/", "docs/", "tests/", "rgbt_bench/", "recipes/", "corruptions/", "benchmarks/",
              ".ci/", "downloads/", "pretrained/", "baselines/", "my_project/", "cli.py", "pyproject.toml")


@dataclass(frozen=True)
class Command:
    """One shell command of a document: continuation lines joined; `untested`: the document's reason, if marked."""

    text: str
    where: str
    untested: Optional[str] = None


@dataclass
class Outcome:
    command: Command
    argv: list[str]
    code: object  # exit code, or the exception's traceback
    output: str


# ----------------------------------------------------------------------------------------------- reading docs
def fenced(path: Path, language: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, body) of every ```language block, indented ones included."""
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{language}":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append((start, "\n".join(body)))
        i += 1
    return blocks


def shell_lines(text: str) -> list[tuple[int, str, Optional[str]]]:
    """(line offset, command with continuations joined, untested reason or None) of a shell text."""
    out, pending, current, first = [], None, "", 0
    for k, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            if line.startswith(UNTESTED):
                pending = line[len(UNTESTED):].strip()
            continue
        if not current:
            first = k
        current += line[:-1].rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append((first, current, pending))
            current, pending = "", None
    return out


def bash_commands(path: Path) -> list[Command]:
    return [Command(text, f"{path.name}:{start + k + 1}", reason)
            for start, body in fenced(path, "bash") for k, text, reason in shell_lines(body)]


def ci_jobs() -> dict[str, tuple[dict[str, str], list[Command]]]:
    """The CI jobs of docs/ci.md: name -> (variables, commands of its run: / script: lines)."""
    jobs = {}
    for start, body in fenced(CI_DOC, "yaml"):
        spec = yaml.safe_load(body)
        if "jobs" in spec:  # GitHub Actions
            for name, job in spec["jobs"].items():
                steps = [s["run"] for s in job["steps"] if "run" in s]
                jobs[f"github:{name}"] = (job.get("env", {}), [
                    Command(text, f"ci.md:{start} (GitHub {name})") for step in steps
                    for _, text, _ in shell_lines(step)])
        else:  # GitLab CI
            for name, job in spec.items():
                jobs[f"gitlab:{name}"] = (job.get("variables", {}), [
                    Command(text, f"ci.md:{start} (GitLab {name})") for line in job["script"]
                    for _, text, _ in shell_lines(line)])
    return jobs


def cannot_run(text: str) -> Optional[str]:
    """Why this test cannot run a command, or None."""
    for part in text.split("&&"):
        words = shlex.split(part)
        if words[:3] in (["python3", "-m", "pytest"], ["python", "-m", "pytest"]):
            return "the test suite itself"
        if words[0] in ("srun", "sbatch") or (words[0] == "torchrun" and "--nnodes" in words
                                              and words[words.index("--nnodes") + 1] != "1"):
            return "several machines"
    return None


def python_files(path: Path) -> dict[str, str]:
    """Files a document spells out: ```python blocks whose first line is `# relative/path.py`."""
    files = {}
    for _, body in fenced(path, "python"):
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and first.endswith(".py"):
            files[first[2:].strip()] = rest.lstrip("\n")
    return files


# ----------------------------------------------------------------------------------------------- the reader's files
def crm_checkpoint(classes: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with L.fake_detectron2_config():
            torch.save(L.lightning_checkpoint(L.random_state(L.crm_shapes(classes, "tiny"), seed=classes), classes),
                       path)
    return write


def write_swin_pkl(path: Path) -> None:
    path.write_bytes(L.detectron2_pkl(L.thin_state(L.swin_imagenet_shapes("swin_t", "microsoft"))))


FILES: dict[str, Callable[[Path], None]] = {
    "downloads/MFNet-pytorch/weights/MFNet/final.pth": lambda p: torch.save(L.random_state(L.mfnet_shapes(9)), p),
    "downloads/RTFNet_50/final.pth": lambda p: torch.save(
        L.random_state(L.rtfnet_shapes(9, 18, width=16, layers=(1, 1, 1, 1)), seed=5), p),
    "downloads/CRM/MF-CRM-Swin-T.ckpt": crm_checkpoint(9),
    "downloads/CRM/PST-CRM-Swin-T.ckpt": crm_checkpoint(5),
    "downloads/CRM/KP-CRM-Swin-T.ckpt": crm_checkpoint(19),
    "pretrained/swin_tiny_patch4_window7_224.pkl": write_swin_pkl,
}
DATA = {"/data/MFNet": F.write_mfnet, "/data/PST900": F.write_pst900, "/data/KP": F.write_kp}


def prepare(ws: Path) -> dict[str, str]:
    """Write what README readers are assumed to have into `ws`; the replacements of the README's data paths."""
    for rel, write in FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        write(ws / rel)
    for rel, text in python_files(README).items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    shutil.copytree(REPO / "results" / "baselines", ws / "results" / "baselines")
    roots = {}
    for name, write in DATA.items():
        write(ws / "data" / Path(name).name, size=SIZE)
        roots[name] = str(ws / "data" / Path(name).name)
    return roots


def prepare_ci(ws: Path) -> None:
    """The user's repository of docs/ci.md: my_model.py (the README's), its checkpoint, a few MFNet images."""
    ws.mkdir(parents=True)
    (ws / "my_model.py").write_text(python_files(README)["my_project/my_model.py"])
    spec = importlib.util.spec_from_file_location("ci_user_model", ws / "my_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    (ws / "checkpoints").mkdir()
    torch.save(module.build(9).state_dict(), ws / "checkpoints" / "mine.pt")
    F.write_mfnet(ws / "ci-data" / "MFNet", size=SIZE, counts={"train": 2, "val": 2, "test": 3})


# ----------------------------------------------------------------------------------------------- running
def value(argv: list[str], flag: str) -> Optional[str]:
    return argv[argv.index(flag) + 1] if flag in argv else None


def shrink(argv: list[str]) -> list[str]:
    """The README command at the sizes of this test (the rules in the module docstring)."""
    argv = list(argv)
    if value(argv, "--device") == "cuda":
        argv[argv.index("--device") + 1] = "cpu"
    command = argv[0]
    if command in ("sweep", "models") and value(argv, "--preset") in SMALL_PRESETS:
        argv[argv.index("--preset") + 1] = SMALL_PRESETS[value(argv, "--preset")]
    if command == "run" and "--quick" not in argv:
        argv.append("--quick")
    if command == "sweep" and "--limit" not in argv:
        argv += ["--limit", "2"] + ([] if {"--corruptions", "--severities"} & set(argv) else ["--severities", "5"])
    if command == "train" and "--dry-run" not in argv:
        if value(argv, "--recipe") == "crm_paper":
            argv.append("--dry-run")
        elif "--iterations" not in argv:
            argv += ["--iterations", "2", "--eval-every", "0", "--batch-size", "2"]
    return argv


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: str(variables.get(m[1], m[0])), text)


def invoke(argv: list[str], cwd: Path, pythonpath: list[str]) -> tuple[object, str]:
    """Run `rgbt-bench ARGV` in this process, in `cwd`, with `pythonpath` entries importable; modules imported
    from `cwd` are forgotten afterwards, so the next command imports them afresh."""
    out = io.StringIO()
    before = set(sys.modules)
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        mp.chdir(cwd)
        for entry in reversed(pythonpath):
            mp.syspath_prepend(str((cwd / entry).resolve()))
        if pythonpath:
            mp.setenv("PYTHONPATH", ":".join(str((cwd / e).resolve()) for e in pythonpath))
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # any traceback is a failure of the README, reported with its text
            code = traceback.format_exc()
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if file.startswith(str(cwd)):
            del sys.modules[name]
    return code, out.getvalue()


def run_command(command: Command, cwd: Path, roots: dict[str, str], variables: dict[str, str],
                done: dict[tuple, Outcome]) -> list[Outcome]:
    """Run every part of `command` (joined by &&) but its installs; stop at the first failing part."""
    outcomes = []
    for part in command.text.split("&&"):
        part = expand(part.strip(), variables)
        if INSTALL.match(part):
            continue
        for name, root in roots.items():
            part = part.replace(name, root)
        words = shlex.split(part)
        pythonpath = []
        while words and re.match(r"^\w+=", words[0]):
            key, _, val = words.pop(0).partition("=")
            assert key == "PYTHONPATH", f"{command.where}: only PYTHONPATH=... is understood, got {key}"
            pythonpath = val.split(":")
        if words[:1] == ["rgbt-bench"]:
            argv = words[1:]
        elif words[:3] in (["python3", "-m", "rgbt_bench.cli"], ["python3", "-m", "rgbt_bench"]):
            argv, pythonpath = words[3:], [".", *pythonpath]  # python -m puts the current directory first
        else:
            outcomes.append(Outcome(command, words, f"this test cannot run '{words[0]}'", ""))
            return outcomes
        argv = shrink(argv)
        key = (str(cwd), tuple(argv), tuple(pythonpath))
        if key not in done:
            code, output = invoke(argv, cwd, pythonpath)
            done[key] = Outcome(command, argv, code, output)
        outcomes.append(done[key])
        if done[key].code != 0:
            return outcomes
    return outcomes


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> tuple[Path, Path, list[Outcome]]:
    """Run README.md's commands, then docs/ci.md's (baseline, then each CI job on a fresh checkout)."""
    base = tmp_path_factory.mktemp("readme")
    ws, ci = base / "ws", base / "ci"
    outcomes: list[Outcome] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RGBT_BENCH_CACHE", str(base / "cache"))
        ws.mkdir()
        roots = prepare(ws)
        done: dict[tuple, Outcome] = {}
        for command in bash_commands(README):
            if command.untested is None:
                outcomes += run_command(command, ws, roots, {}, done)
        prepare_ci(ci)
        for command in bash_commands(CI_DOC):
            outcomes += run_command(command, ci, {}, {}, done)
        for variables, commands in ci_jobs().values():
            shutil.rmtree(ci / "results")  # each job starts from a fresh clone: only the committed files
            done.clear()
            for command in commands:
                outcomes += run_command(command, ci, {}, variables, done)
    return ws, ci, outcomes


# ----------------------------------------------------------------------------------------------- tests
def quick_check(outcome: Outcome) -> bool:
    """The check of `run --quick` against the committed baseline (its own test below)."""
    return outcome.argv[:2] == ["check", "results/quick"]


def test_every_command_of_the_readme_and_the_ci_doc_succeeds(executed):
    _, _, outcomes = executed
    ran = {o.command.where for o in outcomes}
    assert len(ran) >= 20 and any("GitHub" in w for w in ran) and any("GitLab" in w for w in ran)
    failures = [f"{o.command.where}: rgbt-bench {' '.join(o.argv)}\n  exit {o.code}\n  {o.output[-1500:]}"
                for o in outcomes if o.code != 0 and not quick_check(o)]
    assert not failures, "\n\n".join(failures)


def test_the_quick_recipe_passes_the_committed_baseline(executed):
    """The CI recipe on the committed quick baseline (results/baselines/quick.csv): ran, and passed."""
    _, _, outcomes = executed
    checks = [o for o in outcomes if quick_check(o)]
    assert [o.argv for o in checks] == [["check", "results/quick", "--baseline", "results/baselines/quick.csv",
                                         "--max-drop", "0"]]
    assert checks[0].code == 0 and "PASS:" in checks[0].output, checks[0].output


def test_the_jobs_check_what_the_baseline_commands_wrote(executed):
    _, ci, outcomes = executed
    jobs = [o for o in outcomes if o.command.where.startswith("ci.md") and "(" in o.command.where]
    assert {o.argv[0] for o in jobs} == {"sweep", "check"}
    for o in jobs:
        if o.argv[0] == "check":
            assert "PASS:" in o.output and value(o.argv, "--max-drop") == "0.5", o.output
    assert (ci / "ci" / "baseline.csv").is_file()


def test_marked_commands_are_exactly_those_this_test_cannot_run():
    commands = bash_commands(README) + bash_commands(CI_DOC)
    marked = {c.text: c.where for c in commands if c.untested}
    unrunnable = {c.text: c.where for c in commands if cannot_run(c.text)}
    assert marked == unrunnable
    assert all(cannot_run(c.text) is None for _, jobs in ci_jobs().values() for c in jobs)


def test_the_readme_test_command_is_what_ci_runs():
    ci_line = [line for line in CI_RUN.read_text().splitlines() if "pytest" in line]
    readme = [c.text for c in bash_commands(README) if cannot_run(c.text) == "the test suite itself"]
    assert readme == ci_line == [
        'python3 -m pip install torch==2.13.0 && python3 -m pip install -e ".[test]" && python3 -m pytest -q']


def expand_braces(path: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [p for alt in match[1].split(",") for p in expand_braces(path[:match.start()] + alt + path[match.end():])]


def named_paths(text: str) -> set[str]:
    """Repository-relative paths named in inline code or links, placeholders expanded or left out."""
    spans = re.findall(r"`([^`\n]+)`", text) + re.findall(r"\]\(([^)\s]+)\)", text)
    paths = set()
    for span in spans:
        span = span.split("#")[0]
        if " " in span or ":" in span or not span.startswith(PATH_ROOTS):
            continue
        for path in expand_braces(span.replace("<model>", "{" + ",".join(main_models()) + "}")):
            parts = set(re.split(r"[/._-]", path))
            if "<" not in path and "*" not in path and not parts & PLACEHOLDERS:
                paths.add(path)
    return paths


def test_every_path_the_readme_names_exists(executed):
    ws, _, _ = executed
    paths = named_paths(README.read_text())
    assert {"results/main/leaderboard.csv", "results/baselines/quick.csv", "models/crm_tiny_synthetic_seed1024.pt",
            "results/mfnet-released/report/"} <= paths

    def exists(path: str) -> bool:
        quick = path
        for main_path, quick_path in QUICK_PATHS:
            quick = quick.replace(main_path, quick_path, 1) if quick.startswith(main_path) else quick
        return any((root / p).exists() for root in (REPO, ws) for p in (path, quick))
    assert sorted(p for p in paths if not exists(p)) == []


def test_docs_are_linked_from_the_readme_and_links_resolve():
    readme = README.read_text()
    for doc in sorted((REPO / "docs").glob("*.md")):
        assert f"](docs/{doc.name})" in readme, f"README does not link docs/{doc.name}"
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            assert (page.parent / target.split("#")[0]).exists(), f"{page.name} links to missing {target}"


def test_the_main_job_time_is_the_measured_one():
    """The README's time of the main job is a measurement, the same as the one `run`'s docstring gives."""
    from rgbt_bench.cli import run_cmd
    line = next(p for p in README.read_text().split("\n\n") if p.startswith("Time: "))
    wall = re.search(r"measured [0-9-]+ on .*?: (\d+) s wall", " ".join(line.split()))
    assert wall, line
    assert f"{wall.group(1)} s wall" in " ".join(run_cmd.__doc__.split())
