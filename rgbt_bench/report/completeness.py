"""How complete a results directory is, so that no consumer presents an interrupted sweep as a finished one.

The planned cells are those of the sweep's last invocation, as run.json records them (`plan`: models, with
their training-seed replicas, x settings; older manifests: the models, suite entries and seeds), together
with every model and replica that has cells in the directory; without a manifest, the settings found. A
corruption (suite label) is complete when every replica of every model has every planned severity and seed
of it; clean counts as one more "corruption".

Consumers (report, leaderboard, check) say how many of the planned cells exist. Summary statistics (mean
corrupted mIoU, RR, CE / mCE, worst case) average over corruptions, so over a partial set they would silently
change meaning: an incomplete directory is refused, or with `--allow-partial` summarised over its complete
corruptions only, with a note in every output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..errors import DataError
from .load import CLEAN, Results

ALLOW = "--allow-partial"


def planned_settings(manifest: dict[str, Any]) -> Optional[tuple[list[str], set[tuple[str, int, int]]]]:
    """(models, {(label, severity, seed)}) the manifest's last invocation planned, or None when it does not say."""
    plan = manifest.get("plan")
    if isinstance(plan, dict) and isinstance(plan.get("models"), list) and isinstance(plan.get("settings"), list):
        return [str(m) for m in plan["models"]], {(str(c), int(s), int(seed)) for c, s, seed in plan["settings"]}
    models = [m.get("name") for m in manifest.get("models", []) if isinstance(m, dict) and m.get("name")]
    entries = manifest.get("suite", {}).get("entries") if isinstance(manifest.get("suite"), dict) else None
    seeds = manifest.get("seeds")
    if not models or not isinstance(entries, list) or not isinstance(seeds, list):
        return None
    if not all(isinstance(e, dict) and isinstance(e.get("severities"), list) for e in entries):
        return None
    settings = {(CLEAN, 0, 0)} | {(e.get("label") or e["corruption"], int(s), int(seed))
                                  for e in entries for s in e["severities"] for seed in seeds}
    return models, settings


@dataclass(frozen=True)
class Completeness:
    """`present` of `total` planned cells exist; `complete` / `incomplete`: corruptions (clean included) that
    every model has at every planned severity and seed, or not; `status`: run.json's ("running" when the sweep
    never finished)."""

    path: str
    present: int
    total: int
    complete: tuple[str, ...]
    incomplete: tuple[str, ...]
    status: Optional[str]

    @property
    def is_complete(self) -> bool:
        return self.present == self.total

    @property
    def cells(self) -> str:
        """'128/244': cells present of those planned."""
        return f"{self.present}/{self.total}"

    def _state(self) -> str:
        status = f"; run.json status '{self.status}'" if self.status else ""
        return f"{self.present} of {self.total} planned cells{status}"

    def note(self) -> Optional[str]:
        """One line for every output of partial results (None when complete)."""
        if self.is_complete:
            return None
        over = ", ".join(c for c in self.complete if c != CLEAN) or "none"
        return (f"partial results: {self._state()} (an interrupted sweep?); mean corrupted, RR, mCE and worst are "
                f"over the complete corruptions only ({over}); incomplete: {', '.join(self.incomplete)}")

    def require(self, allow_partial: bool) -> None:
        """DataError for partial results unless `allow_partial`."""
        if not self.is_complete and not allow_partial:
            raise DataError(f"{self.path} holds {self._state()} (an interrupted sweep?): incomplete "
                            f"{', '.join(self.incomplete)}; rerun the sweep to finish it, or pass {ALLOW} to "
                            "summarise over the complete corruptions only")


def planned_replicas(results: Results, models: list[str]) -> set[tuple[str, Optional[int]]]:
    """(model, training seed) of every trained replica planned (run.json's `plan`) or found in the cells."""
    plan = results.manifest.get("plan")
    listed = plan.get("replicas") if isinstance(plan, dict) else None
    replicas = {(m, t) for m in results.models for t in results.train_seeds.get(m, (None,))}
    if isinstance(listed, list):
        replicas |= {(str(m), None if t is None else int(t)) for m, t in listed}
    known = {m for m, _ in replicas}
    return replicas | {(m, None) for m in models if m not in known}


def completeness(results: Results) -> Completeness:
    """How many of the planned cells `results` hold (every trained replica of every model at every planned
    setting), and which corruptions are complete."""
    planned = planned_settings(results.manifest)
    present = {(c.record.key.model, c.record.key.train_seed, c.record.key.corruption, c.record.key.severity,
                c.record.key.seed) for c in results.raw}
    models = list(results.models)
    if planned is not None:
        models += [m for m in planned[0] if m not in models]
        settings = planned[1]
    else:
        settings = {(c, s, seed) for _, _, c, s, seed in present}
    expected = {(*replica, *setting) for replica in planned_replicas(results, models) for setting in settings}
    missing = expected - present
    labels = [CLEAN] + list(dict.fromkeys([c for c in results.corruptions]
                                          + sorted({c for c, _, _ in settings if c != CLEAN})))
    labels = [c for c in labels if any(s[0] == c for s in settings)]
    broken = {c for _, _, c, _, _ in missing}
    status = results.manifest.get("status")
    return Completeness(str(results.path), len(expected) - len(missing), len(expected),
                        tuple(c for c in labels if c not in broken), tuple(c for c in labels if c in broken),
                        status if isinstance(status, str) else None)
