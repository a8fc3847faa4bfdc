"""`rgbt-bench corruptions list|show` and the PNG grid renderer."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import rgbt_bench.datasets
from rgbt_bench.batch import Batch, Sample, SampleMeta, collate
from rgbt_bench.cli import cli, main
from rgbt_bench.corruptions import CORRUPTIONS, get_corruption
from rgbt_bench.corruptions.render import HIGHLIGHT, render_grid, severity_strip


def fixture_sample(i: int, h: int = 60, w: int = 80) -> Sample:
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    rgb = torch.stack([0.3 + 0.5 * x, 0.4 + 0.3 * y, 0.6 - 0.4 * y]).clone()
    rgb[:, 30:50, 10:30] = torch.tensor([0.8, 0.1, 0.1]).view(3, 1, 1)
    thermal = (0.3 + 0.2 * y).clone()[None]
    thermal[:, 25:55, 50:60] = 0.9
    return Sample(rgb, thermal, torch.zeros(h, w, dtype=torch.long), SampleMeta("fixture", "test", f"img{i}", i))


class FixtureDataset:
    def __init__(self, n: int = 3):
        self.samples = [fixture_sample(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


@pytest.fixture
def fixture_dataset(monkeypatch):
    opened = []

    def fake_open(spec, split, **opts):
        opened.append((spec, split))
        return FixtureDataset()

    monkeypatch.setattr(rgbt_bench.datasets, "open_dataset", fake_open)
    return opened


def test_list_shows_every_corruption_with_its_table(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(cli, ["corruptions", "list"])
    assert result.exit_code == 0, result.output
    for name, c in CORRUPTIONS.items():
        assert name in result.output
    assert "drop_probability: 0.2 0.4 0.6 0.8 1" in result.output
    assert "beta: 0.005 0.01 0.02 0.04 0.08" in result.output
    assert "fill=zero (zero|mean)" in result.output


def test_show_writes_a_grid_with_the_chosen_severity_framed(tmp_path, fixture_dataset):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["corruptions", "show", "complementary_patch_mask", "--severity", "2",
                                      "--out", str(out), "--index", "1", "--option", "patch=16",
                                      "--option", "fill=mean"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert fixture_dataset == [("synthetic", "test")]
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape[0] > 300 and image.shape[1] > 6 * 150
    red = np.array([int(HIGHLIGHT[i:i + 2], 16) for i in (1, 3, 5)])
    framed = np.abs(image - red).sum(axis=2) < 10
    columns = np.nonzero(framed.sum(axis=0) > image.shape[0] / 2)[0]
    # vertical frame lines (spanning both rows) exist only around the third of six columns (severity 2)
    assert len(columns) >= 2
    assert columns.min() > image.shape[1] * 2 / 6 - 10 and columns.max() < image.shape[1] * 3 / 6 + 10


@pytest.mark.parametrize("argv, message", [
    (["corruptions", "show", "nite"], "unknown corruption 'nite'"),
    (["corruptions", "show", "night", "-s", "9"], "severity 9 for corruption 'night' is out of range"),
    (["corruptions", "show", "night", "--index", "7"],
     "--index 7 is out of range for synthetic split 'test' (3 samples)"),
    (["corruptions", "show", "night", "--option", "fill"], "--option 'fill' is invalid; expected KEY=VALUE"),
    (["corruptions", "show", "rgb_missing", "--option", "fill=black"], "fill='black' is invalid"),
])
def test_show_errors_are_one_line_exit_2(argv, message, fixture_dataset, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.png"))


def test_severity_strip_and_render_grid(tmp_path):
    sample = collate([fixture_sample(0)])
    corruption = get_corruption("thermal_crossover")
    strip = severity_strip(sample, corruption, 5)
    assert strip[0] is sample and len(strip) == 6
    spreads = [float(b.thermal.std()) for b in strip]
    assert all(a > b for a, b in zip(spreads, spreads[1:]))
    path = render_grid(sample, corruption, 4, 5, tmp_path / "sub" / "x.png")
    assert path.is_file() and Image.open(path).size[0] > 6 * 150


def test_render_grid_needs_one_sample(tmp_path):
    from rgbt_bench.errors import ConfigError

    two = collate([fixture_sample(0), fixture_sample(1)])
    with pytest.raises(ConfigError, match="batch of one sample, got 2"):
        render_grid(two, get_corruption("night"), 1, 0, tmp_path / "x.png")
    assert isinstance(two, Batch)
