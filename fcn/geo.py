"""GeoTIFF scenes: windowed reading, georeferenced class maps, class areas, previews.

Orthophotos and satellite scenes are 10,000-50,000 px a side, 3-4 bands, uint8 or uint16, with a CRS
and sometimes nodata borders. This module reads them window by window with rasterio (an optional
extra: ``pip install -e ".[geo]"``; imported lazily, like TensorFlow) and predicts them with the
engine of :mod:`fcn.predict`, so memory stays bounded whatever the scene size.

* :func:`open_scene` -> :class:`Scene`: band choice (default: the bands whose colour interpretation is
  red, green, blue, else the first three; one band is read as grey), values mapped to 0-255 (the rule
  is in :func:`open_scene`), and a validity mask from the nodata value, an internal mask or an alpha
  band.
* :func:`predict_scene`: the class map ``<name>_mask.tif`` (:class:`MaskWriter`: uint8 class indices,
  the input's CRS and transform, the palette as colour table, nodata 255, tiled, DEFLATE, BigTIFF when
  needed), written band by band. Nodata pixels are filled with a neutral colour before inference
  (their values never reach the model) and come out as 255.
* :func:`scene_scale` / :func:`scale_for_gsd`: the inference scale from the pixel size in metres.
* :func:`class_areas`, :func:`write_stats`: pixels, fraction of the valid pixels, m² and hectares per
  class; :func:`write_overlay_preview`: a downsampled overlay JPEG.

How :func:`predict_scene` walks a scene. The in-memory path (:meth:`fcn.predict.Predictor.predict_classes`)
resizes the whole image to the working size (``scale``), cuts it into ``tile`` x ``tile`` windows
overlapping by at least ``overlap`` (:func:`fcn.predict.window_starts`), blends the windows' softmax
with :func:`fcn.predict.window_profile` weights, resizes the probabilities back and takes the argmax.
A scene of at most ``whole_max_pixels`` (3072²) runs exactly that way. A larger one runs the *same* windows,
one window row at a time:

1. each window's pixels are resampled from a source window read with the resampling kernel's
   support around it (the same ``ScaleAndTranslate`` kernel, scale and sample positions as the
   whole-image resize, so they equal the whole-image working pixels up to float rounding);
2. the windows are predicted by the engine at scale 1 (padding, batching and TTA included);
3. their weighted softmax is accumulated in a band of ``tile`` working rows across the scene width;
   rows that no later window touches are final, are resized back to source rows (again the
   whole-image kernel and positions) in chunks, argmaxed and written.

So a scene gives the in-memory result of the whole scene, not a mosaic of independent blocks: the
window seams are blended exactly as in memory. Memory is bounded by the tile, the scene *width* at
working scale (the band: 32 bytes per working pixel, ``tile`` rows; 224 MB for 32,768 px at scale
0.209) and fixed chunk budgets, never by the scene height.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import InputError
from .images import MASK_SUFFIX, make_like_new_file, write_image_atomic
from .palette import CLASS_NAMES, NUM_CLASSES, PALETTE, UNKNOWN

GEO_INSTALL_HINT = 'pip install -e ".[geo]"'
GEOTIFF_SUFFIXES = (".tif", ".tiff")
NODATA_CLASS = 255  # class value of nodata pixels in the output GeoTIFF
# The course tiles: DeepGlobe's 0.5 m pixels, 1224-px quadrants resized to 512 px.
COURSE_TILE_GSD_M = 0.5 * 1224 / 512
PERCENTILES = (2.0, 98.0)  # default value range of non-uint8 bands, per band
STATS_SIDE = 1024  # longest side of the decimated read that gives those percentiles
MASK_BLOCK = 512  # tile side of the output GeoTIFF
GDAL_CACHE_BYTES = 128 * 2**20  # GDAL's block cache (default 5 % of RAM) while a scene runs
# A scene of at most this many pixels (source and working) runs through Predictor.predict_classes
# whole: exactly the JPEG path (a 2448² DeepGlobe tile included). That path holds the image, its
# full-size float32 probabilities and their argmax at once (measured: 6.4 GiB peak for 8192² at scale
# 0.209), so larger scenes stream (2.2-2.4 GiB for 16,384² and 32,768²).
WHOLE_MAX_PIXELS = 3072 * 3072
FORWARD_CHUNK_PIXELS = 16 * 2**20  # source pixels resampled at once into a window
BACK_CHUNK_BYTES = 64 * 2**20  # float32 probabilities resized back to source rows at once
TRIANGLE_RADIUS = 1.0  # support of the bilinear ("triangle") kernel, in output pixels


# ---------------------------------------------------------------- rasterio, lazily


def _rasterio(path: str | os.PathLike | None = None):
    """Import rasterio, or fail with one line that says how to install it."""
    try:
        import rasterio
    except ImportError:
        where = f"{path}: " if path is not None else ""
        raise InputError(f"{where}reading and writing GeoTIFF needs rasterio: {GEO_INSTALL_HINT}") from None
    return rasterio


def is_geotiff(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a (Geo)TIFF by its suffix (``.tif``/``.tiff``, any case)."""
    return Path(path).suffix.lower() in GEOTIFF_SUFFIXES


