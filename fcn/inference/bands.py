"""Which bands of a scene are read, and how their values map to the 0-255 RGB the model takes.

:mod:`fcn.inference.geo` applies these rules when it opens a scene; rasterio is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (2.0, 98.0)  # default value range of non-uint8 bands, per band


def round_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """:func:`fcn.data.pipeline.round_to_uint8_tf` in numpy: round half to even, clip to 0-255, uint8."""
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def preview_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the longer side is at most ``max_side`` (never enlarged)."""
    factor = min(1.0, max_side / max(height, width))
    return max(1, round(height * factor)), max(1, round(width * factor))


def default_bands(colorinterp: Sequence, count: int) -> tuple[int, ...]:
    """The bands read by default: red, green, blue by colour interpretation, else the first three.

    Alpha bands are never picked; fewer than three other bands give the first one, read as grey.
    """
    from rasterio.enums import ColorInterp

    interp = list(colorinterp)
    if all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return tuple(interp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))
    candidates = [b for b in range(1, count + 1) if interp[b - 1] != ColorInterp.alpha] or [1]
    return tuple(candidates[:3]) if len(candidates) >= 3 else (candidates[0],)
