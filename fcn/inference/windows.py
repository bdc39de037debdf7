"""Sliding-window geometry of the engine: padding to the model's stride, windows, blending, TTA transforms.

Shared by the in-memory engine (:mod:`fcn.inference.engine`) and the streamed scenes
(:mod:`fcn.inference.scenes`), which walk the same grid.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

STRIDE = 32  # five 2x poolings: model input sides must be multiples of this


def padded_side(side: int) -> int:
    """The smallest multiple of 32 that is >= ``side`` (and >= 32)."""
    return max(STRIDE, -(-side // STRIDE) * STRIDE)


def window_starts(side: int, window: int, overlap: int) -> list[int]:
    """Start offsets of sliding windows covering ``[0, side)`` along one axis.

    The first window starts at 0, the last ends exactly at ``side``, and the starts are evenly spaced
    with the fewest windows for which neighbours overlap by at least ``overlap`` pixels.

    Args:
        side: length of the axis.
        window: window length (``side <= window`` gives a single window at 0).
        overlap: minimum overlap of neighbouring windows, ``0 <= overlap < window``.

    Returns:
        Sorted start offsets.
    """
    if side <= window:
        return [0]
    stride = window - overlap
    count = -(-(side - window) // stride) + 1
    return [round(i * (side - window) / (count - 1)) for i in range(count)]


def window_profile(window: int, ramp: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """Blending weights of one window along one axis: 1, with raised-cosine ramps on inner sides.

    A side that faces a neighbouring window ramps from nearly 0 up to 1 over ``ramp`` pixels, as
    ``0.5 - 0.5 cos(pi (i + 0.5) / ramp)``: strictly positive, and two opposite ramps overlapping by
    exactly ``ramp`` pixels sum to 1. A side on the image border stays at 1, so border pixels (seen by
    one window only) never get a vanishing weight. Near a window's inner edges the network sees
    padding instead of the true neighbourhood; the ramps give those pixels to the neighbour.

    Args:
        window: window length.
        ramp: ramp length in pixels (0: flat weights).
        ramp_start: ramp up at index 0 (a neighbour lies before the window).
        ramp_end: ramp down at the end (a neighbour lies after it).

    Returns:
        (window,) float32 weights in (0, 1].
    """
    profile = np.ones(window, dtype=np.float32)
    ramp = min(ramp, window)
    if ramp > 0:
        rise = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        if ramp_start:
            profile[:ramp] = np.minimum(profile[:ramp], rise)
        if ramp_end:
            profile[window - ramp :] = np.minimum(profile[window - ramp :], rise[::-1])
    return profile


class WindowGrid(NamedTuple):
    """The sliding windows over an image of ``height`` x ``width`` working pixels (see :func:`window_grid`).

    Attributes:
        window: (height, width) of every window (multiples of 32).
        rows, cols: start offsets of the windows along each axis.
        row_weights, col_weights: per start, the window's blending profile along that axis.
    """

    window: tuple[int, int]
    rows: list[int]
    cols: list[int]
    row_weights: list[np.ndarray]
    col_weights: list[np.ndarray]

    @property
    def windows(self) -> list[tuple[int, int]]:
        """(row index, column index) of every window, row by row."""
        return [(i, j) for i in range(len(self.rows)) for j in range(len(self.cols))]

    def weight(self, i: int, j: int) -> np.ndarray:
        """(window height, window width) blending weights of window (i, j)."""
        return np.outer(self.row_weights[i], self.col_weights[j])


def window_grid(height: int, width: int, tile: int, overlap: int) -> WindowGrid:
    """The windows that cover a working image larger than one tile, and their blending weights.

    An axis longer than ``tile`` is cut into ``tile`` windows overlapping by at least ``overlap``
    (:func:`window_starts`); an axis that fits runs whole, reflect-padded to the next multiple of 32,
    so the windows cover ``max(side, window)`` pixels of the padded image along each axis. The
    in-memory sliding window and the streamed scenes of :mod:`fcn.inference.scenes` both walk this grid.

    Args:
        height, width: working image size (after ``scale``, before padding).
        tile: window side (a multiple of 32).
        overlap: minimum overlap of neighbouring windows, also the blending ramp length.

    Returns:
        The :class:`WindowGrid`.
    """
    window_h = tile if height > tile else padded_side(height)
    window_w = tile if width > tile else padded_side(width)
    rows = window_starts(max(height, window_h), window_h, overlap)
    cols = window_starts(max(width, window_w), window_w, overlap)
    return WindowGrid(
        window=(window_h, window_w),
        rows=rows,
        cols=cols,
        row_weights=[window_profile(window_h, overlap, i > 0, i < len(rows) - 1) for i in range(len(rows))],
        col_weights=[window_profile(window_w, overlap, j > 0, j < len(cols) - 1) for j in range(len(cols))],
    )


def reflect_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an (h, w, C) array at the bottom and right to (height, width) by reflection."""
    pad_h, pad_w = height - image.shape[0], width - image.shape[1]
    if pad_h == 0 and pad_w == 0:
        return image
    # numpy reflects repeatedly when the padding is longer than the image (e.g. a 1-pixel side).
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


# The 8 symmetries of the square as (transpose, flip rows, flip columns), applied in that order.
DIHEDRAL = tuple((t, r, c) for t in (False, True) for r in (False, True) for c in (False, True))


def transform(batch: np.ndarray, transpose: bool, flip_rows: bool, flip_cols: bool) -> np.ndarray:
    if transpose:
        batch = batch.transpose(0, 2, 1, 3)
    if flip_rows:
        batch = batch[:, ::-1]
    if flip_cols:
        batch = batch[:, :, ::-1]
    return batch


def untransform(batch: np.ndarray, transpose: bool, flip_rows: bool, flip_cols: bool) -> np.ndarray:
    if flip_cols:
        batch = batch[:, :, ::-1]
    if flip_rows:
        batch = batch[:, ::-1]
    if transpose:
        batch = batch.transpose(0, 2, 1, 3)
    return batch
