"""The bad-input matrix: malformed datasets, suites, checkpoints, flags, devices, user model code that fails and
a NaN-returning model, each run through the CLI entry point (rgbt_bench.cli.main), also with DataLoader worker
processes. Every one ends in ONE line naming the file or value (exit 2, or 1 where the command defines it), with
no traceback, no payload run and nothing written. Cases marked "issue 13" failed before its fixes (tracebacks,
or a wrong "OK"); tests/test_silent_wrong.py holds that issue's cases whose wrong outcome was a number."""
from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from fixtures_real import truncate, write_mfnet, write_png
from matplotlib.figure import Figure
from test_report import HAND, write_results
from torch import nn
from user_model_example import build

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.cli import main
from rgbt_bench.lock import TrainLock

USER = "user_model_example:build"
SYN = ["--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,6]"]


class NaNModel(nn.Module):
    """A user model whose weights went bad in training: every logit is NaN."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.head = nn.Conv2d(4, num_classes, 1)

    def forward(self, rgb, thermal):
        return self.head(torch.cat([rgb, thermal], 1)) * float("nan")


def build_nan(num_classes: int, preset: str = "tiny") -> nn.Module:
    return NaNModel(num_classes)


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class Kit:
    """Builds the broken inputs of one case under its tmp directory."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch):
        self.tmp = tmp
        self.marker = tmp / "payload-ran"
        self.monkeypatch = monkeypatch
        self.locks: list[TrainLock] = []

    def module(self, name: str, text: str) -> str:
        """A user module `name`.py in the case's directory, importable (its directory on sys.path)."""
        (self.tmp / "code").mkdir(exist_ok=True)
        (self.tmp / "code" / f"{name}.py").write_text(text)
        self.monkeypatch.syspath_prepend(str(self.tmp / "code"))
        return name

    def train(self, *args, model: str = USER) -> list[str]:
        return ["train", "--model", model, "--out", str(self.tmp / "m.pt"), "--iterations", "1", "--device", "cpu",
                "--no-progress", *SYN, *args]

    def locked(self, out: Path) -> Path:
        """`out` as if another `train --out out` were running (its lock held)."""
        lock = TrainLock(out)
        lock.acquire()
        self.locks.append(lock)
        return out

    def read_only(self) -> None:
        """Writing a figure fails as on a read-only file system."""
        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")
        self.monkeypatch.setattr(Figure, "savefig", refuse)

    def results(self) -> Path:
        return write_results(self.tmp / "results", HAND)

    def mfnet(self):
        return write_mfnet(self.tmp / "MFNet")

    def build(self, module: str) -> nn.Module:
        """The 7-class model of user module `module` (written by `module`)."""
        import importlib
        return importlib.import_module(module).build(7)

    def ckpt(self, name: str = "u.pt", num_classes: int = 7, spec: str = USER, record: Optional[str] = USER,
             module: Optional[nn.Module] = None) -> Path:
        state = (module or build(num_classes)).state_dict()
        payload = {"preset": "tiny", "num_classes": num_classes, "config": {}, "state_dict": state}
        return save_checkpoint(self.tmp / name, {**payload, "model": record} if record else payload)

    def evil(self) -> Path:
        """A checkpoint carrying a pickle payload that would create `marker` if it ever ran."""
        path = self.tmp / "u.pt"
        torch.save({"state_dict": build(7).state_dict(), "extra": Payload(self.marker)}, path)
        return path

    def suite(self, text: str | bytes) -> Path:
        path = self.tmp / "suite.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def sweep(self, *args, ckpt: Optional[Path] = None, model: str = f"u={USER}") -> list[str]:
        base = ["sweep", "--models", model, "--out", str(self.tmp / "out"), "--device", "cpu", "--no-progress",
                "--models-dir", str(self.tmp / "models")]
        return base + (["--checkpoint", f"u={ckpt or self.ckpt()}"] if ckpt is not False else []) + list(args)

    def suite_sweep(self, text: str | bytes) -> list[str]:
        return self.sweep("--suite", str(self.suite(text)), *SYN)


def mfnet_show(kit: Kit, split: str = "test", index: int = 0, root: Optional[Path] = None) -> list[str]:
    return ["corruptions", "show", "thermal_noise", "--dataset", f"mfnet:{root or kit.mfnet().root}", "--split",
            split, "-i", str(index), "-o", str(kit.tmp / "grid.png")]


