"""Inference on tiles of any size, and the ``fcn-predict`` command.

:class:`Predictor` wraps a trained FCN (any input size, fixed or ``None``) and turns RGB images of any
height and width into softmax probabilities or class maps:

* sides that are multiples of 32 run as they are; others are reflect-padded to the next multiple of 32
  and the output is cropped back;
* an image larger than ``tile`` on either side runs as a sliding window of ``tile`` x ``tile`` windows
  overlapping by at least ``overlap`` pixels, batched, whose softmax outputs are averaged with smooth
  weights (:func:`window_profile`), so memory stays bounded by the window batch, whatever the size;
* ``scale`` resizes the image before inference (bilinear, antialiased when shrinking) and the
  *probabilities* back to the original size (bilinear), so a class map is the argmax of the resized
  probabilities (smoother boundaries than resizing the class map with nearest neighbour);
* ``tta`` averages the softmax over the 8 dihedral transforms (flips and 90-degree rotations).

One ``tf.function`` with a shape-free signature is traced once per predictor and reused for every
image, window batch and size. :meth:`Predictor.predict_many` batches consecutive same-size images that
run whole (the common case: 512x512 tiles) into one model call; the training loop can reuse one
predictor every epoch because the function reads the model's current weights.

The command (``python scripts/predict.py --model RUN_DIR --input DIR --output DIR``) writes one palette
mask ``<id>_mask.png`` per image, decoding the next images and encoding the finished masks in a thread
pool while the model runs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from .backends import artefact_format, open_backend
from .errors import InputError, run_cli
from .images import MASK_SUFFIX, SAT_SUFFIX, list_images, read_rgb, write_image_atomic, write_mask
from .palette import NUM_CLASSES, PALETTE
from .runtime import PRECISIONS, resolve_precision

STRIDE = 32  # five 2x poolings: model input sides must be multiples of this
DEFAULT_TILE = 1024  # largest side run in one call; bigger images run as a sliding window
MODEL_FILES = ("best.keras", "last.keras")  # what a run directory holds, in order of preference
OVERLAY_ALPHA = 0.45
BOUNDARY_RGB = (255, 0, 0)  # pure red is no class colour, so boundaries never look like a class
OVERLAY_JPEG_QUALITY = 90


# ---------------------------------------------------------------- geometry


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


def _reflect_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an (h, w, C) array at the bottom and right to (height, width) by reflection."""
    pad_h, pad_w = height - image.shape[0], width - image.shape[1]
    if pad_h == 0 and pad_w == 0:
        return image
    # numpy reflects repeatedly when the padding is longer than the image (e.g. a 1-pixel side).
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


# The 8 symmetries of the square as (transpose, flip rows, flip columns), applied in that order.
DIHEDRAL = tuple((t, r, c) for t in (False, True) for r in (False, True) for c in (False, True))


def _transform(batch, transpose: bool, flip_rows: bool, flip_cols: bool, xp):
    """Apply one dihedral transform to an NHWC batch; ``xp`` is numpy or tensorflow (its ``transpose``)."""
    if transpose:
        batch = xp.transpose(batch, (0, 2, 1, 3))
    if flip_rows:
        batch = batch[:, ::-1]
    if flip_cols:
        batch = batch[:, :, ::-1]
    return batch


def _untransform(batch, transpose: bool, flip_rows: bool, flip_cols: bool, xp):
    """Invert :func:`_transform`."""
    if flip_cols:
        batch = batch[:, :, ::-1]
    if flip_rows:
        batch = batch[:, ::-1]
    if transpose:
        batch = xp.transpose(batch, (0, 2, 1, 3))
    return batch


