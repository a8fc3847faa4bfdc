"""Where a report's numbers come from: versions, commit, device, checkpoints, data, suite, seeds, convention.

Read from the cells' own records where they hold the fact (checkpoint SHA-256, dataset fingerprint,
rgbt-bench version, device, seeds), so that a resumed sweep's older cells are described as they were
computed, and from run.json (and the earlier invocations it keeps under "history") for the rest (git commit,
torch version, suite). A fact with several values (cells from several invocations) lists each one; a fact
nobody recorded is "unknown". `provenance` is written to report/provenance.json and report.json,
`provenance_columns` adds it to every row of the summary and leaderboard tables.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from .. import __version__
from ..inference import describe
from .load import Results
from .notation import format_setting

UNKNOWN = "unknown"
# Columns every summary / leaderboard row carries (model-independent ones first).
COLUMNS = ("rgbt_bench_version", "git_commit", "torch_version", "device", "dataset_fingerprint", "suite", "seeds",
           "convention", "checkpoint_sha256", "selected_on", "inference")
PER_MODEL = {"checkpoint_sha256": "checkpoints", "selected_on": "selected_on", "inference": "inference"}


def _joined(values: Iterable[Any]) -> str:
    """The distinct non-empty values in first-seen order, joined by ', ' ('unknown' when there are none)."""
    seen = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
    return ", ".join(seen) if seen else UNKNOWN


def _manifests(results: Results) -> list[dict[str, Any]]:
    """run.json's earlier invocations (oldest first) and then the latest one."""
    manifest = results.manifest
    return [*(h for h in manifest.get("history") or [] if isinstance(h, dict)), manifest] if manifest else []


def _commit(manifest: dict[str, Any]) -> Optional[str]:
    git = manifest.get("git") or {}
    commit = git.get("commit")
    return f"{commit}-dirty" if commit and git.get("dirty") else commit


def _suite_identity(manifest: dict[str, Any]) -> Optional[tuple[str, tuple]]:
    suite = manifest.get("suite") or {}
    if not suite:
        return None
    entries = tuple((e.get("label") or e.get("corruption"), tuple(e.get("severities") or ()))
                    for e in suite.get("entries", []))
    return suite.get("name") or UNKNOWN, entries


def suites(results: Results) -> list[str]:
    """Names of the distinct suites the invocations recorded in run.json swept, oldest first (a suite
    changed under the same name is listed once per version)."""
    identities = list(dict.fromkeys(i for i in map(_suite_identity, _manifests(results)) if i is not None))
    names = [name for name, _ in identities]
    return [name if names.count(name) == 1 else f"{name} (version {names[:i + 1].count(name)})"
            for i, name in enumerate(names)]


def model_checkpoints(results: Results) -> dict[str, str]:
    """Checkpoint SHA-256 per model, from the cells' records, else run.json ('unknown' when neither has it)."""
    listed = {m.get("name"): m.get("checkpoint_sha256") for m in results.manifest.get("models", [])}
    out = {}
    for model in results.models:
        recorded = [c.record.identity.checkpoint_sha256 for c in results.raw if c.record.key.model == model]
        out[model] = _joined(recorded) if any(recorded) else _joined([listed.get(model)])
    return out


def model_selection(results: Results) -> dict[str, str]:
    """The split each model's weights were selected on ("val", "test", "last"; 'unknown' when not recorded)."""
    return {model: _joined(c.record.selected_on for c in results.raw if c.record.key.model == model)
            for model in results.models}


def model_inference(results: Results) -> dict[str, str]:
    """The evaluation mode of each model's cells ('whole', 'slide 240x320 stride 160x213', ...;
    rgbt_bench.inference)."""
    return {model: _joined(describe(c.record.identity.inference) for c in results.raw if c.record.key.model == model)
            for model in results.models}


def test_selected(results: Results) -> list[str]:
    """Models whose weights were selected on the test split: their test numbers are optimistically biased."""
    return [model for model, split in model_selection(results).items() if "test" in split.split(", ")]