def scene_mask_name(path: str | os.PathLike) -> str:
    """File name of a scene's class map: ``scene.tif`` -> ``scene_mask.tif``."""
    from .predict import tile_id

    return f"{tile_id(path)}{MASK_SUFFIX}.tif"


# ---------------------------------------------------------------- options


def parse_bands(text: str) -> tuple[int, ...]:
    """Parse ``--bands``: 3 band numbers (RGB) or 1 (grey), 1-based, comma-separated.

    Raises:
        InputError: not 1 or 3 positive integers.
    """
    try:
        bands = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--bands takes band numbers such as 1,2,3, got {text!r}") from None
    if len(bands) not in (1, 3) or min(bands) < 1:
        raise InputError(f"--bands takes 3 band numbers (R,G,B) or 1 (grey), counted from 1, got {text!r}")
    return bands


def _check_value_range(value_range) -> tuple[float, float] | None:
    if value_range is None:
        return None
    low, high = (float(v) for v in value_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"--value-range needs finite LO < HI, got {low:g} {high:g}")
    return low, high


# ---------------------------------------------------------------- reading scenes


@dataclass
class Scene:
    """An open GeoTIFF (or any raster rasterio reads) and how its pixels become RGB 0-255.

    Built by :func:`open_scene`; close it (or use it as a context manager) when done.

    Attributes:
        path: the file.
        height, width: size in pixels.
        bands: the 1-based bands read as R, G, B (one band: grey, repeated).
        value_ranges: per band of ``bands``, the (LO, HI) mapped to 0 and 255; None when the values
            are used as they are (uint8 without ``value_range``).
        crs: the rasterio CRS, or None.
        transform: the affine pixel -> CRS transform.
    """

    path: Path
    height: int
    width: int
    bands: tuple[int, ...]
    value_ranges: tuple[tuple[float, float], ...] | None
    crs: object | None
    transform: object
    _dataset: object = field(repr=False)

    # ------------------------------------------------------------ georeference

    @property
    def is_geographic(self) -> bool:
        """Whether the CRS is geographic (pixel sizes in degrees)."""
        return self.crs is not None and bool(self.crs.is_geographic)

    def _metres_per_unit(self) -> float | None:
        if self.crs is None or not self.crs.is_projected:
            return None
        try:
            _, factor = self.crs.linear_units_factor
        except Exception:  # rasterio raises CRSError when the CRS has no linear unit
            return None
        return float(factor) if factor and math.isfinite(factor) and factor > 0 else None

    @property
    def pixel_size_m(self) -> tuple[float, float] | None:
        """(x, y) pixel size in metres for a projected CRS with a linear unit; None otherwise."""
        factor = self._metres_per_unit()
        if factor is None:
            return None
        t = self.transform
        return math.hypot(t.a, t.d) * factor, math.hypot(t.b, t.e) * factor

    @property
    def gsd_m(self) -> float | None:
        """Ground sample distance in metres: the geometric mean of the pixel sides; None without one."""
        size = self.pixel_size_m
        return math.sqrt(size[0] * size[1]) if size is not None else None

    @property
    def pixel_area_m2(self) -> float | None:
        """Area of one pixel in m² (projected CRS with a linear unit), else None."""
        factor = self._metres_per_unit()
        if factor is None:
            return None
        t = self.transform
        return abs(t.a * t.e - t.b * t.d) * factor * factor

    # ------------------------------------------------------------ pixels

    @property
    def may_have_nodata(self) -> bool:
        """False when every pixel is valid by construction (no nodata value, mask or alpha; integer data)."""
        from rasterio.enums import MaskFlags

        flags = self._dataset.mask_flag_enums
        all_valid = all(flags[b - 1] == [MaskFlags.all_valid] for b in set(self.bands))
        return not (all_valid and np.issubdtype(self._dtype, np.integer))

    @property
    def _dtype(self) -> np.dtype:
        return np.dtype(self._dataset.dtypes[self.bands[0] - 1])

    def _window(self, rows, cols):
        from rasterio.windows import Window

        (r0, r1), (c0, c1) = rows or (0, self.height), cols or (0, self.width)
        if not (0 <= r0 < r1 <= self.height and 0 <= c0 < c1 <= self.width):
            raise ValueError(f"window rows {r0}:{r1}, cols {c0}:{c1} outside the {self.height}x{self.width} scene")
        return Window(c0, r0, c1 - c0, r1 - r0)

    def _read_raw(self, window, out_shape=None, resampling=None) -> tuple[np.ndarray, np.ndarray]:
        """Selected bands as stored, (B, h, w), and the validity mask (h, w) bool."""
        from rasterio.enums import MaskFlags, Resampling

        resampling = resampling if resampling is not None else Resampling.nearest
        dataset = self._dataset
        unique = tuple(dict.fromkeys(self.bands))
        shape = None if out_shape is None else (len(unique),) + tuple(out_shape)
        try:
            data = dataset.read(list(unique), window=window, out_shape=shape, resampling=resampling)
            valid = None
            shared_mask = None  # internal mask or alpha band: one mask for every band
            for k, band in enumerate(unique):
                flags = dataset.mask_flag_enums[band - 1]
                if flags == [MaskFlags.all_valid]:
                    band_valid = np.ones(data.shape[1:], dtype=bool)
                elif MaskFlags.nodata in flags:
                    nodata = dataset.nodatavals[band - 1]
                    band_valid = ~np.isnan(data[k]) if np.isnan(nodata) else data[k] != nodata
                else:
                    if shared_mask is None:
                        mask_shape = None if out_shape is None else tuple(out_shape)
                        shared_mask = dataset.read_masks(band, window=window, out_shape=mask_shape, resampling=Resampling.nearest) > 0
                    band_valid = shared_mask
                # GDAL's rule: a pixel is nodata when it is nodata in every band.
                valid = band_valid if valid is None else valid | band_valid
        except Exception as err:
            if err.__class__.__module__.startswith("rasterio"):
                raise InputError(f"{self.path}: cannot read pixels ({_first_line(err)})") from None
            raise
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        order = [unique.index(b) for b in self.bands]
        return data[order], valid

    def _to_uint8(self, data: np.ndarray) -> np.ndarray:
        """(B, h, w) stored values -> (h, w, 3) uint8 with the scene's value mapping."""
        bands = []
        for k in range(data.shape[0]):
            band = data[k]
            if self.value_ranges is not None:
                low, high = self.value_ranges[k]
                mapped = (band.astype(np.float64) - low) * (255.0 / (high - low))
                band = np.clip(np.rint(np.nan_to_num(mapped, nan=0.0)), 0, 255).astype(np.uint8)
            bands.append(band.astype(np.uint8, copy=False))
        if len(bands) == 1:
            bands *= 3
        return np.stack(bands, axis=-1)

    def read(
        self, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None, *, fill: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read a window as RGB uint8 and its validity mask.

        Args:
            rows: (first, stop) rows; None: all.
            cols: (first, stop) columns; None: all.
            fill: RGB written into the nodata pixels (None: left as mapped).

        Returns:
            ``(rgb, valid)``: (h, w, 3) uint8 and (h, w) bool.

        Raises:
            InputError: the file cannot be read there.
        """
        data, valid = self._read_raw(self._window(rows, cols))
        rgb = self._to_uint8(data)
        if fill is not None:
            rgb[~valid] = np.asarray(fill, dtype=np.uint8)
        return rgb, valid

    def read_valid(self, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None) -> np.ndarray:
        """The validity mask of a window, (h, w) bool (all True without nodata)."""
        window = self._window(rows, cols)
        if not self.may_have_nodata:
            return np.ones((int(window.height), int(window.width)), dtype=bool)
        return self._read_raw(window)[1]

    def read_preview(self, max_side: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole scene decimated to at most ``max_side`` px a side (averaged), RGB uint8 and validity.

        GDAL reads the overviews when the file has them.
        """
        from rasterio.enums import Resampling

        shape = preview_shape(self.height, self.width, max_side)
        data, valid = self._read_raw(self._window(None, None), out_shape=shape, resampling=Resampling.average)
        return self._to_uint8(data), valid

    def close(self) -> None:
        self._dataset.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__


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


def open_scene(
    path: str | os.PathLike,
    *,
    bands: Sequence[int] | None = None,
    value_range: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = PERCENTILES,
) -> Scene:
    """Open a GeoTIFF and decide how its pixels map to the RGB 0-255 the model takes.

    The value rule:

    * uint8 bands are used as they are, unless ``value_range`` is given;
    * ``value_range=(LO, HI)`` maps every selected band linearly, LO -> 0 and HI -> 255;
    * otherwise (uint16, int16, float...) each band maps its own percentiles ``percentiles``
      (default 2nd and 98th) of its *valid* pixels to 0 and 255, from a decimated read of at most
      1024 px a side (GDAL's overviews when the file has them);

    then values are clipped to 0-255 and rounded to the nearest integer. A pixel is nodata when it is
    nodata in every selected band (GDAL's rule): equal to the band's nodata value, masked by an
    internal mask or by a zero alpha; NaN and infinite values are nodata too.

    Args:
        path: the file.
        bands: 1-based bands read as R, G, B, or one band read as grey (None: :func:`default_bands`).
        value_range: the ``--value-range LO HI`` rule (None: the default rule above).
        percentiles: (low, high) percentiles of the default rule for non-uint8 data.

    Returns:
        The open :class:`Scene`.

    Raises:
        InputError: rasterio missing, no such file, not a readable raster, a band out of range.
    """
    rasterio = _rasterio(path)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    value_range = _check_value_range(value_range)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning: a plain TIFF is fine
            dataset = rasterio.open(path)
    except Exception as err:
        raise InputError(f"{path}: cannot read GeoTIFF ({_first_line(err)})") from None
    try:
        if bands is None:
            bands = default_bands(dataset.colorinterp, dataset.count)
        bands = tuple(int(b) for b in bands)
        if len(bands) not in (1, 3):
            raise InputError(f"{path}: --bands takes 3 band numbers (R,G,B) or 1 (grey), got {len(bands)}")
        for band in bands:
            if not 1 <= band <= dataset.count:
                raise InputError(f"{path}: --bands {band} is out of range: the file has {dataset.count} band{'s' * (dataset.count != 1)}")
        if len({dataset.dtypes[b - 1] for b in bands}) != 1:
            raise InputError(f"{path}: --bands {','.join(map(str, bands))} have different data types")
        scene = Scene(path, dataset.height, dataset.width, bands, None, dataset.crs, dataset.transform, dataset)
        if value_range is not None:
            scene.value_ranges = (value_range,) * len(bands)
        elif scene._dtype != np.uint8:
            scene.value_ranges = _percentile_ranges(scene, percentiles)
        return scene
    except BaseException:
        dataset.close()
        raise


def _percentile_ranges(scene: Scene, percentiles: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    """Per selected band, (low, high) percentiles of the valid pixels of a decimated read."""
    shape = preview_shape(scene.height, scene.width, STATS_SIDE)
    data, valid = scene._read_raw(scene._window(None, None), out_shape=shape)
    ranges = []
    for band in data:
        values = band[valid].astype(np.float64)
        if values.size == 0:
            ranges.append((0.0, 255.0))
            continue
        low, high = np.percentile(values, percentiles)
        ranges.append((float(low), float(high) if high > low else float(low) + 1.0))
    return tuple(ranges)


# ---------------------------------------------------------------- scale


def scale_for_gsd(input_gsd_m: float, model_gsd_m: float) -> float:
    """The inference scale that shows the model its training resolution: input GSD / model GSD.

    The model's GSD is the GSD of its training tiles divided by the training scale: course tiles are
    :data:`COURSE_TILE_GSD_M` (1.195 m/px) at their native 512 px, so a model trained at
    ``--image-size 256`` has 2.39 m/px, and a 0.5 m scene runs at 0.5 / 2.39 = 0.209.

    Raises:
        ValueError: a GSD that is not a positive finite number.
    """
    for name, value in (("input GSD", input_gsd_m), ("model GSD", model_gsd_m)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of metres, got {value!r}")
    return float(input_gsd_m) / float(model_gsd_m)


def scene_scale(
    scene: Scene,
    *,
    model_gsd_m: float | None,
    scale: float | None = None,
    input_gsd_m: float | None = None,
    default_scale: float = 1.0,
) -> tuple[float, str]:
    """The scale a scene runs at, and a one-line reason to print.

    In order: an explicit ``scale`` (``--scale``); ``input_gsd_m`` (``--input-gsd``) / the model's GSD;
    for a projected CRS, the scene's pixel size / the model's GSD; a scene without CRS behaves like a
    JPEG (``default_scale``). A geographic CRS (degrees) needs ``--input-gsd`` or ``--scale``.

    Args:
        scene: the open scene.
        model_gsd_m: the model's ground sample distance (m/px), None when the run does not record it.
        scale: ``--scale`` when given.
        input_gsd_m: ``--input-gsd`` when given.
        default_scale: the scale of inputs without a pixel size.

    Raises:
        InputError: geographic CRS without ``--input-gsd``/``--scale``; ``--input-gsd`` or a projected
            CRS with a model that records no GSD.
    """
    if scale is not None:
        return float(scale), f"scale {scale:.4g} (--scale)"
    if input_gsd_m is not None:
        if model_gsd_m is None:
            raise InputError("--input-gsd needs the model's training GSD, which this model does not record; use --scale")
        value = scale_for_gsd(input_gsd_m, model_gsd_m)
        return value, f"scale {value:.4g} = --input-gsd {input_gsd_m:g} m / model {model_gsd_m:.4g} m"
    if scene.is_geographic:
        raise InputError(f"{scene.path}: geographic CRS ({scene.crs}): pixel sizes are in degrees; give --input-gsd METRES (or --scale)")
    gsd = scene.gsd_m
    if gsd is not None:
        if model_gsd_m is None:
            raise InputError(f"{scene.path}: the model records no training GSD to match {gsd:.4g} m pixels; give --scale")
        value = scale_for_gsd(gsd, model_gsd_m)
        return value, f"scale {value:.4g} = pixel size {gsd:.4g} m / model {model_gsd_m:.4g} m"
    if scene.crs is not None:
        raise InputError(f"{scene.path}: CRS {scene.crs} has no linear unit; give --input-gsd METRES (or --scale)")
    return float(default_scale), f"scale {default_scale:.4g} (no CRS: as for JPEG/PNG)"


# ---------------------------------------------------------------- writing class maps


def palette_colormap() -> dict[int, tuple[int, int, int, int]]:
    """The GeoTIFF colour table: the palette's colours for classes 0-6, nodata transparent."""
    colormap = {index: (*map(int, PALETTE[index]), 255) for index in range(NUM_CLASSES)}
    colormap[NODATA_CLASS] = (0, 0, 0, 0)
    return colormap


class MaskWriter:
    """Write a one-band uint8 class-map GeoTIFF top to bottom, in full-width bands of rows.

    The file has the scene's CRS and transform, the palette as colour table (:func:`palette_colormap`),
    nodata 255, 512-px (256 for small maps) tiles, DEFLATE compression and BigTIFF when the size needs
    it. Rows are buffered until whole tile rows can be written, so every tile is compressed once. The
    file is written under a temporary name and renamed by :meth:`close`; :meth:`abort` (or an
    exception inside ``with``) removes it.

    Args:
        path: the ``.tif`` to write.
        height, width: size in pixels.
        crs, transform: georeference (None/identity for a plain TIFF).
    """

    def __init__(self, path: str | os.PathLike, *, height: int, width: int, crs=None, transform=None):
        rasterio = _rasterio(path)
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.block = MASK_BLOCK if min(height, width) >= 2 * MASK_BLOCK else MASK_BLOCK // 2
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}-", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        profile = dict(
            driver="GTiff", height=self.height, width=self.width, count=1, dtype="uint8", nodata=NODATA_CLASS,
            tiled=True, blockxsize=self.block, blockysize=self.block, compress="deflate", bigtiff="IF_SAFER",
            photometric="palette",
        )
        if crs is not None:
            profile["crs"] = crs
        if transform is not None:
            profile["transform"] = transform
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning for plain TIFFs
                self._dataset = rasterio.open(self._tmp, "w", **profile)
            self._dataset.write_colormap(1, palette_colormap())
        except Exception as err:
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"{self.path}: cannot write ({_first_line(err)})") from None
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self.rows_written = 0

    def append(self, rows: np.ndarray) -> None:
        """Add the next rows, (n, width) uint8 class indices (255: nodata)."""
        rows = np.asarray(rows, dtype=np.uint8)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"expected (n, {self.width}) rows, got {rows.shape}")
        if self.rows_written + self._pending_rows + len(rows) > self.height:
            raise ValueError("more rows than the map's height")
        self._pending.append(rows)
        self._pending_rows += len(rows)
        whole = self._pending_rows // self.block * self.block
        if whole:
            self._flush(whole)

    def _flush(self, count: int) -> None:
        buffer = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        from rasterio.windows import Window

        try:
            self._dataset.write(buffer[:count], 1, window=Window(0, self.rows_written, self.width, count))
        except Exception as err:
            raise InputError(f"{self.path}: cannot write ({_first_line(err)})") from None
        self.rows_written += count
        rest = buffer[count:]
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)

    def close(self) -> None:
        """Write the last rows, close and move the file into place."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        if self.rows_written != self.height:
            self.abort()
            raise ValueError(f"{self.path}: {self.rows_written} of {self.height} rows written")
        try:
            self._dataset.close()
            make_like_new_file(self._tmp)
            os.replace(self._tmp, self.path)
        except Exception as err:
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"{self.path}: cannot write ({_first_line(err)})") from None

    def abort(self) -> None:
        """Close and delete the temporary file."""
        try:
            self._dataset.close()
        except Exception:
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ---------------------------------------------------------------- resampling windows of a virtual resize


def _resample_spans(out_start: int, out_stop: int, scale: np.float32, in_size: int) -> tuple[int, int]:
    """Input index range [lo, hi) that outputs [out_start, out_stop) of a triangle resize read.

    ``scale`` is output size / input size (float32, as TensorFlow computes it); the antialiased kernel
    widens by 1/scale when shrinking. One extra pixel each side covers float rounding.
    """
    inv = 1.0 / float(scale)
    support = TRIANGLE_RADIUS * max(inv, 1.0)
    lo = math.floor((out_start + 0.5) * inv - support - 0.5) - 1
    hi = math.ceil((out_stop - 0.5) * inv + support - 0.5) + 2
    return max(0, lo), min(in_size, hi)


def _resize_window(region: np.ndarray, in_offset: tuple[int, int], out_offset: tuple[int, int], out_size: tuple[int, int], scale) -> np.ndarray:
    """Part of ``tf.image.resize(full, ..., "bilinear", antialias=True)`` computed from a region of ``full``.

    Args:
        region: (h, w, C) part of the full input, starting at ``in_offset`` (row, col).
        in_offset: where ``region`` starts in the full input.
        out_offset: where the wanted output window starts in the full output.
        out_size: (rows, cols) of the wanted output window.
        scale: (row, col) float32 factors full output / full input, as ``tf.image.resize`` computes them.

    Returns:
        (rows, cols, C) float32, equal to that window of the full resize up to float rounding, as long
        as ``region`` covers the kernel's support (see :func:`_resample_spans`).
    """
    import tensorflow as tf

    scale = np.asarray(scale, dtype=np.float32)
    translation = np.asarray(in_offset, dtype=np.float64) * scale - np.asarray(out_offset, dtype=np.float64)
    return tf.raw_ops.ScaleAndTranslate(
        images=region[None],
        size=np.asarray(out_size, dtype=np.int32),
        scale=scale,
        translation=translation.astype(np.float32),
        kernel_type="triangle",
        antialias=True,
    )[0].numpy()


def _neutral_rgb() -> tuple[int, int, int]:
    """The ImageNet mean colour, rounded: ~0 after the model's own preprocessing (CaffePreprocess)."""
    from .models import IMAGENET_BGR_MEAN

    return tuple(int(round(v)) for v in reversed(IMAGENET_BGR_MEAN))


