"""ConfusionMatrix and the course's mean IoU (fcn.core.metrics)."""

import json
import math

import numpy as np
import pytest

from bench.course_tool import course_mean_iou_score
from fcn.core.metrics import ConfusionMatrix, pair_counts


def course_rule(gt_images, pred_images):
    """The course tool's own arithmetic (bench/course_tool.py): (list of six IoUs, mean, printed text)."""
    return course_mean_iou_score(list(pred_images), list(gt_images))


def random_masks(rng, count, shape=(64, 64)):
    """Blocky ground truths and noisy predictions (all 7 classes likely present)."""
    gts, preds = [], []
    for _ in range(count):
        coarse = rng.integers(0, 7, size=(shape[0] // 8, shape[1] // 8))
        gt = np.kron(coarse, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
        noise = rng.random(shape) < rng.uniform(0.1, 0.6)
        pred = np.where(noise, rng.integers(0, 7, size=shape), gt).astype(np.uint8)
        gts.append(gt)
        preds.append(pred)
    return gts, preds


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_the_course_rule_on_random_masks(seed, caplog):
    rng = np.random.default_rng(seed)
    gts, preds = random_masks(rng, count=4)
    confusion = ConfusionMatrix()
    for gt, pred in zip(gts, preds):
        confusion.update(gt, pred)

    ious, mean, text = course_rule(gts, preds)
    np.testing.assert_array_equal(confusion.iou()[:6], ious)  # exact, not approximate
    assert confusion.mean_iou() == mean
    assert confusion.course_report() == text
    assert not caplog.records  # every class present: no warning


def test_report_format_is_the_course_format():
    gts, preds = random_masks(np.random.default_rng(7), count=2)
    confusion = ConfusionMatrix()
    confusion.update(np.stack(gts), np.stack(preds))
    lines = confusion.course_report().split("\n")
    assert len(lines) == 10
    for i in range(6):
        assert lines[i].startswith(f"class #{i} : ") and len(lines[i].split(" : ")[1]) == 7  # 0.xxxxx
    assert lines[6] == "" and lines[8] == "" and lines[9] == ""
    assert lines[7].startswith("mean_iou: ") and len(lines[7].split(": ")[1]) == 8  # 0.xxxxxx


def test_absent_class_is_nan_and_the_mean_is_over_present_classes(caplog):
    rng = np.random.default_rng(4)
    gt = rng.choice([0, 1, 2, 4, 5, 6], size=(32, 32))  # no forest (3)
    pred = rng.choice([0, 1, 2, 4, 5], size=(32, 32))
    confusion = ConfusionMatrix().update(gt, pred)

    ious = confusion.iou()
    assert np.isnan(ious[3])
    assert confusion.absent_classes() == [3]
    present = [ious[c] for c in (0, 1, 2, 4, 5)]
    assert not any(np.isnan(present))
    assert confusion.mean_iou() == pytest.approx(sum(present) / 5, rel=1e-12)

    report = confusion.course_report()
    assert "class #3 : nan\n" in report
    assert "mean_iou: %f\n" % (sum(present) / 5) in report
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]  # logged: -q hides it
    assert len(warnings) == 1
    assert "forest" in warnings[0] and "5 present" in warnings[0]


def test_no_warning_when_asked_not_to(caplog):
    ConfusionMatrix().update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)).course_report(warn=False)
    assert not caplog.records


def test_class_only_in_ground_truth_scores_zero_not_nan():
    gt = np.array([[3, 3, 0, 0]])
    pred = np.array([[0, 0, 0, 0]])
    ious = ConfusionMatrix().update(gt, pred).iou()
    assert ious[3] == 0.0 and ious[0] == 0.5


def test_all_correct_is_one():
    gt = np.tile(np.arange(7, dtype=np.uint8), (5, 3))
    confusion = ConfusionMatrix().update(gt, gt)
    np.testing.assert_array_equal(confusion.iou(), np.ones(7))
    assert confusion.mean_iou() == pytest.approx(1.0)
    assert confusion.pixel_accuracy() == 1.0
    assert confusion.course_report().endswith("mean_iou: 1.000000\n\n")


def test_all_wrong_is_zero():
    gt = np.tile(np.arange(6, dtype=np.uint8), (4, 2))
    confusion = ConfusionMatrix().update(gt, (gt + 1) % 6)
    np.testing.assert_array_equal(confusion.iou()[:6], np.zeros(6))
    assert confusion.mean_iou() == 0.0 and confusion.pixel_accuracy() == 0.0


def test_pixels_are_pooled_over_images_not_averaged_per_image():
    # Image A: 2 urban pixels, both right. Image B: 8 urban pixels, 2 predicted as water.
    gt_a, pred_a = np.zeros(2, np.uint8), np.zeros(2, np.uint8)
    gt_b, pred_b = np.zeros(8, np.uint8), np.array([0, 0, 0, 0, 0, 0, 4, 4], np.uint8)
    confusion = ConfusionMatrix().update(gt_a, pred_a).update(gt_b, pred_b)

    pooled_urban = (2 + 6) / 10
    per_image_mean = (1.0 + 6 / 8) / 2
    assert confusion.iou()[0] == pytest.approx(pooled_urban)
    assert confusion.iou()[0] != pytest.approx(per_image_mean)
    assert confusion.iou()[4] == 0.0
    concatenated = ConfusionMatrix().update(np.concatenate([gt_a, gt_b]), np.concatenate([pred_a, pred_b]))
    np.testing.assert_array_equal(confusion.matrix, concatenated.matrix)


