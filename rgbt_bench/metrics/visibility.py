"""Classes a model has not learned although its cameras show them.

A class is "missed" when at least one of the model's modalities shows it (DatasetInfo.visible_classes:
on the synthetic dataset lane markings and cones are RGB-only, hot pipes thermal-only; on real datasets
every class is visible in both) and its IoU is below `min_iou` (default 0.05: a class found on fewer than
one in twenty of its pixels, net of false positives, is in effect not segmented; learned classes of the
tiny models score 20 % and more). A thermal-only model is not blamed for lane markings; an RGB-T model is.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..datasets.base import DatasetInfo

MIN_IOU = 0.05


def missed_classes(iou: Sequence[float] | Mapping[str, float], info: DatasetInfo, modalities: Sequence[str],
                   min_iou: float = MIN_IOU) -> list[str]:
    """Names of the classes visible to `modalities` whose IoU (a fraction; per class in `info.class_names`
    order, or by name) is below `min_iou`, in class order.

    A NaN IoU (mmseg convention: class absent from labels and predictions) is not a miss. Under the field
    convention an absent class has IoU 0, so pass per-class IoU from a split that contains every class (the
    synthetic splits do) or from the mmseg convention.
    """
    by_name = dict(iou) if isinstance(iou, Mapping) else dict(zip(info.class_names, iou))
    if len(by_name) != info.num_classes or set(by_name) != set(info.class_names):
        raise ValueError(f"expected IoU for the {info.num_classes} classes of {info.name} "
                         f"({', '.join(info.class_names)}), got {len(by_name)}: {', '.join(map(str, by_name))}")
    return [name for name in info.visible_classes(modalities)
            if not math.isnan(by_name[name]) and by_name[name] < min_iou]