def _dihedral_mean(batch, count, call, concat, xp):
    """Softmax averaged over the 8 dihedral transforms of ``batch`` (``count`` images).

    Two calls of 4x the batch: the four flips keep the shape, the four transposed variants swap
    height and width (not stackable with the others for non-square inputs). Written once for both
    engines: TensorFlow tensors inside the Keras model's tf.function, numpy arrays around a backend.
    """
    total = 0.0
    for transpose in (False, True):
        variants = [t for t in DIHEDRAL if t[0] == transpose]
        probs = call(concat([_transform(batch, *t, xp) for t in variants]))
        for k, variant in enumerate(variants):
            total += _untransform(probs[k * count : (k + 1) * count], *variant, xp)
    return total / len(DIHEDRAL)


def is_backend(model) -> bool:
    """True for an exported-model backend (:mod:`fcn.backends`), False for a Keras model."""
    return not hasattr(model, "output_shape") and callable(model) and hasattr(model, "num_classes")


# ---------------------------------------------------------------- the inference engine


class Predictor:
    """Softmax probabilities and class maps of RGB images of any size.

    Args:
        model: a Keras model mapping RGB 0-255 float32 (B, H, W, 3) to softmax (B, H, W, C), for
            sides that are multiples of 32 (a model built with a fixed input size also works: the
            compiled function has a shape-free signature); or an exported-model backend from
            :mod:`fcn.backends` (``num_classes`` and a numpy ``__call__`` with the same contract).
        scale: resize factor applied before inference (1.0: none). The output always has the input's
            size.
        tile: window side in pixels (a multiple of 32); larger working images (after ``scale``) run
            as a sliding window.
        overlap: minimum overlap of neighbouring windows, ``0 <= overlap < tile`` (None: tile // 8); also the length of
            the blending ramps.
        tta: average the softmax over the 8 flips/rotations (8x the compute; each model call then
            holds 4 x ``batch_size`` images).
        batch_size: images or windows per model call.

    Raises:
        ValueError: an argument is out of range.
    """

    def __init__(self, model, *, scale: float = 1.0, tile: int = DEFAULT_TILE, overlap: int | None = None, tta: bool = False, batch_size: int = 4):
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive number, got {scale}")
        if tile < STRIDE or tile % STRIDE:
            raise ValueError(f"tile must be a positive multiple of {STRIDE}, got {tile}")
        if overlap is None:
            overlap = tile // 8
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must lie in [0, tile={tile}), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.scale = float(scale)
        self.tile = int(tile)
        self.overlap = int(overlap)
        self.tta = bool(tta)
        self.batch_size = int(batch_size)
        self.num_classes = int(model.num_classes) if is_backend(model) else int(model.output_shape[-1])
        self._forward = self._compile()

    def _compile(self) -> Callable[[np.ndarray], np.ndarray]:
        """The function from a float32 (B, H, W, 3) numpy batch to (B, H, W, C) float32 numpy probabilities."""
        model, tta = self.model, self.tta
        if is_backend(model):
            def call(batch):
                return np.asarray(model(batch), dtype=np.float32)

            if not tta:
                return call
            return lambda batch: _dihedral_mean(batch, len(batch), call, lambda parts: np.concatenate(parts, axis=0), np)

        import tensorflow as tf

        def forward(batch):
            def call(images):
                return tf.cast(model(images, training=False), tf.float32)

            if not tta:
                return call(batch)
            return _dihedral_mean(batch, tf.shape(batch)[0], call, lambda parts: tf.concat(parts, axis=0), tf)

        # Shape-free signature: traced once, whatever the image, window or batch size.
        compiled = tf.function(forward, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        return lambda batch: compiled(batch).numpy()

    # ------------------------------------------------------------ public API

    def predict_probs(self, rgb: np.ndarray) -> np.ndarray:
        """Softmax probabilities of one image.

        Args:
            rgb: (H, W, 3) RGB image, uint8 or float in 0-255.

        Returns:
            (H, W, C) float32 probabilities.
        """
        return next(self.predict_many([rgb], probabilities=True))

    def predict_classes(self, rgb: np.ndarray) -> np.ndarray:
        """Class map of one image: (H, W) uint8 argmax of :meth:`predict_probs`."""
        return next(self.predict_many([rgb]))

    def predict_many(self, images: Iterable[np.ndarray], *, probabilities: bool = False) -> Iterator[np.ndarray]:
        """Predict a stream of images, in order, batching consecutive same-size whole images.

        Images whose working size (after ``scale``) fits in one tile are grouped, up to
        ``batch_size`` consecutive images of the same size, into one model call; larger ones run as
        a sliding window on their own (their windows are batched). The input iterable is consumed
        lazily, at most ``batch_size`` images ahead of the output.

        Args:
            images: (H, W, 3) RGB arrays, uint8 or float in 0-255; sizes may differ.
            probabilities: yield (H, W, C) float32 probabilities instead of (H, W) uint8 class maps.

        Yields:
            One result per input image, with that image's height and width.
        """
        group: list[tuple[tuple[int, int], np.ndarray]] = []  # (original size, working image)
        for rgb in images:
            original_size, work = self._working_image(rgb)
            if work.shape[0] > self.tile or work.shape[1] > self.tile:
                yield from self._run_group(group, probabilities)
                group = []
                yield self._finish(self._sliding_window(work), original_size, probabilities)
                continue
            if group and group[0][1].shape != work.shape:
                yield from self._run_group(group, probabilities)
                group = []
            group.append((original_size, work))
            if len(group) == self.batch_size:
                yield from self._run_group(group, probabilities)
                group = []
        yield from self._run_group(group, probabilities)

    # ------------------------------------------------------------ internals

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) at which an image of this size is run (before padding)."""
        if self.scale == 1.0:
            return height, width
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    def _working_image(self, rgb) -> tuple[tuple[int, int], np.ndarray]:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
        original_size = (int(rgb.shape[0]), int(rgb.shape[1]))
        size = self.working_size(*original_size)
        if size == original_size:
            return original_size, rgb.astype(np.float32, copy=False)
        from .data import resize_image_tf  # the same resize as training's --image-size

        return original_size, np.clip(resize_image_tf(rgb, size).numpy(), 0.0, 255.0)

    def _run_group(self, group, probabilities: bool) -> Iterator[np.ndarray]:
        """One model call for same-size images that each fit in one tile."""
        if not group:
            return
        height, width = group[0][1].shape[:2]
        batch = np.stack([_reflect_pad(work, padded_side(height), padded_side(width)) for _, work in group])
        probs = self._forward(batch)[:, :height, :width]
        for (original_size, _), image_probs in zip(group, probs):
            yield self._finish(image_probs, original_size, probabilities)

    def _sliding_window(self, work: np.ndarray) -> np.ndarray:
        """Blended (h, w, C) probabilities of a working image larger than one tile."""
        height, width = work.shape[:2]
        # An axis that fits in one tile runs whole (padded); a longer one is cut into tile windows.
        window_h = self.tile if height > self.tile else padded_side(height)
        window_w = self.tile if width > self.tile else padded_side(width)
        padded = _reflect_pad(work, max(height, window_h), max(width, window_w))
        rows = window_starts(padded.shape[0], window_h, self.overlap)
        cols = window_starts(padded.shape[1], window_w, self.overlap)
        row_profiles = [window_profile(window_h, self.overlap, i > 0, i < len(rows) - 1) for i in range(len(rows))]
        col_profiles = [window_profile(window_w, self.overlap, j > 0, j < len(cols) - 1) for j in range(len(cols))]
        windows = [(i, j) for i in range(len(rows)) for j in range(len(cols))]

        total = np.zeros(padded.shape[:2] + (self.num_classes,), dtype=np.float32)
        weight_sum = np.zeros(padded.shape[:2], dtype=np.float32)
        for first in range(0, len(windows), self.batch_size):
            chunk = windows[first : first + self.batch_size]
            batch = np.stack([padded[rows[i] : rows[i] + window_h, cols[j] : cols[j] + window_w] for i, j in chunk])
            probs = self._forward(batch)
            for (i, j), window_probs in zip(chunk, probs):
                weight = np.outer(row_profiles[i], col_profiles[j])
                area = (slice(rows[i], rows[i] + window_h), slice(cols[j], cols[j] + window_w))
                total[area] += window_probs * weight[..., None]
                weight_sum[area] += weight
        return (total / weight_sum[..., None])[:height, :width]

    def _finish(self, probs: np.ndarray, original_size: tuple[int, int], probabilities: bool) -> np.ndarray:
        """Resize working-size probabilities back to the original size; argmax unless asked not to."""
        if probs.shape[:2] != original_size:
            import tensorflow as tf

            probs = tf.image.resize(probs, original_size, method="bilinear", antialias=True).numpy()
        if probabilities:
            return probs.astype(np.float32, copy=False)
        return np.argmax(probs, axis=-1).astype(np.uint8)


# ---------------------------------------------------------------- models on disk


def resolve_model_path(path: str | os.PathLike, note: Callable[[str], None] | None = None) -> Path:
    """The ``.keras`` file that ``--model`` names: the file itself, or a run directory's best model.

    Args:
        path: a model file, or a training run directory holding ``best.keras`` (else ``last.keras``,
            with a note).
        note: receives the one-line note about the fallback (stderr when None).

    Raises:
        InputError: nothing to load there.
    """
    path = Path(path)
    if path.is_dir():
        best, last = (path / name for name in MODEL_FILES)
        if best.is_file():
            return best
        if last.is_file():
            (note or _to_stderr)(f"note: {best} not found, using {last.name}")
            return last
        raise InputError(f"{path}: run directory holds neither {' nor '.join(MODEL_FILES)}")
    if not path.is_file():
        raise InputError(f"{path}: no such model file or run directory")
    return path


def with_precision(model, policy: str):
    """A copy of a functional model whose layers compute under another dtype policy.

    The output layer (the float32 softmax) keeps its dtype; :class:`fcn.models.CaffePreprocess`
    always computes in float32. Weights are copied (variables stay float32 under mixed policies).

    Args:
        model: a functional Keras model.
        policy: a Keras dtype policy name, e.g. ``"mixed_bfloat16"``.

    Returns:
        The new model (the same model when its layers already use ``policy``).
    """
    import keras

    from . import models  # registers the custom layers for from_config

    adjustable = [layer for layer in model.layers[:-1] if not isinstance(layer, (keras.layers.InputLayer, models.CaffePreprocess))]
    if all(layer.dtype_policy.name == policy for layer in adjustable):
        return model
    config = model.get_config()
    outputs = config["output_layers"]
    keep = {outputs[0]} if isinstance(outputs[0], str) else {entry[0] for entry in outputs}
    for layer_config in config["layers"]:
        if layer_config["class_name"] != "InputLayer" and layer_config["config"]["name"] not in keep:
            layer_config["config"]["dtype"] = policy
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def load_model(
    path: str | os.PathLike,
    *,
    precision: str | None = None,
    num_classes: int | None = NUM_CLASSES,
    note: Callable[[str], None] | None = None,
):
    """Load a saved FCN for prediction.

    Args:
        path: a ``.keras`` file or a run directory (see :func:`resolve_model_path`).
        precision: ``None`` keeps the saved dtype policy; otherwise one of :data:`PRECISIONS`.
        num_classes: required number of output channels (None: any).
        note: receives one-line notes (stderr when None).

    Returns:
        The Keras model (not compiled).

    Raises:
        InputError: missing or unreadable file, or a model that does not output (B, H, W,
            num_classes).
    """
    model_path = resolve_model_path(path, note)
    import keras

    from . import models  # noqa: F401  (registers the custom layers)

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as err:  # Keras raises many types for corrupt or foreign files
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(f"{model_path}: cannot load model ({err.__class__.__name__}: {detail})") from None
    output_shape = model.output_shape
    if not (isinstance(output_shape, tuple) and len(output_shape) == 4):
        raise InputError(f"{model_path}: expected one (B, H, W, C) output, got {output_shape}")
    if num_classes is not None and output_shape[-1] != num_classes:
        raise InputError(f"{model_path}: model predicts {output_shape[-1]} classes, the palette has {num_classes}")
    if precision is not None:
        model = with_precision(model, resolve_precision(precision))
    return model


# ---------------------------------------------------------------- folders


class PredictionJob(NamedTuple):
    """One input image and the files written for it (``overlay`` is None without ``--overlay``)."""

    image: Path
    mask: Path
    overlay: Path | None


def tile_id(path: str | os.PathLike) -> str:
    """The id of a tile: ``0001_sat.jpg`` -> ``0001``, ``foo.png`` -> ``foo``."""
    stem = Path(path).stem
    return stem[: -len(SAT_SUFFIX)] if stem.endswith(SAT_SUFFIX) else stem


def mask_name(path: str | os.PathLike) -> str:
    """File name of the predicted mask: ``0001_sat.jpg`` -> ``0001_mask.png``."""
    return f"{tile_id(path)}{MASK_SUFFIX}.png"


def overlay_name(path: str | os.PathLike) -> str:
    """File name of the overlay: ``0001_sat.jpg`` -> ``0001_overlay.jpg``."""
    return f"{tile_id(path)}_overlay.jpg"


def list_input_images(folder: str | os.PathLike) -> list[Path]:
    """Images to predict in ``folder``: ``.jpg``/``.jpeg``/``.png``, except ``*_mask.png`` masks.

    Raises:
        InputError: no such folder, or no image in it.
    """
    images = [p for p in list_images(folder) if not p.name.lower().endswith(f"{MASK_SUFFIX}.png")]
    if not images:
        raise InputError(f"{folder}: no .jpg/.jpeg/.png image to predict (files *_mask.png are skipped)")
    return images


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def plan_jobs(
    input_dir: str | os.PathLike, output_dir: str | os.PathLike, overlay_dir: str | os.PathLike | None = None
) -> list[PredictionJob]:
    """List the images of ``input_dir`` and the files to write for each, refusing any overwrite of inputs.

    Raises:
        InputError: missing or empty input folder, an output folder that is the input folder, two
            inputs with the same output name, or an output path that is an input file.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    images = list_input_images(input_dir)
    folders = [("--output", output_dir)] + ([("--overlay", Path(overlay_dir))] if overlay_dir is not None else [])
    for option, folder in folders:
        if _same_path(folder, input_dir):
            raise InputError(f"{folder}: {option} folder is the input folder; refusing to write next to the inputs")
    inputs = {p.resolve() for p in images}
    jobs, claimed = [], {}
    for image in images:
        job = PredictionJob(
            image, output_dir / mask_name(image), Path(overlay_dir) / overlay_name(image) if overlay_dir is not None else None
        )
        for target in (job.mask, job.overlay):
            if target is None:
                continue
            key = target.resolve()
            if key in inputs:
                raise InputError(f"{target}: output would overwrite an input file")
            if key in claimed:
                raise InputError(f"{image}: writes {target.name} like {claimed[key].name}; rename one of them")
            claimed[key] = image
        jobs.append(job)
    return jobs


