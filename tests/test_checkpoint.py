"""Checkpoint files: atomic round trip and one clear message for files that are not safe checkpoints."""
import stat

import pytest
import torch

from rgbt_bench.checkpoint import load_checkpoint, save_checkpoint
from rgbt_bench.errors import CheckpointError


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", {"state_dict": {"w": torch.arange(3.0)}, "num_classes": 4})
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == "rgbt-bench/1" and ckpt["num_classes"] == 4
    assert torch.equal(ckpt["state_dict"]["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_written_with_the_mode_open_gives(tmp_path):
    """Regression: the checkpoint kept its temporary file's owner-only mode (mkstemp's 0600)."""
    save_checkpoint(tmp_path / "m.pt", {"state_dict": {}})
    (tmp_path / "plain").write_bytes(b"x")
    mode = stat.S_IMODE((tmp_path / "m.pt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) and mode & stat.S_IRGRP


def test_garbage_file_is_not_called_unsafe(tmp_path):
    path = tmp_path / "g.pt"
    path.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"checkpoint {path} is not a readable torch file; expected a file written by torch.save"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_code_is_refused_without_weights_only_advice(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "x": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(err.value)
    assert "was refused" in message and "unsupported global io.open" in message and "weights_only" not in message
    assert not marker.exists()
