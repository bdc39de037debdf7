"""Predicting GeoTIFF scenes of any size with bounded memory: the engine's answer, window by window.

:func:`predict_scene` gives a scene the class map that :meth:`fcn.inference.engine.Predictor.predict_classes`
gives the same pixels in memory, and writes it as a georeferenced GeoTIFF
(:class:`fcn.inference.geo_writer.MaskWriter`).

A scene of at most ``whole_max_pixels`` (3072², a 2448² DeepGlobe tile included) runs whole through
``predict_classes``. A larger one runs the engine's *same* sliding windows (:func:`fcn.inference.engine.window_grid`),
one window row at a time:

1. each window row's working pixels are resized across the scene width from the source rows under
   it plus a halo as wide as the resize kernel (:class:`fcn.inference.resize.StripResize`: the
   engine's own resize, so bit for bit the same rows as the whole image's), rounded to uint8 like
   the whole image, and cut into the row's windows;
2. the windows are predicted by the engine at scale 1 (padding, batching and TTA included);
3. their weighted softmax is accumulated in a band of ``tile`` working rows across the scene width;
   rows that no later window touches are final, are resized back to source rows (strips with a
   halo, the same resize) in chunks, argmaxed and written.

So a scene gives the in-memory class map bit for bit, not a mosaic of independent blocks. Memory is
bounded by the window batch, the scene *width* at working scale (the band: 32 bytes per working
pixel, ``tile`` rows) and fixed chunk budgets, never by the scene height.

:func:`scene_scale` is the scale rule: a projected CRS gives the pixel size, and the scale is pixel
size / the model's training ground sample distance, the rule ``--input-gsd`` applies to images.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.palette import NUM_CLASSES
from fcn.core.progress import progress_bar
from fcn.inference.engine import Predictor, window_grid
from fcn.inference.geo import NODATA_CLASS, Scene, gdal_env
from fcn.inference.geo_writer import MaskWriter
from fcn.inference.resize import StripResize, to_uint8
from fcn.model.checkpoints import ModelInfo

# A scene of at most this many pixels (source and working) runs through Predictor.predict_classes
# whole: exactly the JPEG path, which holds the image and its full-size probabilities at once; larger
# scenes stream (peak memory figures: docs/BENCHMARKS.md).
WHOLE_MAX_PIXELS = 3072 * 3072
# Model input pixels per backend call for scenes (windows x tile², x4 with TTA): 1 window of 1024²,
# 4 of 512²; keeps a 32,768² scene under 3 GiB (docs/BENCHMARKS.md).
SCENE_BATCH_PIXELS = 1024 * 1024
# The fill of nodata pixels: the ImageNet mean colour (fcn.model.builders.IMAGENET_BGR_MEAN as RGB,
# rounded), ~0 after the model's own preprocessing. Written out, not imported, so that scenes run
# with an exported model never load Keras (tests/inference/test_scenes.py checks the two agree).
NEUTRAL_RGB = (124, 117, 104)
FORWARD_CHUNK_PIXELS = 16 * 2**20  # source pixels resampled at once into a window
BACK_CHUNK_BYTES = 32 * 2**20  # float32 probabilities resized back to source rows at once (x3 while resizing)


# ---------------------------------------------------------------- scale


def scene_scale(
    scene: Scene, info: ModelInfo, *, scale: float | None = None, input_gsd: float | None = None
) -> tuple[float, str]:
    """The scale a scene runs at, and the reason to print.

    In order: ``scale`` (``--scale``); ``input_gsd`` (``--input-gsd``) / the model's training ground
    sample distance; for a projected CRS, the scene's pixel size / that distance (the same rule); a
    scene without CRS behaves like a JPEG: the scale the model was trained at. A geographic CRS
    (degrees) needs ``--input-gsd`` or ``--scale``.

    Args:
        scene: the open scene.
        info: the model's :class:`fcn.model.checkpoints.ModelInfo`.
        scale: ``--scale`` when given.
        input_gsd: ``--input-gsd`` (metres per pixel) when given.

    Raises:
        InputError: a geographic CRS or a CRS without linear unit and no ``--input-gsd``/``--scale``;
            a ground sample distance with a model that does not record its own.
    """
    if scale is not None:
        return float(scale), "--scale"
    if input_gsd is not None:
        gsd, source = input_gsd, f"--input-gsd {input_gsd:g} m/px"
    elif scene.is_geographic:
        raise InputError(
            f"{scene.path}: geographic CRS ({scene.crs}): pixel sizes are in degrees; "
            "give --input-gsd M (metres per pixel) or --scale"
        )
    elif scene.crs is None:
        return info.train_scale, "no CRS: the scale the model was trained at, as for JPEG/PNG images"
    elif scene.gsd_m is None:
        raise InputError(
            f"{scene.path}: CRS {scene.crs} has no linear unit; give --input-gsd M (metres per pixel) or --scale"
        )
    else:
        gsd, source = scene.gsd_m, f"pixel size {scene.gsd_m:.4g} m from the CRS"
    try:
        value = info.scale_for(gsd)
    except ValueError as err:
        raise InputError(f"{scene.path}: {source}, but {err}") from None
    return value, f"{source}, model trained at {info.model_gsd:.4g} m/px"


def scene_batch_size(predictor: Predictor, max_batch_pixels: int | None = SCENE_BATCH_PIXELS) -> int:
    """The predictor's batch size, lowered so that one backend call holds at most ``max_batch_pixels``.

    A call holds ``batch_size`` windows of ``tile``² pixels, 4x as many with TTA; at least one window.
    """
    if max_batch_pixels is None:
        return predictor.batch_size
    per_window = predictor.tile * predictor.tile * (4 if predictor.tta else 1)
    return max(1, min(predictor.batch_size, max_batch_pixels // per_window))


# ---------------------------------------------------------------- predicting a scene


@dataclass
class SceneResult:
    """What :func:`predict_scene` wrote.

    Attributes:
        mask: the class-map GeoTIFF.
        class_counts: (7,) int64 pixels per class (nodata excluded).
        nodata_pixels: pixels written as nodata (255).
        scale: the inference scale.
        batch_size: windows per backend call.
        windows: sliding windows over the scene (1 for a scene that fits one tile).
        skipped_windows: windows over nodata only, not run through the model (streamed scenes).
        whole: True when the scene ran in one piece through ``Predictor.predict_classes``.
        seconds: wall time.
    """

    mask: Path
    class_counts: np.ndarray
    nodata_pixels: int
    scale: float
    batch_size: int
    windows: int
    skipped_windows: int
    whole: bool
    seconds: float


def predict_scene(
    predictor: Predictor,
    scene: Scene,
    out_path: str | os.PathLike,
    *,
    whole_max_pixels: int = WHOLE_MAX_PIXELS,
    max_batch_pixels: int | None = SCENE_BATCH_PIXELS,
    verbose: int = 1,
) -> SceneResult:
    """Predict a scene window by window and write its class map as a GeoTIFF.

    Small scenes (at most ``whole_max_pixels`` before and after scaling) run whole through
    ``predictor.predict_classes``: exactly what the JPEG path gives for the same pixels. Larger ones
    run the same sliding windows streamed a window row at a time (see the module docstring). Nodata
    pixels are filled with the ImageNet mean colour before inference (their values never reach the
    model) and written as 255.

    Args:
        predictor: the engine, at the scene's scale (:func:`scene_scale`, ``Predictor.replace``); its
            ``tile``, ``overlap``, ``tta`` apply, and ``batch_size`` up to ``max_batch_pixels``.
        scene: from :func:`fcn.inference.geo.open_scene`.
        out_path: the ``.tif`` to write (replaced atomically).
        whole_max_pixels: largest scene run whole.
        max_batch_pixels: cap on model input pixels per backend call (:func:`scene_batch_size`;
            None: no cap).
        verbose: 1 shows a progress bar over model windows (:func:`fcn.core.progress.progress_bar`).

    Returns:
        The :class:`SceneResult` (class counts for :func:`fcn.inference.areas.class_areas`).

    Raises:
        InputError: the scene cannot be read or the mask cannot be written.
    """
    start = time.perf_counter()
    batch_size = scene_batch_size(predictor, max_batch_pixels)
    if batch_size != predictor.batch_size:
        predictor = predictor.replace(batch_size=batch_size)
    height, width = scene.height, scene.width
    work_h, work_w = predictor.working_size(height, width)
    counts = np.zeros(256, dtype=np.int64)

    def write(writer: MaskWriter, classes: np.ndarray) -> None:
        counts[:] += np.bincount(classes.ravel(), minlength=256)
        writer.append(classes)

    whole = max(height * width, work_h * work_w) <= whole_max_pixels
    windows = len(window_grid(work_h, work_w, predictor.tile, predictor.overlap).windows)
    with (
        gdal_env(),
        MaskWriter(out_path, height=height, width=width, crs=scene.crs, transform=scene.transform) as writer,
        progress_bar(1 if whole else windows, unit="window", enabled=verbose > 0) as bar,
    ):
        if whole:
            rgb, valid = scene.read(fill=NEUTRAL_RGB)
            classes = predictor.predict_classes(rgb)
            classes[~valid] = NODATA_CLASS
            write(writer, classes)
            skipped = 0
            bar.update(1)
        else:
            skipped = _stream_scene(predictor, scene, NEUTRAL_RGB, lambda rows: write(writer, rows), bar)
    return SceneResult(
        mask=Path(out_path),
        class_counts=counts[:NUM_CLASSES].copy(),
        nodata_pixels=int(counts[NODATA_CLASS]),
        scale=predictor.scale,
        batch_size=predictor.batch_size,
        windows=windows,
        skipped_windows=skipped,
        whole=whole,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------- windows of the engine's whole-image resizes


class _SceneResampling:
    """The engine's resizes of a whole scene (source <-> working size), a strip of rows at a time.

    Working pixels are made a window row at a time, across the whole width (so bit for bit the rows of
    the engine's whole-image resize, :class:`fcn.inference.resize.StripResize`), and the windows of
    that row are cut from the strip.
    """

    def __init__(self, scene: Scene, work_size: tuple[int, int], fill) -> None:
        self.scene, self.fill = scene, fill
        self.source_size = (scene.height, scene.width)
        self.work_size = work_size
        self.resized = work_size != self.source_size
        if self.resized:
            self.forward = StripResize(self.source_size, work_size)
            self.back = StripResize(work_size, self.source_size)  # as Predictor._finish
        self._strip_rows: tuple[int, int] | None = None
        self._strip = self._valid_cols = None

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, bool]:
        """Working pixels of working rows x cols (first, stop), and whether any source pixel under them is valid."""
        if not self.resized:
            rgb, valid = self.scene.read(rows, cols, fill=self.fill)
            return rgb, bool(valid.any())
        if self._strip_rows != rows:
            self._strip = self._valid_cols = None  # the previous window row's strip is done
            self._strip, self._valid_cols = self._working_strip(rows)
            self._strip_rows = rows
        lo, hi = self.forward.source_cols(*cols)
        return self._strip[:, cols[0] : cols[1]], bool(self._valid_cols[lo:hi].any())

    def _working_strip(self, rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 working rows [first, stop) across the width, and which source columns under them are valid."""
        height, width = self.source_size
        chunk_rows = max(1, int(FORWARD_CHUNK_PIXELS * self.work_size[0] / height / width))
        parts, valid_cols = [], np.zeros(width, dtype=bool)
        for first in range(rows[0], rows[1], chunk_rows):
            stop = min(first + chunk_rows, rows[1])
            src_rows = self.forward.source_rows(first, stop)
            rgb, valid = self.scene.read(src_rows, (0, width), fill=self.fill)
            valid_cols |= valid.any(axis=0)
            # Rounded to uint8 as the engine rounds the whole working image.
            parts.append(to_uint8(self.forward(rgb, src_rows[0], (first, stop))))
            del rgb, valid
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]), valid_cols

    def settled_rows(self, next_row: int, work_stop: int, last: bool) -> int:
        """The source row up to which rows are final once working rows below ``work_stop`` are."""
        height = self.source_size[0]
        if not self.resized:
            return work_stop
        if last:
            return height
        stop = next_row  # source rows whose back-resize support ends below work_stop
        while stop < height and self.back.source_rows(stop, stop + 1)[1] <= work_stop:
            stop += 1
        return stop


