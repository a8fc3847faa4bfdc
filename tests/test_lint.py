"""Lint in CI: ruff with the configuration in pyproject.toml, and one spelling of optional types.

ruff has a rule that rewrites `Optional[X]` as `X | None` (UP045) but none for the other direction, so the
spelling the code uses, `Optional[X]`, is checked here on every annotation of every tracked Python file.
"""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    assert importlib.util.find_spec("ruff") is not None, \
        "ruff is not installed; install the test extra: python3 -m pip install -e '.[test]'"
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"ruff check found problems (fix with `python3 -m ruff check --fix .`):\n" \
                                 f"{done.stdout}{done.stderr}"


def tracked_python_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    return [REPO / n for n in names if (REPO / n).is_file()]


def annotations(tree: ast.AST):
    """Every annotation of `tree`: arguments, returns and annotated assignments (dataclass fields)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            yield from (a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg,
                                               args.kwarg] if a is not None and a.annotation is not None)
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def none_unions(annotation: ast.AST) -> list[ast.BinOp]:
    """The `... | None` (or `None | ...`) unions inside one annotation, quoted or not."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval")
    return [node for node in ast.walk(annotation)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
            and any(isinstance(side, ast.Constant) and side.value is None for side in (node.left, node.right))]


def optional_offenders(path: Path, root: Path = REPO) -> list[str]:
    """'file:line: union' for each optional type of `path` not spelled Optional[X]."""
    source = path.read_text()
    if not re.search(r"None\s*\||\|\s*None", source):  # most files: no need to parse
        return []
    return sorted({f"{path.relative_to(root)}:{annotation.lineno}: {ast.unparse(node)}"
                   for annotation in annotations(ast.parse(source, str(path))) for node in none_unions(annotation)})


def test_optional_types_are_spelled_optional():
    offenders = [line for path in tracked_python_files() for line in optional_offenders(path)]
    assert offenders == [], "write Optional[X] instead of X | None:\n" + "\n".join(offenders)


def test_the_optional_check_finds_each_spelling(tmp_path):
    path = tmp_path / "example.py"
    path.write_text("from typing import Optional\n"
                    "def f(a: Optional[int], b: int | None, c: 'None | str' = None) -> dict[str, bytes | None]:\n"
                    "    d: list[int] | None = None\n"
                    "    e: int | str = 0\n")
    found = [line.split(": ", 1)[1] for line in optional_offenders(path, tmp_path)]
    assert found == ["None | str", "bytes | None", "int | None", "list[int] | None"]

