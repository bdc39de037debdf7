"""The course tool (NTU DLCV 2018 HW3 ``mean_iou_evaluate.py``), re-implemented as it computes.

It reads every mask of each folder into one float64 array with imageio, decodes it with one masked
assignment per class, then makes six full passes (three comparisons each) over every pixel. Used as
the independent reference the metric is tested against (``tests/``) and as the baseline
``bench/mean_iou_speed.py`` times.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout

import numpy as np


def course_read_masks(folder: str | os.PathLike) -> np.ndarray:
    """The course's ``read_masks``: every ``.png`` of the folder, sorted, decoded into one array.

    The only change: the array starts as Unknown (6) instead of ``np.empty`` so that pure red
    pixels, which the course leaves undefined, are Unknown as in ``fcn.core.palette``.
    """
    import imageio.v2 as imageio

    names = sorted(name for name in os.listdir(folder) if name.endswith(".png"))
    height, width = imageio.imread(os.path.join(folder, names[0])).shape[:2]
    masks = np.full((len(names), height, width), 6.0)
    for i, name in enumerate(names):
        mask = imageio.imread(os.path.join(folder, name))
        mask = (mask >= 128).astype(int)
        mask = 4 * mask[:, :, 0] + 2 * mask[:, :, 1] + mask[:, :, 2]
        masks[i, mask == 3] = 0  # (Cyan: 011) Urban land
        masks[i, mask == 6] = 1  # (Yellow: 110) Agriculture land
        masks[i, mask == 5] = 2  # (Purple: 101) Rangeland
        masks[i, mask == 2] = 3  # (Green: 010) Forest land
        masks[i, mask == 1] = 4  # (Blue: 001) Water
        masks[i, mask == 7] = 5  # (White: 111) Barren land
        masks[i, mask == 0] = 6  # (Black: 000) Unknown
    return masks


def course_mean_iou_score(pred, labels) -> tuple[list[float], float, str]:
    """The course's ``mean_iou_score`` on class-index arrays (or lists of per-image arrays, pooled).

    Returns:
        (six IoUs, their mean, the text the course tool prints).
    """
    if isinstance(pred, (list, tuple)):
        pred = np.concatenate([np.ravel(p) for p in pred])
        labels = np.concatenate([np.ravel(g) for g in labels])
    out = io.StringIO()
    ious = []
    mean_iou = 0
    with redirect_stdout(out):
        for i in range(6):
            tp_fp = np.sum(pred == i)
            tp_fn = np.sum(labels == i)
            tp = np.sum((pred == i) * (labels == i))
            iou = tp / (tp_fp + tp_fn - tp)
            mean_iou += iou / 6
            ious.append(float(iou))
            print("class #%d : %1.5f" % (i, iou))
        print("\nmean_iou: %f\n" % mean_iou)
    return ious, float(mean_iou), out.getvalue()


def course_tool(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> tuple[list[float], float, str]:
    """The whole course tool: read both folders, then score."""
    pred = course_read_masks(pred_dir)
    labels = course_read_masks(gt_dir)
    return course_mean_iou_score(pred, labels)
