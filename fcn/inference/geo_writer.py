"""Writing georeferenced class maps: :class:`MaskWriter` and the check of what it wrote.

``<name>_mask.tif``: uint8 class indices, the input's CRS and transform, the palette as colour table,
nodata 255, tiled, DEFLATE, BigTIFF when needed, signed with the project's software tag, written top to
bottom in bands of rows under a temporary name, and re-read (:func:`verify_tiles`) before it is renamed
into place, because GDAL reports some failed writes (a full disk at close) only on stderr.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError, first_line
from fcn.core.figures import OVERLAY_JPEG_QUALITY, overlay_image
from fcn.core.files import DiskFullError, WriteError, atomic_path, is_disk_full, project_signature
from fcn.core.images import write_image_atomic
from fcn.core.palette import NUM_CLASSES, PALETTE, UNKNOWN
from fcn.core.stderr import c_stderr_to_log
from fcn.inference.geo import MASK_BLOCK, NODATA_CLASS, PREVIEW_SIDE, Scene, _gdal_reason, gdal_env, require_rasterio


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
    file is written under a temporary name (:func:`fcn.core.files.atomic_path`) and renamed by
    :meth:`close`; :meth:`abort` (or an exception inside ``with``) removes it.

    Args:
        path: the ``.tif`` to write.
        height, width: size in pixels.
        crs, transform: georeference (None for a plain TIFF).

    Raises:
        InputError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike, *, height: int, width: int, crs=None, transform=None):
        rasterio = require_rasterio(path)
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.block = MASK_BLOCK if min(height, width) >= 2 * MASK_BLOCK else MASK_BLOCK // 2
        profile = dict(
            driver="GTiff",
            height=self.height,
            width=self.width,
            count=1,
            dtype="uint8",
            nodata=NODATA_CLASS,
            tiled=True,
            blockxsize=self.block,
            blockysize=self.block,
            compress="deflate",
            bigtiff="IF_SAFER",
            photometric="palette",
        )
        if crs is not None:
            profile["crs"] = crs
        if transform is not None:
            profile["transform"] = transform
        self._atomic = atomic_path(self.path, verify=self._verify)
        self._finished = False
        tmp = self._atomic.__enter__()  # WriteError when the temporary file cannot be made
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning for plain TIFFs
                self._dataset = rasterio.open(tmp, "w", **profile)
            self._dataset.write_colormap(1, palette_colormap())
            self._dataset.update_tags(TIFFTAG_SOFTWARE=project_signature())
        except Exception as err:
            self._atomic.__exit__(type(err), err, None)
            raise self._write_error(err) from None
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
        from rasterio.windows import Window

        buffer = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        try:
            with c_stderr_to_log(str(self.path)):  # libtiff's own line on a full disk: the error below says it
                self._dataset.write(buffer[:count], 1, window=Window(0, self.rows_written, self.width, count))
        except Exception as err:
            raise self._write_error(err) from None
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
            with c_stderr_to_log(str(self.path)):  # GDAL may report a failed flush only on stderr: _verify re-reads
                self._dataset.close()
        except Exception as err:
            self.abort()
            raise self._write_error(err) from None
        self._finished = True
        try:
            self._atomic.__exit__(None, None, None)  # fsync, _verify, rename
        except OSError as err:
            raise self._write_error(err) from None

    def _write_error(self, err: BaseException) -> WriteError:
        """The one-line error of a failed write; :class:`DiskFullError` when the disk is (nearly) full."""
        if isinstance(err, DiskFullError):
            return err
        if is_disk_full(err) or _disk_nearly_full(self.path.parent):
            return DiskFullError(self.path, "No space left on device", errno.ENOSPC)
        return err if isinstance(err, WriteError) else WriteError(self.path, first_line(err, err.__class__.__name__))

    def _verify(self, tmp: Path) -> None:
        """Re-open the written file: its size, and every tile's bytes inside the file (GDAL may not raise)."""
        verify_tiles(tmp, self.height, self.width)

    def abort(self) -> None:
        """Close and delete the temporary file; the target is left as it was."""
        try:
            with c_stderr_to_log(str(self.path)):
                self._dataset.close()
        except Exception:
            pass
        if self._finished:
            return
        self._finished = True
        error = RuntimeError("class map not completed")
        self._atomic.__exit__(RuntimeError, error, None)  # the temporary file is removed

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def verify_tiles(path: str | os.PathLike, height: int, width: int) -> None:
    """Check a written one-band tiled GeoTIFF: its size in pixels, and that every tile lies inside the file.

    Raises:
        OSError: the file cannot be opened, has another size, or has a tile missing or cut off.
    """
    rasterio = require_rasterio(path)
    size = os.path.getsize(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = rasterio.open(path)
    except Exception as err:
        raise OSError(errno.EIO, f"the written file cannot be read back ({_gdal_reason(err)})") from None
    with dataset:
        if (dataset.height, dataset.width) != (height, width):
            raise OSError(errno.EIO, f"read back as {dataset.height}x{dataset.width}, not {height}x{width}")
        block_rows, block_cols = dataset.block_shapes[0]
        for row in range(-(-height // block_rows)):
            for col in range(-(-width // block_cols)):
                offset = dataset.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1)
                length = dataset.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1)
                if not offset or not length or int(offset) + int(length) > size:
                    raise OSError(errno.EIO, f"tile {row},{col} is missing or cut off in the written file")


def _disk_nearly_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < margin


# ---------------------------------------------------------------- overlay preview


def write_overlay_preview(
    scene: Scene, mask_path: str | os.PathLike, out_path: str | os.PathLike, *, max_side: int = PREVIEW_SIDE
) -> tuple[int, int]:
    """A JPEG of the scene blended with its class map, at most ``max_side`` px a side.

    The scene is averaged and the mask sampled (nearest) down to the preview size; blending and the
    red class boundaries are :func:`fcn.core.figures.overlay_image`'s. Nodata pixels show the scene
    darkened, without colour.

    Returns:
        The preview's (height, width).

    Raises:
        InputError: the scene or the mask cannot be read.
    """
    rasterio = require_rasterio(mask_path)
    from rasterio.enums import Resampling

    with gdal_env():  # the decimated read decodes every source tile
        rgb, _ = scene.read_preview(max_side)
        try:
            with rasterio.open(mask_path) as mask:
                classes = mask.read(1, out_shape=rgb.shape[:2], resampling=Resampling.nearest)
        except Exception as err:
            raise InputError(f"{mask_path}: cannot read ({first_line(err, err.__class__.__name__)})") from None
    nodata = classes == NODATA_CLASS
    blended = overlay_image(rgb, np.where(nodata, UNKNOWN, classes).astype(np.uint8))
    blended[nodata] = rgb[nodata] // 2
    write_image_atomic(out_path, blended, quality=OVERLAY_JPEG_QUALITY)
    return blended.shape[:2]