# ---------------------------------------------------------------- predicting a scene


@dataclass
class SceneResult:
    """What :func:`predict_scene` wrote.

    Attributes:
        mask: the class-map GeoTIFF.
        class_counts: (7,) int64 pixels per class (nodata excluded).
        nodata_pixels: pixels written as nodata (255).
        pixel_area_m2: area of one pixel in m², None without a projected CRS.
        scale: the inference scale.
        windows: model windows run (1 for a whole scene).
        whole: True when the scene ran in one piece through ``Predictor.predict_classes``.
        seconds: wall time.
    """

    mask: Path
    class_counts: np.ndarray
    nodata_pixels: int
    pixel_area_m2: float | None
    scale: float
    windows: int
    whole: bool
    seconds: float


def predict_scene(
    predictor,
    scene: Scene,
    out_path: str | os.PathLike,
    *,
    scale: float | None = None,
    whole_max_pixels: int = WHOLE_MAX_PIXELS,
    verbose: int = 1,
) -> SceneResult:
    """Predict a scene window by window and write its class map as a GeoTIFF.

    Small scenes (at most ``whole_max_pixels`` before and after scaling) run whole through
    ``predictor.predict_classes`` — exactly what the JPEG path gives for the same pixels. Larger ones
    run the same sliding windows streamed a window row at a time (see the module docstring); memory
    is bounded by the tile, the scene width at working scale and fixed chunk sizes. Nodata pixels
    are filled with the ImageNet mean colour before inference and written as 255.

    Args:
        predictor: a :class:`fcn.predict.Predictor` (its ``tile``, ``overlap``, ``tta``,
            ``batch_size`` apply).
        scene: from :func:`open_scene`.
        out_path: the ``.tif`` to write (replaced atomically).
        scale: inference scale (None: ``predictor.scale``); see :func:`scene_scale`.
        whole_max_pixels: largest scene run whole.
        verbose: 1 shows a ``keras.utils.Progbar`` over model windows.

    Returns:
        The :class:`SceneResult` (class counts for :func:`class_areas`).

    Raises:
        InputError: the scene cannot be read or the mask cannot be written.
    """
    rasterio = _rasterio(scene.path)
    start = time.perf_counter()
    if scale is not None and scale != predictor.scale:
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive number, got {scale}")
        predictor = copy.copy(predictor)  # shares the compiled model function
        predictor.scale = float(scale)
    height, width = scene.height, scene.width
    work_h, work_w = predictor.working_size(height, width)
    counts = np.zeros(256, dtype=np.int64)
    fill = _neutral_rgb()

    def write(writer: MaskWriter, classes: np.ndarray) -> None:
        counts[:] += np.bincount(classes.ravel(), minlength=256)
        writer.append(classes)

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), MaskWriter(
        out_path, height=height, width=width, crs=scene.crs, transform=scene.transform
    ) as writer:
        whole = max(height * width, work_h * work_w) <= whole_max_pixels
        if whole:
            progress = _progress(1, verbose)
            rgb, valid = scene.read(fill=fill)
            classes = predictor.predict_classes(rgb)
            del rgb
            classes[~valid] = NODATA_CLASS
            write(writer, classes)
            windows = 1
            if progress is not None:
                progress.update(1)
        else:
            windows = _stream_scene(predictor, scene, fill, lambda rows: write(writer, rows), verbose)
    class_counts = counts[:NUM_CLASSES].copy()
    return SceneResult(
        mask=Path(out_path),
        class_counts=class_counts,
        nodata_pixels=int(counts[NODATA_CLASS]),
        pixel_area_m2=scene.pixel_area_m2,
        scale=predictor.scale,
        windows=windows,
        whole=whole,
        seconds=time.perf_counter() - start,
    )


