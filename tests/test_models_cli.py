"""`rgbt-bench models list`: the table lists every registered model with its parameter count."""
import re

import torch
from click.testing import CliRunner

from rgbt_bench.cli import cli
from rgbt_bench.cli.models_cmd import count_parameters, format_count
from rgbt_bench.models.registry import MODELS, build_model

WIDE = {"COLUMNS": "250"}


def row(output: str, name: str) -> str:
    lines = [ln for ln in output.splitlines() if re.match(rf"^\W*{name}\s", ln)]
    assert len(lines) == 1, f"no single row for {name} in:\n{output}"
    return lines[0]


def test_count_parameters_matches_a_real_build():
    torch.manual_seed(0)
    real = sum(p.numel() for p in build_model("mfnet", 9, "tiny").parameters())
    assert count_parameters("mfnet", "tiny") == real
    assert format_count(254_510_053) == "254.51M" and format_count(185_811) == "185.8K"


def test_models_list_default_preset():
    result = CliRunner().invoke(cli, ["models", "list"], env=WIDE)
    assert result.exit_code == 0, result.output
    for name in MODELS:
        row(result.output, name)
    rtf = row(result.output, "rtfnet")
    assert format_count(count_parameters("rtfnet", "tiny")) in rtf
    assert "tiny, rtfnet50, rtfnet152" in rtf and "rgb+thermal" in rtf and "Sun et al." in rtf
    assert "thermal " in row(result.output, "thermal_only") and "rgb+thermal" not in row(result.output, "rgb_only")


def test_models_list_published_preset_falls_back_to_tiny_elsewhere():
    result = CliRunner().invoke(cli, ["models", "list", "--preset", "rtfnet152"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "254.51M" in row(result.output, "rtfnet")
    mfnet = row(result.output, "mfnet")
    assert f"{format_count(count_parameters('mfnet', 'tiny'))} (tiny)" in mfnet
