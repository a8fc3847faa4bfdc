"""The sweep cell record: one typed definition of what a finished cell is, read and written by every consumer.

A cell is one (model, dataset, split, corruption label, severity, corruption seed, training seed). Its JSON
record (``cells/<id>.json``) holds three kinds of fields, kept flat on disk:
- the key (`CellKey`): which cell it is; `cell_id` names its files;
- the identity (`CellIdentity`): what a finished cell must share with a run to be reused by it (weights,
  data and the `--limit` on it, corruption options, mIoU convention, evaluation mode: rgbt_bench.inference).
  `CellRecord.mismatch` is the one definition of "reusable", used by the sweep's resume check and by
  `rgbt-bench run`'s stale-cell handling;
- what was measured and how (metrics, class names, the model's input convention, the split its weights were
  selected on ("test" for a checkpoint reproducing the published selection), device, timing, versions).

`schema` versions the layout. Records without one were written before the layout was versioned; reading
them (or any other version) is a `StaleResultsError` saying how to regenerate the directory.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError

SCHEMA_VERSION = 2  # 1: the unversioned records written before this module
# Record fields added without a new schema version: absent from records written before them (read as None).
OPTIONAL_FIELDS = ("training",)
# Identity fields that are a model's own; the others are shared by every model of a sweep at one setting.
MODEL_FIELDS = ("model_spec", "preset", "model_kwargs", "checkpoint_sha256")
# A key field is written into the file name as it is when it is made of these characters with no "_" at
# either end and no "__" inside, so that joining the fields with "__" can be read back unambiguously.
_PLAIN_FIELD = re.compile(r"^[A-Za-z0-9.-]+(_[A-Za-z0-9.-]+)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class StaleResultsError(DataError):
    """A results directory written by another rgbt-bench version, in a cell layout this one cannot read."""


def plain(value: Any) -> Any:
    """JSON round trip, so that values compare equal to what a record read back holds (tuples become lists)."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class CellKey:
    """Which cell: clean evaluation is corruption 'clean' at severity 0. `seed` is the corruption seed;
    `train_seed` the training seed of a model trained on the fly (one replica per seed, `--train-seeds`),
    None for weights given as a checkpoint."""

    model: str
    dataset: str
    split: str
    corruption: str
    severity: int
    seed: int
    train_seed: Optional[int] = None

    @property
    def replica(self) -> tuple[str, Optional[int]]:
        """(model, training seed): which trained network the cell evaluates."""
        return self.model, self.train_seed

    @property
    def cell_id(self) -> str:
        """The cells' file name: readable, and different for different keys.

        Keys whose text fields are plain (`_PLAIN_FIELD`: e.g. models `crm`, `early_fusion`) give
        `<model>__<dataset>__<split>__<corruption>__s<severity>__seed<seed>`, followed by `__train<train_seed>`
        for a model trained on the fly. Any other key (a model named `a:b` or `pkg.mod:fn`) gives the same
        with unsafe characters replaced by '-' and a hash of the exact key appended, so that `a:b` and `a-b`
        never share files.
        """
        fields = (self.model, self.dataset, self.split, self.corruption)
        readable = "__".join(fields) + f"__s{self.severity}__seed{self.seed}"
        if self.train_seed is not None:
            readable += f"__train{self.train_seed}"
        if all(_PLAIN_FIELD.match(f) for f in fields):
            return readable
        digest = hashlib.sha256(json.dumps(dataclasses.astuple(self)).encode()).hexdigest()[:12]
        return f"{_UNSAFE.sub('-', readable)}-{digest}"


@dataclass(frozen=True)
class CellIdentity:
    """What a finished cell must share with a run to be reused by it. Values are stored as plain JSON values.

    The model's own fields (MODEL_FIELDS: spec, preset, the kwargs it was built with, its weights) come first;
    the rest describe the data and the setting, shared by every model of a sweep: the dataset's content
    fingerprint (rgbt_bench.datasets.fingerprint), the corruption (name, code version) and its options, the
    mIoU convention, and the batch size and mixed precision (a model's logits differ in the last bits between
    batch sizes, enough to flip a pixel's argmax; AMP far more), the first `limit` images of the split the sweep
    evaluated (None: all of them) and the evaluation mode (`inference`: rgbt_bench.inference.InferenceMode.as_dict,
    {"mode": "whole"} by default)."""

    model_spec: str
    preset: str
    model_kwargs: dict[str, Any]
    checkpoint_sha256: Optional[str]
    num_classes: int
    num_images: int
    dataset_fingerprint: str
    dataset_options: dict[str, Any]
    corruption_name: Optional[str]
    corruption_version: Optional[int]
    options: dict[str, Any]
    convention: str
    batch_size: int
    amp: bool
    limit: Optional[int] = None
    inference: dict[str, Any] = dataclasses.field(default_factory=lambda: {"mode": "whole"})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, plain(getattr(self, f.name)))