def prepare_output_folder(folder: str | os.PathLike, option: str = "--output") -> Path:
    """Create ``folder`` if needed and check that a file can be written there.

    Raises:
        InputError: the folder cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fcn-predict-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"{folder}: {option} folder cannot be written ({err.strerror or err})") from None
    return folder


def overlay_image(rgb: np.ndarray, class_map: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The tile blended with its mask's palette colours, class boundaries drawn in red.

    Args:
        rgb: (H, W, 3) uint8 tile.
        class_map: (H, W) class indices.
        alpha: weight of the mask colours.

    Returns:
        (H, W, 3) uint8 image.
    """
    from skimage.segmentation import find_boundaries

    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * PALETTE[class_map].astype(np.float32)
    blended = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    blended[find_boundaries(class_map, mode="thick")] = BOUNDARY_RGB
    return blended


def _write_outputs(job: PredictionJob, class_map: np.ndarray, rgb: np.ndarray | None) -> None:
    write_mask(job.mask, class_map)
    if job.overlay is not None:
        write_image_atomic(job.overlay, overlay_image(rgb, class_map), quality=OVERLAY_JPEG_QUALITY)


def _prefetch(pool: ThreadPoolExecutor, read, jobs: Sequence[PredictionJob], depth: int) -> Iterator[tuple[PredictionJob, Future]]:
    """Yield (job, future of read(job.image)) in order, keeping ``depth`` reads in flight."""
    in_flight: deque = deque()
    remaining = iter(jobs)
    for job in remaining:
        in_flight.append((job, pool.submit(read, job.image)))
        if len(in_flight) >= depth:
            break
    while in_flight:
        yield in_flight.popleft()
        job = next(remaining, None)
        if job is not None:
            in_flight.append((job, pool.submit(read, job.image)))


