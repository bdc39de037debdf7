"""The inference engine: softmax probabilities and class maps of RGB images of any size.

:class:`Predictor` runs a model *backend* — a Keras model (:class:`KerasBackend`) or an exported
artefact such as ONNX — on images of any height and width:

* sides that are multiples of 32 run as they are; others are reflect-padded to the next multiple of 32
  and the output is cropped back;
* an image larger than ``tile`` on either side runs as a sliding window of ``tile`` x ``tile`` windows
  overlapping by at least ``overlap`` pixels, batched, whose softmax outputs are averaged with smooth
  weights (:func:`window_profile`), so memory stays bounded by the window batch, whatever the size;
* ``scale`` resizes the image before inference (bilinear, antialiased when shrinking: the kernel
  of training's resize, computed with numpy and Pillow by :mod:`fcn.inference.resize`, so without
  TensorFlow) and the *probabilities* back to the original size, so a class map is the argmax of
  the resized probabilities. By default the scale is the one the model was trained at
  (:class:`fcn.model.checkpoints.ModelInfo`), or follows from the input's ground sample distance;
* ``tta`` averages the softmax over the 8 dihedral transforms (flips and 90-degree rotations).

:meth:`Predictor.predict_many` batches consecutive same-size images that run whole (the common case:
512x512 tiles) into one backend call; training reuses one predictor every epoch because the Keras
backend reads the model's current weights.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from typing import Protocol

import numpy as np

from fcn.inference.resize import resize_float, resize_image
from fcn.inference.windows import (  # noqa: F401 (re-exported: the engine's geometry)
    DIHEDRAL,
    STRIDE,
    WindowGrid,
    padded_side,
    reflect_pad,
    transform,
    untransform,
    window_grid,
    window_profile,
    window_starts,
)
from fcn.model.checkpoints import ModelInfo, model_info

DEFAULT_TILE = 1024  # largest side run in one call; bigger images run as a sliding window


class Backend(Protocol):
    """What the engine needs from a model: probabilities of a batch of raw RGB images."""

    num_classes: int
    info: ModelInfo

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) float32 RGB 0-255, H and W multiples of 32 -> (B, H, W, C) float32 probabilities."""


