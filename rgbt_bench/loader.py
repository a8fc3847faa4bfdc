"""`Loader`: a DataLoader whose worker processes hand a user error to the main process intact.

With `num_workers > 0`, torch re-raises an exception from a worker as a new exception built from the
worker's formatted traceback (`ExceptionWrapper.reraise`): a DataError becomes a 20-line message, and a
FileError (built from a path and a reason) cannot be rebuilt at all, so a RuntimeError traceback is shown.
Here the dataset's user errors (RgbtBenchError: a missing, truncated or inconsistent file) are caught in
the worker and travel to the main process as the batch itself (pickled, like any batch), where `Loader`
raises the original error: one line naming the file, as with `num_workers=0`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from torch.utils.data import DataLoader, Dataset

from .errors import RgbtBenchError


class Failure:
    """A user error raised while loading a sample or collating a batch, carried in place of the batch."""

    def __init__(self, error: RgbtBenchError):
        self.error = error


class _Carrying(Dataset):
    """`dataset` whose user errors are returned as a Failure instead of raised."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        try:
            return self.dataset[index]
        except RgbtBenchError as exc:
            return Failure(exc)


class _Collate:
    """`collate`, or the first Failure among the items (a picklable callable, for spawned workers)."""

    def __init__(self, collate: Callable[[Sequence[Any]], Any]):
        self.collate = collate

    def __call__(self, items: Sequence[Any]) -> Any:
        failed = next((item for item in items if isinstance(item, Failure)), None)
        if failed is not None:
            return failed
        try:
            return self.collate(items)
        except RgbtBenchError as exc:
            return Failure(exc)


class Loader(DataLoader):
    """DataLoader(dataset, collate_fn=collate, **kwargs) that raises a worker's user error as itself."""

    def __init__(self, dataset: Dataset, collate: Callable[[Sequence[Any]], Any], **kwargs: Any):
        super().__init__(_Carrying(dataset), collate_fn=_Collate(collate), **kwargs)

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            if isinstance(batch, Failure):
                raise batch.error
            yield batch
