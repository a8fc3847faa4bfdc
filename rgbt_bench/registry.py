"""`Registry`: named entries of one kind (datasets, models, corruptions, CLI commands), with one lookup.

An entry is either the object itself or a lazy ``"module:attr"`` string, imported on first use, so that
listing names never imports heavy modules and one broken module never blocks the others. A failed lookup
is one ConfigError naming the kind, the names known and the closest one::

    unknown dataset 'mfnte'; expected one of synthetic, mfnet, pst900, kp. Did you mean 'mfnet'?

In the spirit of lm-evaluation-harness's `lm_eval/api/registry.py`, smaller.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Generic, Iterator, Mapping, MutableMapping, Optional, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def import_target(target: str) -> Any:
    """The attribute named by 'package.module:attr' (ImportError / AttributeError propagate)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(MutableMapping[str, T], Generic[T]):
    """Ordered name -> entry map; `lookup(name)` is the user-facing access (a ConfigError on a miss).

    `kind` names the entries in messages ("dataset"); `alternative` is appended to the list of names
    ("or 'package.module:build_fn'"); `cutoff` is difflib's similarity threshold for the suggestion.
    """

    def __init__(self, kind: str, entries: Optional[Mapping[str, T | str]] = None, *, alternative: str = "",
                 cutoff: float = 0.6):
        self.kind = kind
        self.alternative = alternative
        self.cutoff = cutoff
        self._entries: dict[str, T | str] = dict(entries or {})

    # ----- mapping -----------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = import_target(entry)
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, entry: T | str) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    # ----- lookup ------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names in registration order (nothing is imported)."""
        return list(self._entries)

    def suggestion(self, name: str) -> str:
        """" Did you mean 'x'?" for the closest registered name (letter case ignored), or "" when none is close."""
        lowered = {entry.lower(): entry for entry in self._entries}
        close = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=self.cutoff)
        return f" Did you mean '{lowered[close[0]]}'?" if close else ""

    def unknown(self, name: str) -> ConfigError:
        """The error for a name that is not registered."""
        alternative = f" {self.alternative}" if self.alternative else ""
        return ConfigError(f"unknown {self.kind} '{name}'; expected one of {', '.join(self._entries)}"
                           f"{alternative}.{self.suggestion(name)}")

    def lookup(self, name: str) -> T:
        """The entry registered as `name` (imported if lazy); ConfigError with a suggestion otherwise."""
        if name not in self._entries:
            raise self.unknown(name)
        return self[name]
