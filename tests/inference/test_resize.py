"""fcn.inference.resize: the engine's TensorFlow-free resize, its strips, and its agreement with training's."""

import numpy as np
import pytest

from fcn.inference.resize import StripResize, _axis_table, resize_float, resize_image
from helpers import random_image

SIZES = [((150, 210), (90, 126)), ((61, 77), (80, 100)), ((64, 90), (80, 40)), ((150, 210), (31, 44))]


@pytest.mark.parametrize("in_size, out_size", [(10, 4), (4, 10), (7, 7), (1, 5), (512, 214)])
def test_axis_weights_sum_to_one_and_stay_inside_the_input(in_size, out_size):
    table = _axis_table(in_size, out_size)
    np.testing.assert_allclose(table.weights.sum(1), 1.0, rtol=1e-6)
    assert (table.weights >= 0).all() and table.starts.min() >= 0 and table.stops.max() <= in_size
    assert (table.starts < table.stops).all() and np.all(np.diff(table.starts) >= 0)


@pytest.mark.parametrize("size, work", SIZES)
def test_strips_are_bit_for_bit_the_rows_of_the_whole_resize(size, work):
    """Both ways: images to the working size (uint8 rounded) and probabilities back."""
    rgb = random_image(*size, seed=11)
    probs = np.random.default_rng(12).dirichlet(np.ones(7), work).astype(np.float32)
    for source, out_size in ((rgb, work), (probs, size)):
        whole = resize_float(source, out_size)
        strips = StripResize(source.shape[:2], out_size)
        height = out_size[0]
        for rows in ((0, height), (3, height // 2), (height - 5, height), (height // 2, height // 2 + 1)):
            lo, hi = strips.source_rows(*rows)
            assert 0 <= lo < hi <= source.shape[0]
            np.testing.assert_array_equal(strips(source[lo:hi], lo, rows), whole[rows[0] : rows[1]])


def test_same_size_is_the_identity_and_uniform_images_stay_uniform():
    rgb = random_image(40, 50, seed=3)
    np.testing.assert_array_equal(resize_image(rgb, (40, 50)), rgb)
    flat = np.full((64, 48, 3), 77, np.uint8)
    for size in ((27, 20), (100, 130), (64, 20)):
        assert (resize_image(flat, size) == 77).all()


@pytest.mark.parametrize("scale", [0.5, 0.418, 1.3])
def test_agrees_with_trainings_tensorflow_resize(scale):
    """The kernel of tf.image.resize(antialias=True): working pixels differ by at most 1, and rarely."""
    pytest.importorskip("tensorflow")
    from fcn.data.pipeline import resize_tile_tf

    rgb = random_image(128, 96, seed=5)
    size = (round(128 * scale), round(96 * scale))
    ours, theirs = resize_image(rgb, size).astype(int), resize_tile_tf(rgb, size).numpy().astype(int)
    assert np.abs(ours - theirs).max() <= 1
    assert (ours == theirs).mean() >= 0.999