class _BlendBand:
    """Weighted window probabilities over a band of working rows, emitted as source class rows once final.

    Same weights, summation order and back resize as ``Predictor._sliding_window`` / ``_finish``, so
    the emitted rows equal the in-memory class map.
    """

    def __init__(self, resampling: _SceneResampling, grid, block: tuple[int, int], classes_n: int, emit) -> None:
        self.resampling, self.grid, self.block, self.emit = resampling, grid, block, emit
        work_w = resampling.work_size[1]
        # Accumulated weighted probabilities of working rows [band_top, band_top + len(band_sum)).
        self.band_sum = np.zeros((0, work_w, classes_n), dtype=np.float32)
        self.band_weight = np.zeros((0, work_w), dtype=np.float32)
        self.band_top = 0
        # Finished probabilities of working rows [done_top, done_top + len(done)), kept for the back resize.
        self.done = np.zeros((0, work_w, classes_n), dtype=np.float32)
        self.done_top = 0
        self.next_row = 0  # next source row to emit

    def add(self, i: int, j: int, probs: np.ndarray) -> None:
        """Adds window (i, j)'s probabilities, weighted by the grid's blending weights."""
        (block_h, block_w), top, left = self.block, self.grid.rows[i], self.grid.cols[j]
        needed = top + block_h - self.band_top
        if len(self.band_sum) < needed:  # grown in place of a concatenation: one band-sized buffer, not two
            grown_sum = np.zeros((needed, *self.band_sum.shape[1:]), np.float32)
            grown_sum[: len(self.band_sum)] = self.band_sum
            grown_weight = np.zeros((needed, self.band_weight.shape[1]), np.float32)
            grown_weight[: len(self.band_weight)] = self.band_weight
            self.band_sum, self.band_weight = grown_sum, grown_weight
        weight = self.grid.weight(i, j)[:block_h, :block_w]
        area = (slice(top - self.band_top, top - self.band_top + block_h), slice(left, left + block_w))
        self.band_sum[area] += probs * weight[..., None]
        self.band_weight[area] += weight

    def finish_rows(self, stop: int, last: bool) -> None:
        """Working rows below ``stop`` are final: normalise them, emit the source rows they settle."""
        count = stop - self.band_top
        final = self.band_sum[:count]
        final /= self.band_weight[:count, :, None]  # normalised in place (the band's largest buffer)
        self.done = np.concatenate([self.done, final]) if len(self.done) else final
        self.band_sum, self.band_weight = self.band_sum[count:].copy(), self.band_weight[count:].copy()
        self.band_top = stop
        resampling, scene = self.resampling, self.resampling.scene
        height, width = resampling.source_size
        out_stop = resampling.settled_rows(self.next_row, stop, last)
        chunk = max(1, BACK_CHUNK_BYTES // (width * self.done.shape[-1] * 4))
        for first in range(self.next_row, out_stop, chunk):
            end = min(first + chunk, out_stop)
            if resampling.resized:
                lo, hi = resampling.back.source_rows(first, end)
                probs = resampling.back(self.done[lo - self.done_top : hi - self.done_top], lo, (first, end))
            else:
                probs = self.done[first - self.done_top : end - self.done_top]
            classes = np.argmax(probs, axis=-1).astype(np.uint8)
            del probs
            if scene.may_have_nodata:
                classes[~scene.read_valid((first, end), (0, width))] = NODATA_CLASS
            self.emit(classes)
        self.next_row = out_stop
        keep_from = out_stop
        if resampling.resized and out_stop < height:
            keep_from = resampling.back.source_rows(out_stop, out_stop + 1)[0]
        keep_from = min(keep_from, stop)
        self.done, self.done_top = self.done[keep_from - self.done_top :].copy(), keep_from


def _stream_scene(predictor: Predictor, scene: Scene, fill, emit, bar) -> int:
    """The in-memory sliding window of ``predictor`` over a scene, one window row at a time.

    Mirrors ``Predictor._sliding_window`` and ``Predictor._finish`` without holding the scene: hands
    each finished band of class rows (255 on nodata) to ``emit``, top to bottom, advances ``bar`` per
    window, and returns the number of windows skipped (nodata only).
    """
    work_h, work_w = predictor.working_size(scene.height, scene.width)
    resampling = _SceneResampling(scene, (work_h, work_w), fill)
    classes_n = predictor.num_classes
    grid = window_grid(work_h, work_w, predictor.tile, predictor.overlap)
    rows, cols = grid.rows, grid.cols
    # The part of each window inside the image (the engine pads a block itself, as it pads an image).
    block_h, block_w = min(grid.window[0], work_h), min(grid.window[1], work_w)
    band = _BlendBand(resampling, grid, (block_h, block_w), classes_n, emit)
    unit = predictor.replace(scale=1.0)  # the working windows are already at the working scale
    pending: deque = deque()  # (i, j, any valid pixel) in block order, filled by feed()

    def feed() -> Iterator[np.ndarray]:
        for i, j in grid.windows:
            work, any_valid = resampling.window((rows[i], rows[i] + block_h), (cols[j], cols[j] + block_w))
            pending.append((i, j, any_valid))
            if any_valid:  # a window over nodata only needs no model call
                yield work

    skipped = 0

    def handle(i: int, j: int, probs: np.ndarray | None) -> None:
        nonlocal skipped
        if probs is None:  # nodata only: any probabilities do; they reach no valid pixel
            skipped += 1
            probs = np.full((block_h, block_w, classes_n), 1.0 / classes_n, dtype=np.float32)
        band.add(i, j, probs)
        bar.update(1)
        if j == len(cols) - 1:  # a window row is done
            band.finish_rows(work_h if i == len(rows) - 1 else rows[i + 1], i == len(rows) - 1)

    def drain_skipped() -> None:
        while pending and not pending[0][2]:
            i, j, _ = pending.popleft()
            handle(i, j, None)

    for probs in unit.predict_many(feed(), probabilities=True):
        drain_skipped()
        i, j, _ = pending.popleft()
        handle(i, j, probs)
    drain_skipped()
    return skipped
