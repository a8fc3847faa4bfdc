"""rgbt-bench's processes keep freed memory for the next batch instead of faulting in fresh pages
(rgbt_bench.allocator): measured by the minor page faults of repeated forward passes at 480x640."""
import os
import resource
import subprocess
import sys

import pytest
import torch
from torch import nn

from rgbt_bench.allocator import glibc
from rgbt_bench.processes import map_in_processes

pytestmark = pytest.mark.skipif(not glibc(), reason="heap settings exist only in glibc")


def refaults(_: object = None) -> int:
    """Minor page faults of the last two of four forward passes of a small conv net on 2 x 480x640 images
    (blocks of 20-40 MB, freed and allocated again at every pass)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                        nn.Conv2d(16, 9, 1)).eval()
    x = torch.rand(2, 4, 480, 640)
    with torch.inference_mode():
        net(x)
        net(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x)
        net(x)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def in_fresh_process(setup: str) -> int:
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); {setup}; " \
           "import torch; torch.set_num_threads(1); from test_allocator import refaults; print(refaults())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_faults() -> int:
    return in_fresh_process("pass")


def test_kept_heap_reuses_freed_blocks(default_faults):
    kept = in_fresh_process("from rgbt_bench.allocator import keep_freed_memory; assert keep_freed_memory()")
    assert default_faults > 20000  # two passes fault in ~30k pages each with the default heap
    assert kept < default_faults / 3, (kept, default_faults)


def test_worker_processes_keep_freed_memory(default_faults):
    faults = map_in_processes(refaults, [0, 1], 2, 1, "test")
    assert max(faults) < default_faults / 3, (faults, default_faults)


def test_the_command_line_keeps_freed_memory(monkeypatch, capsys):
    import rgbt_bench.cli as cli
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True))
    cli.main(["--version"])
    assert calls == [True] and "rgbt-bench, version" in capsys.readouterr().out
