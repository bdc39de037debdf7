"""How closely an exported artefact reproduces the Keras model it came from, and the thresholds it must meet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fcn.inference.backends import open_backend

# Parity of an artefact with the Keras model it came from, in float32.
PARITY_MAX_ABS_DIFF = 1e-4
PARITY_MIN_ARGMAX_AGREEMENT = 0.9999
# Random images the export self-check runs (height, width): two shapes, one not square.
CHECK_SIZES = ((64, 64), (96, 128))


@dataclass
class Parity:
    """How closely an artefact reproduces the Keras model on the same inputs.

    Attributes:
        max_abs_diff: largest |difference| of any probability.
        argmax_agreement: fraction of pixels whose argmax class is the same.
        pixels: pixels compared.
    """

    max_abs_diff: float
    argmax_agreement: float
    pixels: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_MAX_ABS_DIFF and self.argmax_agreement >= PARITY_MIN_ARGMAX_AGREEMENT

    def __str__(self) -> str:
        return f"max |dp| {self.max_abs_diff:.2e}, argmax agreement {100 * self.argmax_agreement:.4f} % of {self.pixels} pixels"


def _compare_probabilities(reference: np.ndarray, other: np.ndarray) -> Parity:
    """Compare two (..., C) probability arrays of the same shape.

    Raises:
        ValueError: the shapes differ.
    """
    reference, other = np.asarray(reference, np.float32), np.asarray(other, np.float32)
    if reference.shape != other.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {other.shape}")
    agree = np.argmax(reference, axis=-1) == np.argmax(other, axis=-1)
    return Parity(float(np.max(np.abs(reference - other))), float(np.mean(agree)), int(agree.size))


class ParityAccumulator:
    """Running :class:`Parity` over many batches (max of the max, pooled agreement)."""

    def __init__(self):
        self.max_abs_diff, self.agreeing, self.pixels = 0.0, 0, 0

    def update(self, reference: np.ndarray, other: np.ndarray) -> Parity:
        """Add one pair of probability arrays; returns that pair's own figures."""
        parity = _compare_probabilities(reference, other)
        self.max_abs_diff = max(self.max_abs_diff, parity.max_abs_diff)
        self.agreeing += round(parity.argmax_agreement * parity.pixels)
        self.pixels += parity.pixels
        return parity

    def result(self) -> Parity:
        return Parity(self.max_abs_diff, self.agreeing / self.pixels if self.pixels else float("nan"), self.pixels)


def check_parity(
    model, artefact: str | os.PathLike, sizes: Sequence[tuple[int, int]] = CHECK_SIZES, seed: int = 0
) -> Parity:
    """Run the artefact and the Keras model on random RGB images and compare their probabilities.

    Args:
        model: the Keras model that was exported.
        artefact: the exported file or directory.
        sizes: (height, width) of the images, one image per size (multiples of 32).
        seed: random seed of the images.

    Raises:
        InputError: the artefact's runtime is missing or cannot open it.
    """
    backend = open_backend(artefact)
    rng = np.random.default_rng(seed)
    total = ParityAccumulator()
    for height, width in sizes:
        batch = rng.uniform(0.0, 255.0, (1, height, width, 3)).astype(np.float32)
        total.update(np.asarray(model.predict_on_batch(batch), np.float32), backend(batch))
    return total.result()
