"""Two torchrun nodes on localhost (`--nnodes 2 --nproc_per_node 1`, c10d rendezvous on 127.0.0.1, one agent
process per node): a sweep writes the cells a one-process sweep writes, training ends with the weights of a
2-process single-node run, and a node killed mid-sweep (the one hosting the rendezvous store, or the other)
loses only the pass in flight (a one-process rerun then finishes the same cells). docs/distributed.md describes
these commands for a real cluster."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from user_model_example import TinyRGBT

from rgbt_bench.checkpoint import load_checkpoint, save_checkpoint
from rgbt_bench.datasets import open_dataset
from rgbt_bench.sweep.engine import SweepConfig, run_sweep
from rgbt_bench.sweep.store import read_cells

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DATA = {"size": [32, 40], "counts": [8, 4, 7]}  # 7 test images: an uneven split over 2 ranks
DATA_ARGS = ["--dataset-option", "size=[32,40]", "--dataset-option", "counts=[8,4,7]"]
SLOW = "test_multinode:build_slow"
SUITE = "entries:\n  - corruption: thermal_noise\n    severities: [2, 4]\n  - corruption: complementary_patch_mask\n" \
        "    severities: [5]\n    options: {patch: 8}\n"
TIMEOUT_S = 150


class SlowTiny(TinyRGBT):
    """The example user model, slowed down in the torchrun workers only (so that a kill lands mid-sweep)."""

    def forward(self, rgb, thermal):
        time.sleep(float(os.environ.get("SLOW_FORWARD_S", "0")))
        return super().forward(rgb, thermal)


def build_slow(num_classes: int, preset: str = "tiny") -> TinyRGBT:
    return SlowTiny(num_classes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", **extra}


def listening(port: int) -> bool:
    """Whether a process listens on TCP `port` (read from /proc, so the listener is not disturbed)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def start_nodes(cli_args: list[str], tmp_path: Path, node_env: Optional[list[dict[str, str]]] = None,
                **extra_env: str) -> list[subprocess.Popen]:
    """Two torchrun agents rendezvousing at a free port of 127.0.0.1, as two nodes of one job would.

    The first is started alone until it listens on the port, so it is the one hosting the rendezvous store.
    `node_env`: extra environment of each node's worker."""
    port = free_port()
    rdzv = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", uuid.uuid4().hex, "--local-addr", "127.0.0.1",
            "--rdzv-conf", "join_timeout=60", "--max-restarts", "0"]
    nodes = []
    for i in range(2):
        with open(tmp_path / f"node{i}.out", "wb") as out, open(tmp_path / f"node{i}.err", "wb") as err:
            nodes.append(subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *rdzv, *cli_args], cwd=REPO,
                                          env=env(**extra_env, **(node_env or [{}, {}])[i]), stdout=out,
                                          stderr=err))
        deadline = time.monotonic() + TIMEOUT_S
        while i == 0 and not listening(port):
            assert nodes[0].poll() is None and time.monotonic() < deadline, "the first torchrun agent did not start"
            time.sleep(0.05)
    return nodes