def damaged_mfnet(kit: Kit, damage: Callable) -> Path:
    fx = kit.mfnet()
    damage(fx)
    return fx.root


def resized(fx, name: str, size: tuple[int, int] = (20, 28)) -> None:
    """Sample `name` rewritten at another (self-consistent) size."""
    write_png(fx.root / "images" / f"{name}.png", np.zeros((*size, 4), np.uint8))
    write_png(fx.root / "labels" / f"{name}.png", np.zeros(size, np.uint8))


def mfnet_sweep(kit: Kit, damage: Callable, *args) -> list[str]:
    return kit.sweep("--dataset", "mfnet:" + str(damaged_mfnet(kit, damage)), "--batch-size", "2", *args,
                     ckpt=kit.ckpt(num_classes=9))


def mfnet_train(kit: Kit, damage: Callable, *args) -> list[str]:
    root = damaged_mfnet(kit, damage)
    return ["train", "--model", USER, "--dataset", f"mfnet:{root}", "--out", str(kit.tmp / "m.pt"), "--iterations",
            "2", "--batch-size", "2", "--device", "cpu", "--no-progress", *args]


def truncate_train(fx) -> None:
    """Every training image but the first (which the main process may decode itself) cut short."""
    for name in fx.splits["train"][1:]:
        truncate(fx.root / "images" / f"{name}.png")


RAISING_MODEL = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.head = nn.Conv2d(4, num_classes, 1)

    def forward(self, rgb, thermal):
        raise ValueError("forward exploded")


def build(num_classes, preset="tiny"):
    return Net(num_classes)


def raising(num_classes, preset="tiny"):
    raise KeyError("no such width")


def no_classes(classes, preset="tiny"):
    return Net(classes)
"""


BOOL_MODEL = """from user_model_example import TinyRGBT


class OneHot(TinyRGBT):
    def forward(self, rgb, thermal):
        logits = super().forward(rgb, thermal)
        return logits == logits.amax(1, keepdim=True)


def build(num_classes, preset="tiny"):
    return OneHot(num_classes)
"""


LOW_RES_MODEL = """import torch.nn.functional as F
from user_model_example import TinyRGBT


class HalfResolution(TinyRGBT):
    def forward(self, rgb, thermal):
        return F.avg_pool2d(super().forward(rgb, thermal), 2)


def build(num_classes, preset="tiny"):
    return HalfResolution(num_classes)