def test_matrix_rows_are_ground_truth_and_columns_prediction():
    confusion = ConfusionMatrix().update(np.full((3, 3), 4), np.full((3, 3), 0))  # water seen as urban
    matrix = confusion.matrix
    assert matrix.dtype == np.int64 and matrix.shape == (7, 7)
    assert matrix[4, 0] == 9 and matrix.sum() == 9
    table = confusion.format_matrix().splitlines()
    assert table[0].split()[-8:] == [
        "urban",
        "agriculture",
        "rangeland",
        "forest",
        "water",
        "barren",
        "unknown",
        "recall",
    ]
    water_row = next(line for line in table if line.startswith("water"))
    assert water_row.split()[1:] == ["9", "0", "0", "0", "0", "0", "0", "0.000"]  # its recall last


def test_recall_and_precision_show_a_class_predicted_more_often_than_it_is_true():
    gt = np.array([2, 2, 1, 1, 1, 1])
    pred = np.array([2, 1, 2, 2, 1, 1])  # rangeland: 1 of 2 found, 1 of 3 predicted right
    confusion = ConfusionMatrix().update(gt, pred)
    assert confusion.recall()[2] == pytest.approx(1 / 2) and confusion.precision()[2] == pytest.approx(1 / 3)
    assert confusion.recall()[1] == pytest.approx(2 / 4) and confusion.precision()[1] == pytest.approx(2 / 3)
    assert np.isnan(confusion.recall()[0]) and np.isnan(confusion.precision()[0])  # urban: neither true nor predicted
    table = confusion.format_matrix().splitlines()
    assert table[0].split()[-1] == "recall"
    assert table[3].split()[-1] == "0.500" and table[1].split()[-1] == "-"
    assert table[-1].split() == ["precision", "-", "0.667", "0.333", "-", "-", "-", "-"]
    assert confusion.to_dict()["precision"]["rangeland"] == pytest.approx(1 / 3)
    assert confusion.to_dict()["recall"]["urban"] is None


def test_merge_equals_updating_one_matrix():
    gts, preds = random_masks(np.random.default_rng(5), count=3)
    together = ConfusionMatrix()
    parts = [ConfusionMatrix() for _ in gts]
    for part, gt, pred in zip(parts, gts, preds):
        together.update(gt, pred)
        part.update(gt, pred)
    merged = ConfusionMatrix()
    for part in parts:
        merged.merge(part)
    np.testing.assert_array_equal(merged.matrix, together.matrix)
    with pytest.raises(ValueError):
        merged.merge(ConfusionMatrix(num_classes=3))


def test_int64_and_uint8_labels_count_the_same():
    gts, preds = random_masks(np.random.default_rng(6), count=1)
    np.testing.assert_array_equal(
        pair_counts(gts[0], preds[0]), pair_counts(gts[0].astype(np.int64), preds[0].astype(np.int32))
    )


def test_many_classes_use_the_wide_path():
    rng = np.random.default_rng(8)
    gt, pred = rng.integers(0, 40, size=(2, 50, 50))
    counts = pair_counts(gt, pred, num_classes=40)
    assert counts.sum() == gt.size
    assert counts[7, 39] == np.sum((gt == 7) & (pred == 39))


@pytest.mark.parametrize(
    "gt, pred",
    [
        (np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)),  # shape mismatch
        (np.zeros((4, 4), np.uint8), np.full((4, 4), 7, np.uint8)),  # out of range
        (np.full((4, 4), -1), np.zeros((4, 4), np.int64)),  # negative
        (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)),  # not integers
    ],
)
def test_update_rejects_bad_labels(gt, pred):
    confusion = ConfusionMatrix()
    with pytest.raises(ValueError):
        confusion.update(gt, pred)
    assert confusion.num_pixels == 0


def test_empty_matrix_and_reset():
    confusion = ConfusionMatrix()
    assert np.isnan(confusion.iou()).all() and math.isnan(confusion.mean_iou())
    assert math.isnan(confusion.pixel_accuracy())
    confusion.update(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))
    assert confusion.num_pixels == 4
    confusion.reset()
    assert confusion.num_pixels == 0


def test_to_dict_is_strict_json_with_nan_as_null():
    gt = np.array([[0, 0, 1, 6]])
    pred = np.array([[0, 1, 1, 6]])
    summary = json.loads(json.dumps(ConfusionMatrix().update(gt, pred).to_dict(), allow_nan=False))
    assert summary["iou"]["urban"] == 0.5 and summary["iou"]["agriculture"] == 0.5
    assert summary["iou"]["forest"] is None and summary["iou"]["unknown"] == 1.0
    assert summary["mean_iou"] == pytest.approx(0.5)  # over urban and agriculture only
    assert summary["absent_classes"] == ["rangeland", "forest", "water", "barren"]
    assert summary["pixel_accuracy"] == 0.75 and summary["num_pixels"] == 4
    assert summary["confusion_matrix"][0][1] == 1 and len(summary["confusion_matrix"]) == 7
