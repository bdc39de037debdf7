"""The course's mask decoding rule (fcn.core.palette)."""

import numpy as np
import pytest

from fcn.core.palette import (
    CLASS_NAMES,
    CLASSES,
    NUM_CLASSES,
    PALETTE,
    SCORED_CLASSES,
    UNKNOWN,
    class_to_rgb,
    rgb_to_class,
)

# The colours as the assignment states them, written out independently of fcn.core.palette.
ASSIGNMENT_COLOURS = {
    0: (0, 255, 255),  # urban: cyan
    1: (255, 255, 0),  # agriculture: yellow
    2: (255, 0, 255),  # rangeland: purple
    3: (0, 255, 0),  # forest: green
    4: (0, 0, 255),  # water: blue
    5: (255, 255, 255),  # barren: white
    6: (0, 0, 0),  # unknown: black
}


def test_palette_matches_the_assignment():
    assert NUM_CLASSES == 7 and UNKNOWN == 6 and SCORED_CLASSES == (0, 1, 2, 3, 4, 5)
    assert len(CLASS_NAMES) == len(set(CLASS_NAMES)) == 7
    for cls in CLASSES:
        assert tuple(PALETTE[cls.index]) == ASSIGNMENT_COLOURS[cls.index] == cls.rgb


def test_all_seven_colours_round_trip():
    colours = np.array([ASSIGNMENT_COLOURS[i] for i in range(7)], dtype=np.uint8)[None]  # (1, 7, 3)
    classes = rgb_to_class(colours)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes[0], np.arange(7))
    np.testing.assert_array_equal(class_to_rgb(classes), colours)


def test_jpeg_noisy_colours_stay_in_their_class():
    rng = np.random.default_rng(0)
    for index, colour in ASSIGNMENT_COLOURS.items():
        jitter = rng.integers(0, 41, size=(32, 32, 3))
        base = np.array(colour)
        # Move each channel up to 40 towards the middle, as JPEG ringing does.
        noisy = np.where(base == 255, base - jitter, base + jitter).astype(np.uint8)
        assert (rgb_to_class(noisy) == index).all(), CLASS_NAMES[index]


def test_threshold_is_128_inclusive():
    cyan_edge = np.array([[[127, 128, 128], [127, 127, 128]]], dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_class(cyan_edge), [[0, 4]])  # urban, then water


@pytest.mark.parametrize("red", [(255, 0, 0), (128, 0, 0), (200, 40, 40), (139, 0, 0)])
def test_red_which_the_course_leaves_undefined_is_unknown(red):
    assert rgb_to_class(np.array([[red]], dtype=np.uint8))[0, 0] == UNKNOWN


def test_rgba_alpha_is_ignored():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(16, 16, 1), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_class(np.concatenate([rgb, alpha], axis=-1)), rgb_to_class(rgb))


def test_class_to_rgb_is_the_inverse_of_rgb_to_class():
    class_map = np.random.default_rng(2).integers(0, NUM_CLASSES, size=(24, 40))
    rgb = class_to_rgb(class_map)
    assert rgb.shape == (24, 40, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb_to_class(rgb), class_map)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 2), (8, 8, 5), (8,)])
def test_rgb_to_class_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        rgb_to_class(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("bad", [7, -1])
def test_class_to_rgb_rejects_out_of_range_classes(bad):
    with pytest.raises(ValueError):
        class_to_rgb(np.array([[0, bad]]))


def test_rgb_to_class_tf_equals_numpy_on_random_arrays():
    tf = pytest.importorskip("tensorflow")
    from fcn.data.pipeline import _rgb_to_class_tf

    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, size=(2, 17, 23, 3), dtype=np.uint8)
    batch[0, :4, :4] = (255, 0, 0)  # some red
    rgba = np.concatenate([batch[1], rng.integers(0, 256, size=(17, 23, 1), dtype=np.uint8)], axis=-1)

    got_batch = _rgb_to_class_tf(tf.constant(batch)).numpy()
    np.testing.assert_array_equal(got_batch, np.stack([rgb_to_class(image) for image in batch]))
    np.testing.assert_array_equal(_rgb_to_class_tf(tf.constant(rgba)).numpy(), rgb_to_class(rgba))
