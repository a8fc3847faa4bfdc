"""Corruption suites: YAML files listing which corruptions, severities and options a sweep evaluates.

Format (a bare name such as `default` resolves to the repository's `corruptions/<name>.yaml`):

    name: default                    # optional, defaults to the file stem
    description: what the suite is for
    reference: rtfnet                # optional; the model CE / mCE are measured against (reports, leaderboards)
    entries:
      - corruption: rgb_missing      # a name from `rgbt-bench corruptions list`
        label: rgb_missing_mean      # optional; unique; names the results (defaults to `corruption`)
        severities: [1, 2, 3, 4, 5]  # optional; integers 1..5 (clean is evaluated once, separately)
        options: {fill: mean}        # optional; the corruption's options, validated here

Every problem is a ConfigError naming the file and the entry.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from ..errors import ConfigError, RgbtBenchError
from .corruption import SEVERITIES
from .registry import get_corruption

SUITES_DIR = Path(__file__).resolve().parents[2] / "corruptions"
ENTRY_KEYS = ("corruption", "label", "severities", "options")
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SuiteEntry:
    """One corruption of a suite: `label` names it in results, `options` are fully resolved."""

    label: str
    corruption: str
    severities: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A parsed suite; `path` is the file it was read from (None for a derived suite); `reference` the model
    CE / mCE are measured against when a report or leaderboard is not told otherwise (None: not named)."""

    name: str
    description: str
    entries: list[SuiteEntry]
    path: Optional[Path] = None
    reference: Optional[str] = None

    def restrict(self, severities: Iterable[int]) -> Suite:
        """This suite with every entry cut to `severities` (entries left without any are dropped), named
        `<name>-s<severities>`; ConfigError when nothing is left."""
        chosen = sorted(set(severities))
        entries = [dataclasses.replace(e, severities=[s for s in e.severities if s in chosen]) for e in self.entries]
        entries = [e for e in entries if e.severities]
        if not entries:
            raise ConfigError(f"suite '{self.name}' has no entry at severities {chosen}")
        return Suite(name=f"{self.name}-s{''.join(map(str, chosen))}", entries=entries,
                     description=f"{self.name} at severities {chosen} (derived from {self.path or self.name})",
                     reference=self.reference)

    def to_yaml(self) -> str:
        """The suite in the file format `load_suite` reads."""
        entries = [{"corruption": e.corruption, "label": e.label, "severities": list(e.severities),
                    "options": dict(e.options)} for e in self.entries]
        head = {"name": self.name, "description": self.description}
        if self.reference is not None:
            head["reference"] = self.reference
        return yaml.safe_dump({**head, "entries": entries}, sort_keys=False)


def available_suites() -> list[str]:
    """Names of the suites shipped in the repository's corruptions/ folder."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(path_or_name: str | Path) -> Path:
    """A YAML path as given, or a bare suite name resolved in SUITES_DIR."""
    path = Path(path_or_name).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            state = "is a directory; expected a YAML file" if path.is_dir() else "does not exist"
            raise ConfigError(f"suite file '{path}' {state}")
        return path
    candidate = SUITES_DIR / f"{path_or_name}.yaml"
    if not candidate.is_file():
        known = ", ".join(available_suites()) or "none"
        raise ConfigError(f"unknown suite '{path_or_name}'; expected a .yaml path or one of: {known}")
    return candidate


def _parse_severities(where: str, raw: Any) -> list[int]:
    if raw is None:
        return list(SEVERITIES)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: severities must be a non-empty list of integers 1..5, got {raw!r}")
    for s in raw:
        if isinstance(s, bool) or not isinstance(s, int) or s not in SEVERITIES:
            raise ConfigError(f"{where}: severity {s!r} is invalid; expected integers 1..5 "
                              "(clean, severity 0, is evaluated once per model by the sweep)")
    if len(set(raw)) != len(raw):
        raise ConfigError(f"{where}: severities {raw} repeat a value")
    return sorted(raw)


def _parse_entry(where: str, raw: Any) -> SuiteEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(ENTRY_KEYS)}, got {raw!r}")
    unknown = sorted(set(raw) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; expected keys {', '.join(ENTRY_KEYS)}")
    name = raw.get("corruption")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: 'corruption' must name a corruption, got {name!r}")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: options must be a mapping, got {options!r}")
    try:
        corruption = get_corruption(name)
        resolved = corruption.resolve_options(**options)
    except RgbtBenchError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    name = corruption.name  # an alias (ImageNet-C `fog`) is filed under the registered name (plasma_fog)
    label = raw.get("label", name)
    if not isinstance(label, str) or not LABEL_PATTERN.match(label) or label == "clean":
        raise ConfigError(f"{where}: label {label!r} is invalid; expected letters, digits, '_', '.', '-' "
                          "and not 'clean'")
    return SuiteEntry(label, name, _parse_severities(where, raw.get("severities")), resolved)


def yaml_position(exc: yaml.YAMLError) -> str:
    """' (line 3, column 7)': where PyYAML found the problem ('' when it does not say)."""
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def load_suite(path_or_name: str | Path) -> Suite:
    """Read and validate a suite file (or a bundled suite by name).

    Args:
        path_or_name: a YAML file (keys name, description, reference, entries; docs/corruptions.md) or the
            name of a suite in the repository's corruptions/ folder (`available_suites()`).

    Returns:
        The Suite, with every entry's options resolved against its corruption.

    Raises:
        ConfigError: naming the file, the entry and what was expected, for anything unreadable or invalid.

    Example:
        >>> suite = load_suite("default")
        >>> suite.reference, len(suite.entries), suite.entries[0].corruption, suite.entries[0].severities
        ('rtfnet', 12, 'rgb_missing', [1, 2, 3, 4, 5])
    """
    path = suite_path(path_or_name)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"suite file '{path}' cannot be read as UTF-8 text ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file '{path}' is not valid YAML{yaml_position(exc)}: "
                          f"{getattr(exc, 'problem', None) or str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not data["entries"]:
        raise ConfigError(f"suite file '{path}': expected a mapping with a non-empty 'entries' list")
    unknown = sorted(set(data) - {"name", "description", "reference", "entries"})
    if unknown:
        raise ConfigError(f"suite file '{path}': unknown key '{unknown[0]}'; expected name, description, "
                          f"reference, entries")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ConfigError(f"suite file '{path}': 'reference' must name a model, got {reference!r}")
    entries = []
    for i, raw in enumerate(data["entries"]):
        label = raw.get("label", raw.get("corruption")) if isinstance(raw, dict) else None
        entry = _parse_entry(f"suite file '{path}', entry {i + 1}" + (f" ({label})" if label else ""), raw)
        if any(e.label == entry.label for e in entries):
            raise ConfigError(f"suite file '{path}', entry {i + 1}: label '{entry.label}' is used twice; "
                              "give one of them a distinct 'label'")
        entries.append(entry)
    return Suite(name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
                 entries=entries, path=path, reference=reference)
