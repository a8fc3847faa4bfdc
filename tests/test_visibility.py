"""Per-modality class visibility (DatasetInfo.visible_in) and metrics.visibility.missed_classes."""
import math
import re
from pathlib import Path

import pytest

from rgbt_bench.datasets import dataset_class, scene
from rgbt_bench.datasets.base import DatasetInfo
from rgbt_bench.datasets.synthetic import SyntheticRGBT
from rgbt_bench.metrics.visibility import missed_classes

INFO = SyntheticRGBT.info
DOCS = Path(__file__).resolve().parents[1] / "docs" / "synthetic.md"


def _iou(**low):
    """IoU 0.6 for every synthetic class except those given."""
    return [low.get(name, 0.6) for name in INFO.class_names]


def test_synthetic_visibility_per_modality():
    assert "hot_pipe" not in INFO.visible_classes(["rgb"])
    assert set(INFO.class_names) - set(INFO.visible_classes(["thermal"])) == {"lane_marking", "color_cone"}
    assert INFO.visible_classes(["rgb", "thermal"]) == INFO.class_names
    assert INFO.visible_classes([]) == ()


def test_synthetic_visibility_agrees_with_the_docs_class_table():
    rows = re.findall(r"^\| (\d) \| (\w+) \| [\d,]+ \| (.*?) \| (.*?) \|$", DOCS.read_text(), re.M)
    assert [name for _, name, _, _ in rows] == list(scene.CLASS_NAMES)
    for (_, name, rgb, thermal), shown in zip(rows, scene.VISIBLE_IN):
        seen = ("**invisible**" not in rgb, "**invisible**" not in thermal)
        assert ("rgb" in shown, "thermal" in shown) == seen, name


@pytest.mark.parametrize("name", ["mfnet", "pst900", "kp"])
def test_real_datasets_show_every_class_to_both_cameras(name):
    info = dataset_class(name).info
    assert info.visible_classes(["rgb"]) == info.visible_classes(["thermal"]) == info.class_names


@pytest.mark.parametrize("modalities, iou, missed", [
    (("thermal",), _iou(lane_marking=0.0, color_cone=0.0), []),             # cannot see them
    (("rgb",), _iou(hot_pipe=0.0), []),
    (("rgb", "thermal"), _iou(hot_pipe=0.0, person=0.04), ["person", "hot_pipe"]),
    (("rgb",), _iou(lane_marking=0.0, hot_pipe=0.0), ["lane_marking"]),
    (("thermal",), _iou(person=0.05), []),                                  # at the threshold: learned
    (("rgb", "thermal"), _iou(car=math.nan), []),                           # NaN: absent, not missed
])
def test_missed_classes_are_visible_classes_below_the_threshold(modalities, iou, missed):
    assert missed_classes(iou, INFO, modalities) == missed


def test_missed_classes_by_name_and_with_another_threshold():
    by_name = dict(zip(INFO.class_names, _iou(road=0.15)))
    assert missed_classes(by_name, INFO, ["rgb"], min_iou=0.2) == ["road"]


def test_missed_classes_refuses_iou_for_other_classes():
    with pytest.raises(ValueError, match="expected IoU for the 7 classes of synthetic"):
        missed_classes([0.5] * 6, INFO, ["rgb"])


def test_dataset_info_checks_its_visibility_table():
    base = dict(name="d", class_names=("a", "b"), palette=((0, 0, 0),) * 2, ignore_index=None,
                convention="field", native_size=(8, 8), splits=("test",), has_day_night=False)
    with pytest.raises(ValueError, match="2 classes"):
        DatasetInfo(**base, visible_in=(("rgb",),))
    with pytest.raises(ValueError, match="unknown modalities"):
        DatasetInfo(**base, visible_in=(("rgb",), ("depth",)))
