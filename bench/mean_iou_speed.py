"""Time ``fcn-mean-iou`` against the course tool's way of computing the same numbers.

    python bench/mean_iou_speed.py GT_DIR [PRED_DIR] [--repeats N] [--workers N] [--json FILE]

The course tool (NTU DLCV 2018 HW3 ``mean_iou_evaluate.py``) reads every mask of each folder into one
float64 array with imageio, decodes it with one masked assignment per class, then makes six full
passes (three comparisons each) over every pixel. It is re-implemented below as the baseline. When
PRED_DIR is omitted, a prediction folder is made in a temporary directory by shifting every ground
truth mask and recolouring a band of it, so that the IoUs are not trivially 1.

Other benchmarks can ``from mean_iou_speed import compare`` (with ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.course_tool import course_tool  # noqa: E402
from fcn.core.evaluate import evaluate_folders  # noqa: E402
from fcn.core.images import read_mask, write_mask  # noqa: E402
from fcn.core.palette import NUM_CLASSES  # noqa: E402

# ---------------------------------------------------------------- ours


def ours(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, workers: int | None = None):
    """fcn's path: pair by name, read/decode in threads, one bincount per pair; (ious, mean, text)."""
    confusion, _ = evaluate_folders(gt_dir, pred_dir, workers=workers)
    ious = confusion.iou()
    scored = [float(ious[c]) for c in confusion.scored_classes]
    return scored, confusion.mean_iou(), confusion.course_report(warn=False)


# ---------------------------------------------------------------- comparison


def perturbed_predictions(gt_dir: str | os.PathLike, out_dir: str | os.PathLike, shift: int = 24) -> int:
    """Write a fake prediction for every ``*.png`` mask of ``gt_dir``: rolled and partly recoloured.

    Returns:
        Number of masks written.
    """
    names = sorted(name for name in os.listdir(gt_dir) if name.endswith(".png"))
    for index, name in enumerate(names):
        classes = np.roll(read_mask(Path(gt_dir) / name), (shift, shift // 2), axis=(0, 1))
        band = slice(0, classes.shape[0] // 8)
        # Recolour a band with a class that changes per image so that every class gains errors.
        classes[band] = (classes[band] + 1 + index % (NUM_CLASSES - 1)) % NUM_CLASSES
        write_mask(Path(out_dir) / name, classes)
    return len(names)


def _best_time(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(
    gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, repeats: int = 1, workers: int | None = None
) -> dict:
    """Time both ways on the same folders (best of ``repeats``) and check they agree.

    Returns:
        dict with ``ours_s``, ``course_s``, ``speedup`` (course / ours), ``agree`` (same IoUs, and same
        mean and printed text when every scored class is present), ``ious``, ``mean_iou``,
        ``num_images``, ``workers``, ``repeats``, ``report`` and ``course_report`` (the texts).
    """
    ours_s, (our_ious, our_mean, our_text) = _best_time(lambda: ours(gt_dir, pred_dir, workers), repeats)
    course_s, (course_ious, course_mean, course_text) = _best_time(lambda: course_tool(gt_dir, pred_dir), repeats)
    # With a scored class absent from both folders the course prints a nan mean while fcn averages
    # the present classes; only the per-class IoUs can agree then.
    some_absent = bool(np.isnan(course_ious).any())
    agree = np.array_equal(our_ious, course_ious, equal_nan=True) and (
        some_absent or (our_mean == course_mean and our_text == course_text)
    )
    return {
        "gt_dir": str(gt_dir),
        "pred_dir": str(pred_dir),
        "num_images": sum(name.endswith(".png") for name in os.listdir(gt_dir)),
        "workers": workers,
        "repeats": repeats,
        "ours_s": ours_s,
        "course_s": course_s,
        "speedup": course_s / ours_s,
        "agree": bool(agree),
        "ious": our_ious,
        "mean_iou": our_mean,
        "report": our_text,
        "course_report": course_text,
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gt_dir", help="ground-truth mask folder (*.png)")
    parser.add_argument("pred_dir", nargs="?", help="prediction folder (default: perturbed copy of GT)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs each (default 2)")
    parser.add_argument("--workers", type=int, default=None, help="reader threads for ours")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="miou-bench-") as tmp:
        pred_dir = args.pred_dir
        if pred_dir is None:
            count = perturbed_predictions(args.gt_dir, tmp)
            pred_dir = tmp
            print(f"made {count} perturbed predictions in {tmp}")
        result = compare(args.gt_dir, pred_dir, repeats=args.repeats, workers=args.workers)
        if args.pred_dir is None:
            result["pred_dir"] = "(perturbed ground truth, temporary)"

    print(result["report"], end="")
    print(f"images            : {result['num_images']}")
    print(f"course tool way   : {result['course_s']:.3f} s")
    print(f"fcn-mean-iou way  : {result['ours_s']:.3f} s")
    print(f"speedup           : {result['speedup']:.2f}x")
    print(f"same numbers      : {'yes' if result['agree'] else 'NO'}")
    if not result["agree"]:
        print(result["course_report"], end="", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
