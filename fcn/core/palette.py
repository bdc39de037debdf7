"""The seven land-cover classes, their colours, and the course's mask decoding rule.

This is the only place the palette is defined. It needs numpy only; the TensorFlow variant
imports TensorFlow lazily so that metric tools start instantly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LandCoverClass(NamedTuple):
    index: int
    name: str
    rgb: tuple[int, int, int]


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(0, "urban", (0, 255, 255)),
    LandCoverClass(1, "agriculture", (255, 255, 0)),
    LandCoverClass(2, "rangeland", (255, 0, 255)),
    LandCoverClass(3, "forest", (0, 255, 0)),
    LandCoverClass(4, "water", (0, 0, 255)),
    LandCoverClass(5, "barren", (255, 255, 255)),
    LandCoverClass(6, "unknown", (0, 0, 0)),
)
NUM_CLASSES = len(CLASSES)
UNKNOWN = 6
# The course scores classes 0-5; Unknown is excluded from the mean IoU.
SCORED_CLASSES = tuple(range(UNKNOWN))
CLASS_NAMES = tuple(c.name for c in CLASSES)
PALETTE = np.array([c.rgb for c in CLASSES], dtype=np.uint8)  # (7, 3), row = class index


def _code_table() -> np.ndarray:
    """Class index for each code 4R + 2G + B of the thresholded channels (0..7)."""
    table = np.full(8, UNKNOWN, dtype=np.uint8)  # code 4 (pure red) is not a class: Unknown
    for cls in CLASSES:
        r, g, b = (int(v >= 128) for v in cls.rgb)
        table[4 * r + 2 * g + b] = cls.index
    return table


CODE_TO_CLASS = _code_table()


def rgb_to_class(mask_rgb: np.ndarray) -> np.ndarray:
    """Decode an RGB(A) mask to class indices with the course rule.

    Each channel is thresholded at 128 and the code 4R + 2G + B picks the class; red (code 4),
    which the course leaves undefined, maps to Unknown. Alpha, if present, is ignored.

    Args:
        mask_rgb: (H, W, 3) or (H, W, 4) integer array.

    Returns:
        (H, W) uint8 array of class indices 0..6.
    """
    mask_rgb = np.asarray(mask_rgb)
    if mask_rgb.ndim != 3 or mask_rgb.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) or (H, W, 4) mask, got shape {mask_rgb.shape}")
    bits = mask_rgb[..., :3] >= 128
    code = (bits[..., 0].astype(np.uint8) << 2) | (bits[..., 1].astype(np.uint8) << 1) | bits[..., 2]
    return CODE_TO_CLASS[code]


def class_to_rgb(class_map: np.ndarray) -> np.ndarray:
    """Colour a (H, W) map of class indices with the palette: (H, W, 3) uint8."""
    class_map = np.asarray(class_map)
    if class_map.size and (class_map.min() < 0 or class_map.max() >= NUM_CLASSES):
        raise ValueError(f"class indices must lie in 0..{NUM_CLASSES - 1}")
    return PALETTE[class_map]
