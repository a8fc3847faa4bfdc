"""Suite files: the bundled suites load, and every kind of mistake is a ConfigError naming file and entry."""
import pytest

from rgbt_bench.corruptions import CORRUPTIONS, available_suites, load_suite
from rgbt_bench.errors import ConfigError


def test_default_suite_covers_the_broad_set():
    suite = load_suite("default")
    assert suite.name == "default" and suite.description
    names = [e.corruption for e in suite.entries]
    assert names == ["rgb_missing", "thermal_missing", "complementary_patch_mask", "rgb_patch_mask",
                     "thermal_patch_mask", "plasma_fog", "koschmieder_fog", "night", "thermal_noise",
                     "thermal_stripes", "thermal_crossover", "thermal_blur"]
    assert all(e.severities == [1, 2, 3, 4, 5] for e in suite.entries)
    assert suite.entries[0].options == {"fill": "zero"}
    assert suite.entries[2].options == {"patch": 32, "fill": "zero"}
    assert sum(len(e.severities) for e in suite.entries) == 60


def test_crm_paper_suite_is_missing_modality_evaluation():
    suite = load_suite("crm_paper")
    by_label = {e.label: e for e in suite.entries}
    assert set(by_label) == {"rgb_missing_zero", "thermal_missing_zero", "rgb_missing_mean",
                             "thermal_missing_mean", "crm_training_mask"}
    assert all(e.severities == [5] for e in suite.entries)
    assert by_label["rgb_missing_mean"].corruption == "rgb_missing"
    assert by_label["rgb_missing_mean"].options == {"fill": "mean"}
    assert by_label["thermal_missing_zero"].options == {"fill": "zero"}
    assert CORRUPTIONS[by_label["rgb_missing_zero"].corruption].params["drop_probability"][4] == 1.0
    assert {"default", "crm_paper"} <= set(available_suites())


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("entries:\n  - corruption: plasma_fgo\n",
     r"entry 1 \(plasma_fgo\): unknown corruption 'plasma_fgo'.*'plasma_fog'"),
    ("entries:\n  - corruption: night\n    severities: [1, 7]\n", r"entry 1 \(night\): severity 7 is invalid"),
    ("entries:\n  - corruption: night\n    severities: [0]\n", r"severity 0 is invalid.*clean"),
    ("entries:\n  - corruption: night\n    severities: []\n", r"severities must be a non-empty list"),
    ("entries:\n  - corruption: night\n    severities: [2, 2]\n", r"repeat a value"),
    ("entries:\n  - corruption: rgb_missing\n    options: {fill: black}\n", r"entry 1 \(rgb_missing\).*fill='black'"),
    ("entries:\n  - corruption: rgb_missing\n    options: {patch: 8}\n", r"has no option 'patch'"),
    ("entries:\n  - corruption: night\n  - corruption: night\n", r"entry 2: label 'night' is used twice"),
    ("entries:\n  - corruption: night\n    label: a b\n", r"label 'a b' is invalid"),
    ("entries:\n  - corruption: night\n    severity: [1]\n", r"unknown key 'severity'"),
    ("entries: []\n", r"non-empty 'entries' list"),
    ("name: x\nentrys:\n  - corruption: night\n", r"non-empty 'entries' list"),
    ("entries:\n  - night\n", r"entry 1: expected a mapping"),
    ("entries: [\n", r"is not valid YAML"),
])
def test_invalid_suites_name_file_and_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_custom_suite_defaults(tmp_path):
    path = write(tmp_path, "entries:\n  - corruption: rgb_patch_mask\n    label: rgb_mask_16\n"
                           "    severities: 3\n    options: {patch: 16}\n")
    suite = load_suite(str(path))
    assert suite.name == "suite" and suite.path == path
    (entry,) = suite.entries
    assert (entry.label, entry.corruption, entry.severities, entry.options) == \
        ("rgb_mask_16", "rgb_patch_mask", [3], {"patch": 16, "fill": "zero"})


def test_unknown_suite_name_lists_the_bundled_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown suite 'defualt'.*crm_paper, default"):
        load_suite("defualt")
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "missing.yaml")


def test_options_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "entries:\n  - corruption: rgb_missing\n    options: [fill, mean]\n")
    with pytest.raises(ConfigError, match=r"entry 1 \(rgb_missing\): options must be a mapping"):
        load_suite(path)