def provenance(results: Results) -> dict[str, Any]:
    """The provenance block of a results directory (JSON-ready)."""
    records = [c.record for c in results.raw]
    manifests = _manifests(results)
    dataset = results.manifest.get("dataset") or {}
    names = suites(results)  # every suite run.json recorded; the latest alone unless its cells are mixed
    return {
        "rgbt_bench_version": _joined([r.rgbt_bench_version for r in records]
                                      or [m.get("rgbt_bench_version") for m in manifests]),
        "git_commit": _joined(map(_commit, manifests)),
        "torch_version": _joined(m.get("torch_version") for m in manifests),
        "device": _joined([r.device_name for r in records] or [m.get("device_name") for m in manifests]),
        "dataset": results.dataset,
        "split": results.split,
        "images": len(results.names),
        "dataset_fingerprint": _joined([r.identity.dataset_fingerprint for r in records]
                                       or [dataset.get("fingerprint")]),
        "suite": _joined(names if outside_latest_suite(results) else names[-1:]),
        "seeds": ",".join(str(s) for s in sorted({r.key.seed for r in records})),
        "convention": results.convention,
        "checkpoints": model_checkpoints(results),
        "selected_on": model_selection(results),
        "inference": model_inference(results),
        "report_rgbt_bench_version": __version__,
    }


def provenance_columns(block: dict[str, Any], model: str) -> dict[str, str]:
    """The flat provenance columns of one model's summary or leaderboard row."""
    return {**{k: block[k] for k in COLUMNS if k not in PER_MODEL},
            **{k: block[key].get(model, UNKNOWN) for k, key in PER_MODEL.items()}}


LABELS = {"rgbt_bench_version": "rgbt-bench version (sweep)",
          "report_rgbt_bench_version": "rgbt-bench version (report)",
          "git_commit": "git commit (sweep)", "torch_version": "torch version (sweep)", "device": "device (sweep)",
          "convention": "mIoU convention", "seeds": "corruption seeds"}


def label(key: str) -> str:
    """A provenance key as a person reads it."""
    return LABELS.get(key, key.replace("_", " "))


def provenance_note(block: dict[str, Any]) -> str:
    """The block as Markdown lines (a trailing note under a table)."""
    lines = [f"- {label(key)}: {value}" for key, value in block.items() if key not in PER_MODEL.values()]
    lines += [f"- checkpoint {model}: sha256 {sha}, selected on {block['selected_on'].get(model, UNKNOWN)}, "
              f"evaluated {block['inference'].get(model, UNKNOWN)}" for model, sha in block["checkpoints"].items()]
    return "\n".join(lines) + "\n"


def outside_latest_suite(results: Results) -> list[str]:
    """Settings ('corruption@severity') of cells the latest suite in run.json does not have: cells an earlier
    sweep with another suite left in the directory. [] when run.json records no suite."""
    latest = _suite_identity(results.manifest)
    if latest is None:
        return []
    planned = dict(latest[1])  # label -> severities (none recorded: any severity)
    return [format_setting(c, s) for c in results.corruptions for s in results.severities(c)
            if c not in planned or (planned[c] and s not in planned[c])]


def mixed_suites_note(results: Results) -> Optional[str]:
    """A one-line note when the directory holds cells of several suites, else None. Only cells count: earlier
    invocations with other suites whose cells are gone (e.g. moved to stale/) mix nothing."""
    outside = outside_latest_suite(results)
    if not outside:
        return None
    shown = ", ".join(outside[:4]) + (", ..." if len(outside) > 4 else "")
    names = suites(results)
    return (f"{results.path} holds cells of several suites ({', '.join(names)}; cells outside the latest, "
            f"{names[-1]}: {shown}): the mean corrupted mIoU, RR and mCE pool every corruption found; write each "
            "suite to its own --out to compare like with like")