class KerasBackend:
    """A Keras model as a backend: one ``tf.function`` with a shape-free signature, traced once.

    Args:
        model: maps RGB 0-255 float32 (B, H, W, 3) to softmax (B, H, W, C) for sides that are
            multiples of 32 (a model built with a fixed input size works too).
    """

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        self.num_classes = int(model.output_shape[-1])
        self.info = model_info(model)

        def forward(batch):
            return tf.cast(model(batch, training=False), tf.float32)

        self._forward = tf.function(forward, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(np.asarray(batch, dtype=np.float32)).numpy()


def _as_backend(model) -> Backend:
    """A Keras model wrapped in :class:`KerasBackend`; a backend object as it is."""
    keras = sys.modules.get("keras")  # a Keras model implies Keras is loaded: exported models never load it
    return KerasBackend(model) if keras is not None and isinstance(model, keras.Model) else model


# ---------------------------------------------------------------- the engine


class Predictor:
    """Softmax probabilities and class maps of RGB images of any size.

    Args:
        model: a Keras model mapping RGB 0-255 float32 (B, H, W, 3) to softmax (B, H, W, C) for sides
            that are multiples of 32, or any :class:`Backend` (e.g. an ONNX Runtime session).
        scale: resize factor applied before inference; the output always has the input's size.
            None: the model's own, from its :class:`fcn.model.checkpoints.ModelInfo` (the scale it was
            trained at, or the one ``input_gsd`` calls for; 1 for a model without that information).
        input_gsd: ground sample distance of the inputs in metres per pixel; with ``scale=None``
            the scale becomes ``input_gsd`` / the model's training ground sample distance.
        tile: window side in pixels (a multiple of 32); larger working images (after ``scale``) run
            as a sliding window.
        overlap: minimum overlap of neighbouring windows, ``0 <= overlap < tile`` (None: tile // 8);
            also the length of the blending ramps.
        tta: average the softmax over the 8 flips/rotations (8x the compute; each backend call then
            holds 4 x ``batch_size`` images).
        batch_size: images or windows per backend call.

    Raises:
        ValueError: an argument is out of range, or ``input_gsd`` is given for a model that does not
            know its ground sample distance.
    """

    def __init__(
        self,
        model,
        *,
        scale: float | None = None,
        input_gsd: float | None = None,
        tile: int = DEFAULT_TILE,
        overlap: int | None = None,
        tta: bool = False,
        batch_size: int = 4,
    ):
        self.backend = _as_backend(model)
        if scale is None:
            scale = self.backend.info.scale_for(input_gsd)
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
        self.scale = float(scale)
        self.tile = int(tile)
        self.overlap = int(overlap)
        self.tta = bool(tta)
        self.batch_size = int(batch_size)
        self.num_classes = int(self.backend.num_classes)

    def replace(self, **changes) -> Predictor:
        """A predictor sharing this one's backend (no new model function) with some options changed.

        Args:
            changes: any of ``scale``, ``tile``, ``overlap``, ``tta``, ``batch_size``.
        """
        options = dict(scale=self.scale, tile=self.tile, overlap=self.overlap, tta=self.tta, batch_size=self.batch_size)
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"unknown predictor options: {', '.join(sorted(unknown))}")
        return Predictor(self.backend, **{**options, **changes})

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities of a padded batch, averaged over the 8 dihedral transforms with ``tta``."""
        if not self.tta:
            return self.backend(batch)
        # Two backend calls of 4x the batch: the four flips keep the shape, the four transposed
        # variants swap height and width (not stackable with the others for non-square inputs).
        count = len(batch)
        total = 0.0
        for transpose in (False, True):
            variants = [t for t in DIHEDRAL if t[0] == transpose]
            probs = self.backend(np.concatenate([transform(batch, *t) for t in variants]))
            for k, variant in enumerate(variants):
                total = total + untransform(probs[k * count : (k + 1) * count], *variant)
        return np.asarray(total / len(DIHEDRAL), dtype=np.float32)

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
        # Rounded to uint8 like training's --image-size tiles (fcn.inference.resize: the same kernel).
        return original_size, resize_image(rgb, size).astype(np.float32)

    def _run_group(self, group, probabilities: bool) -> Iterator[np.ndarray]:
        """One model call for same-size images that each fit in one tile."""
        if not group:
            return
        height, width = group[0][1].shape[:2]
        batch = np.stack([reflect_pad(work, padded_side(height), padded_side(width)) for _, work in group])
        probs = self._forward(batch)[:, :height, :width]
        for (original_size, _), image_probs in zip(group, probs):
            yield self._finish(image_probs, original_size, probabilities)

    def _sliding_window(self, work: np.ndarray) -> np.ndarray:
        """Blended (h, w, C) probabilities of a working image larger than one tile."""
        height, width = work.shape[:2]
        grid = window_grid(height, width, self.tile, self.overlap)
        window_h, window_w = grid.window
        padded = reflect_pad(work, max(height, window_h), max(width, window_w))
        windows = grid.windows
        total = np.zeros(padded.shape[:2] + (self.num_classes,), dtype=np.float32)
        weight_sum = np.zeros(padded.shape[:2], dtype=np.float32)
        for first in range(0, len(windows), self.batch_size):
            chunk = windows[first : first + self.batch_size]
            batch = np.stack(
                [
                    padded[grid.rows[i] : grid.rows[i] + window_h, grid.cols[j] : grid.cols[j] + window_w]
                    for i, j in chunk
                ]
            )
            probs = self._forward(batch)
            for (i, j), window_probs in zip(chunk, probs):
                weight = grid.weight(i, j)
                area = (slice(grid.rows[i], grid.rows[i] + window_h), slice(grid.cols[j], grid.cols[j] + window_w))
                total[area] += window_probs * weight[..., None]
                weight_sum[area] += weight
        return (total / weight_sum[..., None])[:height, :width]

    def _finish(self, probs: np.ndarray, original_size: tuple[int, int], probabilities: bool) -> np.ndarray:
        """Resize working-size probabilities back to the original size; argmax unless asked not to."""
        if probs.shape[:2] != original_size:
            probs = resize_float(probs, original_size)
        if probabilities:
            return probs.astype(np.float32, copy=False)
        return np.argmax(probs, axis=-1).astype(np.uint8)
