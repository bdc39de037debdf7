"""Confusion matrix and the course's mean IoU (numpy only, no TensorFlow).

The course tool (NTU DLCV 2018 HW3 ``mean_iou_evaluate.py``) pools all pixels of all images and,
for each scored class i, computes ``tp / (tp_fp + tp_fn - tp)`` where ``tp_fp`` counts predicted
pixels of class i and ``tp_fn`` ground-truth pixels of class i (Unknown pixels included in the
totals); the mean IoU averages classes 0-5. All of these are sums over a confusion matrix, so one
``np.bincount`` pass per image replaces the tool's six full passes over every pixel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from fcn.core.palette import CLASS_NAMES, NUM_CLASSES, SCORED_CLASSES

log = logging.getLogger(__name__)

# Largest class count whose pair code gt * n + pred still fits in a uint8.
_MAX_UINT8_CLASSES = 16


class ConfusionMatrix:
    """Pixel counts of (ground truth, prediction) pairs, pooled over every image added.

    Args:
        num_classes: number of classes; labels must lie in ``0..num_classes - 1``.
        class_names: a name per class (defaults to the land-cover names when there are 7 classes).
        scored_classes: the classes averaged by :meth:`mean_iou` (the course scores 0-5).
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        class_names: Sequence[str] | None = None,
        scored_classes: Sequence[int] | None = None,
    ):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)
        if class_names is None:
            class_names = CLASS_NAMES if num_classes == NUM_CLASSES else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.class_names = tuple(class_names)
        if scored_classes is None:
            scored_classes = SCORED_CLASSES if num_classes == NUM_CLASSES else range(num_classes)
        self.scored_classes = tuple(int(c) for c in scored_classes)
        if any(not 0 <= c < num_classes for c in self.scored_classes):
            raise ValueError(f"scored classes {self.scored_classes} outside 0..{num_classes - 1}")
        self._counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    # ------------------------------------------------------------------ accumulation

    def update(self, gt, pred) -> ConfusionMatrix:
        """Add the pixels of one or more images.

        Args:
            gt: integer array of ground-truth class indices, any shape.
            pred: integer array of predicted class indices, same shape as ``gt``.

        Returns:
            self, so calls can be chained.

        Raises:
            ValueError: shapes differ, or a label lies outside ``0..num_classes - 1``.
        """
        self._counts += pair_counts(gt, pred, self.num_classes)
        return self

    def add_counts(self, counts) -> ConfusionMatrix:
        """Add an already computed (num_classes, num_classes) count matrix (e.g. from a worker)."""
        counts = np.asarray(counts)
        if counts.shape != self._counts.shape:
            raise ValueError(f"expected counts of shape {self._counts.shape}, got {counts.shape}")
        self._counts += counts.astype(np.int64, copy=False)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of another matrix with the same classes; returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self._counts += other._counts
        return self

    def reset(self) -> None:
        """Forget every count (e.g. at the start of a validation epoch)."""
        self._counts[:] = 0

    @property
    def matrix(self) -> np.ndarray:
        """(num_classes, num_classes) int64 counts; rows = ground truth, columns = prediction."""
        return self._counts.copy()

    @property
    def num_pixels(self) -> int:
        """Total number of pixels added."""
        return int(self._counts.sum())

    # ------------------------------------------------------------------ scores

    def iou(self) -> np.ndarray:
        """Per-class intersection over union, the course formula ``tp / (tp_fp + tp_fn - tp)``.

        Returns:
            (num_classes,) float64; nan for a class absent from both ground truth and prediction.
        """
        tp = np.diag(self._counts)
        union = self._counts.sum(axis=0) + self._counts.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / union

    def absent_classes(self) -> list[int]:
        """Scored classes that appear neither in the ground truth nor in the prediction."""
        ious = self.iou()
        return [c for c in self.scored_classes if np.isnan(ious[c])]

    def mean_iou(self) -> float:
        """Mean IoU over the scored classes that are present (nan when none is).

        The sum is accumulated as the course tool does (``mean += iou / n`` in class order) so
        that the printed digits match it exactly when every class is present.
        """
        ious = self.iou()
        present = [ious[c] for c in self.scored_classes if not np.isnan(ious[c])]
        if not present:
            return float("nan")
        mean = 0.0
        for value in present:
            mean += value / len(present)
        return float(mean)

    def recall(self) -> np.ndarray:
        """Per class, the share of its ground-truth pixels predicted as it (nan when it has none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self._counts) / self._counts.sum(axis=1)

    def precision(self) -> np.ndarray:
        """Per class, the share of the pixels predicted as it that are it (nan when none was)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self._counts) / self._counts.sum(axis=0)

    def pixel_accuracy(self) -> float:
        """Fraction of all pixels (Unknown included) whose prediction equals the ground truth."""
        total = self._counts.sum()
        return float(np.trace(self._counts) / total) if total else float("nan")

    # ------------------------------------------------------------------ reports

    def absence_warning(self) -> str | None:
        """The one-line warning about absent scored classes, or None when all are present."""
        absent = self.absent_classes()
        if not absent:
            return None
        names = ", ".join(f"#{c} {self.class_names[c]}" for c in absent)
        present = len(self.scored_classes) - len(absent)
        return (
            f"warning: class{'es' if len(absent) > 1 else ''} {names} absent from both ground truth "
            f"and prediction (IoU nan); mean_iou is over the {present} present classes"
        )

    def course_report(self, warn: bool = True) -> str:
        """The exact stdout text of the course tool: one line per scored class, then the mean.

        Args:
            warn: log :meth:`absence_warning` (one line, a warning: ``-q`` hides it) when a class is absent.

        Returns:
            ``"class #0 : 0.72855\\n" ... "\\nmean_iou: 0.672028\\n\\n"`` (absent classes print nan).
        """
        if warn:
            warning = self.absence_warning()
            if warning:
                log.warning("%s", warning)
        ious = self.iou()
        lines = ["class #%d : %1.5f\n" % (c, ious[c]) for c in self.scored_classes]
        return "".join(lines) + "\nmean_iou: %f\n\n" % self.mean_iou()

    def to_dict(self) -> dict:
        """JSON-ready summary; nan becomes None.

        Returns:
            dict with ``iou`` (class name -> IoU, every class), ``mean_iou`` (scored classes),
            ``pixel_accuracy``, ``num_pixels``, ``scored_classes`` and ``absent_classes`` (names),
            ``class_names``, ``recall`` and ``precision`` (class name -> share) and ``confusion_matrix``
            (rows = ground truth, columns = prediction).
        """
        ious = self.iou()
        return {
            "iou": {name: _json_float(v) for name, v in zip(self.class_names, ious)},
            "mean_iou": _json_float(self.mean_iou()),
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "num_pixels": self.num_pixels,
            "scored_classes": [self.class_names[c] for c in self.scored_classes],
            "absent_classes": [self.class_names[c] for c in self.absent_classes()],
            "class_names": list(self.class_names),
            "recall": {name: _json_float(v) for name, v in zip(self.class_names, self.recall())},
            "precision": {name: _json_float(v) for name, v in zip(self.class_names, self.precision())},
            "confusion_matrix": self._counts.tolist(),
        }

    def format_matrix(self) -> str:
        """The counts as a text table, rows = ground truth, columns = prediction, with class names; each
        row ends with its recall and a last row holds each column's precision ("-" where undefined).

        A class predicted more often than it is true shows as recall above precision (for example, class
        weights that push a rare class too hard)."""
        corner, recall, precision = "gt \\ pred", "recall", "precision"
        label_width = max(len(corner), len(precision), *(len(n) for n in self.class_names))
        cell_width = max(max(len(n) for n in self.class_names), len(str(int(self._counts.max(initial=0)))))

        def share(value: float, width: int) -> str:
            return f" {'-' if np.isnan(value) else f'{value:.3f}':>{width}}"

        header = corner.ljust(label_width) + "".join(f" {n:>{cell_width}}" for n in self.class_names) + f" {recall}"
        rows = [
            name.ljust(label_width) + "".join(f" {int(v):>{cell_width}d}" for v in row) + share(r, len(recall))
            for name, row, r in zip(self.class_names, self._counts, self.recall())
        ]
        last = precision.ljust(label_width) + "".join(share(v, cell_width) for v in self.precision())
        return "\n".join([header, *rows, last]) + "\n"

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, num_pixels={self.num_pixels})"


def pair_counts(gt, pred, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Confusion counts of one pair of label arrays (the work behind :meth:`ConfusionMatrix.update`).

    Args:
        gt: integer array of ground-truth class indices, any shape.
        pred: integer array of predicted class indices, same shape.
        num_classes: number of classes.

    Returns:
        (num_classes, num_classes) int64 counts, rows = ground truth.

    Raises:
        ValueError: shapes differ, the arrays are not integer, or a label is out of range.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    for name, labels in (("ground truth", gt), ("prediction", pred)):
        if labels.dtype.kind not in "ui":
            raise ValueError(f"{name} labels must be integers, got dtype {labels.dtype}")
        if labels.size and (labels.max() >= num_classes or (labels.dtype.kind == "i" and labels.min() < 0)):
            raise ValueError(f"{name} labels must lie in 0..{num_classes - 1}")
    if num_classes <= _MAX_UINT8_CLASSES:
        # uint8 codes: a quarter of the memory traffic of int64 ones on large masks.
        codes = gt.astype(np.uint8) * np.uint8(num_classes) + pred.astype(np.uint8)
    else:
        codes = gt.astype(np.int64) * num_classes + pred
    counts = np.bincount(codes.ravel(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
