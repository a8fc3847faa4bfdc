"""Sweep helpers: cells, groups, settings, seeds, model/checkpoint parsing, sharding, shared-label confusion."""
import sys
import types

import numpy as np
import pytest
import torch

from rgbt_bench.corruptions import Suite, SuiteEntry
from rgbt_bench.errors import CheckpointError, ConfigError
from rgbt_bench.metrics import ConfusionMatrix
from rgbt_bench.sweep import SweepConfig, run_sweep
from rgbt_bench.sweep.batch_confusion import LabelBins
from rgbt_bench.sweep.distributed import DistContext, interleave, shard_indices
from rgbt_bench.sweep.models import attach_checkpoints, parse_checkpoints, parse_models
from rgbt_bench.sweep.plan import CLEAN, CLEAN_SEED, by_setting, group_cells, parse_seeds, plan_cells, settings_of
from rgbt_bench.training.cache import cache_path

SUITE = Suite("s", "", [SuiteEntry("fogA", "plasma_fog", [1, 3], {}),
                        SuiteEntry("drop", "rgb_missing", [5], {"fill": "mean"})])


def test_settings_clean_once_then_entries_by_severity_and_seed():
    settings = settings_of(SUITE, [0, 7])
    assert [(s.label, s.severity, s.seed) for s in settings] == [
        (CLEAN, 0, CLEAN_SEED), ("fogA", 1, 0), ("fogA", 1, 7), ("fogA", 3, 0), ("fogA", 3, 7),
        ("drop", 5, 0), ("drop", 5, 7)]
    assert settings[0].clean and settings[0].corruption is None
    assert settings[-1].corruption == "rgb_missing" and settings[-1].options == {"fill": "mean"}


def test_plan_is_setting_major_and_groups_share_settings():
    cells = plan_cells(["a", "b"], settings_of(SUITE, [0]), "synthetic", "test")
    assert len(cells) == 2 * 4
    assert [c.key.model for c in cells[:4]] == ["a", "b", "a", "b"]
    assert cells[2].key.cell_id == "a__synthetic__test__fogA__s1__seed0"
    groups = group_cells(cells, 3)
    assert [len(g) for g in groups] == [3, 3, 2]
    assert [c for g in groups for c in g] == cells
    assert group_cells(cells, None) == [cells]
    assert group_cells([], 2) == []
    shared = by_setting(cells[:4])
    assert [(s.label, [c.key.model for c in cs]) for s, cs in shared] == [(CLEAN, ["a", "b"]), ("fogA", ["a", "b"])]
    with pytest.raises(ConfigError, match="cells per pass must be >= 1, got 0"):
        group_cells(cells, 0)


def test_parse_seeds():
    assert parse_seeds("0, 3,5") == [0, 3, 5]
    assert parse_seeds([2]) == [2]
    for bad in ("", "1,1", "-1", "a"):
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)
    for bad, problem in (("0,1,0", "0 is listed twice"), ("2,-1", "-1 is negative"), ("0,1.5", "'1.5' is not an "
                                                                                               "integer")):
        with pytest.raises(ConfigError, match=f"^invalid --train-seeds '{bad}': {problem}; expected distinct "):
            parse_seeds(bad, "--train-seeds")


def test_parse_models_names_and_aliases():
    refs = parse_models(["crm,rtfnet", "mine=pkg.mod:build"])
    assert [(r.name, r.spec) for r in refs] == [("crm", "crm"), ("rtfnet", "rtfnet"), ("mine", "pkg.mod:build")]
    with pytest.raises(ConfigError, match="model name 'crm' is given twice"):
        parse_models("crm,crm")
    with pytest.raises(ConfigError, match="no models given"):
        parse_models(" , ")
    assert parse_checkpoints(["crm=a/b.pt", "x = c.pt"]) == {"crm": "a/b.pt", "x": "c.pt"}
    with pytest.raises(ConfigError, match="expected NAME=PATH"):
        parse_checkpoints(["crm"])