"""


def nothing_written(*paths: str) -> Callable[[Kit], None]:
    """After a refusal: none of `paths` (relative to the case's directory) exists."""
    def check(kit: Kit) -> None:
        assert not [p for p in paths if (kit.tmp / p).exists()]
    return check


@dataclass
class Case:
    id: str
    args: Callable[[Kit], list[str]]
    message: str  # regex; {tmp} stands for the case's tmp directory
    code: int = 2
    usage: bool = False  # a click usage error: its one Error line follows click's usage hint
    after: Optional[Callable[[Kit], None]] = None  # what must (not) be on disk afterwards


CASES = [
    # ----- datasets -------------------------------------------------------------------------------------------
    Case("dataset-missing-root", lambda k: mfnet_show(k, root=k.tmp / "nowhere"),
         r"^Error: {tmp}/nowhere: MFNet dataset root not found$"),
    Case("dataset-missing-split-file", lambda k: mfnet_show(k, "val", root=damaged_mfnet(
        k, lambda fx: (fx.root / "val.txt").unlink())), r"^Error: {tmp}/MFNet/val.txt: split file not found$"),
    Case("dataset-truncated-png-in-sweep", lambda k: k.sweep(
        "--dataset", "mfnet:" + str(damaged_mfnet(k, lambda fx: truncate(fx.root / "images" / "00006D.png"))),
        "--batch-size", "2", ckpt=k.ckpt(num_classes=9)),
        r"^Error: {tmp}/MFNet/images/00006D.png: cannot decode image \(image file is truncated\)$"),
    Case("dataset-size-mismatch", lambda k: mfnet_show(k, index=1, root=damaged_mfnet(
        k, lambda fx: write_png(fx.root / "labels" / "00006D.png", np.zeros((10, 12), np.uint8)))),
        r"^Error: {tmp}/MFNet/labels/00006D.png: size 10x12 differs from 24x32 of {tmp}/MFNet/images/00006D.png$"),
    Case("dataset-label-out-of-range", lambda k: mfnet_show(k, index=2, root=damaged_mfnet(
        k, lambda fx: write_png(fx.root / "labels" / "00007N.png", np.full((24, 32), 12, np.uint8)))),
        r"^Error: {tmp}/MFNet/labels/00007N.png: label ids \[12\] out of range; expected 0..8 for mfnet$"),
    Case("dataset-verify-reports-problems-exit-1", lambda k: ["datasets", "verify", "mfnet:" + str(damaged_mfnet(
        k, lambda fx: truncate(fx.root / "labels" / "00000D.png"))), "--split", "train"],
        r"^PROBLEM {tmp}/MFNet/labels/00000D.png: cannot decode image", code=1),
    Case("dataset-unknown-with-suggestion", lambda k: ["train", "--dataset", "mfnte:/data/MFNet"],
         r"^Error: unknown dataset 'mfnte'; expected one of synthetic, mfnet, pst900, kp. Did you mean 'mfnet'\?$"),
    Case("dataset-unknown-option", lambda k: k.sweep("--dataset-option", "sise=[32,40]"),
         r"^Error: dataset 'synthetic' has no option 'sise'; expected one of size, seed, counts$"),
    Case("dataset-bad-option-value", lambda k: k.sweep("--dataset-option", "size=[0,0]"),
         r"^Error: synthetic dataset size \[0, 0\] is invalid"),
    # ----- suites ---------------------------------------------------------------------------------------------
    Case("suite-unknown-corruption", lambda k: k.suite_sweep("entries:\n  - corruption: fgo\n"),
         r"^Error: suite file '{tmp}/suite.yaml', entry 1 \(fgo\): unknown corruption 'fgo'"),
    Case("suite-bad-severity", lambda k: k.suite_sweep("entries:\n  - corruption: night\n    severities: [0, 7]\n"),
         r"^Error: suite file '{tmp}/suite.yaml', entry 1 \(night\): severity 0 is invalid; expected integers 1..5"),
    Case("suite-bad-yaml", lambda k: k.suite_sweep("entries: [\n  - {corruption: night"),
         r"^Error: suite file '{tmp}/suite.yaml' is not valid YAML \(line 2, column 3\): expected the node content, "
         r"but found '-'$"),
    Case("suite-wrong-option-type", lambda k: k.suite_sweep(
        "entries:\n  - corruption: rgb_patch_mask\n    options: {patch: big}\n"),
        r"^Error: suite file '{tmp}/suite.yaml', entry 1 \(rgb_patch_mask\): corruption 'rgb_patch_mask' option "
        r"patch='big' is invalid; expected an integer$"),
    Case("suite-not-utf8", lambda k: k.suite_sweep(b"\xff\xfeentries: \x81\n"),
         r"^Error: suite file '{tmp}/suite.yaml' cannot be read as UTF-8 text"),
    Case("suite-python-tag", lambda k: k.suite_sweep(
        f"!!python/object/apply:pathlib.Path.touch [{k.marker}]\n"),
        r"^Error: suite file '{tmp}/suite.yaml' is not valid YAML \(line 1, column 1\): could not determine a "
        r"constructor"),
    Case("suite-missing-file", lambda k: k.sweep("--suite", str(k.tmp / "nope.yaml")),
         r"^Error: suite file '{tmp}/nope.yaml' does not exist$"),
    # ----- checkpoints ----------------------------------------------------------------------------------------
    Case("checkpoint-missing", lambda k: k.sweep(*SYN, ckpt=k.tmp / "missing.pt"),
         r"^Error: checkpoint {tmp}/missing.pt for model 'u' does not exist$"),
    Case("checkpoint-wrong-class-count", lambda k: k.sweep(*SYN, ckpt=k.ckpt(num_classes=9)),
         r"^Error: checkpoint {tmp}/u.pt was trained for 9 classes, but 7 are expected here \(wrong dataset\?\)$"),
    Case("checkpoint-wrong-architecture", lambda k: k.sweep(*SYN, ckpt=k.ckpt(record="mfnet")),
         r"^Error: checkpoint {tmp}/u.pt holds model 'mfnet' \(preset 'tiny'\), not 'user_model_example:build'"),
    Case("checkpoint-bare-state-dict-of-another-model", lambda k: k.sweep(
        *SYN, ckpt=k.ckpt(record=None, module=NaNModel(7))),
        r"^Error: checkpoint {tmp}/u.pt does not fit the model: .*; does it have 7 classes and this "
        r"architecture/preset\?$"),
    Case("checkpoint-not-a-checkpoint", lambda k: k.sweep(*SYN, ckpt=k.suite("entries: []\n")),
         r"^Error: checkpoint {tmp}/suite.yaml is not a readable torch file \(.+\); expected a file written by "
         r"torch.save$"),
    Case("checkpoint-pickled-code", lambda k: k.sweep(*SYN, ckpt=k.evil()),
        r"^Error: checkpoint {tmp}/u.pt was refused: it holds objects other than tensors and plain values "
        r"\(unsupported global [\w.]+\); it was not executed$"),
    Case("checkpoint-resume-missing", lambda k: ["train", "--model", USER, "--resume", "--out", str(k.tmp / "m.pt"),
                                                 "--device", "cpu", *SYN],
         r"^Error: cannot resume: {tmp}/m.last.pt does not exist; start without --resume$"),
    # ----- flags ----------------------------------------------------------------------------------------------
    Case("flag-bad-device", lambda k: k.sweep(*SYN, "--device", "gpu"),
         r"^Error: invalid --device 'gpu'; expected auto, cpu, cuda or cuda:N$"),
    Case("flag-bad-crop", lambda k: ["train", "--crop", "24x"],
         r"^Error: invalid crop '24x'; expected HxW with positive integers, e.g. 240x320$"),
    Case("flag-zero-crop", lambda k: ["train", "--crop", "0x32"],
         r"^Error: invalid crop '0x32'; both sizes must be positive"),
    Case("flag-unknown-model-with-suggestion", lambda k: k.sweep(*SYN, model="rtfnte", ckpt=False),
         r"^Error: unknown model 'rtfnte'; expected one of crm, crm_nomask, .* Did you mean 'rtfnet'\?$"),
    Case("flag-negative-iterations", lambda k: ["train", "--iterations", "-3"],
         r"^Error: iterations must be > 0, got -3$"),
    Case("flag-nan-weight-decay", lambda k: k.train("--weight-decay", "nan"),  # audit: a traceback from AdamW before
         r"^Error: weight_decay must be >= 0, got nan$", after=nothing_written("m.pt")),
    Case("flag-unknown-split", lambda k: k.sweep(*SYN, "--split", "night"),
         r"^Error: dataset 'synthetic' has no split 'night'; expected one of train, val, test, test_day, test_night$"),
    Case("flag-bad-seeds", lambda k: k.sweep(*SYN, "--seeds", "0,x"), r"^Error: invalid seeds '0,x'"),
    Case("flag-duplicate-train-seeds", lambda k: ["run", "--quick", "--train-seeds", "0,1,0"],
         r"^Error: invalid --train-seeds '0,1,0': 0 is listed twice; expected distinct comma-separated integers"),
    Case("flag-negative-train-seeds", lambda k: k.sweep(*SYN, "--train-seeds", "-2", ckpt=False),
         r"^Error: invalid --train-seeds '-2': -2 is negative"),
    Case("flag-non-integer-train-seeds", lambda k: ["run", "--train-seeds", "1,2.5"],
         r"^Error: invalid --train-seeds '1,2.5': '2.5' is not an integer"),
    Case("flag-unknown-model-kwarg", lambda k: ["train", "--model", "rtfnet", "--model-kwarg", "depht=3",
                                                "--iterations", "1", "--device", "cpu", *SYN],
         r"^Error: model 'rtfnet' got unknown option\(s\) depht"),
    Case("flag-bad-output-stride", lambda k: ["train", "--model", "early_fusion", "--model-kwarg", "output_stride=4",
                                              "--iterations", "1", "--device", "cpu", *SYN],
         r"^Error: output_stride must be one of 8, 16, 32, got 4$"),
    Case("flag-unwritable-train-out", lambda k: ["train", "--model", USER, "--out", str(k.suite("x") / "m.pt"),
                                                 "--iterations", "1", "--device", "cpu", "--no-progress", *SYN],
         r"^Error: cannot write training outputs to {tmp}/suite.yaml \(.*\); choose a writable --out$"),
    Case("command-typo", lambda k: ["swep"], r"^Error: no such command 'swep'. Did you mean 'sweep'\?$", usage=True),
    # ----- issue 13 item 6: dataset errors cross DataLoader worker processes as one line ------------------------
    Case("worker-truncated-png-in-sweep", lambda k: mfnet_sweep(
        k, lambda fx: truncate(fx.root / "images" / "00006D.png"), "--workers", "1"),
        r"^Error: {tmp}/MFNet/images/00006D.png: cannot decode image \(image file is truncated\)$"),
    Case("worker-label-out-of-range-in-sweep", lambda k: mfnet_sweep(
        k, lambda fx: write_png(fx.root / "labels" / "00007N.png", np.full((24, 32), 12, np.uint8)), "--workers", "2"),
        r"^Error: {tmp}/MFNet/labels/00007N.png: label ids \[12\] out of range; expected 0..8 for mfnet$"),
    Case("worker-truncated-png-in-training", lambda k: mfnet_train(k, truncate_train, "--workers", "1"),
         r"^Error: {tmp}/MFNet/images/0000[12][DN].png: cannot decode image \(image file is truncated\)$"),
    # ----- issue 13 item 7: one image size per split, each image listed once ----------------------------------
    Case("dataset-mixed-sizes-in-sweep", lambda k: mfnet_sweep(k, lambda fx: resized(fx, "00007N")),
         r"^Error: {tmp}/MFNet/images/00007N.png: size 20x28 differs from 24x32 of {tmp}/MFNet/images/00005N.png; "
         r"every image of split 'test' must have one size$"),
    Case("dataset-mixed-sizes-in-verify-exit-1", lambda k: ["datasets", "verify", "mfnet:" + str(damaged_mfnet(
        k, lambda fx: resized(fx, "00008D"))), "--split", "test"],
        r"^PROBLEM {tmp}/MFNet/images/00008D.png: size 20x28 differs from 24x32 of {tmp}/MFNet/images/00005N.png; "
        r"every image of split 'test' must have one size$", code=1),
    Case("dataset-mixed-sizes-in-training", lambda k: mfnet_train(k, lambda fx: resized(fx, "00004D")),
         r"^Error: {tmp}/MFNet/images/00004D.png: size 20x28 differs from 24x32 of {tmp}/MFNet/images/00003N.png; "
         r"every image of split 'val' must have one size$", after=nothing_written("m.pt", "m.log.jsonl")),
    Case("dataset-duplicate-name-in-split", lambda k: mfnet_sweep(k, lambda fx: (fx.root / "test.txt").write_text(
        "00005N\n00006D\n00005N\n")),
        r"^Error: {tmp}/MFNet/test.txt: lists image '00005N' twice; expected each image once \(it would be counted "
        r"twice\)$"),
    # ----- issue 13 item 8: --device must exist on this machine -----------------------------------------------
    Case("device-mps-in-sweep", lambda k: k.sweep(*SYN, "--device", "mps"),
         r"^Error: --device mps is not available on this machine \(torch [^)]+\); available here: auto, cpu"),
    Case("device-xpu-in-train", lambda k: k.train("--device", "xpu"),
         r"^Error: --device xpu is not available on this machine \(torch [^)]+\); available here: auto, cpu",
         after=nothing_written("m.pt", ".m.pt.lock")),
    Case("device-meta-in-report-writes-no-table", lambda k: ["report", str(k.results()), "--device", "meta"],
         r"^Error: --device meta holds tensors without values and cannot compute results; available here: auto, cpu",
         after=nothing_written("results/report")),
    Case("device-mps-in-run-writes-nothing", lambda k: ["run", "--quick", "--out", str(k.tmp / "run"), "--device",
                                                       "mps", "--models-dir", str(k.tmp / "models")],
         r"^Error: --device mps is not available on this machine", after=nothing_written("run", "models")),
    Case("device-cuda-index", lambda k: k.sweep(*SYN, "--device", "cuda:7"),
         r"^Error: --device cuda:7 (requested but no CUDA GPU is available|names GPU 7, but \d CUDA GPU)"),
    # ----- issue 13 item 9: exceptions in user model code -----------------------------------------------------
    Case("user-module-syntax-error", lambda k: k.sweep(*SYN, model=f"u={k.module('bad_syntax', 'def build(:')}:build",
                                                       ckpt=False),
         r"^Error: cannot import module 'bad_syntax' for model 'bad_syntax:build': SyntaxError: .+ \(bad_syntax.py, "
         r"line 1\)$"),
    Case("user-module-body-raises", lambda k: k.train(model=k.module("bad_body", "import os\nX = 1 / 0\n") + ":build"),
         r"^Error: cannot import module 'bad_body' for model 'bad_body:build': ZeroDivisionError: division by zero "
         r"\(bad_body.py:2\)$"),
    Case("user-module-imports-a-missing-package", lambda k: k.train(
        model=k.module("bad_import", "import no_such_package_xyz\n") + ":build"),
        r"^Error: cannot import module 'bad_import' for model 'bad_import:build': ModuleNotFoundError: No module named "
        r"'no_such_package_xyz' \(bad_import.py:1\)$"),
    Case("user-module-not-on-the-path", lambda k: k.train(model="not_on_path_xyz:build"),
         r"^Error: cannot import module 'not_on_path_xyz' for model 'not_on_path_xyz:build': no module named "
         r"'not_on_path_xyz' on the import path; add the directory that holds not_on_path_xyz.py to PYTHONPATH, "
         r"e.g. PYTHONPATH=/path/to/dir rgbt-bench ...$"),
    Case("user-builder-raises", lambda k: k.train(model=k.module("raising_builder", RAISING_MODEL) + ":raising"),
         r"^Error: model 'raising_builder:raising': raising\(num_classes=7, preset='tiny'\) raised KeyError: "
         r"'no such width' \(raising_builder.py:19\)$", after=nothing_written("m.pt")),
    Case("user-builder-signature", lambda k: k.sweep(
        *SYN, model=f"u={k.module('wrong_signature', RAISING_MODEL)}:no_classes", ckpt=False),
        r"^Error: model builder 'wrong_signature:no_classes' cannot be called as no_classes\(num_classes=7, "
        r"preset='tiny'\): .+; expected build_fn\(num_classes, preset='tiny', \*\*kwargs\)$"),
    Case("user-forward-raises-in-sweep", lambda k: k.sweep(
        *SYN, model=f"u={k.module('raising_forward', RAISING_MODEL)}:build", ckpt=k.ckpt(
            record="raising_forward:build", module=k.build("raising_forward"))),
        r"^Error: model 'raising_forward:build': forward raised ValueError: forward exploded "
        r"\(raising_forward.py:11\)$"),
    Case("user-forward-raises-in-training", lambda k: k.train(
        model=k.module("raising_forward_train", RAISING_MODEL) + ":build"),
        r"^Error: model 'raising_forward_train:build': forward or loss raised ValueError: forward exploded "
        r"\(raising_forward_train.py:11\)$"),
    # ----- issue 13 item 10 -----------------------------------------------------------------------------------
    Case("suite-is-a-directory", lambda k: k.sweep(*SYN, "--suite", str(k.tmp)),
         r"^Error: suite file '{tmp}' is a directory; expected a YAML file$"),
    Case("checkpoint-is-a-directory", lambda k: k.sweep(*SYN, ckpt=k.tmp),
         r"^Error: checkpoint {tmp} for model 'u' is a directory; expected a checkpoint file$"),
    Case("train-out-is-a-directory", lambda k: k.train("--out", str(k.tmp)),
         r"^Error: --out {tmp}: {tmp} is a directory; expected the path of a checkpoint file to write, e.g. "
         r"{tmp}/model.pt$"),
    Case("train-huge-crop", lambda k: k.train("--crop", "100000x100000"),
         r"^Error: crop 100000x100000 is larger than the largest augmented training image \(64x80: 32x40 at scale "
         r"2\); expected at most 64x80, e.g. 16x20$", after=nothing_written("m.pt", "m.log.jsonl")),
    Case("train-out-locked-by-another-run", lambda k: k.train("--out", str(k.locked(k.tmp / "m.pt"))),
         r"^Error: checkpoint {tmp}/m.pt is being trained by another process \(pid \d+\); wait for it to finish, "
         r"or choose another --out$", after=nothing_written("m.pt", "m.log.jsonl")),
    Case("corruptions-show-read-only", lambda k: (k.read_only(), mfnet_show(k))[1],
         r"^Error: cannot write the grid {tmp}/grid.png \(Read-only file system\); choose a writable --out$"),
    Case("verify-dataset-option-unknown", lambda k: ["datasets", "verify", f"mfnet:{k.mfnet().root}",
                                                     "--dataset-option", "thermal=thermal_raw"],
         r"^Error: dataset 'mfnet' has no option 'thermal'; expected no options$"),
    # ----- a quick sweep: --limit, --corruptions, --severities, --inference -------------------------------------
    Case("flag-zero-limit", lambda k: k.sweep(*SYN, "--limit", "0"),
         r"^Error: --limit must be >= 1 \(the number of images to evaluate\), got 0$"),
    Case("flag-negative-limit", lambda k: k.sweep(*SYN, "--limit", "-3"), r"^Error: --limit must be >= 1 .* got -3$"),
    Case("flag-unknown-corruption-with-suggestion", lambda k: k.sweep(*SYN, "--corruptions", "night,thermal_nosie"),
         r"^Error: unknown corruption 'thermal_nosie'; expected one of .* Did you mean 'thermal_noise'\?$"),
    Case("flag-imagenet-c-name-on-the-other-modality", lambda k: k.sweep(*SYN, "--corruptions", "gaussian_blur"),
         r"^Error: unknown corruption 'gaussian_blur': ImageNet-C gaussian_blur's sigma table .* is implemented on "
         r"thermal as thermal_blur; .* Did you mean 'thermal_blur'\?$"),
    Case("flag-severity-out-of-range", lambda k: k.sweep(*SYN, "--severities", "1,6"),
         r"^Error: invalid --severities '1,6'; expected distinct integers among 1..5"),
    Case("flag-unknown-inference-mode", lambda k: k.sweep(*SYN, "--inference", "sliding"),
         r"^Error: unknown inference mode 'sliding'; expected one of whole, slide, ms-flip. Did you mean 'slide'\?$"),
    Case("flag-window-larger-than-the-image", lambda k: k.sweep(*SYN, "--inference", "slide", "--window", "480x640"),
         r"^Error: --window 480x640 is larger than the 32x40 images; use a window of at most 32x40 \(a window of the "
         r"whole image is --inference whole\)$"),
    Case("flag-bad-scales", lambda k: k.sweep(*SYN, "--inference", "ms-flip", "--scales", "0.5,-1"),
         r"^Error: invalid --scales '0.5,-1'; expected distinct positive numbers"),
    # ----- audit: a user model returning a boolean mask (a traceback from the metric before) --------------------
    Case("model-bool-logits-in-sweep", lambda k: k.sweep(*SYN, model=f"u={k.module('bool_logits', BOOL_MODEL)}:build",
                                                         ckpt=k.ckpt(record="bool_logits:build")),
         r"^Error: model 'u' returned logits of dtype torch.bool; expected real-valued scores \[B, C, H, W\]"),
    Case("model-low-resolution-logits-in-ms-flip", lambda k: k.sweep(  # audit: upsampled and scored before
        *SYN, "--inference", "ms-flip", "--scales", "1", model=f"u={k.module('low_res', LOW_RES_MODEL)}:build",
        ckpt=k.ckpt(record="low_res:build")),
        r"^Error: model 'u' returned 16x20 logits for 32x40 inputs \(--inference ms-flip at scale 1\); expected "
        r"logits at the input resolution$"),
    # ----- a user model returning NaN -------------------------------------------------------------------------
    Case("model-nan-logits-in-sweep", lambda k: k.sweep(
        *SYN, model="u=test_bad_inputs:build_nan", ckpt=k.ckpt(record="test_bad_inputs:build_nan",
                                                               module=NaNModel(7))),
        r"^Error: model 'u' returned NaN or infinite logits in cell u__synthetic__test__clean__s0__seed0 "
        r"\(images \w+"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path, capsys, monkeypatch):
    kit = Kit(tmp_path, monkeypatch)
    args = case.args(kit)
    try:
        with pytest.raises(SystemExit) as exc:
            main(args)
    finally:
        for lock in kit.locks:
            lock.release()
    out, err = capsys.readouterr()
    assert exc.value.code == case.code, (out, err)
    assert "Traceback" not in out + err
    shown = err if case.code == 2 else out
    lines = [line for line in shown.splitlines() if line.strip()]
    pattern = case.message.replace("{tmp}", re.escape(str(tmp_path)))
    assert any(re.search(pattern, line) for line in lines), shown
    if case.usage:
        assert lines[:2] == ["Usage: rgbt-bench [OPTIONS] COMMAND [ARGS]...", "Try 'rgbt-bench --help' for help."]
        lines = lines[2:]
    if case.code == 2:  # progress notes may come first (a training run's intro); the error is the one last line
        assert [line for line in lines if line.startswith("Error:")] == lines[-1:], err
    assert not kit.marker.exists()
    assert not list(tmp_path.glob("out/cells/*.json"))  # a failed sweep finishes no cell
    if case.after is not None:
        case.after(kit)
