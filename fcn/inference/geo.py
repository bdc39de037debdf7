"""GeoTIFF I/O: reading scenes window by window, writing georeferenced class maps and previews.

Orthophotos and satellite scenes are 10,000-50,000 px a side, 3-4 bands, uint8 or uint16, with a CRS
and sometimes nodata borders. This module reads and writes them with rasterio (an optional extra:
``pip install -e ".[geo]"``; imported lazily, like TensorFlow); :mod:`fcn.inference.scenes` predicts them.

* :func:`open_scene` -> :class:`Scene`: band choice (default: the bands whose colour interpretation is
  red, green, blue, else the first three; one band is read as grey), values mapped to 0-255 (the rule
  below), a validity mask from the nodata value, an internal mask or an alpha
  band, and the pixel size in metres of a projected CRS.
* :class:`fcn.inference.geo_writer.MaskWriter` (its own module) writes the class map ``<name>_mask.tif``.
* :func:`fcn.inference.geo_writer.write_overlay_preview`: the scene blended with its class map, as a JPEG.

The value rule of :func:`open_scene`:

* uint8 bands are used as they are, unless ``value_range`` is given;
* ``value_range=(LO, HI)`` maps every selected band linearly, LO -> 0 and HI -> 255;
* otherwise (uint16, int16, float...) each band maps its own percentiles ``percentiles``
  (default 2nd and 98th) of its *valid* pixels to 0 and 255, from a decimated read of at most
  1024 px a side (GDAL's overviews when the file has them), made at the first pixel read;

then values are clipped to 0-255 and rounded to the nearest integer. A pixel is nodata when it is
nodata in every selected band (GDAL's rule): equal to the band's nodata value, masked by an
internal mask or by a zero alpha; NaN and infinite values are nodata too.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError, first_line
from fcn.core.images import MASK_SUFFIX, tile_id
from fcn.inference.bands import PERCENTILES, default_bands, preview_shape, round_to_uint8

GEO_INSTALL_HINT = 'pip install -e ".[geo]"'
GEOTIFF_SUFFIXES = (".tif", ".tiff")
NODATA_CLASS = 255  # class value of nodata pixels in the output GeoTIFF
MASK_BLOCK = 512  # tile side of the output GeoTIFF
STATS_SIDE = 1024  # longest side of the decimated read that gives the default value ranges
PREVIEW_SIDE = 4096  # longest side of an overlay preview
GDAL_CACHE_BYTES = 128 * 2**20  # GDAL's block cache (default 5 % of RAM) while a scene is read


# ---------------------------------------------------------------- rasterio, lazily


def require_rasterio(path: str | os.PathLike | None = None):
    """Import rasterio, or fail with one line that says how to install it.

    Raises:
        InputError: rasterio is not installed (the message names ``path`` when given).
    """
    try:
        import rasterio
    except ImportError:
        where = f"{path}: " if path is not None else ""
        raise InputError(f"{where}reading and writing GeoTIFF needs rasterio: {GEO_INSTALL_HINT}") from None
    return rasterio


def gdal_env():
    """The rasterio environment scenes are read and written in: a bounded GDAL block cache."""
    return require_rasterio().Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


def is_geotiff(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a (Geo)TIFF by its suffix (``.tif``/``.tiff``, any case)."""
    return Path(path).suffix.lower() in GEOTIFF_SUFFIXES


def scene_mask_name(path: str | os.PathLike) -> str:
    """File name of a scene's class map: ``scene.tif`` -> ``scene_mask.tif``."""
    return f"{tile_id(path)}{MASK_SUFFIX}.tif"


def metres_per_unit(crs) -> float | None:
    """Metres per unit of a projected CRS with a linear unit; None for a geographic CRS or none."""
    if crs is None or not crs.is_projected:
        return None
    try:
        _, factor = crs.linear_units_factor
    except Exception:  # rasterio raises CRSError when the CRS has no linear unit
        return None
    return float(factor) if factor and math.isfinite(factor) and factor > 0 else None


def pixel_area(crs, transform) -> float | None:
    """Ground area of one pixel in m² from a projected CRS with a linear unit (None: geographic or no CRS)."""
    factor = metres_per_unit(crs)
    if factor is None:
        return None
    return abs(transform.a * transform.e - transform.b * transform.d) * factor * factor


# ---------------------------------------------------------------- reading scenes


