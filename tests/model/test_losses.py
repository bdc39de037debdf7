"""fcn.model.losses: Keras's cross-entropy with Unknown ignored, and class weights as pixel weights."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.core.palette import NUM_CLASSES, UNKNOWN  # noqa: E402
from fcn.model.losses import segmentation_loss  # noqa: E402


def probs_and_labels(seed=0, shape=(2, 6, 5)):
    rng = np.random.default_rng(seed)
    probs = rng.random((*shape, NUM_CLASSES)).astype(np.float32) + 0.05
    probs /= probs.sum(axis=-1, keepdims=True)
    labels = rng.integers(0, NUM_CLASSES, shape)
    labels.flat[:4] = UNKNOWN  # make sure Unknown pixels are present
    return probs, labels


def pixel_crossentropy(probs, labels):
    """-log p(true class) per pixel, computed directly."""
    return -np.log(np.take_along_axis(probs, labels[..., None], axis=-1)[..., 0])


def test_default_is_the_mean_pixel_crossentropy():
    probs, labels = probs_and_labels()
    np.testing.assert_allclose(
        float(segmentation_loss()(labels, probs)), pixel_crossentropy(probs, labels).mean(), rtol=1e-5
    )


def test_ignore_unknown_averages_over_the_other_pixels_only():
    probs, labels = probs_and_labels(1)
    counted = labels != UNKNOWN
    loss = float(segmentation_loss(ignore_unknown=True)(labels, probs))
    np.testing.assert_allclose(loss, pixel_crossentropy(probs, labels)[counted].mean(), rtol=1e-5)
    # changing the predictions on Unknown pixels does not change the loss
    shuffled = probs.copy()
    shuffled[~counted] = shuffled[~counted][:, ::-1]
    np.testing.assert_allclose(float(segmentation_loss(ignore_unknown=True)(labels, shuffled)), loss, rtol=1e-6)
    assert not np.isclose(float(segmentation_loss()(labels, shuffled)), float(segmentation_loss()(labels, probs)))


def test_class_weights_as_pixel_weights_scale_each_pixel_by_its_true_class():
    probs, labels = probs_and_labels(3)
    weights = np.array([0.5, 2.0, 1.0, 3.0, 0.0, 1.5, 4.0], np.float32)
    per_pixel = pixel_crossentropy(probs, labels)
    weighted = float(segmentation_loss()(labels, probs, sample_weight=weights[labels]))
    both = float(segmentation_loss(ignore_unknown=True)(labels, probs, sample_weight=weights[labels]))
    np.testing.assert_allclose(weighted, (weights[labels] * per_pixel).mean(), rtol=1e-5)
    counted = labels != UNKNOWN
    np.testing.assert_allclose(both, (weights[labels] * per_pixel)[counted].mean(), rtol=1e-5)


def test_trains_inside_fit_with_the_pipelines_pixel_weights():
    # (B, H, W) int32 labels and float32 pixel weights against (B, H, W, C) softmax, as make_dataset delivers them.
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, (4, 8, 8)).astype(np.int32)
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1, activation="softmax")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=segmentation_loss(ignore_unknown=True))
    zero_weights = np.zeros(labels.shape, np.float32)
    history = model.fit(images, labels, sample_weight=zero_weights, batch_size=2, epochs=1, verbose=0)
    assert history.history["loss"][0] == 0.0  # all pixels weighted 0: nothing to learn
    history = model.fit(
        images, labels, sample_weight=np.ones(labels.shape, np.float32), batch_size=2, epochs=1, verbose=0
    )
    assert history.history["loss"][0] > 0
