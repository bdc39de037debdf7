"""Mean IoU of a folder of predicted masks against a folder of ground-truth masks (``fcn-mean-iou``).

Reports exactly what the course tool (NTU DLCV 2018 HW3 ``mean_iou_evaluate.py``) prints, but pairs
files by name instead of by position, checks sizes, reads and decodes the masks in a thread pool
and holds only the few pairs being read in memory. Does not import TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.files import project_signature, write_text_atomic
from fcn.core.folders import scan_folder
from fcn.core.images import read_rgb, tile_id
from fcn.core.mark import check_replaceable
from fcn.core.metrics import ConfusionMatrix
from fcn.core.palette import CODE_TO_CLASS, NUM_CLASSES
from fcn.core.paths import check_different_folders
from fcn.core.workers import io_workers, ordered_map

log = logging.getLogger(__name__)

MASK_EXTENSION = ".png"
# How many file names a missing/extra warning spells out before "...".
_NAMES_SHOWN = 5


@dataclass
class MaskPairing:
    """Ground-truth and prediction masks matched by name.

    Attributes:
        pairs: (ground-truth path, prediction path), sorted by ground-truth name.
        missing: ground-truth masks without a prediction.
        extra: predictions without a ground-truth mask.
    """

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    extra: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def _masks_by_key(folder: str | os.PathLike, role: str, unreadable: list | None = None) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder ({role} masks)")
    scan = scan_folder(folder, (MASK_EXTENSION,))  # hidden temporary files of killed writes are not masks
    if unreadable is not None:
        unreadable.extend(scan.problems)
    by_key: dict[str, Path] = {}
    for path in scan.files:
        key = tile_id(path)
        if key in by_key:
            raise InputError(f"{path}: same tile as {by_key[key].name}; keep one {role} mask per tile")
        by_key[key] = path
    return by_key


def _pair_masks(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> MaskPairing:
    """Match the ``*.png`` masks of two folders by tile id (see :func:`fcn.core.images.tile_id`).

    Args:
        gt_dir: folder of ground-truth masks (``xxxx_mask.png``; other files such as ``*_sat.jpg``
            are ignored).
        pred_dir: folder of predicted masks, named ``xxxx_mask.png`` or ``xxxx.png``.

    Returns:
        The pairing, with missing and extra files listed.

    Raises:
        InputError: a folder does not exist, holds no mask, or holds two masks for one tile.
    """
    check_different_folders(gt_dir, pred_dir, ("-g", "-p"))
    unreadable: list[tuple[Path, str]] = []
    gt = _masks_by_key(gt_dir, "ground-truth", unreadable)
    pred = _masks_by_key(pred_dir, "predicted", unreadable)
    if not gt:
        raise InputError(f"{gt_dir}: no {MASK_EXTENSION} ground-truth masks")
    return MaskPairing(
        pairs=[(gt[k], pred[k]) for k in sorted(gt) if k in pred],
        missing=[gt[k] for k in sorted(gt) if k not in pred],
        extra=[pred[k] for k in sorted(pred) if k not in gt],
        unreadable=unreadable,
    )


def _name_list(paths: Sequence[Path]) -> str:
    names = ", ".join(p.name for p in paths[:_NAMES_SHOWN])
    return names + (", ..." if len(paths) > _NAMES_SHOWN else "")


def _missing_message(missing: Sequence[Path]) -> str:
    """``3 ground-truth masks have no prediction: 0001_mask.png, ...``"""
    plural = "s have" if len(missing) != 1 else " has"
    return f"{len(missing)} ground-truth mask{plural} no prediction: {_name_list(missing)}"


def _extra_message(extra: Sequence[Path]) -> str:
    """``2 predictions have no ground-truth mask (ignored): 0201_mask.png, ...``"""
    plural = "s have" if len(extra) != 1 else " has"
    return f"{len(extra)} prediction{plural} no ground-truth mask (ignored): {_name_list(extra)}"


# Flat index gt_class * 7 + pred_class of each (gt code, pred code) pair, codes = 4R + 2G + B.
_CODE_PAIR_TO_CLASS_PAIR = (CODE_TO_CLASS.astype(np.intp)[:, None] * NUM_CLASSES + CODE_TO_CLASS[None, :]).ravel()


def _rgb_pair_counts(gt_rgb: np.ndarray, pred_rgb: np.ndarray) -> np.ndarray:
    """Confusion counts of two RGB masks, decoded with the course rule of :mod:`fcn.core.palette`.

    Equal to ``pair_counts(rgb_to_class(gt_rgb), rgb_to_class(pred_rgb))`` but about four times
    faster: the top bits of the six channels form one 6-bit code (gt code * 8 + pred code),
    counted by a single 64-bin bincount and folded into classes afterwards, so no per-pixel
    table lookup is needed.

    Args:
        gt_rgb: (H, W, 3) uint8 ground-truth mask.
        pred_rgb: (H, W, 3) uint8 predicted mask, same size.

    Returns:
        (7, 7) int64 counts, rows = ground truth.
    """
    gt_rgb = np.asarray(gt_rgb, dtype=np.uint8)
    pred_rgb = np.asarray(pred_rgb, dtype=np.uint8)
    if gt_rgb.shape != pred_rgb.shape or gt_rgb.ndim != 3 or gt_rgb.shape[-1] < 3:
        raise ValueError(f"expected two (H, W, 3) masks of one size, got {gt_rgb.shape} and {pred_rgb.shape}")
    # Bit 7 of a channel is exactly the course's ">= 128" threshold.
    codes = (
        ((gt_rgb[..., 0] & 128) >> 2)
        | ((gt_rgb[..., 1] & 128) >> 3)
        | ((gt_rgb[..., 2] & 128) >> 4)
        | ((pred_rgb[..., 0] & 128) >> 5)
        | ((pred_rgb[..., 1] & 128) >> 6)
        | (pred_rgb[..., 2] >> 7)
    )
    code_counts = np.bincount(codes.ravel(), minlength=64)
    counts = np.bincount(_CODE_PAIR_TO_CLASS_PAIR, weights=code_counts, minlength=NUM_CLASSES * NUM_CLASSES)
    # float64 weights are exact below 2**53 pixels per pair.
    return counts.astype(np.int64).reshape(NUM_CLASSES, NUM_CLASSES)


def _confusion_for_pair(gt_path: Path, pred_path: Path) -> np.ndarray:
    """Read one pair of masks, decode them with the course rule and count the pixel pairs.

    Returns:
        (7, 7) int64 counts, rows = ground truth.

    Raises:
        InputError: a file cannot be read, or the two sizes differ.
    """
    gt = read_rgb(gt_path)
    pred = read_rgb(pred_path)
    if gt.shape != pred.shape:
        raise InputError(
            f"{pred_path}: size {pred.shape[1]}x{pred.shape[0]} differs from its ground truth "
            f"{gt_path.name} ({gt.shape[1]}x{gt.shape[0]})"
        )
    return _rgb_pair_counts(gt, pred)


# Reading masks is all this job does (no model beside it), so it takes up to this many threads.
MAX_READERS = 8


def _evaluate_pairs(pairs: Sequence[tuple[Path, Path]], workers: int | None = None) -> ConfusionMatrix:
    """Pool the confusion counts of mask pairs, reading them a few pairs ahead in a thread pool.

    Args:
        pairs: (ground-truth path, prediction path) pairs.
        workers: threads (``io_workers(MAX_READERS)`` when None).

    Returns:
        The pooled confusion matrix.

    Raises:
        InputError: the first unreadable or mismatched pair, in pair order.
    """
    confusion = ConfusionMatrix(NUM_CLASSES)
    for counts in ordered_map(_pair_counts, pairs, workers or io_workers(MAX_READERS)):
        confusion.add_counts(counts)
    return confusion


def _pair_counts(pair: tuple[Path, Path]) -> np.ndarray:
    return _confusion_for_pair(*pair)


def evaluate_folders(
    gt_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    allow_missing: bool = False,
    workers: int | None = None,
) -> tuple[ConfusionMatrix, MaskPairing]:
    """Pair two mask folders by name and pool the confusion counts of every pair.

    Extra predictions and tolerated missing ones are logged as warnings.

    Args:
        gt_dir: ground-truth mask folder.
        pred_dir: predicted mask folder.
        allow_missing: score only the ground truths that have a prediction instead of failing.
        workers: reader threads (see :func:`_evaluate_pairs`).

    Returns:
        (confusion matrix, pairing).

    Raises:
        InputError: bad folder, missing predictions (unless ``allow_missing``), no pair at all,
            an unreadable mask or a size mismatch.
    """
    pairing = _pair_masks(gt_dir, pred_dir)
    for _, reason in pairing.unreadable:
        log.error("error: %s", reason)
    if pairing.extra:
        log.warning("warning: %s", _extra_message(pairing.extra))
    if pairing.missing:
        if not allow_missing:
            raise InputError(f"{pred_dir}: {_missing_message(pairing.missing)} (--allow-missing scores the rest)")
        log.warning("warning: %s", _missing_message(pairing.missing))
    if not pairing.pairs:
        raise InputError(f"{pred_dir}: no prediction matches a ground-truth mask in {gt_dir}")
    return _evaluate_pairs(pairing.pairs, workers=workers), pairing


@dataclass(frozen=True)
class MeanIouConfig:
    """What ``fcn-mean-iou`` was asked to do.

    Attributes:
        labels: ground-truth mask folder.
        pred: predicted mask folder.
        allow_missing: score the ground truths that have a prediction instead of failing.
        json: also write the summary to this file (signed; a file fcn did not write is refused).
        overwrite: replace a ``json`` file fcn did not write.
        confusion: also report the confusion matrix.
        workers: reader threads (None: the default rule).
    """

    labels: Path
    pred: Path
    allow_missing: bool = False
    json: Path | None = None
    overwrite: bool = False
    confusion: bool = False
    workers: int | None = None


def run_mean_iou(config: MeanIouConfig) -> Iterator[str]:
    """Score the folders; yields the course tool's text (and the matrix with ``confusion``), then
    writes the ``json`` summary, so the scores are out before a failed write.

    Raises:
        InputError: see :func:`evaluate_folders`; also a ``json`` file whose folder does not exist,
            or that exists and was not written by fcn (both checked before the work), or that cannot
            be written.
    """
    if config.json is not None:
        # Checked before the work so that a typo does not cost a whole evaluation.
        if not config.json.parent.is_dir():
            raise InputError(f"{config.json}: folder {config.json.parent} does not exist")
        check_replaceable(config.json, overwrite=config.overwrite, option="--json")
    confusion, pairing = evaluate_folders(config.labels, config.pred, config.allow_missing, config.workers)
    yield confusion.course_report()
    if config.confusion:
        yield confusion.format_matrix()
    if config.json is not None:
        _write_summary(config, confusion, pairing)
    if pairing.unreadable:
        count = len(pairing.unreadable)
        raise InputError(f"{count} mask file{'s' * (count != 1)} could not be read and were left out (see above)")


def _write_summary(config: MeanIouConfig, confusion, pairing: MaskPairing) -> None:
    summary = confusion.to_dict()
    summary.update(
        labels=str(config.labels),
        pred=str(config.pred),
        num_images=len(pairing.pairs),
        missing=[p.name for p in pairing.missing],
        extra=[p.name for p in pairing.extra],
        written_by=project_signature(),
    )
    try:
        write_text_atomic(config.json, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    except OSError as err:
        raise InputError(f"{config.json}: cannot write ({err.strerror})") from None
