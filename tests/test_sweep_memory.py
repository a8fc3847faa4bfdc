"""A sweep's memory does not grow with the number of images (issue: peak RSS flat in the image count)."""
import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import torch
    from rgbt_bench.allocator import keep_freed_memory
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from rgbt_bench.batch import Sample, SampleMeta, collate
    from rgbt_bench.datasets import DatasetInfo
    from rgbt_bench.sweep.passes import run_pass
    from rgbt_bench.sweep.plan import plan_cells, Setting, CLEAN, CLEAN_SEED
    from rgbt_bench.sweep.progress import SweepProgress
    from rgbt_bench.sweep.timing import StageTimer

    H, W, N, C = 120, 160, int(sys.argv[1]), 9
    if sys.argv[2] == "kept":
        assert keep_freed_memory()

    class Noise(Dataset):
        def __len__(self):
            return N
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return Sample(torch.rand(3, H, W, generator=g), torch.rand(1, H, W, generator=g),
                          torch.randint(0, C, (H, W), generator=g), SampleMeta("noise", "test", str(i), i))

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    class Probe(SweepProgress):
        samples = []
        def advance(self, images):
            super().advance(images)
            self.samples.append(rss_mb())

    info = DatasetInfo("noise", tuple(f"c{i}" for i in range(C)), ((0, 0, 0),) * C, None, "field", (H, W),
                       ("test",), False)
    settings = [Setting(CLEAN, None, 0, CLEAN_SEED), Setting("thermal_missing", "thermal_missing", 3, 0)]
    cells = plan_cells(["m"], settings, "noise", "test")
    torch.manual_seed(0)
    model = nn.Conv2d(4, C, 1)
    models = {("m", None): lambda rgb, thermal: model(torch.cat([rgb, thermal], 1))}
    loader = DataLoader(Noise(), batch_size=8, collate_fn=collate)
    with Probe(len(cells), N, False) as progress:
        run_pass(cells, models, loader, info, torch.device("cpu"), None, StageTimer(torch.device("cpu")), progress)
    s = Probe.samples
    print(json.dumps({"early": max(s[len(s) // 5:len(s) // 4]), "late": max(s[-len(s) // 20:])}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/statm")
@pytest.mark.parametrize("heap", ["default", "kept"])
def test_sweep_memory_is_flat_in_the_number_of_images(heap):
    """Regression: per-batch result arrays kept until the end of a pass pinned freed heap blocks, so RSS grew
    ~115 KB per 120x160 image (794 MB peak at 4096 images vs 333 MB after the fix). "kept": also with the heap
    settings of rgbt-bench's own processes (rgbt_bench.allocator), which never give freed memory back."""
    done = subprocess.run([sys.executable, "-c", CHILD, "1600", heap], capture_output=True, text=True, check=True)
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert rss["late"] - rss["early"] < 25, rss