def wait(nodes: list[subprocess.Popen], tmp_path: Path) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each node; kills them all if they take longer than TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for node in nodes:
            node.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        for node in nodes:
            if node.poll() is None:
                kill_node(node)
    return [(node.returncode, (tmp_path / f"node{i}.out").read_text(), (tmp_path / f"node{i}.err").read_text())
            for i, node in enumerate(nodes)]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in their own sessions, so killpg misses them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_node(node: subprocess.Popen) -> None:
    """SIGKILL an agent and its workers at once, as when the machine they run on goes away."""
    for pid in [node.pid, *descendants(node.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.wait()


def rank_of(node: subprocess.Popen) -> Optional[int]:
    """The global rank of the node's worker (from its environment), None before torchrun has started it."""
    for pid in descendants(node.pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                return int(item[5:])
    return None


def checkpoints(tmp_path: Path) -> dict[str, str]:
    ckpts = {}
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        ckpts[name] = str(tmp_path / f"{name}.pt")
        save_checkpoint(ckpts[name], {"model": SLOW, "preset": "tiny", "num_classes": 7, "config": {},
                                      "state_dict": build_slow(7).state_dict()})
    return ckpts


def sweep_args(ckpts: dict[str, str], suite: Path, out: Path) -> list[str]:
    return [str(REPO / "cli.py"), "sweep", "--models", f"a={SLOW},b={SLOW}", "--checkpoint", f"a={ckpts['a']}",
            "--checkpoint", f"b={ckpts['b']}", "--suite", str(suite), "--out", str(out), *DATA_ARGS,
            "--batch-size", "2", "--device", "cpu", "--no-progress", "--cells-per-pass", "1"]


def one_process(ckpts: dict[str, str], suite: Path, out: Path, batch_size: int = 3) -> Path:
    return run_sweep(SweepConfig(models=[f"a={SLOW},b={SLOW}"], checkpoints=ckpts, suite=str(suite), out=str(out),
                                 dataset_options=DATA, batch_size=batch_size, device="cpu", progress=False))


def assert_same_cells(got_dir: Path, want_dir: Path) -> None:
    got = {c.record.cell_id: c for c in read_cells(got_dir)}
    want = {c.record.cell_id: c for c in read_cells(want_dir)}
    assert sorted(got) == sorted(want) and len(want) == 2 * (1 + 2 + 1)
    for cell_id, cell in want.items():
        assert got[cell_id].per_image.shape == (7, 7, 7)
        np.testing.assert_array_equal(got[cell_id].per_image, cell.per_image, err_msg=cell_id)
        assert list(got[cell_id].names) == list(cell.names)
        assert got[cell_id].record.metrics == cell.record.metrics, cell_id


@pytest.fixture
def sweep_inputs(tmp_path):
    open_dataset("synthetic", "test", **DATA)  # render the dataset once, before the nodes start
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    return checkpoints(tmp_path), suite


@pytest.mark.slow
def test_two_node_sweep_writes_the_cells_of_one_process(tmp_path, sweep_inputs):
    ckpts, suite = sweep_inputs
    results = wait(start_nodes(sweep_args(ckpts, suite, tmp_path / "two_nodes"), tmp_path), tmp_path)
    assert [rc for rc, _, _ in results] == [0, 0], "\n".join(err[-3000:] for _, _, err in results)
    assert sorted(out.strip() for _, out, _ in results) == ["", str(tmp_path / "two_nodes")]  # rank 0 prints
    assert_same_cells(tmp_path / "two_nodes", one_process(ckpts, suite, tmp_path / "one"))
    assert {c.record.world_size for c in read_cells(tmp_path / "two_nodes")} == {2}


@pytest.mark.slow
@pytest.mark.parametrize("victim", [0, 1], ids=["store-host-dies", "other-node-dies"])
def test_a_node_killed_mid_sweep_keeps_finished_cells_and_a_one_process_rerun_completes_them(
        tmp_path, sweep_inputs, victim):
    ckpts, suite = sweep_inputs
    out = tmp_path / "killed"
    nodes = start_nodes(sweep_args(ckpts, suite, out), tmp_path, SLOW_FORWARD_S="0.15")
    deadline = time.monotonic() + TIMEOUT_S
    while len(list((out / "cells").glob("*.json"))) < 2:
        assert all(n.poll() is None for n in nodes), "a node ended before it could be killed"
        assert time.monotonic() < deadline, f"no cells written within {TIMEOUT_S} s"
        time.sleep(0.02)
    survivor_rank = rank_of(nodes[1 - victim])
    kill_node(nodes[victim])
    survivor_rc, _, survivor_err = wait(nodes, tmp_path)[1 - victim]
    assert survivor_rc != 0, "the surviving node must fail, not hang or pretend success"
    if victim == 1:  # the survivor's torchrun keeps its rendezvous store, so its worker reports the loss itself
        assert f"rank {survivor_rank} of 2 lost the other processes during" in survivor_err, survivor_err[-3000:]
        assert f"[rank{survivor_rank}]: Traceback" not in survivor_err, survivor_err[-3000:]
    kept = {p.stem: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert 2 <= len(kept) < 8, survivor_err[-3000:]
    for stem in kept:  # every kept cell is complete
        assert (out / "cells" / f"{stem}.npz").is_file()

    # resume on one process with the nodes' batch size (part of a cell's identity): the kept cells are reused
    one_process(ckpts, suite, out, batch_size=2)
    assert {p.stem: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json") if p.stem in kept} == kept
    assert_same_cells(out, one_process(ckpts, suite, tmp_path / "one"))


@pytest.mark.slow
def test_two_node_training_ends_with_the_weights_of_a_two_process_single_node_run(tmp_path):
    open_dataset("synthetic", "train", size=[32, 40], counts=[16, 5, 4])
    args = ["-m", "rgbt_bench.cli", "train", "--model", "user_model_example:build", "--iterations", "4",
            "--batch-size", "4", "--eval-every", "2", "--eval-batch-size", "2", "--device", "cpu", "--no-progress",
            "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[16,5,4]"]
    nodes = start_nodes([*args, "--out", str(tmp_path / "nodes.pt")], tmp_path)
    single = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               *args, "--out", str(tmp_path / "single.pt")], cwd=REPO, env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = wait(nodes, tmp_path)
    _, single_err = single.communicate(timeout=TIMEOUT_S)
    assert [rc for rc, _, _ in results] == [0, 0], "\n".join(err[-3000:] for _, _, err in results)
    assert single.returncode == 0, single_err[-3000:]

    for suffix in (".pt", ".last.pt"):
        got, want = load_checkpoint(tmp_path / f"nodes{suffix}"), load_checkpoint(tmp_path / f"single{suffix}")
        assert got["state_dict"].keys() == want["state_dict"].keys()
        for key, value in want["state_dict"].items():
            assert torch.equal(got["state_dict"][key], value), key
    last = load_checkpoint(tmp_path / "nodes.last.pt")
    assert last["iteration"] == 4 and last["world_size"] == 2



class DyingInBackward(TinyRGBT):
    """Where DIE_IN_BACKWARD_AT=K is set: the process exits inside the backward of its K-th training step,
    after the step's loss check, while its peer waits in DDP's gradient all-reduce."""

    steps = 0

    def forward(self, rgb, thermal):
        out = super().forward(rgb, thermal)
        if out.requires_grad and "DIE_IN_BACKWARD_AT" in os.environ:
            DyingInBackward.steps += 1
            if DyingInBackward.steps == int(os.environ["DIE_IN_BACKWARD_AT"]):
                out.register_hook(lambda grad: os._exit(9))
        return out


def build_dying(num_classes: int, preset: str = "tiny") -> TinyRGBT:
    return DyingInBackward(num_classes)


@pytest.mark.slow
def test_a_node_lost_in_a_training_step_backward_is_one_line_on_the_survivor(tmp_path):
    """Before: the survivor printed gloo's traceback ("[rank0]: Traceback ... RuntimeError: [.../pair.cc:537]
    Read error ... Connection reset by peer"); now one PeerLostError line naming the training step."""
    open_dataset("synthetic", "train", size=[32, 40], counts=[16, 5, 4])
    args = ["-m", "rgbt_bench.cli", "train", "--model", "test_multinode:build_dying", "--iterations", "8",
            "--batch-size", "4", "--eval-every", "0", "--device", "cpu", "--no-progress", "--out",
            str(tmp_path / "nodes.pt"), "--dataset-option", "size=[32,40]", "--dataset-option", "counts=[16,5,4]"]
    results = wait(start_nodes(args, tmp_path, node_env=[{}, {"DIE_IN_BACKWARD_AT": "3"}]), tmp_path)
    (survivor_rc, _, survivor_err), (victim_rc, _, _) = results
    assert survivor_rc != 0 and victim_rc != 0, "the surviving node must fail, not hang or pretend success"
    assert "lost the other processes during training step 3 (" in survivor_err, survivor_err[-3000:]
    assert "]: Traceback" not in survivor_err, survivor_err[-3000:]