@dataclass
class FolderReport:
    """What :func:`predict_folder` did.

    Attributes:
        written: jobs whose mask (and overlay) were written.
        failed: (image, one-line reason) of the images that were skipped.
        seconds: wall time of the whole loop, reading and writing included.
    """

    written: list[PredictionJob] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0


def default_workers() -> int:
    """Reader/writer threads: PIL decodes and encodes without the GIL; TensorFlow has the other cores."""
    return max(2, min(4, os.cpu_count() or 1))


def predict_folder(
    predictor: Predictor,
    jobs: Sequence[PredictionJob],
    *,
    workers: int | None = None,
    verbose: int = 1,
    on_error: Callable[[str], None] | None = None,
) -> FolderReport:
    """Predict every job's image and write its mask (and overlay), overlapping I/O with inference.

    Images are decoded by a thread pool ahead of the model and masks are encoded by the same pool
    behind it. An unreadable image or a failed write is reported (one line naming the file) and
    skipped; the other images are still written.

    Args:
        predictor: the inference engine.
        jobs: from :func:`plan_jobs` (output folders must exist).
        workers: pool threads (``default_workers()`` when None).
        verbose: 1 shows a ``keras.utils.Progbar``; 0 is silent.
        on_error: receives each failure line (``error: ...`` on stderr when None).

    Returns:
        The report; ``report.failed`` is empty when everything was written.
    """
    on_error = on_error or (lambda line: print(f"error: {line}", file=sys.stderr, flush=True))
    workers = workers or default_workers()
    report = FolderReport()
    progress = None
    if verbose:
        import keras

        progress = keras.utils.Progbar(len(jobs), unit_name="image")
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress.update(done)

    def fail(path: Path, reason: str) -> None:
        report.failed.append((path, reason))
        on_error(reason)

    keep_rgb = any(job.overlay is not None for job in jobs)
    predicted: deque = deque()  # (job, rgb or None) of the images handed to the predictor, in order
    writes: deque = deque()
    max_pending_writes = 2 * workers

    def finish_write(job: PredictionJob, future: Future) -> None:
        try:
            future.result()
            report.written.append(job)
        except OSError as err:
            fail(job.mask, f"{job.mask}: cannot write ({err.strerror or err})")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def readable_images() -> Iterator[np.ndarray]:
            for job, future in _prefetch(pool, read_rgb, jobs, depth=predictor.batch_size + workers):
                try:
                    rgb = future.result()
                except InputError as err:
                    fail(job.image, str(err))
                    advance()
                    continue
                predicted.append((job, rgb if keep_rgb else None))
                yield rgb

        for class_map in predictor.predict_many(readable_images()):
            job, rgb = predicted.popleft()
            writes.append((job, pool.submit(_write_outputs, job, class_map, rgb)))
            advance()
            while writes and (writes[0][1].done() or len(writes) > max_pending_writes):
                finish_write(*writes.popleft())
        while writes:
            finish_write(*writes.popleft())
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcn-predict",
        description="Predict a palette mask <id>_mask.png for every .jpg/.jpeg/.png image of a folder "
        "(xxxx_sat.jpg -> xxxx_mask.png; files *_mask.png are skipped). Any image size.",
    )
    parser.add_argument("--model", required=True, metavar="MODEL", help="a .keras file, a run directory (its best.keras, else last.keras), or an exported model "
                        "(fcn-export): .onnx (ONNX Runtime, pip install 'fcn[onnx]'), .tflite, or a SavedModel directory. On CPU "
                        "a .keras model is as fast as ONNX Runtime in float32 and ~1.9x faster in bfloat16 on AMX CPUs")
    parser.add_argument("--input", required=True, metavar="DIR", help="folder of images")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the masks (created; must not be the input folder)")
    parser.add_argument("--scale", type=float, default=1.0, metavar="F", help="resize images by F before inference; masks keep the input size (default 1)")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, metavar="N", help=f"sliding-window side for larger images, multiple of 32 (default {DEFAULT_TILE}: a full DeepGlobe tile at --scale 0.418 runs whole)")
    parser.add_argument("--overlap", type=int, default=None, metavar="N", help="minimum overlap of sliding windows in pixels (default: tile / 8)")
    parser.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (8x slower)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="images or windows per model call (default 4)")
    parser.add_argument("--overlay", metavar="DIR", help="also write <id>_overlay.jpg: the image blended with its mask, class boundaries in red")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute dtype policy (default: as saved; auto: mixed_float16 on tensor-core GPUs, mixed_bfloat16 on CPUs with amx_bf16, float32 elsewhere)",
    )
    parser.add_argument("--workers", type=int, default=None, metavar="N", help=f"reader/writer threads (default {default_workers()})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not (args.scale > 0 and math.isfinite(args.scale)):
        raise InputError(f"--scale must be a positive number, got {args.scale}")
    if args.tile < STRIDE or args.tile % STRIDE:
        raise InputError(f"--tile must be a positive multiple of {STRIDE}, got {args.tile}")
    if args.overlap is not None and not 0 <= args.overlap < args.tile:
        raise InputError(f"--overlap must lie in [0, --tile={args.tile}), got {args.overlap}")
    if args.batch_size < 1 or (args.workers is not None and args.workers < 1):
        raise InputError("--batch-size and --workers must be at least 1")

    # Every check that can fail runs before the model is loaded.
    exported = artefact_format(args.model) is not None
    if exported:
        if not Path(args.model).exists():
            raise InputError(f"{args.model}: no such exported model")
        if args.precision not in (None, "auto", "float32"):
            raise InputError(f"--precision {args.precision}: {args.model} is an exported float32 model; precision applies to .keras models")
    else:
        model_path = resolve_model_path(args.model, note=_to_stderr)
    jobs = plan_jobs(args.input, args.output, args.overlay)
    prepare_output_folder(args.output, "--output")
    if args.overlay is not None:
        prepare_output_folder(args.overlay, "--overlay")
    if exported:
        model = open_backend(args.model)
        if model.num_classes != NUM_CLASSES:
            raise InputError(f"{args.model}: model predicts {model.num_classes} classes, the palette has {NUM_CLASSES}")
    else:
        model = load_model(model_path, precision=args.precision)

    predictor = Predictor(model, scale=args.scale, tile=args.tile, overlap=args.overlap, tta=args.tta, batch_size=args.batch_size)
    report = predict_folder(predictor, jobs, workers=args.workers, verbose=0 if args.quiet else 1)
    summary = (
        f"wrote {len(report.written)} mask{'s' * (len(report.written) != 1)} to {args.output} in "
        f"{report.seconds:.1f} s ({report.images_per_second:.2f} images/s)"
    )
    if report.failed:
        summary += f"; {len(report.failed)} image{'s' * (len(report.failed) != 1)} failed (see above)"
    print(summary, flush=True)
    return 2 if report.failed else 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
