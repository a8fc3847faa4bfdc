"""Layering: the library never imports its command-line interface. Only rgbt_bench/cli/ may import
rgbt_bench.cli; everything else is usable (and testable) without Click."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rgbt_bench"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved against its package)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # a module's, or __init__'s own
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_imported_modules_resolves_relative_imports(monkeypatch):
    names = imported_modules(PACKAGE / "training" / "distributed.py")
    assert "rgbt_bench.device.resolve_device" in names and "torch" in names
    assert "rgbt_bench.models.registry.MODELS" in imported_modules(PACKAGE / "models" / "__init__.py")
    fake = PACKAGE / "sweep" / "x.py"  # what the pipeline did before device resolution moved below the CLI
    monkeypatch.setattr(Path, "read_text", lambda self: "from ..cli.options import resolve_device\n")
    assert "rgbt_bench.cli.options" in imported_modules(fake)


def test_nothing_outside_the_cli_imports_the_cli():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "cli") or path == PACKAGE / "__main__.py":  # `python -m rgbt_bench`: the CLI
            continue
        bad = sorted(n for n in imported_modules(path) if n == "rgbt_bench.cli" or n.startswith("rgbt_bench.cli."))
        offenders += [f"{path.relative_to(PACKAGE.parent)}: {name}" for name in bad]
    assert offenders == []
