"""Memory estimates of prediction, checked before a job starts (:func:`fcn.core.memory.check_memory`)."""

from __future__ import annotations

_WINDOW_BYTES_PER_PIXEL = 64 * 4 * 8  # the model's working memory per window pixel (VGG16 activations, float32)


def prediction_memory(height: int, width: int, scale: float, num_classes: int = 7) -> int:
    """Bytes predicting one (height, width) image at ``scale`` needs beyond the model (an upper estimate).

    The image is resized to the working size and predicted window by window into per-class float32
    probabilities over the whole working image, which are resized back to the image's size: the
    input at both sizes (uint8 and float32), the probabilities at both sizes, and the class maps.
    """
    work = max(1, round(height * scale)) * max(1, round(width * scale))
    full = height * width
    return int(work * (3 * 4 + 2 * num_classes * 4) + full * (3 + 3 * 4 + num_classes * 4 + 2))


def _tile_memory(tile: int) -> int:
    """A rough bound of the model's working memory for one ``tile``² window."""
    return tile * tile * _WINDOW_BYTES_PER_PIXEL


def batch_memory(height: int, width: int, scale: float, tile: int, batch_size: int, tta: bool = False) -> int:
    """A rough bound of the model's working memory for one backend call over images of this size.

    An image whose working size fits one ``tile`` runs whole, ``batch_size`` such images per call; a
    larger one runs as ``tile``² windows, at most ``batch_size`` (and at most its window count) per
    call. ``tta`` calls the model on 4 transforms at once. Guards ``--batch-size`` as
    :func:`prediction_memory` guards ``--scale``.
    """
    work_h, work_w = max(1, round(height * scale)), max(1, round(width * scale))
    if work_h <= tile and work_w <= tile:
        per_call = batch_size * work_h * work_w
    else:
        windows = -(-work_h // tile) * -(-work_w // tile)
        per_call = min(batch_size, windows) * tile * tile
    return per_call * _WINDOW_BYTES_PER_PIXEL * (4 if tta else 1)
