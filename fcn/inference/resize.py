"""The engine's one resize: bilinear with a triangle kernel that widens when shrinking (antialiased).

The kernel of ``tf.image.resize(..., "bilinear", antialias=True)``, which training's ``--image-size``
uses: half-pixel centres, a triangle of radius 1 input pixel, widened by the shrink factor when
shrinking, weights renormalised at the borders (plain bilinear when enlarging). Computed without
TensorFlow, so prediction with an exported model needs numpy and Pillow only:

* rows first, in numpy: each output row is a weighted sum of the input rows under the kernel, with
  one table of weights per axis size (:func:`_axis_table`), in float32, in a fixed order;
* then columns, by Pillow's ``BILINEAR`` resize of float32 ("F") images, which is the same kernel,
  computed in double precision, on whole rows.

Each output row depends only on its own input rows and the whole-width column pass, so a strip of
rows computed from a strip of input rows (with a halo as wide as the kernel) is bit for bit the same
rows of the whole resize: the streamed GeoTIFF scenes (:class:`StripResize`) and the in-memory engine
give the same pixels. Pillow and numpy release the GIL, so the channels run on several threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image

from fcn.core.workers import available_cores

KERNEL_RADIUS = 1.0  # triangle kernel support in input pixels, before widening when shrinking
THREADED_PIXELS = 256 * 256  # output planes at least this large run one channel per thread

_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=available_cores(), thread_name_prefix="fcn-resize")
    return _pool


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels rounded half to even, clipped to 0-255, as uint8 (training's rounding)."""
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


class AxisTable(NamedTuple):
    """One axis of a resize: output ``i`` is ``sum_k weights[i, k] * input[starts[i] + k]``.

    Attributes:
        starts: (out,) first input index read per output index.
        stops: (out,) one past the last input index with a non-zero weight.
        weights: (out, taps) float32, summing to 1 per row (zero beyond ``stops``).
    """

    starts: np.ndarray
    stops: np.ndarray
    weights: np.ndarray


@lru_cache(maxsize=32)
def _axis_table(in_size: int, out_size: int) -> AxisTable:
    """The triangle kernel's weights from ``in_size`` to ``out_size`` samples along one axis."""
    scale = in_size / out_size
    support = KERNEL_RADIUS * max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale
    starts = np.clip(np.floor(centres - support + 0.5).astype(np.int64), 0, in_size - 1)
    taps = min(int(math.ceil(support)) * 2 + 1, in_size)
    index = starts[:, None] + np.arange(taps)[None, :]
    distance = np.abs(index + 0.5 - centres[:, None]) / max(scale, 1.0)
    weights = np.where(index < in_size, np.maximum(0.0, 1.0 - distance), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    used = weights > 0
    stops = starts + taps - np.argmax(used[:, ::-1], axis=1)
    taps = int((stops - starts).max())  # drop tap columns that are zero for every output
    return AxisTable(starts, stops, np.ascontiguousarray(weights[:, :taps], dtype=np.float32))


def _rows_then_cols(plane: np.ndarray, table: AxisTable, rows: tuple[int, int], offset: int, width: int) -> np.ndarray:
    """Output rows [first, stop) of one (h, w) plane whose first row is input row ``offset``."""
    first, stop = rows
    starts, weights = table.starts[first:stop] - offset, table.weights[first:stop]
    last = plane.shape[0] - 1
    out = None
    for k in range(weights.shape[1]):
        term = plane[np.minimum(starts + k, last)].astype(np.float32) * weights[:, k, None]
        out = term if out is None else np.add(out, term, out=out)
    if out.shape[1] == width:
        return out
    return np.asarray(Image.fromarray(out).resize((width, out.shape[0]), Image.Resampling.BILINEAR))


def _resize_planes(array: np.ndarray, table: AxisTable, rows: tuple[int, int], offset: int, width: int) -> np.ndarray:
    """(h, w, C) input rows from ``offset`` -> output rows ``rows`` x ``width`` columns, float32, per channel."""
    out = np.empty((rows[1] - rows[0], width, array.shape[2]), dtype=np.float32)

    def one(channel: int) -> None:
        out[..., channel] = _rows_then_cols(array[..., channel], table, rows, offset, width)

    if out.shape[0] * width < THREADED_PIXELS or array.shape[2] == 1:
        for channel in range(array.shape[2]):
            one(channel)
    else:
        for future in [_threads().submit(one, channel) for channel in range(array.shape[2])]:
            future.result()
    return out


def resize_float(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (h, w, C) array to ``size`` (height, width); float32 out (e.g. probabilities)."""
    height, width = int(size[0]), int(size[1])
    if tuple(array.shape[:2]) == (height, width):
        return np.asarray(array, dtype=np.float32)
    return _resize_planes(array, _axis_table(array.shape[0], height), (0, height), 0, width)


def resize_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (h, w, 3) image to ``size`` (height, width), rounded to uint8 (the working pixels)."""
    return to_uint8(resize_float(rgb, size))


class StripResize:
    """Strips of output rows of the whole resize from ``in_size`` to ``out_size``, from strips of input rows.

    A strip is bit for bit the same rows of :func:`resize_float` on the whole input.

    Args:
        in_size: (height, width) of the whole input.
        out_size: (height, width) of the whole output.
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]):
        self.in_size = (int(in_size[0]), int(in_size[1]))
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.rows = _axis_table(self.in_size[0], self.out_size[0])
        self.cols = _axis_table(self.in_size[1], self.out_size[1])

    def source_rows(self, first: int, stop: int) -> tuple[int, int]:
        """Input rows [lo, hi) that output rows [first, stop) read."""
        return int(self.rows.starts[first:stop].min()), int(self.rows.stops[first:stop].max())

    def source_cols(self, first: int, stop: int) -> tuple[int, int]:
        """Input columns [lo, hi) that output columns [first, stop) read."""
        return int(self.cols.starts[first:stop].min()), int(self.cols.stops[first:stop].max())

    def __call__(self, region: np.ndarray, row_offset: int, rows: tuple[int, int]) -> np.ndarray:
        """Output rows ``rows`` (first, stop), all columns, as float32 (h, out width, C).

        Args:
            region: (h, input width, C) input rows starting at input row ``row_offset``; it must
                cover :meth:`source_rows` of the strip.
            row_offset: the whole input's row at which ``region`` starts.
            rows: the output strip.
        """
        if self.in_size == self.out_size:
            return np.asarray(region[rows[0] - row_offset : rows[1] - row_offset], dtype=np.float32)
        return _resize_planes(region, self.rows, rows, row_offset, self.out_size[1])
