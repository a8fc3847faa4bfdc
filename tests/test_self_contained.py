"""The repository is self-contained: no tracked file points to material a clone does not have."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = ("DOMAIN.md", "../shared", "shared/DOMAIN")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / n for n in names if Path(n).suffix in {".py", ".md", ".yaml", ".toml", ".txt", ""}]


def test_no_file_points_outside_the_repository():
    offenders = [f"{path.relative_to(REPO)}:{i}" for path in tracked_text_files() if path.is_file()
                 for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                 if any(token in line for token in OUTSIDE) and path.name != Path(__file__).name]
    assert offenders == []