def test_attach_checkpoints_cache_real_dataset_and_errors(tmp_path, monkeypatch):
    refs = attach_checkpoints(parse_models("rtfnet"), {}, "synthetic", "tiny", tmp_path)
    assert refs[0].checkpoint == tmp_path / "rtfnet_tiny_synthetic_seed1024.pt" and refs[0].source == "cache"
    assert refs[0].train_seed == 1024 and refs[0].replica == ("rtfnet", 1024)
    cached = cache_path(tmp_path, "pkg.mod:build", "tiny", "synthetic", 3)
    assert cached == tmp_path / "pkg_mod_build_tiny_synthetic_seed3.pt"
    for name in ("a", "a.b", "a_b"):  # two user models whose cache file names coincide
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(c=lambda num_classes: None))
    with pytest.raises(ConfigError, match=r"models 'a' \(a.b:c\) and 'b' \(a_b:c\) would be trained into the same "
                                          r"file .*a_b_c_tiny_synthetic_seed1024.pt; pass --checkpoint for one of "
                                          r"them"):
        attach_checkpoints(parse_models("a=a.b:c,b=a_b:c"), {}, "synthetic", "tiny", tmp_path)
    with pytest.raises(CheckpointError, match="model 'rtfnet' has no checkpoint for dataset 'mfnet'"):
        attach_checkpoints(parse_models("rtfnet"), {}, "mfnet", "tiny", tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint .*nope.pt for model 'rtfnet' does not exist"):
        attach_checkpoints(parse_models("rtfnet"), {"rtfnet": str(tmp_path / "nope.pt")}, "mfnet", "tiny", tmp_path)
    with pytest.raises(ConfigError, match="--checkpoint names model 'crm', which is not among --models"):
        attach_checkpoints(parse_models("rtfnet"), {"crm": "x.pt"}, "mfnet", "tiny", tmp_path)
    with pytest.raises(ConfigError, match="unknown model 'rtfnte'.*Did you mean 'rtfnet'"):
        attach_checkpoints(parse_models("rtfnte"), {}, "synthetic", "tiny", tmp_path)


def test_training_seed_replicas_cached_per_seed_or_given_as_name_at_seed(tmp_path):
    refs = attach_checkpoints(parse_models("rtfnet,mfnet"), {}, "synthetic", "tiny", tmp_path, [0, 2])
    assert [r.replica for r in refs] == [("rtfnet", 0), ("rtfnet", 2), ("mfnet", 0), ("mfnet", 2)]
    assert len({r.checkpoint for r in refs}) == 4 and refs[1].checkpoint.name == "rtfnet_tiny_synthetic_seed2.pt"
    for name in ("a.pt", "b.pt"):
        (tmp_path / name).write_bytes(b"")
    given = parse_checkpoints([f"rtfnet@3={tmp_path / 'b.pt'}", f"rtfnet@1={tmp_path / 'a.pt'}"])
    refs = attach_checkpoints(parse_models("rtfnet"), given, "mfnet", "tiny", tmp_path)
    assert [(r.replica, r.checkpoint.name, r.source) for r in refs] == [(("rtfnet", 1), "a.pt", "given"),
                                                                        (("rtfnet", 3), "b.pt", "given")]
    with pytest.raises(ConfigError, match="both as NAME=PATH and as NAME@SEED=PATH"):
        attach_checkpoints(parse_models("rtfnet"), {"rtfnet": "a.pt", "rtfnet@1": "a.pt"}, "mfnet", "tiny", tmp_path)
    with pytest.raises(ConfigError, match=r"invalid --checkpoint name 'rtfnet@x'; expected NAME or NAME@SEED"):
        attach_checkpoints(parse_models("rtfnet"), {"rtfnet@x": "a.pt"}, "mfnet", "tiny", tmp_path)


def test_shard_and_interleave_restore_dataset_order_without_duplicates():
    n, world = 7, 3
    shards = [list(shard_indices(n, DistContext(r, world, r, None))) for r in range(world)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for s in shards for i in s) == list(range(n))
    parts = [np.array(s)[:, None] * 10 for s in shards]
    np.testing.assert_array_equal(interleave(parts, n)[:, 0], np.arange(n) * 10)
    with pytest.raises(RuntimeError, match="rank 1 returned 1 images, expected 2"):
        interleave([parts[0], parts[1][:1], parts[2]], n)


def test_label_bins_score_equals_per_image_of_argmax_and_flags_nan():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (3, 9, 11), generator=g)
    label[0, :2] = 255
    label[1, 3] = 7  # outside [0, C): not counted, as in ConfusionMatrix
    bins = LabelBins(label, 5, 255)
    scored = []
    for logits in (torch.randn(3, 5, 9, 11, generator=g),
                   torch.randint(0, 2, (3, 5, 9, 11), generator=g).float(),  # ties: argmax takes the first
                   torch.randn(3, 5, 9, 11, generator=g).half()):
        matrices, finite = bins.score(logits)
        assert matrices.dtype == torch.int64 and bool(finite)
        scored.append((matrices, logits))
    for matrices, logits in scored:  # results stay the cell's own although `score` keeps its work buffers
        assert torch.equal(matrices, ConfusionMatrix.per_image(logits.argmax(1), label, 5, 255))
    assert int(matrices[0].sum()) == 9 * 11 - 2 * 11 and int(matrices[1].sum()) == 9 * 11 - 11
    unignored = LabelBins(label.clamp(max=4), 5, None).score(logits)[0]
    assert torch.equal(unignored, ConfusionMatrix.per_image(logits.argmax(1), label.clamp(max=4), 5, None))
    for bad in (float("nan"), float("inf")):
        poisoned = logits.clone()
        poisoned[2, 3, 4, 5] = bad
        assert not bool(bins.score(poisoned)[1])
    for c in (15, 16):  # the last class count whose bins fit uint8 per image (CPU path), and the first that not
        labels = torch.randint(0, c + 1, (3, 6, 7), generator=g)
        labels[labels == c] = 255
        logits = torch.randint(0, 3, (3, c, 6, 7), generator=g).float()  # many ties
        assert LabelBins(labels, c, 255).per_image == (c == 15)
        assert torch.equal(LabelBins(labels, c, 255).score(logits)[0],
                           ConfusionMatrix.per_image(logits.argmax(1), labels, c, 255))
    many_labels = torch.randint(0, 300, (2, 6, 7), generator=g)  # class ids beyond uint8 ranks
    logits = torch.randn(2, 300, 6, 7, generator=g)
    assert torch.equal(LabelBins(many_labels, 300).score(logits)[0],
                       ConfusionMatrix.per_image(logits.argmax(1), many_labels, 300))


def test_a_missing_checkpoint_is_reported_before_the_dataset_is_opened(tmp_path, monkeypatch):
    """`sweep --checkpoint crm=nope.pt` on the built-in dataset said so only after rendering the dataset (~10 s
    from an empty cache); now before anything is read or rendered, and an unknown dataset name still comes first."""
    monkeypatch.setenv("RGBT_BENCH_CACHE", str(tmp_path / "cache"))
    config = SweepConfig(models=["crm"], checkpoints={"crm": str(tmp_path / "nope.pt")}, out=str(tmp_path / "out"),
                         progress=False)
    with pytest.raises(CheckpointError, match=r"checkpoint .*nope.pt for model 'crm' does not exist"):
        run_sweep(config)
    assert not (tmp_path / "cache").exists()
    config.dataset = "mfnte:/data"
    with pytest.raises(ConfigError, match="unknown dataset 'mfnte'"):
        run_sweep(config)
