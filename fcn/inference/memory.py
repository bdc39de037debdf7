"""Memory estimates of prediction, checked before a job starts (:func:`fcn.core.memory.check_memory`)."""

from __future__ import annotations


def prediction_memory(height: int, width: int, scale: float, num_classes: int = 7) -> int:
    """Bytes predicting one (height, width) image at ``scale`` needs beyond the model (an upper estimate).

    The image is resized to the working size and predicted window by window into per-class float32
    probabilities over the whole working image, which are resized back to the image's size: the
    input at both sizes (uint8 and float32), the probabilities at both sizes, and the class maps.
    """
    work = max(1, round(height * scale)) * max(1, round(width * scale))
    full = height * width
    return int(work * (3 * 4 + 2 * num_classes * 4) + full * (3 + 3 * 4 + num_classes * 4 + 2))


def tile_memory(tile: int) -> int:
    """A rough bound of the model's working memory for one ``tile``² window (VGG16 activations, float32)."""
    return tile * tile * 64 * 4 * 8
