"""Confusion matrix and mIoU conventions against independent implementations."""
from typing import Optional

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from rgbt_bench.metrics import ConfusionMatrix, compute_metrics


def numpy_field_miou(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore: Optional[int]) -> np.ndarray:
    """RTFNet-style reference: per-class TP/(TP+FP+FN) over all pixels, 0 for an empty denominator."""
    keep = np.ones(label.shape, bool) if ignore is None else label != ignore
    p, t = pred[keep], label[keep]
    ious = []
    for c in range(num_classes):
        tp = np.sum((p == c) & (t == c))
        fp = np.sum((p == c) & (t != c))
        fn = np.sum((p != c) & (t == c))
        ious.append(tp / (tp + fp + fn) if tp + fp + fn > 0 else 0.0)
    return np.array(ious)


def random_data(seed: int, num_classes: int, ignore: Optional[int], absent: tuple[int, ...] = ()):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, num_classes, (4, 17, 23), generator=g)
    pred = torch.randint(0, num_classes, (4, 17, 23), generator=g)
    for c in absent:
        label[label == c] = (c + 1) % num_classes
        pred[pred == c] = (c + 1) % num_classes
    if ignore is not None:
        label[torch.rand(label.shape, generator=g) < 0.2] = ignore
    return pred, label


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_field_convention_matches_numpy_reference(seed):
    pred, label = random_data(seed, 9, ignore=None, absent=(5,))
    cm = ConfusionMatrix(9)
    for b in range(pred.shape[0]):
        cm.update(pred[b:b + 1], label[b:b + 1])
    metrics = compute_metrics(cm.matrix, "field")
    ref = numpy_field_miou(pred.numpy(), label.numpy(), 9, None)
    np.testing.assert_allclose(metrics.iou, ref, rtol=0, atol=1e-12)
    assert metrics.iou[5] == 0.0
    assert metrics.miou == pytest.approx(ref.mean(), abs=1e-12)


def test_field_convention_with_ignore_label_like_kp():
    pred, label = random_data(3, 19, ignore=19)
    metrics = compute_metrics(ConfusionMatrix.compute(pred, label, 19, 19), "field")
    ref = numpy_field_miou(pred.numpy(), label.numpy(), 19, 19)
    np.testing.assert_allclose(metrics.iou, ref, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_mmseg_convention_matches_torchmetrics(seed):
    pred, label = random_data(seed, 9, ignore=255, absent=(2, 7))
    tm = MulticlassJaccardIndex(num_classes=9, average="macro", ignore_index=255)
    cm = ConfusionMatrix(9, ignore_index=255)
    for b in range(pred.shape[0]):
        tm.update(pred[b:b + 1], label[b:b + 1])
        cm.update(pred[b:b + 1], label[b:b + 1])
    metrics = compute_metrics(cm.matrix, "mmseg")
    assert np.isnan(metrics.iou[2]) and np.isnan(metrics.iou[7])
    assert metrics.miou == pytest.approx(float(tm.compute()), abs=1e-6)


def test_per_image_sums_to_total_and_skips_ignore():
    pred, label = random_data(4, 6, ignore=255)
    per = ConfusionMatrix.per_image(pred, label, 6, 255)
    assert per.shape == (4, 6, 6) and per.dtype == torch.int64
    assert torch.equal(per.sum(0), ConfusionMatrix.compute(pred, label, 6, 255))
    for b in range(4):
        assert int(per[b].sum()) == int((label[b] != 255).sum())


def test_merge_and_accuracy_values():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))
    other = ConfusionMatrix(2)
    other.update(torch.tensor([1]), torch.tensor([1]))
    cm.merge(other)
    assert cm.matrix.tolist() == [[1, 0], [1, 3]]
    m = compute_metrics(cm.matrix, "field")
    assert m.iou == pytest.approx((1 / 2, 3 / 4))
    assert m.pixel_acc == pytest.approx(4 / 5)
    assert m.acc == pytest.approx((1.0, 3 / 4))


def test_prediction_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="0..2"):
        ConfusionMatrix.compute(torch.tensor([3]), torch.tensor([0]), 3)


@pytest.mark.parametrize("label_dtype", [torch.int64, torch.int32, torch.uint8])
@pytest.mark.parametrize("pred_dtype", [torch.int64, torch.uint8])
def test_per_image_matches_numpy_bincount_for_every_dtype(label_dtype, pred_dtype):
    pred, label = random_data(5, 9, ignore=255)
    label[0, 0, :3] = torch.tensor([9, 200, 0])  # out-of-range labels are not counted
    expected = np.stack([
        np.bincount(lab[lab < 9] * 9 + prd[lab < 9], minlength=81).reshape(9, 9)
        for lab, prd in zip(label.numpy().astype(np.int64), pred.numpy().astype(np.int64))])
    per = ConfusionMatrix.per_image(pred.to(pred_dtype), label.to(label_dtype), 9, 255)
    assert np.array_equal(per.numpy(), expected)
    assert np.array_equal(ConfusionMatrix.compute(pred.to(pred_dtype), label.to(label_dtype), 9, 255).numpy(),
                          expected.sum(0))


def test_labels_beyond_int32_are_not_counted_as_a_class():
    """Regression: the int32 fast path must not wrap a huge int64 label (2**32 + 1) into class 1."""
    label = torch.tensor([[2**32 + 1, -(2**32), 1]])
    pred = torch.tensor([[1, 0, 1]])
    assert ConfusionMatrix.compute(pred, label, 3).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_ignore_index_inside_the_class_range_is_not_counted():
    label = torch.tensor([[0, 1, 2, 1]])
    pred = torch.tensor([[0, 0, 2, 1]])
    assert ConfusionMatrix.compute(pred, label, 3, ignore_index=1).tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
