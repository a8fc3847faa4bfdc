"""`datasets verify`: check every file of a dataset split and collect EVERY problem, not just the first.

Works for any registered dataset through the generic interface (files(i), load(i)), so the checks use
the loaders' own decoding: for each sample, each file listed by files(i) must exist (every missing file
is reported), then load(i) must succeed (its DataError names the file: unreadable or truncated image,
wrong channel count or bit depth, sizes that disagree, label ids out of range), and the decoded Sample
must follow the tensor conventions of rgbt_bench.batch. Every sample of a split must have one size (evaluation
batches whole images; RGBTDataset.check_one_size): each sample of another size than the split's first is a
problem. A thermal image with one value everywhere holds no thermal data (an RGB image saved as RGBA with an
opaque alpha channel becomes an MFNet image whose thermal is 255 everywhere) and is a problem of the thermal
image's file, the one listed before the label. Split files must list each image once
(rgbt_bench.datasets.io.read_split_file). A sample that
appears in several splits (MFNet test and test_day, KP train and train_day) is checked once. Problems found
while loading a sample
that cannot be pinned on one file are attributed to the last file of files(i), the label by convention.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch

from ..batch import Sample
from ..errors import DataError
from . import dataset_class, open_dataset, parse_spec
from .base import DatasetInfo, check_label_range
from .io import FileError

Progress = Callable[[str, int, int], None]  # (split, samples done, samples in split)


@dataclass(frozen=True)
class Problem:
    """One problem with one file."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class SplitReport:
    """What verifying one split found: samples listed, samples checked here (not in an earlier split)."""

    split: str
    samples: int = 0
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)


def problem_from(exc: Exception, candidates: Iterable[Path]) -> Problem:
    """Turn an exception into a Problem, attributed to the file its message starts with."""
    path = getattr(exc, "path", None)
    if isinstance(exc, FileError) and path is not None:
        return Problem(Path(path), exc.reason)
    text = str(exc)
    candidates = list(candidates)
    for candidate in candidates:
        prefix = f"{candidate}: "
        if text.startswith(prefix):
            return Problem(candidate, text[len(prefix):])
    head, sep, rest = text.partition(": ")
    if sep and ("/" in head or "\\" in head):
        return Problem(Path(head), rest)
    return Problem(candidates[-1], text)


def check_sample(sample: Sample, info: DatasetInfo, path: Path) -> None:
    """Raise FileError (naming `path`) if a decoded sample breaks the batch conventions."""
    name = sample.meta.name
    rgb, thermal, label = sample.rgb, sample.thermal, sample.label
    if rgb.ndim != 3 or rgb.shape[0] != 3 or thermal.ndim != 3 or thermal.shape[0] != 1 or label.ndim != 2:
        raise FileError(path, f"sample '{name}' has shapes rgb {tuple(rgb.shape)}, thermal {tuple(thermal.shape)}, "
                              f"label {tuple(label.shape)}; expected [3,H,W], [1,H,W], [H,W]")
    if not rgb.shape[1:] == thermal.shape[1:] == label.shape:
        raise FileError(path, f"sample '{name}' sizes differ: rgb {tuple(rgb.shape[1:])}, "
                              f"thermal {tuple(thermal.shape[1:])}, label {tuple(label.shape)}")
    if rgb.dtype != torch.float32 or thermal.dtype != torch.float32 or label.dtype != torch.int64:
        raise FileError(path, f"sample '{name}' has dtypes {rgb.dtype}, {thermal.dtype}, {label.dtype}; "
                              "expected float32, float32, int64")
    for modality, image in (("rgb", rgb), ("thermal", thermal)):
        if not bool(torch.isfinite(image).all()) or float(image.min()) < 0.0 or float(image.max()) > 1.0:
            raise FileError(path, f"sample '{name}' {modality} values leave [0, 1]")
    check_label_range(label, info, path)


class Verifier:
    """Verifies splits of one dataset, remembering what was already checked or reported."""

    def __init__(self, spec: str, options: Optional[dict[str, Any]] = None):
        self.spec = spec
        self.options = dict(options or {})
        self.name, self.root = parse_spec(spec)
        self.info = dataset_class(self.name).info
        self._checked: set[tuple[str, tuple[Path, ...]]] = set()
        self._exists: dict[Path, bool] = {}
        self._reported: set[Problem] = set()
        self._sizes: dict[tuple[str, tuple[Path, ...]], tuple[int, int]] = {}

    def _report(self, report: SplitReport, problem: Problem) -> None:
        if problem not in self._reported:
            self._reported.add(problem)
            report.problems.append(problem)

    def _exists_once(self, path: Path) -> bool:
        if path not in self._exists:
            self._exists[path] = path.exists()
        return self._exists[path]

    def verify_split(self, split: str, progress: Optional[Progress] = None) -> SplitReport:
        """Check every sample of `split`; an unopenable split (missing root or split file) is one problem."""
        report = SplitReport(split)
        try:
            dataset = open_dataset(self.spec, split, **self.options)
        except DataError as exc:
            self._report(report, problem_from(exc, [self.root or Path(self.name)]))
            return report
        report.samples = len(dataset)
        first: Optional[tuple[tuple[int, int], Path]] = None
        for i in range(len(dataset)):
            files = tuple(dataset.files(i))
            key = (dataset.names[i], files)
            if key not in self._checked:
                self._checked.add(key)
                report.checked += 1
                self._verify_sample(dataset, i, files, report)
            size = self._sizes.get(key)
            if size is not None and first is None:
                first = size, files[0]
            elif size is not None and size != first[0]:
                self._report(report, Problem(files[0], f"size {size[0]}x{size[1]} differs from {first[0][0]}x"
                                                       f"{first[0][1]} of {first[1]}; every image of split "
                                                       f"'{split}' must have one size"))
            if progress is not None:
                progress(split, i + 1, report.samples)
        return report

    def _verify_sample(self, dataset, i: int, files: tuple[Path, ...], report: SplitReport) -> None:
        missing = [path for path in files if not self._exists_once(path)]
        for path in missing:
            where = f"sample '{dataset.names[i]}' of split '{report.split}'"
            self._report(report, Problem(path, f"file not found ({where})"))
        if missing:
            return
        try:
            sample = dataset.load(i)
            check_sample(sample, self.info, files[-1])
        except (DataError, OSError) as exc:
            self._report(report, problem_from(exc, files))
            return
        self._sizes[(dataset.names[i], files)] = tuple(sample.label.shape)
        low, high = float(sample.thermal.min()), float(sample.thermal.max())
        if low == high:
            self._report(report, Problem(files[-2] if len(files) > 1 else files[-1], (
                f"sample '{dataset.names[i]}': its thermal image has one value everywhere ({high:.3g} on the 0-1 "
                f"scale), so it holds no thermal data (an RGB image saved with an opaque alpha channel as the "
                f"thermal channel?)")))


def verify_dataset(spec: str, splits: Optional[Iterable[str]] = None, options: Optional[dict[str, Any]] = None,
                   progress: Optional[Progress] = None) -> list[SplitReport]:
    """Verify `splits` (default: every split of the dataset) of the dataset named by `spec`."""
    verifier = Verifier(spec, options)
    chosen = list(splits) if splits else list(verifier.info.splits)
    return [verifier.verify_split(split, progress) for split in chosen]


def problems(reports: Iterable[SplitReport]) -> list[Problem]:
    """All problems of several split reports, in the order found."""
    return [problem for report in reports for problem in report.problems]
