"""The bad-input matrix: malformed datasets, suites, checkpoints, flags and a NaN-returning model, each run
through the CLI entry point (rgbt_bench.cli.main). Every one ends in ONE line naming the file or value (exit 2,
or 1 where the command defines it), with no traceback and no payload run."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from fixtures_real import truncate, write_mfnet, write_png
from torch import nn
from user_model_example import build

from rgbt_bench.checkpoint import save_checkpoint
from rgbt_bench.cli import main

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

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.marker = tmp / "payload-ran"

    def mfnet(self):
        return write_mfnet(self.tmp / "MFNet")

    def ckpt(self, name: str = "u.pt", num_classes: int = 7, spec: str = USER, record: str | None = USER,
             module: nn.Module | None = None) -> Path:
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

    def sweep(self, *args, ckpt: Path | None = None, model: str = f"u={USER}") -> list[str]:
        base = ["sweep", "--models", model, "--out", str(self.tmp / "out"), "--device", "cpu", "--no-progress",
                "--models-dir", str(self.tmp / "models")]
        return base + (["--checkpoint", f"u={ckpt or self.ckpt()}"] if ckpt is not False else []) + list(args)

    def suite_sweep(self, text: str | bytes) -> list[str]:
        return self.sweep("--suite", str(self.suite(text)), *SYN)


def mfnet_show(kit: Kit, split: str = "test", index: int = 0, root: Path | None = None) -> list[str]:
    return ["corruptions", "show", "thermal_noise", "--dataset", f"mfnet:{root or kit.mfnet().root}", "--split",
            split, "-i", str(index), "-o", str(kit.tmp / "grid.png")]


def damaged_mfnet(kit: Kit, damage: Callable) -> Path:
    fx = kit.mfnet()
    damage(fx)
    return fx.root


@dataclass
class Case:
    id: str
    args: Callable[[Kit], list[str]]
    message: str  # regex; {tmp} stands for the case's tmp directory
    code: int = 2
    usage: bool = False  # a click usage error: its one Error line follows click's usage hint


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
         r"^Error: suite file '{tmp}/suite.yaml' is not valid YAML: "),
    Case("suite-wrong-option-type", lambda k: k.suite_sweep(
        "entries:\n  - corruption: rgb_patch_mask\n    options: {patch: big}\n"),
        r"^Error: suite file '{tmp}/suite.yaml', entry 1 \(rgb_patch_mask\): corruption 'rgb_patch_mask' option "
        r"patch='big' is invalid; expected an integer$"),
    Case("suite-not-utf8", lambda k: k.suite_sweep(b"\xff\xfeentries: \x81\n"),
         r"^Error: suite file '{tmp}/suite.yaml' cannot be read as UTF-8 text"),
    Case("suite-python-tag", lambda k: k.suite_sweep(
        f"!!python/object/apply:pathlib.Path.touch [{k.marker}]\n"),
        r"^Error: suite file '{tmp}/suite.yaml' is not valid YAML: could not determine a constructor"),
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
         r"^Error: unknown model 'rtfnte'; expected one of crm, rtfnet, .* Did you mean 'rtfnet'\?$"),
    Case("flag-negative-iterations", lambda k: ["train", "--iterations", "-3"],
         r"^Error: iterations must be > 0, got -3$"),
    Case("flag-unknown-split", lambda k: k.sweep(*SYN, "--split", "night"),
         r"^Error: dataset 'synthetic' has no split 'night'; expected one of train, val, test, test_day, test_night$"),
    Case("flag-bad-seeds", lambda k: k.sweep(*SYN, "--seeds", "0,x"), r"^Error: invalid seeds '0,x'"),
    Case("flag-unknown-model-kwarg", lambda k: ["train", "--model", "rtfnet", "--model-kwarg", "depht=3",
                                                "--iterations", "1", "--device", "cpu", *SYN],
         r"^Error: model 'rtfnet' got unknown option\(s\) depht"),
    Case("flag-unwritable-train-out", lambda k: ["train", "--model", USER, "--out", str(k.suite("x") / "m.pt"),
                                                 "--iterations", "1", "--device", "cpu", "--no-progress", *SYN],
         r"^Error: cannot write training outputs to {tmp}/suite.yaml \(.*\); choose a writable --out$"),
    Case("command-typo", lambda k: ["swep"], r"^Error: no such command 'swep'. Did you mean 'sweep'\?$", usage=True),
    # ----- a user model returning NaN -------------------------------------------------------------------------
    Case("model-nan-logits-in-sweep", lambda k: k.sweep(
        *SYN, model="u=test_bad_inputs:build_nan", ckpt=k.ckpt(record="test_bad_inputs:build_nan",
                                                               module=NaNModel(7))),
        r"^Error: model 'u' returned NaN or infinite logits in cell u__synthetic__test__clean__s0__seed0 "
        r"\(images \w+"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path, capsys):
    kit = Kit(tmp_path)
    args = case.args(kit)
    with pytest.raises(SystemExit) as exc:
        main(args)
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
    if case.code == 2:
        assert len(lines) == 1, err
    assert not kit.marker.exists()
    assert not list(tmp_path.glob("out/cells/*.json"))  # a failed sweep finishes no cell
