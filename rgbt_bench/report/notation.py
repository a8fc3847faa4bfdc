"""The one spelling of an evaluation setting: `corruption@severity` (`clean` for the uncorrupted images).

Reports, figures, messages and the `--qualitative` / `--per-class` flags all use it; `corruption:severity`
(the notation of earlier versions) is still read as an alias.

>>> format_setting("thermal_missing", 5), format_setting("clean", 0)
('thermal_missing@5', 'clean')
>>> split_setting("thermal_missing@5"), split_setting("fog:3"), split_setting("clean")
(('thermal_missing', 5), ('fog', 3), ('clean', 0))
"""
from __future__ import annotations

from typing import Optional

CLEAN = "clean"
SEP = "@"
ALIAS_SEP = ":"


def format_setting(corruption: str, severity: int) -> str:
    """'corruption@severity', or 'clean' for the clean setting."""
    return CLEAN if corruption == CLEAN else f"{corruption}{SEP}{int(severity)}"


def split_setting(text: str) -> Optional[tuple[str, int]]:
    """(corruption, severity) of 'corruption@severity' (or the alias 'corruption:severity', or 'clean');
    None when `text` is not of that form."""
    text = text.strip()
    if text == CLEAN:
        return CLEAN, 0
    sep = SEP if SEP in text else ALIAS_SEP
    name, found, level = text.rpartition(sep)
    name = name.strip()
    if not found or not name or not level.strip().isdigit():
        return None
    severity = int(level)
    if name == CLEAN:
        return (CLEAN, 0) if severity == 0 else None
    return name, severity