@dataclass
class Scene:
    """An open GeoTIFF (or any raster rasterio reads) and how its pixels become RGB 0-255.

    Built by :func:`open_scene` (``bands``: the 1-based bands read as R, G, B, or one grey band; ``crs``
    and ``transform``: rasterio's); close it (or use it as a context manager) when done.
    """

    path: Path
    height: int
    width: int
    bands: tuple[int, ...]
    crs: object | None
    transform: object
    _dataset: object = field(repr=False)
    _value_range: tuple[float, float] | None = field(default=None, repr=False)
    _percentiles: tuple[float, float] = field(default=PERCENTILES, repr=False)
    _value_ranges: object = field(default=False, repr=False)  # False: not computed yet

    # ------------------------------------------------------------ georeference

    @property
    def is_geographic(self) -> bool:
        """Whether the CRS is geographic (pixel sizes in degrees)."""
        return self.crs is not None and bool(self.crs.is_geographic)

    @property
    def pixel_size_m(self) -> tuple[float, float] | None:
        """(x, y) pixel size in metres for a projected CRS with a linear unit; None otherwise."""
        factor = metres_per_unit(self.crs)
        if factor is None:
            return None
        t = self.transform
        return math.hypot(t.a, t.d) * factor, math.hypot(t.b, t.e) * factor

    @property
    def gsd_m(self) -> float | None:
        """Ground sample distance in metres: the pixel side (geometric mean of unequal sides); None without one."""
        size = self.pixel_size_m
        if size is None:
            return None
        return size[0] if size[0] == size[1] else math.sqrt(size[0] * size[1])

    @property
    def pixel_area_m2(self) -> float | None:
        """Area of one pixel in m² (projected CRS with a linear unit), else None."""
        return pixel_area(self.crs, self.transform)

    # ------------------------------------------------------------ pixels

    @property
    def value_ranges(self) -> tuple[tuple[float, float], ...] | None:
        """Per band of ``bands``, the (LO, HI) mapped to 0 and 255; None when values are used as they are.

        Computed at first use (the default rule for non-uint8 data reads the whole scene decimated).
        """
        if self._value_ranges is False:
            if self._value_range is not None:
                self._value_ranges = (self._value_range,) * len(self.bands)
            elif self._dtype != np.uint8:
                self._value_ranges = self._percentile_ranges()
            else:
                self._value_ranges = None
        return self._value_ranges

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
                        shared_mask = (
                            dataset.read_masks(band, window=window, out_shape=mask_shape, resampling=Resampling.nearest)
                            > 0
                        )
                    band_valid = shared_mask
                # GDAL's rule: a pixel is nodata when it is nodata in every band.
                valid = band_valid if valid is None else valid | band_valid
        except Exception as err:
            if err.__class__.__module__.startswith("rasterio"):
                raise InputError(f"{self.path}: cannot read pixels ({_gdal_reason(err)})") from None
            raise
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        order = [unique.index(b) for b in self.bands]
        return data[order], valid

    def _percentile_ranges(self) -> tuple[tuple[float, float], ...]:
        """Per selected band, (low, high) percentiles of the valid pixels of a decimated read."""
        data, valid = self._read_raw(
            self._window(None, None), out_shape=preview_shape(self.height, self.width, STATS_SIDE)
        )
        ranges = []
        for band in data:
            values = band[valid].astype(np.float64)
            if values.size == 0:
                ranges.append((0.0, 255.0))
                continue
            low, high = np.percentile(values, self._percentiles)
            ranges.append((float(low), float(high) if high > low else float(low) + 1.0))
        return tuple(ranges)

    def _to_uint8(self, data: np.ndarray) -> np.ndarray:
        """(B, h, w) stored values -> (h, w, 3) uint8 with the scene's value mapping."""
        ranges = self.value_ranges
        bands = []
        for k in range(data.shape[0]):
            band = data[k]
            if ranges is not None:
                low, high = ranges[k]
                mapped = (band.astype(np.float64) - low) * (255.0 / (high - low))
                band = round_to_uint8(np.nan_to_num(mapped, nan=0.0))
            bands.append(band.astype(np.uint8, copy=False))
        if len(bands) == 1:
            bands *= 3
        return np.stack(bands, axis=-1)

    def read(
        self,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int] | None = None,
        *,
        fill: Sequence[int] | None = None,
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


def check_value_range(value_range) -> tuple[float, float] | None:
    """``--value-range LO HI`` as floats (None stays None).

    Raises:
        InputError: not finite, or LO >= HI.
    """
    if value_range is None:
        return None
    low, high = (float(v) for v in value_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"--value-range needs finite LO < HI, got {low:g} {high:g}")
    return low, high


def open_scene(
    path: str | os.PathLike,
    *,
    bands: Sequence[int] | None = None,
    value_range: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = PERCENTILES,
) -> Scene:
    """Open a GeoTIFF and decide how its pixels map to the RGB 0-255 the model takes.

    Opening reads the header only; the value rule is in the module's docstring.

    Args:
        path: the file.
        bands: 1-based bands read as R, G, B, or one band read as grey (None: :func:`fcn.inference.bands.default_bands`).
        value_range: the ``--value-range LO HI`` rule (None: the default rule above).
        percentiles: (low, high) percentiles of the default rule for non-uint8 data.

    Returns:
        The open :class:`Scene`.

    Raises:
        InputError: rasterio missing, no such file, not a readable raster, a band out of range.
    """
    rasterio = require_rasterio(path)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    value_range = check_value_range(value_range)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning: a plain TIFF is fine
            dataset = rasterio.open(path)
    except Exception as err:
        raise InputError(f"{path}: cannot read GeoTIFF ({_gdal_reason(err)})") from None
    try:
        if bands is None:
            bands = default_bands(dataset.colorinterp, dataset.count)
        bands = tuple(int(b) for b in bands)
        if len(bands) not in (1, 3):
            raise InputError(f"{path}: --bands takes 3 band numbers (R,G,B) or 1 (grey), got {len(bands)}")
        for band in bands:
            if not 1 <= band <= dataset.count:
                raise InputError(
                    f"{path}: --bands {band} is out of range: the file has {dataset.count} band{'s' * (dataset.count != 1)}"
                )
        if len({dataset.dtypes[b - 1] for b in bands}) != 1:
            raise InputError(f"{path}: --bands {','.join(map(str, bands))} have different data types")
        return Scene(
            path,
            dataset.height,
            dataset.width,
            bands,
            dataset.crs,
            dataset.transform,
            dataset,
            _value_range=value_range,
            _percentiles=tuple(percentiles),
        )
    except BaseException:
        dataset.close()
        raise


def _gdal_reason(err: BaseException) -> str:
    """GDAL's first line, without its 'See previous exception' (the previous one went to stderr)."""
    text = first_line(err, err.__class__.__name__)
    if "see previous exception" in text.lower():
        return "the file is truncated or damaged"
    return text
