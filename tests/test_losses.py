"""Tests for fcn.losses: the segmentation loss and its serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fcn.losses import SegmentationLoss, segmentation_loss
from fcn.palette import NUM_CLASSES, UNKNOWN


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


def test_default_is_plain_sparse_categorical_crossentropy():
    probs, labels = probs_and_labels()
    ours = float(segmentation_loss()(labels, probs))
    reference = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
    np.testing.assert_allclose(ours, pixel_crossentropy(probs, labels).mean(), rtol=1e-5)


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


def test_batch_of_only_unknown_gives_zero_not_nan():
    probs, _ = probs_and_labels(2)
    labels = np.full(probs.shape[:-1], UNKNOWN)
    assert float(segmentation_loss(ignore_unknown=True)(labels, probs)) == 0.0


def test_class_weights_scale_each_pixel_by_its_true_class():
    probs, labels = probs_and_labels(3)
    weights = np.array([0.5, 2.0, 1.0, 3.0, 0.0, 1.5, 4.0], np.float32)
    per_pixel = pixel_crossentropy(probs, labels)

    weighted = float(segmentation_loss(class_weights=weights)(labels, probs))
    both = float(segmentation_loss(class_weights=weights, ignore_unknown=True)(labels, probs))

    np.testing.assert_allclose(weighted, (weights[labels] * per_pixel).mean(), rtol=1e-5)
    counted = labels != UNKNOWN
    np.testing.assert_allclose(both, (weights[labels] * per_pixel)[counted].mean(), rtol=1e-5)


def test_uniform_weights_scale_the_loss_linearly():
    probs, labels = probs_and_labels(4)
    base = float(segmentation_loss()(labels, probs))
    tripled = float(segmentation_loss(class_weights=[3.0] * NUM_CLASSES)(labels, probs))
    np.testing.assert_allclose(tripled, 3 * base, rtol=1e-6)


def test_wrong_number_of_weights_rejected():
    with pytest.raises(ValueError, match="7 class weights"):
        segmentation_loss(class_weights=[1.0, 2.0])


def test_get_config_round_trip():
    loss = segmentation_loss(class_weights=np.linspace(0.5, 2, NUM_CLASSES), ignore_unknown=True)
    config = loss.get_config()
    assert config["ignore_unknown"] is True and len(config["class_weights"]) == NUM_CLASSES

    rebuilt = SegmentationLoss.from_config(config)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))

    probs, labels = probs_and_labels(5)
    for other in (rebuilt, again):
        assert isinstance(other, SegmentationLoss)
        assert other.get_config() == config
        np.testing.assert_allclose(float(other(labels, probs)), float(loss(labels, probs)), rtol=1e-7)


def test_saved_model_with_the_loss_loads_back(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=segmentation_loss(class_weights=[1, 2, 1, 1, 1, 1, 0], ignore_unknown=True))
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)

    assert isinstance(loaded.loss, SegmentationLoss)
    assert loaded.loss.get_config() == model.loss.get_config()


def test_trains_inside_fit_with_pipeline_shaped_labels():
    # (B, H, W) int32 labels against (B, H, W, C) softmax, as fcn.data.make_dataset delivers them.
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, (4, 8, 8)).astype(np.int32)
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(NUM_CLASSES, 1, activation="softmax")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=segmentation_loss(class_weights=[1.0] * 6 + [0.0], ignore_unknown=True))
    history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