def _progress(total: int, verbose: int):
    if not verbose:
        return None
    import keras

    return keras.utils.Progbar(total, unit_name="window")


def _stream_scene(predictor, scene: Scene, fill, emit, verbose: int) -> int:
    """The in-memory sliding window of ``predictor`` over a scene, one window row at a time.

    Mirrors ``Predictor._sliding_window`` and ``Predictor._finish`` (same windows, weights, summation
    order and resize kernels) without holding the scene: returns the number of windows run and hands
    each finished band of class rows (255 on nodata) to ``emit``, top to bottom.
    """
    from .predict import padded_side, window_profile, window_starts

    height, width = scene.height, scene.width
    work_h, work_w = predictor.working_size(height, width)
    resized = (work_h, work_w) != (height, width)
    forward_scale = (np.float32(work_h) / np.float32(height), np.float32(work_w) / np.float32(width))
    back_scale = (np.float32(height) / np.float32(work_h), np.float32(width) / np.float32(work_w))
    tile, overlap, classes_n = predictor.tile, predictor.overlap, predictor.num_classes

    # The windows of Predictor._sliding_window (an axis that fits in one tile is one padded window).
    window_h = tile if work_h > tile else padded_side(work_h)
    window_w = tile if work_w > tile else padded_side(work_w)
    rows = window_starts(max(work_h, window_h), window_h, overlap)
    cols = window_starts(max(work_w, window_w), window_w, overlap)
    block_h, block_w = min(window_h, work_h), min(window_w, work_w)
    row_weights = [window_profile(window_h, overlap, i > 0, i < len(rows) - 1)[:block_h] for i in range(len(rows))]
    col_weights = [window_profile(window_w, overlap, j > 0, j < len(cols) - 1)[:block_w] for j in range(len(cols))]
    blocks = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    progress = _progress(len(blocks), verbose)
    unit = copy.copy(predictor)  # the working windows are already at the working scale
    unit.scale = 1.0

    def working_window(i: int, j: int) -> tuple[np.ndarray, bool]:
        """Working pixels of window (i, j), and whether any source pixel under it is valid."""
        top, left = rows[i], cols[j]
        if not resized:
            rgb, valid = scene.read((top, top + block_h), (left, left + block_w), fill=fill)
            return rgb, bool(valid.any())
        src_cols = _resample_spans(left, left + block_w, forward_scale[1], width)
        chunk_rows = max(1, int(FORWARD_CHUNK_PIXELS * float(forward_scale[0]) / (src_cols[1] - src_cols[0])))
        parts, any_valid = [], False
        for first in range(top, top + block_h, chunk_rows):
            stop = min(first + chunk_rows, top + block_h)
            src_rows = _resample_spans(first, stop, forward_scale[0], height)
            rgb, valid = scene.read(src_rows, src_cols, fill=fill)
            any_valid |= bool(valid.any())
            part = _resize_window(rgb, (src_rows[0], src_cols[0]), (first, left), (stop - first, block_w), forward_scale)
            parts.append(np.clip(part, 0.0, 255.0))  # as Predictor._working_image clips
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]), any_valid

    pending: deque = deque()  # (i, j, predicted) in block order, filled by feed()

    def feed() -> Iterator[np.ndarray]:
        for i, j in blocks:
            work, any_valid = working_window(i, j)
            pending.append((i, j, any_valid))
            if any_valid:  # a window over nodata only needs no model call
                yield work

    # Accumulated weighted probabilities of working rows [band_top, band_top + len(band_sum)).
    band_sum = np.zeros((0, work_w, classes_n), dtype=np.float32)
    band_weight = np.zeros((0, work_w), dtype=np.float32)
    band_top = 0
    # Finished probabilities of working rows [done_top, done_top + len(done)), kept for the back resize.
    done = np.zeros((0, work_w, classes_n), dtype=np.float32)
    done_top = 0
    next_row = 0  # next source row to emit
    finished = 0

    def accumulate(i: int, j: int, probs: np.ndarray) -> None:
        nonlocal band_sum, band_weight
        top, left = rows[i], cols[j]
        needed = top + block_h - band_top
        if len(band_sum) < needed:
            extra = needed - len(band_sum)
            band_sum = np.concatenate([band_sum, np.zeros((extra, work_w, classes_n), np.float32)])
            band_weight = np.concatenate([band_weight, np.zeros((extra, work_w), np.float32)])
        weight = np.outer(row_weights[i], col_weights[j])
        area = (slice(top - band_top, top - band_top + block_h), slice(left, left + block_w))
        band_sum[area] += probs * weight[..., None]
        band_weight[area] += weight

    def finish_rows(stop: int, last: bool) -> None:
        """Working rows below ``stop`` are final: normalise them, emit the source rows they settle."""
        nonlocal band_sum, band_weight, band_top, done, done_top, next_row
        count = stop - band_top
        final = band_sum[:count] / band_weight[:count, :, None]
        band_sum, band_weight, band_top = band_sum[count:].copy(), band_weight[count:].copy(), stop
        done = np.concatenate([done, final]) if len(done) else final
        if not resized:
            out_stop = stop
        elif last:
            out_stop = height
        else:  # source rows whose back-resize support ends below `stop`
            out_stop = next_row
            while out_stop < height and _resample_spans(out_stop, out_stop + 1, back_scale[0], work_h)[1] <= stop:
                out_stop += 1
        chunk = max(1, BACK_CHUNK_BYTES // (width * classes_n * 4))
        for first in range(next_row, out_stop, chunk):
            end = min(first + chunk, out_stop)
            if resized:
                lo, hi = _resample_spans(first, end, back_scale[0], work_h)
                probs = _resize_window(done[lo - done_top : hi - done_top], (lo, 0), (first, 0), (end - first, width), back_scale)
            else:
                probs = done[first - done_top : end - done_top]
            classes = np.argmax(probs, axis=-1).astype(np.uint8)
            del probs
            if scene.may_have_nodata:
                classes[~scene.read_valid((first, end), (0, width))] = NODATA_CLASS
            emit(classes)
        next_row = out_stop
        keep_from = _resample_spans(next_row, next_row + 1, back_scale[0], work_h)[0] if resized else next_row
        keep_from = min(keep_from, stop)
        done, done_top = done[keep_from - done_top :].copy(), keep_from

    def handle(i: int, j: int, probs: np.ndarray | None) -> None:
        nonlocal finished
        if probs is None:  # nodata only: any probabilities do; they reach no valid pixel
            probs = np.full((block_h, block_w, classes_n), 1.0 / classes_n, dtype=np.float32)
        accumulate(i, j, probs)
        finished += 1
        if progress is not None:
            progress.update(finished)
        if j == len(cols) - 1:
            last = i == len(rows) - 1
            finish_rows(work_h if last else rows[i + 1], last)

    def drain_skipped() -> None:
        while pending and not pending[0][2]:
            i, j, _ = pending.popleft()
            handle(i, j, None)

    for probs in unit.predict_many(feed(), probabilities=True):
        drain_skipped()
        i, j, _ = pending.popleft()
        handle(i, j, probs)
    drain_skipped()
    return len(blocks)


# ---------------------------------------------------------------- statistics


@dataclass
class ClassArea:
    """One class of one input in ``--stats``."""

    input: str
    class_index: int
    name: str
    pixels: int
    fraction: float  # of the valid pixels
    area_m2: float | None  # None without a projected CRS
    area_ha: float | None


def class_areas(input_name: str, class_counts: Sequence[int], pixel_area_m2: float | None) -> list[ClassArea]:
    """Per class: pixels, fraction of the valid (non-nodata) pixels, m² and hectares.

    Args:
        input_name: the input's name in the table.
        class_counts: pixels per class, nodata excluded (``SceneResult.class_counts``).
        pixel_area_m2: area of one pixel (None: no areas).

    Returns:
        One :class:`ClassArea` per class, in palette order.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    valid = int(counts.sum())
    rows = []
    for index, pixels in enumerate(counts.tolist()):
        area = pixels * pixel_area_m2 if pixel_area_m2 is not None else None
        rows.append(
            ClassArea(
                input=input_name,
                class_index=index,
                name=CLASS_NAMES[index],
                pixels=pixels,
                fraction=pixels / valid if valid else 0.0,
                area_m2=area,
                area_ha=area / 10_000 if area is not None else None,
            )
        )
    return rows


STATS_FIELDS = ("input", "class_index", "name", "pixels", "fraction", "area_m2", "area_ha")


def write_stats(path: str | os.PathLike, areas: Sequence[ClassArea]) -> None:
    """Write ``--stats``: CSV (one row per input and class) or, for a ``.json`` path, a JSON list.

    Areas are empty (CSV) or null (JSON) for inputs without a projected CRS. Written atomically.

    Raises:
        InputError: the file cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps([{name: getattr(row, name) for name in STATS_FIELDS} for row in areas], indent=2) + "\n"
    else:
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        out.writerow(STATS_FIELDS)
        for row in areas:
            out.writerow(
                [row.input, row.class_index, row.name, row.pixels, f"{row.fraction:.6f}"]
                + ["" if row.area_m2 is None else f"{row.area_m2:.2f}", "" if row.area_ha is None else f"{row.area_ha:.4f}"]
            )
        text = buffer.getvalue()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent if str(path.parent) else ".")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        make_like_new_file(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise InputError(f"{path}: cannot write statistics ({err.strerror or err})") from None


# ---------------------------------------------------------------- overlay preview


def write_overlay_preview(scene: Scene, mask_path: str | os.PathLike, out_path: str | os.PathLike, *, max_side: int = 4096) -> tuple[int, int]:
    """A JPEG of the scene blended with its class map, at most ``max_side`` px a side.

    The scene is averaged and the mask sampled (nearest) down to the preview size; blending and the
    red class boundaries are :func:`fcn.predict.overlay_image`'s. Nodata pixels show the scene
    darkened, without colour.

    Returns:
        The preview's (height, width).
    """
    rasterio = _rasterio(mask_path)
    from rasterio.enums import Resampling

    from .predict import OVERLAY_JPEG_QUALITY, overlay_image

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):  # the decimated read decodes every source tile
        rgb, _ = scene.read_preview(max_side)
        with rasterio.open(mask_path) as mask:
            classes = mask.read(1, out_shape=rgb.shape[:2], resampling=Resampling.nearest)
    nodata = classes == NODATA_CLASS
    blended = overlay_image(rgb, np.where(nodata, UNKNOWN, classes).astype(np.uint8))
    blended[nodata] = rgb[nodata] // 2
    write_image_atomic(out_path, blended, quality=OVERLAY_JPEG_QUALITY)
    return blended.shape[:2]
