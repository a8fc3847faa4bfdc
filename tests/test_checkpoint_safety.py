"""Checkpoints are data, never code: every loader reads with weights_only=True, a pickle payload is refused
before it runs (a marker file it would create stays absent), and truncated or bit-flipped files are refused
instead of loading as silently wrong weights."""
import ast
import os
import pickle
import random
from pathlib import Path

import pytest
import torch
from user_model_example import build

from rgbt_bench.checkpoint import load_checkpoint, read_torch_file, save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.errors import CheckpointError
from rgbt_bench.models.loading import load_model, model_from_checkpoint, read_weights
from rgbt_bench.models.pretrained import read_swin_weights

REPO = Path(__file__).resolve().parents[1]
USER = "user_model_example:build"


def calls(tree: ast.AST, module: str, attr: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == module:
            yield node


def keyword(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


def test_code_base_only_ever_unpickles_with_weights_only():
    sources = sorted((REPO / "rgbt_bench").rglob("*.py")) + [REPO / "cli.py"]
    torch_loads, unpicklers, problems = [], [], []
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        unpicklers += [path for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                       for base in node.bases if isinstance(base, ast.Attribute) and base.attr == "Unpickler"]
        for node in calls(tree, "torch", "load"):
            torch_loads.append(path)
            flag = keyword(node, "weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                problems.append(f"{path}:{node.lineno} torch.load without weights_only=True")
        for module, attr in (("pickle", "load"), ("pickle", "loads"), ("yaml", "load"), ("yaml", "unsafe_load"),
                             ("serialization", "add_safe_globals"), ("marshal", "loads")):
            problems += [f"{path}:{n.lineno} {module}.{attr}" for n in calls(tree, module, attr)]
        for node in calls(tree, "np", "load"):
            flag = keyword(node, "allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                problems.append(f"{path}:{node.lineno} np.load with allow_pickle")
    assert problems == []
    assert {p.relative_to(REPO).as_posix() for p in torch_loads} == {"rgbt_bench/checkpoint.py"}
    # the one pickle reader for plain .pkl files, with an allow-list (tests/test_published_weights.py)
    assert [p.relative_to(REPO).as_posix() for p in unpicklers] == ["rgbt_bench/safe_pickle.py"]


class Payload:
    """Unpickling this would create `marker` (a stand-in for any code an attacker wants run)."""

    def __init__(self, marker: Path, how: str):
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        if self.how == "exec":
            return (exec, (f"open({str(self.marker)!r}, 'w').close()",))
        return (Path.touch, (self.marker,))


def real_checkpoint(tmp_path) -> tuple[Path, dict]:
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "good.pt", {"model": USER, "preset": "tiny", "num_classes": 7, "config": {},
                                                   "state_dict": build(7).state_dict()})
    return path, load_checkpoint(path)


def evil_files(tmp_path) -> list[tuple[Path, Path]]:
    """(file, marker) pairs: payloads inside a torch zip checkpoint, a legacy torch file, a raw pickle and a
    bare 'state dict', each with its own marker."""
    files = []
    state = build(7).state_dict()
    for i, (how, writer) in enumerate([
            ("system", lambda obj, p: torch.save({"state_dict": state, "x": obj}, p)),
            ("exec", lambda obj, p: torch.save({"model": USER, "num_classes": 7,
                                                "state_dict": {**state, "w": obj}}, p)),
            ("touch", lambda obj, p: torch.save(obj, p, _use_new_zipfile_serialization=False)),
            ("system", lambda obj, p: p.write_bytes(pickle.dumps({"state_dict": obj}, protocol=2))),
            ("exec", lambda obj, p: torch.save({k: obj if k.endswith("weight") else v for k, v in state.items()}, p))]):
        marker = tmp_path / f"pwned{i}"
        path = tmp_path / f"evil{i}.pt"
        writer(Payload(marker, how), path)
        files.append((path, marker))
    return files


LOADERS = {
    "load_checkpoint": lambda p: load_checkpoint(p),
    "read_weights": lambda p: read_weights(p),
    "load_model": lambda p: load_model(USER, 7, checkpoint=p),
    "model_from_checkpoint": lambda p: model_from_checkpoint(p),
    "read_swin_weights": lambda p: read_swin_weights(p),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_pickled_code_is_refused_by_every_loader_and_never_runs(tmp_path, loader):
    for path, marker in evil_files(tmp_path):
        with pytest.raises(CheckpointError, match=rf"{path} (was refused|is not a readable torch file)"):
            LOADERS[loader](path)
        assert not marker.exists(), f"{loader} ran the payload of {path.name}"


def test_pickled_code_is_refused_by_the_cli_and_never_runs(tmp_path, capsys):
    for path, marker in evil_files(tmp_path):
        with pytest.raises(SystemExit) as exc:
            main(["sweep", "--models", f"u={USER}", "--checkpoint", f"u={path}", "--out", str(tmp_path / "r"),
                  "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,6]", "--device", "cpu",
                  "--no-progress"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"Error: checkpoint {path} ") and err.count("\n") == 1 and "Traceback" not in err
        assert not marker.exists()
    assert not (tmp_path / "r" / "cells").exists() or not list((tmp_path / "r" / "cells").glob("*.json"))


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_checkpoint_is_refused(tmp_path, keep):
    path, _ = real_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} (is damaged|is not a readable torch file)"):
        load_checkpoint(path)


def same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def test_flipped_bytes_are_refused_or_change_nothing(tmp_path):
    """Every zip region is hit: a seeded sample of positions plus every byte of one tensor's record and of the
    central directory. A flip in a field nothing reads (timestamps, padding) may load; then it must load the
    exact original contents. Without CRC checks most flips in tensor bytes loaded as silently wrong weights."""
    path, original = real_checkpoint(tmp_path)
    data = path.read_bytes()
    central = data.rfind(b"PK\x01\x02")  # the last central directory entry
    tensor = data.find(b"archive/data/6")  # a 3x3 conv weight's local header and bytes
    positions = sorted(set(random.Random(7).sample(range(len(data)), 300)) | set(range(tensor, tensor + 400))
                       | set(range(central, central + 80)))
    refused, unchanged = 0, 0
    bad = tmp_path / "flipped.pt"
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        bad.write_bytes(flipped)
        try:
            loaded = load_checkpoint(bad)
        except CheckpointError as exc:
            assert str(exc).startswith(f"checkpoint {bad} ")
            refused += 1
            continue
        assert same(original, loaded), f"byte {pos} flipped loaded as different contents"
        unchanged += 1
    assert refused + unchanged == len(positions) and refused > 0.75 * len(positions)


def test_crc_failure_names_the_member(tmp_path):
    path, _ = real_checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    start = data.find(b"archive/data/6") + len("archive/data/6") + 200  # inside the tensor's bytes
    data[start] ^= 0x01
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as err:
        read_torch_file(path)
    assert str(err.value) == (f"checkpoint {path} is damaged: member 'archive/data/6' fails its CRC-32 or attribute "
                              f"check; expected a file written by torch.save")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the damaged protocol byte
def test_malformed_pickle_streams_are_refused(tmp_path):
    """Random bytes, text files and damaged pickles: each is one CheckpointError, never an unpickler IndexError,
    KeyError or struct.error escaping as a traceback."""
    rng = random.Random(11)
    good = bytearray(pickle.dumps({"state_dict": {"w": 1}}, protocol=2))
    path = tmp_path / "junk.pt"
    samples = [b"entries: []\n", b"h)eI(", b"\x80\nX3", b"(l."]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 48))) for _ in range(60)]
    for _ in range(60):
        damaged = bytearray(good)
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        samples.append(bytes(damaged))
    for data in samples:
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"^checkpoint {path} (is not a readable torch file|was refused|"
                                                  rf"has no 'state_dict')"):
            load_checkpoint(path)
