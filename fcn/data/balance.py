"""Class balancing: per-class pixel counts of the training masks and median-frequency weights."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fcn.core.images import read_mask
from fcn.core.palette import NUM_CLASSES, UNKNOWN
from fcn.core.workers import io_workers
from fcn.data.pairs import CHECK_WORKERS, Pair


def class_pixel_counts(
    masks: Iterable[Pair | np.ndarray], num_classes: int = NUM_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class pixel counts, and per-class total pixels of the masks containing that class.

    Args:
        masks: pairs (their mask files are read in parallel) or (H, W) integer label arrays.
        num_classes: length of the returned arrays.

    Returns:
        ``(class_pixels, pixels_of_masks_with_class)``, both int64 arrays of length num_classes.
    """
    masks = list(masks)

    def counts(item) -> np.ndarray:
        labels = read_mask(item.mask_path) if isinstance(item, Pair) else np.asarray(item)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in 0..{num_classes - 1}")
        return np.bincount(labels.ravel().astype(np.int64), minlength=num_classes)

    if any(isinstance(m, Pair) for m in masks):
        with ThreadPoolExecutor(max_workers=io_workers(CHECK_WORKERS)) as pool:
            per_mask = list(pool.map(counts, masks))
    else:
        per_mask = [counts(m) for m in masks]
    class_pixels = np.zeros(num_classes, np.int64)
    pixels_with_class = np.zeros(num_classes, np.int64)
    for c in per_mask:
        class_pixels += c
        pixels_with_class += np.where(c > 0, c.sum(), 0)
    return class_pixels, pixels_with_class


def median_frequency_weights(
    masks: Iterable[Pair | np.ndarray],
    num_classes: int = NUM_CLASSES,
    *,
    ignore_unknown: bool = True,
    power: float = 1.0,
) -> np.ndarray:
    """Median-frequency class balancing weights (Eigen & Fergus, 2015).

    ``freq(c)`` = pixels of class c / total pixels of the training masks in which c appears;
    ``weight(c) = median(freq) / freq(c)``, the median taken over the classes that appear. A class
    that never appears gets weight 0 (there is nothing to weight). Unknown (class 6) is not a
    scored class and is mostly clouds or no-data, so by default it is left out of the median and
    gets weight 0: its pixels then do not pull on the model (use ``ignore_unknown=True`` in the
    loss as well to also leave them out of the loss average).

    Args:
        masks: training pairs (masks read from disk) or (H, W) integer label arrays.
        num_classes: number of classes.
        ignore_unknown: treat Unknown as described above; False treats it like any class.
        power: raise the weights to this power (0.5: a softer balancing, "sqrt-median").

    Returns:
        float32 array of length ``num_classes``.
    """
    class_pixels, pixels_with_class = class_pixel_counts(masks, num_classes)
    counted = class_pixels > 0
    if ignore_unknown and num_classes > UNKNOWN:
        counted[UNKNOWN] = False
    weights = np.zeros(num_classes, np.float64)
    if counted.any():
        freq = class_pixels[counted] / pixels_with_class[counted]
        weights[counted] = (np.median(freq) / freq) ** power
    return weights.astype(np.float32)