@dataclass(frozen=True)
class CellRecord:
    """A finished cell's record. `metrics` are those of the summed confusion matrix (rgbt_bench.metrics);
    reports recompute everything from the per-image matrices stored beside it. `training_sha256`: hash of the
    training config an rgbt-bench checkpoint records (rgbt_bench.training.cache.training_key; None for other
    weights), which baselines compare instead of the weights' own hash (rgbt_bench.report.setup). `training`:
    the weights' val curve and planned iterations (rgbt_bench.training.convergence.training_curve), which the
    report's training checks judge; None in records written before it was recorded (OPTIONAL_FIELDS)."""

    key: CellKey
    identity: CellIdentity
    class_names: tuple[str, ...]
    ignore_index: Optional[int]
    metrics: dict[str, Any]
    modality: Optional[str]
    params: dict[str, Any]
    checkpoint: Optional[str]
    checkpoint_source: str
    input_convention: Optional[str]
    selected_on: Optional[str]
    dataset_spec: str
    device: str
    device_name: str
    world_size: int
    elapsed_s: float
    pass_elapsed_s: float
    finished_at: str
    rgbt_bench_version: str
    training_sha256: Optional[str] = None
    training: Optional[dict[str, Any]] = None
    schema: int = SCHEMA_VERSION

    @property
    def cell_id(self) -> str:
        return self.key.cell_id

    def mismatch(self, identity: CellIdentity, model: bool = True) -> Optional[tuple[str, Any, Any]]:
        """None when this finished cell is reusable by a run whose cell has `identity`; else the first
        differing field as (name, stored value, wanted value), `limit` first (a limit changes the dataset
        fingerprint too, and is what the user chose). The one definition of a reusable cell.
        `model=False` compares only the data and setting fields (not MODEL_FIELDS): whether a cell of another
        model (or of a model whose weights are not known yet) belongs with the run's cells at that setting."""
        for f in sorted(dataclasses.fields(CellIdentity), key=lambda f: f.name != "limit"):
            if not model and f.name in MODEL_FIELDS:
                continue
            stored, wanted = getattr(self.identity, f.name), getattr(identity, f.name)
            if stored != wanted:
                return f.name, stored, wanted
        return None

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object written to ``cells/<cell_id>.json``."""
        rest = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("key", "identity")}
        return plain({**dataclasses.asdict(self.key), **dataclasses.asdict(self.identity), **rest,
                      "cell_id": self.cell_id})

    @classmethod
    def from_json(cls, data: Any, where: Path | str) -> CellRecord:
        """The record of a JSON object read from `where`; StaleResultsError for another schema version,
        DataError when a field is missing or of the wrong kind."""
        if not isinstance(data, dict):
            raise DataError(f"{where} is not a sweep cell record (a JSON object expected)")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise stale_error(where, schema)
        try:
            key = CellKey(**{f.name: data[f.name] for f in dataclasses.fields(CellKey)})
            identity = CellIdentity(**{f.name: data[f.name] for f in dataclasses.fields(CellIdentity)})
            rest = {f.name: data[f.name] for f in dataclasses.fields(cls)
                    if f.name not in ("key", "identity") and (f.name in data or f.name not in OPTIONAL_FIELDS)}
        except KeyError as exc:
            raise DataError(f"{where} lacks field {exc}; expected a sweep cell record") from None
        record = cls(key=key, identity=identity, **{**rest, "class_names": tuple(rest["class_names"])})
        for f in dataclasses.fields(CellKey):
            value, kind = getattr(key, f.name), str if f.type == "str" else int
            if value is None and f.type.startswith("Optional"):
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise DataError(f"{where}: field {f.name} is {value!r}; expected "
                                f"{'an integer' if kind is int else 'a string'}")
        if data.get("cell_id") != key.cell_id:
            raise DataError(f"{where}: cell_id {data.get('cell_id')!r} does not match its key ({key.cell_id})")
        return record


def difference(name: str, stored: Any, wanted: Any) -> str:
    """"convention='field', but this run has convention='mmseg'" (a content fingerprint shortened and
    explained)."""
    if name == "dataset_fingerprint":
        return (f"dataset_fingerprint={str(stored)[:12]}..., but this run has {str(wanted)[:12]}... (the "
                "dataset's images or labels differ)")
    return f"{name}={stored!r}, but this run has {name}={wanted!r}"


def stale_error(where: Path | str, schema: Any) -> StaleResultsError:
    """The one-line error for a cell record of another schema version, saying how to regenerate it."""
    results = Path(where).parent.parent
    found = "no schema version (an older rgbt-bench)" if schema is None else f"schema {schema!r}"
    return StaleResultsError(
        f"{where} is a cell record with {found}; this rgbt-bench reads schema {SCHEMA_VERSION}. Regenerate "
        f"the results: move {results} aside and rerun the sweep (or `rgbt-bench run`) with the same --out")


def read_record(path: Path) -> CellRecord:
    """The record in `path`; DataError (one line naming the file) when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a readable sweep cell ({exc}); delete the cell's .json and .npz files "
                        "and rerun the sweep to recompute it") from None
    return CellRecord.from_json(data, path)
